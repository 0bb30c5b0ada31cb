import type { Db } from "./db.js";

/** One row per request, whatever happened to it. */
export interface UsageRecord {
  ts: number;
  keyId: string | null;
  userId: string | null;
  protocol: string;
  requestedModel: string;
  model: string | null;
  upstreamModel: string | null;
  provider: string | null;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  reasoningTokens: number;
  costPico: bigint;
  latencyMs: number;
  ttftMs: number | null;
  /** ok | error | cancelled | rejected */
  status: string;
  errorKind: string | null;
  /** Token counts came from our tokenizer, not from the provider. */
  estimated: boolean;
  attempts: number;
}

export type UsageGroup = "key" | "user" | "model" | "day";

export interface UsageSummaryRow {
  group: string;
  requests: number;
  errors: number;
  promptTokens: number;
  completionTokens: number;
  costPico: bigint;
}

export interface UsageStore {
  /** Queues the row; it is committed with the others of this event-loop turn (see createUsageStore). */
  insert(r: UsageRecord): void;
  /** Commits the queued rows now. Reads flush first, so they always see every row. */
  flush(): void;
  summary(by: UsageGroup, filter?: { since?: number; until?: number; userId?: string; keyId?: string }): UsageSummaryRow[];
  /** Total cost of a key's or a user's requests since `since` (ms). */
  spent(scope: "key" | "user", subject: string, since: number): bigint;
  count(): number;
}

const MAX_BATCH = 512;

const lostToStderr = (err: unknown, rows: number) =>
  process.stderr.write(`gatewayz: ${rows} usage record(s) lost: ${err instanceof Error ? err.message : String(err)}\n`);

const GROUP_SQL: Record<UsageGroup, string> = {
  key: "COALESCE(key_id, '(none)')",
  user: "COALESCE(user_id, '(none)')",
  model: "COALESCE(model, requested_model)",
  day: "strftime('%Y-%m-%d', ts / 1000, 'unixepoch')",
};

export interface UsageStoreOptions {
  /** Told when a batch could not be written (the rows are lost, the requests are not affected). */
  onLost?: (err: unknown, rows: number) => void;
}

/**
 * Group commit: rows queue in memory and are written in one transaction at
 * the end of the event-loop turn (setImmediate), or at once when 512 are
 * waiting. One commit per row cost ~70 µs of WAL writing each; a batch pays it
 * once. What a kill -9 can lose: the rows queued in the turn it lands in, at
 * most that turn's finished requests. Anything committed survives a crash
 * (WAL), and a normal exit, an uncaught error or close() flushes first.
 */
export function createUsageStore(db: Db, options: UsageStoreOptions = {}): UsageStore {
  const insert = db.prepare(`INSERT INTO usage (ts, key_id, user_id, protocol, requested_model, model, upstream_model,
    provider, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, cost_pico, latency_ms, ttft_ms,
    status, error_kind, estimated, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const spentKey = db.prepare<[string, number], { c: bigint | null }>("SELECT SUM(cost_pico) AS c FROM usage WHERE key_id = ? AND ts >= ?").safeIntegers(true);
  const spentUser = db.prepare<[string, number], { c: bigint | null }>("SELECT SUM(cost_pico) AS c FROM usage WHERE user_id = ? AND ts >= ?").safeIntegers(true);
  const count = db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM usage");
  const summaries = new Map<UsageGroup, ReturnType<typeof prepareSummary>>();
  function prepareSummary(by: UsageGroup) {
    return db.prepare<Record<string, unknown>, { grp: string; requests: bigint; errors: bigint; prompt: bigint | null; completion: bigint | null; cost: bigint | null }>(
      `SELECT ${GROUP_SQL[by]} AS grp, COUNT(*) AS requests, SUM(status != 'ok') AS errors,
        SUM(prompt_tokens) AS prompt, SUM(completion_tokens) AS completion, SUM(cost_pico) AS cost
       FROM usage WHERE ts >= @since AND ts < @until
         AND (@user IS NULL OR user_id = @user) AND (@key IS NULL OR key_id = @key)
       GROUP BY grp ORDER BY grp`).safeIntegers(true);
  }

  const writeAll = db.transaction((rows: UsageRecord[]) => {
    for (const r of rows) {
      insert.run(r.ts, r.keyId, r.userId, r.protocol, r.requestedModel, r.model, r.upstreamModel, r.provider,
        r.promptTokens, r.completionTokens, r.cachedTokens, r.reasoningTokens, r.costPico, r.latencyMs, r.ttftMs,
        r.status, r.errorKind, r.estimated ? 1 : 0, r.attempts);
    }
  });
  let queued: UsageRecord[] = [];
  const flush = () => {
    if (!queued.length) return;
    const rows = queued;
    queued = [];
    try {
      writeAll(rows);
    } catch (err) {
      (options.onLost ?? lostToStderr)(err, rows.length);
    }
  };

  return {
    insert(r) {
      queued.push(r);
      if (queued.length === 1) setImmediate(flush);
      else if (queued.length >= MAX_BATCH) flush();
    },
    flush,
    summary(by, filter = {}) {
      flush();
      let stmt = summaries.get(by);
      if (!stmt) summaries.set(by, (stmt = prepareSummary(by)));
      return stmt.all({ since: filter.since ?? 0, until: filter.until ?? Number.MAX_SAFE_INTEGER, user: filter.userId ?? null, key: filter.keyId ?? null })
        .map((r) => ({
          group: r.grp, requests: Number(r.requests), errors: Number(r.errors),
          promptTokens: Number(r.prompt ?? 0n), completionTokens: Number(r.completion ?? 0n), costPico: r.cost ?? 0n,
        }));
    },
    spent: (scope, subject, since) => {
      flush();
      return (scope === "key" ? spentKey : spentUser).get(subject, since)!.c ?? 0n;
    },
    count: () => {
      flush();
      return count.get()!.n;
    },
  };
}
