import { RevokedKeyError } from "../core/auth.js";
import type { Gateway } from "../core/gateway.js";
import type { Protocol } from "../core/metering.js";
import type { Operation } from "../storage/usage.js";
import type { RpcWire } from "./rpc-errors.js";

/**
 * A chat refused at the door for a key that was ours, revoked or the old key
 * of a rotation, leaves its usage row under that key (status `rejected`,
 * error `unauthenticated`), so the key's owner can see who still uses it.
 * Every other refusal for a key (none, malformed, unknown, of the wrong kind)
 * leaves no row, so an unauthenticated flood cannot fill the disk; and these
 * rows are bounded like every failed authentication, by
 * AUTH_FAILURES_PER_MINUTE per address. Resolves once the row is durable (the
 * door answers after it); undefined when there is nothing to record.
 */
export function recordRevokedChat(gateway: Pick<Gateway, "refused">, protocol: Protocol,
  authorization: string | undefined, err: unknown, operation: Operation = "chat"): Promise<void> | undefined {
  if (!(err instanceof RevokedKeyError) || err.principal.kind !== "client") return undefined;
  return gateway.refused({ protocol, model: "", authorization, principal: err.principal, operation }, err);
}

/** The usage row's protocol for an RPC wire. */
export function protocolOfWire(wire: RpcWire): Protocol {
  switch (wire) {
    case "grpc":
      return "grpc";
    case "grpc-web":
    case "grpc-web-text":
      return "grpc-web";
    case "connect":
    case "connect-stream":
      return "connect";
  }
}
