import { asGatewayError } from "../errors.js";
import type { Logger } from "../log.js";

/**
 * One log line per failed request: its kind, the upstream status if any and
 * the message (which names providers and statuses, never keys or prompts).
 * Internal errors also log their cause, or bugs would leave no trace. The
 * request id ties the line to the request's own line, row and span.
 */
export function logFailure(log: Logger, where: string, err: unknown, requestId?: string): void {
  const e = asGatewayError(err);
  if (requestId !== undefined) where = `${where} [request ${requestId}]`;
  if (e.kind === "cancelled") {
    log.debug(`${where}: cancelled by the client`);
    return;
  }
  const upstream = e.upstreamStatus ? ` upstream_status=${e.upstreamStatus}` : "";
  if (e.kind === "internal") {
    const cause = e.cause instanceof Error ? e.cause.stack ?? e.cause.message : String(e.cause);
    log.error(`${where}: internal error: ${cause}`);
    return;
  }
  log.warn(`${where}: ${e.kind}${upstream}: ${e.rawMessage}`);
}
