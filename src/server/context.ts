import { createContextKey } from "@connectrpc/connect";
import type { Principal } from "../core/auth.js";

/** The caller's key, checked by the RPC door from the headers before the body was read. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "gatewayz principal" });
