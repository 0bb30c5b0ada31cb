import type { Db } from "./db.js";

/** One usage row as stored, for an operator looking at one request. */
export interface UsageRowView {
  readonly ts: number;
  readonly requestId: string;
  readonly keyId: string | null;
  readonly userName: string | null;
  readonly protocol: string;
  readonly requestedModel: string;
  readonly model: string | null;
  readonly upstreamModel: string | null;
  readonly provider: string | null;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly cachedTokens: number;
  readonly reasoningTokens: number;
  readonly costPico: bigint;
  /** Status cached: what the replayed answer cost when it was made; 0 otherwise. */
  readonly savedPico: bigint;
  readonly latencyMs: number | null;
  readonly ttftMs: number | null;
  readonly status: string;
  readonly errorKind: string | null;
  readonly estimated: boolean;
  readonly clamped: boolean;
  readonly attempts: number;
  /** chat, responses or embeddings. */
  readonly operation: string;
}

export interface UsageLookup {
  /** The rows written for a request id (a client may reuse its x-request-id: oldest first), committed ones only. */
  byRequestId(requestId: string): UsageRowView[];
}

/** A usage row as read: BIGINT columns are bigints on SQLite (safeIntegers), decimal strings on PostgreSQL. */
export interface UsageRowRaw {
  ts: number | bigint | string; request_id: string; key_id: string | null; user_name: string | null; protocol: string; requested_model: string;
  model: string | null; upstream_model: string | null; provider: string | null; prompt_tokens: number | bigint; completion_tokens: number | bigint;
  cached_tokens: number | bigint; reasoning_tokens: number | bigint; cost_pico: bigint | string; saved_pico: bigint | string; latency_ms: number | bigint | null;
  ttft_ms: number | bigint | null; status: string; error_kind: string | null; estimated: number | bigint; usage_clamped: number | bigint; attempts: number | bigint; operation: string;
}

/** The columns of a UsageRowRaw, from `usage u` joined with its user; both engines read the same. */
export const USAGE_ROW_SELECT = `SELECT u.ts, u.request_id, u.key_id, users.name AS user_name, u.protocol, u.requested_model,
      u.model, u.upstream_model, u.provider, u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens, u.cost_pico, u.saved_pico,
      u.latency_ms, u.ttft_ms, u.status, u.error_kind, u.estimated, u.usage_clamped, u.attempts, u.operation
    FROM usage u LEFT JOIN users ON users.id = u.user_id`;

const small = (v: unknown) => (v === null ? null : Number(v));

export function usageRowView(r: UsageRowRaw): UsageRowView {
  return {
    ts: Number(r.ts), requestId: r.request_id, keyId: r.key_id, userName: r.user_name, protocol: r.protocol,
    requestedModel: r.requested_model, model: r.model, upstreamModel: r.upstream_model, provider: r.provider,
    promptTokens: Number(r.prompt_tokens), completionTokens: Number(r.completion_tokens), cachedTokens: Number(r.cached_tokens),
    reasoningTokens: Number(r.reasoning_tokens), costPico: BigInt(r.cost_pico), savedPico: BigInt(r.saved_pico), latencyMs: small(r.latency_ms), ttftMs: small(r.ttft_ms),
    status: r.status, errorKind: r.error_kind, estimated: Number(r.estimated) === 1, clamped: Number(r.usage_clamped) === 1,
    attempts: Number(r.attempts), operation: r.operation,
  };
}

/** Reads single usage rows by the `request_id` column (migration 4, indexed). */
export function createUsageLookup(db: Db): UsageLookup {
  const byId = db.prepare<[string], UsageRowRaw>(`${USAGE_ROW_SELECT} WHERE u.request_id = ? ORDER BY u.ts, u.id`).safeIntegers(true);
  return { byRequestId: (requestId) => byId.all(requestId).map(usageRowView) };
}
