import type { RequestTelemetry } from "../observe/telemetry.js";
import type { CacheControl } from "../cache/answer-cache.js";
import type { Operation } from "../storage/usage.js";
import type { Principal } from "./auth.js";
import type { Protocol } from "./metering.js";

/**
 * What every request to the core carries, whatever it asks for (a chat,
 * embeddings): who sent it, on which door, for which model, and the signal
 * that ends it. Admission, metering and failover need no more than this.
 */
export interface CoreCall {
  /** The model as the client named it. */
  readonly model: string;
  /** Aborts when the client cancels, its deadline passes, or it disconnects. */
  readonly signal: AbortSignal;
  /** The `Authorization` header or metadata, as received. */
  readonly authorization: string | null | undefined;
  /** The key behind `authorization`, when the front door checked it before reading the body. */
  readonly principal?: Principal | undefined;
  readonly protocol: Protocol;
  /** The request's id, trace and facts, from its front door. */
  readonly telemetry?: RequestTelemetry | undefined;
  /** What the usage row records. Chat unless said. */
  readonly operation?: Operation | undefined;
  /** What the request lets the response cache do (Cache-Control, x-gatewayz-cache-ttl); everything unless said. */
  readonly cache?: CacheControl | undefined;
}
