import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";

/**
 * The one error vocabulary. Every failure the gateway reports is a
 * GatewayError of one of these kinds; each front door maps the kind to its
 * own wire shape with the pure functions below, so a gRPC client and an
 * OpenAI SDK see the same failure, each in its own terms.
 */
export type ErrorKind =
  | "invalid_request"
  | "unsupported_media_type"
  | "payload_too_large"
  | "not_found"
  | "model_not_found"
  | "unauthenticated"
  | "key_expired"
  | "permission_denied"
  | "model_not_allowed"
  | "rate_limited"
  | "upstream_rate_limited"
  | "insufficient_quota"
  | "limiter_unavailable"
  | "provider_not_configured"
  | "upstream_error"
  | "upstream_unavailable"
  | "upstream_timeout"
  | "cancelled"
  | "unimplemented"
  | "too_many_connections"
  | "shutting_down"
  | "usage_store_unavailable"
  | "storage_unavailable"
  | "internal";

interface WireShape {
  /** gRPC / Connect status code. */
  code: Code;
  /** HTTP status on the OpenAI shim. */
  status: number;
  /** OpenAI's error `type`. */
  type: string;
  /** OpenAI's error `code`, where OpenAI has a name of its own; else the kind. */
  openaiCode?: string;
  /**
   * The google.rpc.ErrorInfo reason sent on the RPC doors, where kinds share
   * a code: RESOURCE_EXHAUSTED is the gateway's limit, a provider's or a budget.
   */
  reason?: string;
}

/** ErrorInfo's domain: the reasons are ours. */
export const ERROR_DOMAIN = "gatewayz";

const WIRE: Record<ErrorKind, WireShape> = {
  invalid_request: { code: Code.InvalidArgument, status: 400, type: "invalid_request_error" },
  unsupported_media_type: { code: Code.InvalidArgument, status: 415, type: "invalid_request_error" },
  payload_too_large: { code: Code.ResourceExhausted, status: 413, type: "invalid_request_error" },
  not_found: { code: Code.NotFound, status: 404, type: "invalid_request_error" },
  model_not_found: { code: Code.NotFound, status: 404, type: "invalid_request_error" },
  unauthenticated: { code: Code.Unauthenticated, status: 401, type: "authentication_error", openaiCode: "invalid_api_key" },
  // A key that was good until its expiry (gatewayz keys create --expires): its owner needs a new one, not a fix.
  key_expired: { code: Code.Unauthenticated, status: 401, type: "authentication_error", openaiCode: "key_expired", reason: "KEY_EXPIRED" },
  permission_denied: { code: Code.PermissionDenied, status: 403, type: "permission_error" },
  // A model outside the key's scope (gatewayz keys create --models).
  model_not_allowed: { code: Code.PermissionDenied, status: 403, type: "permission_error", openaiCode: "model_not_allowed", reason: "MODEL_NOT_ALLOWED" },
  rate_limited: { code: Code.ResourceExhausted, status: 429, type: "requests", openaiCode: "rate_limit_exceeded", reason: "RATE_LIMITED" },
  // A provider's 429, not the key's: waiting may help, a lower request rate on this key will not.
  upstream_rate_limited: { code: Code.ResourceExhausted, status: 429, type: "requests", reason: "UPSTREAM_RATE_LIMITED" },
  insufficient_quota: { code: Code.ResourceExhausted, status: 429, type: "insufficient_quota", openaiCode: "insufficient_quota", reason: "INSUFFICIENT_QUOTA" },
  // Fail closed: if the limiter cannot decide, nobody passes.
  limiter_unavailable: { code: Code.Unavailable, status: 503, type: "server_error" },
  provider_not_configured: { code: Code.Unavailable, status: 503, type: "server_error" },
  upstream_error: { code: Code.Unavailable, status: 502, type: "server_error" },
  upstream_unavailable: { code: Code.Unavailable, status: 503, type: "server_error" },
  upstream_timeout: { code: Code.DeadlineExceeded, status: 504, type: "server_error" },
  // 499 is nginx's "client closed request"; nobody reads it, but logs do.
  cancelled: { code: Code.Canceled, status: 499, type: "invalid_request_error" },
  // An RPC method this server does not have (gRPC's UNIMPLEMENTED).
  unimplemented: { code: Code.Unimplemented, status: 404, type: "invalid_request_error" },
  // Refusals that say "not now, this process": a client may retry, perhaps elsewhere.
  too_many_connections: { code: Code.Unavailable, status: 503, type: "server_error" },
  shutting_down: { code: Code.Unavailable, status: 503, type: "server_error", openaiCode: "server_shutting_down" },
  // Usage rows cannot be committed and the bounded retry buffer is full: no
  // chat is answered that could not be billed.
  usage_store_unavailable: { code: Code.Unavailable, status: 503, type: "server_error" },
  // The database refused a write (disk full, read-only file, locked): admin calls say so.
  storage_unavailable: { code: Code.Unavailable, status: 503, type: "server_error" },
  internal: { code: Code.Internal, status: 500, type: "server_error" },
};

