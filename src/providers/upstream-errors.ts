import { ConnectError } from "@connectrpc/connect";
import OpenAI from "openai";
import type { ProviderConfig } from "../config.js";
import { GatewayError, type ErrorKind } from "../errors.js";
import { isLocal, networkCause } from "./error-origin.js";
import type { Redact } from "./redact.js";

/** Which upstream statuses are worth another provider, beyond the always-retryable ones. */
export interface RetryPolicy {
  readonly on429: boolean;
  readonly on500: boolean;
}

/**
 * Upstream failures are classified once, here, into the gateway's error
 * vocabulary, with the one verdict the failover loop needs: `retryable`
 * (another provider might succeed). Messages name the provider and the
 * status but never echo headers or keys; a client error (400, 404, 413, 422,
 * a content filter) keeps the upstream's message, since it tells the client
 * what to fix, and is never retried elsewhere. Upstream text passes through
 * `redact` first: an upstream that echoes its request must not hand the
 * client our key or address.
 *
 * Only what the provider did is the provider's: a network outcome, an HTTP
 * answer, a malformed body. An error raised before any byte left the process
 * (the SDK failing to serialise the body, an invalid header, a bug of ours)
 * is `internal`: not retryable, and with no upstream status, so the failover
 * loop charges nobody's circuit with it.
 */
export function classifyUpstreamError(err: unknown, provider: ProviderConfig, signal: AbortSignal, policy: RetryPolicy, redact: Redact): GatewayError {
  if (err instanceof GatewayError) return err;
  const name = provider.row.name;
  if (signal.aborted) return cancelled(signal.reason);
  if (err instanceof OpenAI.APIConnectionTimeoutError) {
    // The adapter's own timers cover the other phases, so the SDK's timeout
    // error (undici's, surfacing through it) means the connection never opened.
    return new GatewayError("upstream_timeout", `could not connect to ${name} within ${provider.timeouts.connectMs} ms`, { cause: err, retryable: true });
  }
  if (err instanceof OpenAI.APIConnectionError) {
    // The SDK wraps whatever its fetch threw, our own argument errors included.
    if (isLocal(err.cause)) return internal(err);
    const code = networkCause(err) ?? "network error";
    const kind: ErrorKind = code === "UND_ERR_CONNECT_TIMEOUT" ? "upstream_timeout" : "upstream_error";
    return new GatewayError(kind, `could not reach ${name}: ${code}`, { cause: err, retryable: true });
  }
  if (err instanceof OpenAI.APIError) {
    if (err.status === undefined) {
      // An error event inside a stream that had already started.
      return new GatewayError("upstream_error", `${name} failed mid-stream: ${upstreamMessage(err.error, redact)}`, { cause: err, retryable: true });
    }
    return fromStatus(err, name, policy, redact);
  }
  // JSON.stringify never throws one: only parsing what the upstream sent does.
  if (err instanceof SyntaxError) {
    return new GatewayError("upstream_error", `${name} sent a malformed stream event`, { cause: err, retryable: true });
  }
  const code = isLocal(err) ? undefined : networkCause(err);
  if (code === undefined) return internal(err);
  return new GatewayError("upstream_error", `connection to ${name} failed: ${code}`, { cause: err, retryable: true });
}

/** The gateway's own failure: a fixed message (the cause may hold anything) and the cause kept for the log. */
function internal(cause: unknown): GatewayError {
  return new GatewayError("internal", "internal error", { cause });
}

const CLIENT_FAULT: Readonly<Record<number, ErrorKind>> = {
  400: "invalid_request",
  404: "model_not_found",
  413: "payload_too_large",
  422: "invalid_request",
};

function fromStatus(err: InstanceType<typeof OpenAI.APIError>, name: string, policy: RetryPolicy, redact: Redact): GatewayError {
  const status = err.status!;
  const opts = { upstreamStatus: status, cause: err, retryAfterMs: retryAfterMs(err.headers) };
  const kind = CLIENT_FAULT[status];
  if (kind) return new GatewayError(kind, `${name} rejected the request (${status}): ${upstreamMessage(err.error, redact)}`, opts);
  if (status === 401 || status === 403) {
    // Our provider key, not the client's: another provider may well work.
    return new GatewayError("upstream_error", `${name} rejected the gateway's credentials (${status})`, { ...opts, retryable: true });
  }
  if (status === 429) {
    // Passed on: a client told when to come back need not guess.
    const headers = opts.retryAfterMs === undefined ? undefined : { "retry-after": String(Math.max(1, Math.ceil(opts.retryAfterMs / 1000))) };
    return new GatewayError("upstream_rate_limited", `${name} is rate limiting the gateway (429)`, { ...opts, ...(headers ? { headers } : {}), retryable: policy.on429 });
  }
  if (status === 503) return new GatewayError("upstream_unavailable", `${name} is unavailable (503)`, { ...opts, retryable: true });
  if (status === 504 || status === 408) return new GatewayError("upstream_timeout", `${name} timed out (${status})`, { ...opts, retryable: true });
  if (status === 500) return new GatewayError("upstream_error", `${name} failed (500)`, { ...opts, retryable: policy.on500 });
  return new GatewayError("upstream_error", `${name} failed (${status})`, { ...opts, retryable: status >= 500 });
}

/** `retry-after-ms`, or `retry-after` in seconds or as an HTTP date. */
function retryAfterMs(headers: Headers | undefined): number | undefined {
  const ms = Number(headers?.get("retry-after-ms"));
  if (Number.isFinite(ms) && ms >= 0 && headers?.has("retry-after-ms")) return ms;
  const raw = headers?.get("retry-after");
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The upstream's own words from an error body, redacted before it is cut, so no secret is left half-shown. */
export function upstreamMessage(error: unknown, redact: Redact): string {
  const text = typeof (error as { message?: unknown } | null | undefined)?.message === "string" ? (error as { message: string }).message : "no message";
  return redact(text).trim().slice(0, 500);
}

/** The client went away or its deadline passed; keep Connect's own reason. */
function cancelled(reason: unknown): GatewayError {
  if (reason instanceof GatewayError) return reason;
  if (reason instanceof ConnectError) {
    return new GatewayError(reason.code === 4 ? "upstream_timeout" : "cancelled", reason.rawMessage, { cause: reason });
  }
  return new GatewayError("cancelled", "the client cancelled the request", { cause: reason });
}
