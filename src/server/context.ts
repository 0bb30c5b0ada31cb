import { createContextKey } from "@connectrpc/connect";
import type { Principal } from "../core/auth.js";
import type { RequestTelemetry } from "../observe/telemetry.js";

/** The caller's key, checked by the RPC door from the headers before the body was read. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "gatewayz principal" });

/** The request's id, trace and facts (src/observe/telemetry.ts), from its RequestScope. */
export const telemetryKey = createContextKey<RequestTelemetry | undefined>(undefined, { description: "gatewayz request telemetry" });