export interface GatewayErrorOptions {
  /** The request field at fault, reported as OpenAI's `param`. */
  param?: string;
  /** OpenAI's error `type` when it depends on the case ("requests" or "tokens" for a 429). */
  openaiType?: string;
  /** Response headers / gRPC metadata to send with the error (Retry-After, x-ratelimit-*). */
  headers?: Record<string, string>;
  /** google.rpc detail messages for gRPC and Connect clients (RetryInfo, QuotaFailure). */
  details?: ConstructorParameters<typeof ConnectError>[3];
  /** An upstream failure another provider might not have: the failover loop may try the next. */
  retryable?: boolean;
  /** The upstream asked to be retried after this long (its Retry-After). */
  retryAfterMs?: number;
  /** HTTP status the upstream answered, kept for logs and failover. */
  upstreamStatus?: number;
  /** Which limit refused a request (rate_limited, insufficient_quota), for the metrics. */
  refusal?: Refusal;
  cause?: unknown;
}

/** A rate limit's or budget's refusal: the dimension (rpm, tpm, rpd, concurrent, budget) at its scope (key, user, system). */
export interface Refusal {
  readonly dimension: string;
  readonly scope: string;
}

/**
 * A ConnectError, so Connect handlers can throw it as is, that also knows
 * its kind, so the shim can render OpenAI's shape without guessing.
 */
export class GatewayError extends ConnectError {
  // ConnectError's static Symbol.hasInstance recognises errors by name
  // ("ConnectError"), which this class keeps so Connect passes it through;
  // GatewayError itself needs the ordinary prototype-chain test.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }

  readonly kind: ErrorKind;
  readonly param: string | undefined;
  readonly upstreamStatus: number | undefined;
  readonly openaiType: string | undefined;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly refusal: Refusal | undefined;

  constructor(kind: ErrorKind, message: string, options: GatewayErrorOptions = {}) {
    const reason = WIRE[kind].reason;
    const details = reason
      ? [...(options.details ?? []), { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN }) }]
      : options.details;
    super(message, WIRE[kind].code, options.headers, details, options.cause);
    this.kind = kind;
    this.param = options.param;
    this.upstreamStatus = options.upstreamStatus;
    this.openaiType = options.openaiType;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
    this.refusal = options.refusal;
  }
}

/** Connect's own mapping of codes to kinds, for errors that were not ours. */
const KIND_OF_CODE: Partial<Record<Code, ErrorKind>> = {
  [Code.InvalidArgument]: "invalid_request",
  [Code.NotFound]: "not_found",
  [Code.Unauthenticated]: "unauthenticated",
  [Code.PermissionDenied]: "permission_denied",
  // Connect's own RESOURCE_EXHAUSTED is a message over the size limit; our rate limits are GatewayErrors.
  [Code.ResourceExhausted]: "payload_too_large",
  [Code.Unimplemented]: "unimplemented",
  [Code.Unavailable]: "upstream_unavailable",
  [Code.DeadlineExceeded]: "upstream_timeout",
  [Code.Canceled]: "cancelled",
};

/**
 * Anything thrown becomes a GatewayError. Unknown errors become "internal"
 * with a fixed message: their text may hold paths, keys or prompts.
 */
export function asGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof ConnectError) {
    const kind = KIND_OF_CODE[err.code] ?? "internal";
    return new GatewayError(kind, kind === "internal" ? "internal error" : err.rawMessage, { cause: err });
  }
  return new GatewayError("internal", "internal error", { cause: err });
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** The HTTP status, headers and body OpenAI would send for this error. */
export function toOpenAIError(err: unknown): { status: number; headers: Record<string, string>; body: OpenAIErrorBody } {
  const e = asGatewayError(err);
  const wire = WIRE[e.kind];
  return {
    status: wire.status,
    headers: Object.fromEntries(e.metadata),
    body: { error: { message: e.rawMessage, type: e.openaiType ?? wire.type, param: e.param ?? null, code: wire.openaiCode ?? e.kind } },
  };
}

/** The HTTP status a kind maps to on the OpenAI shim. */
export function httpStatusOf(kind: ErrorKind): number {
  return WIRE[kind].status;
}
