import type { Logger } from "../log.js";
import type { Db } from "./db.js";
import { createRetryBuffer, type UsageHealth } from "./usage-buffer.js";
import { createUsageWriter, type LostRows } from "./usage-writer.js";

export type { UsageHealth } from "./usage-buffer.js";

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
  /** ok | cached | error | cancelled | rejected */
  status: string;
  errorKind: string | null;
  /** Token counts came from our tokenizer, not from the provider. */
  estimated: boolean;
  attempts: number;
  /** The upstream reported counts out of range, and they were clamped (core/usage.ts). */
  clamped?: boolean;
  /** The request's id (its x-request-id), when a front door gave it one. */
  requestId?: string | null;
  /** What was asked for: chat (the default), responses or embeddings. */
  operation?: Operation;
  /** Status cached: what the replayed answer cost when it was made (the row's own cost is 0). */
  savedPico?: bigint;
  /** Set by a store that may send a row twice (PostgreSQL's): the second copy is not written. */
  rowUid?: string;
}

/** The kinds of request a usage row can record. */
export type Operation = "chat" | "responses" | "embeddings";

export type UsageGroup = "key" | "user" | "model" | "day";

export interface UsageSummaryRow {
  group: string;
  requests: number;
  /** Requests that did not finish normally; a cache hit is not one. */
  errors: number;
  /** Requests answered from the response cache (status 'cached'). */
  cached: number;
  promptTokens: number;
  completionTokens: number;
  costPico: bigint;
  /** What the cached answers cost when they were made: spending the cache avoided. */
  savedPico: bigint;
}

export interface UsageStore {
  /** Queues the row; it is committed with the others of this event-loop turn (see createUsageStore). */
  insert(r: UsageRecord): void;
  /**
   * Resolves once every row inserted so far is committed, or held in the
   * retry buffer because the database refuses writes: what a request awaits
   * before its answer goes out. At most the end of this event-loop turn.
   */
  committed(): Promise<void>;
  /** Commits the queued rows now. Reads flush first, so they see every row the database accepted. */
  flush(): void;
  /**
   * Grouped totals of committed rows (rows held while the database refuses
   * writes are not in them until it accepts them).
   */
  summary(by: UsageGroup, filter?: { since?: number; until?: number; userId?: string; keyId?: string }): UsageSummaryRow[];
  /** Total cost of a key's or a user's requests since `since` (ms), rows held in the retry buffer included. */
  spent(scope: "key" | "user", subject: string, since: number): bigint;
  /** The same, without blocking on the database: PostgreSQL answers later (the Redis quota loads budgets with it). */
  spentLater(scope: "key" | "user", subject: string, since: number): Promise<bigint>;
  /** Committed rows. */
  count(): number;
  /** False while the retry buffer is full: no new chat may start (admission refuses with usage_store_unavailable). */
  available(): boolean;
  /** Calls `listener` each time available() changes; returns the unsubscribe function. */
  onAvailabilityChange(listener: (available: boolean) => void): () => void;
  health(): UsageHealth;
  /** Rows queued or held for retry (not committed yet), committed since start, and lost (held rows dropped, rows SQLite could not store). */
  rowCounts(): { pending: number; written: number; lost: number };
  /** Counts a request turned away without a row because the store is unavailable (logged at most every 10 s). */
  countUnrecorded(): void;
  /**
   * Commits what is queued and makes one last attempt at held rows; what is
   * still refused is logged as lost. On PostgreSQL it resolves once the server
   * has answered; on SQLite it is done when it returns.
   */
  close(): void | Promise<void>;
}

const MAX_BATCH = 512;

const lostLine = (err: unknown, rows: number, row?: UsageRecord) =>
  `${rows} usage record(s) lost: ${err instanceof Error ? err.message : String(err)}${row ? ` (${describeRecord(row)})` : ""}`;

/** Where rows no database will take are told: the log at error when there is one, else stderr. */
export function lostRowsReporter(log: Pick<Logger, "error"> | undefined): LostRows {
  return log ? (err, rows, row) => log.error(`usage: ${lostLine(err, rows, row)}`)
    : (err, rows, row) => process.stderr.write(`gatewayz: ${lostLine(err, rows, row)}\n`);
}

/** A row's fields that identify it without any secret (ids, never keys; no prompt), for the log of a lost row. */
export function describeRecord(r: UsageRecord): string {
  return [`ts=${new Date(r.ts).toISOString()}`, `key=${r.keyId}`, `user=${r.userId}`, `protocol=${r.protocol}`,
    `requested_model=${JSON.stringify(r.requestedModel)}`, `model=${r.model}`, `provider=${r.provider}`, `status=${r.status}`,
    `error_kind=${r.errorKind}`, `prompt_tokens=${r.promptTokens}`, `completion_tokens=${r.completionTokens}`, `cost_pico=${r.costPico}`].join(" ");
}

const GROUP_SQL: Record<UsageGroup, string> = {
  key: "COALESCE(key_id, '(none)')",
  user: "COALESCE(user_id, '(none)')",
  model: "COALESCE(model, requested_model)",
  day: "strftime('%Y-%m-%d', ts / 1000, 'unixepoch')",
};

export interface UsageStoreOptions {
  /** Told of rows that cannot be written even alone (the requests are not affected); default: `log`, else stderr. */
  onLost?: LostRows;
  /** For the retry buffer's reports; default: stderr at warn. */
  log?: Pick<Logger, "warn" | "error">;
  /** Rows held in memory while the database refuses writes before the store is unavailable (USAGE_BUFFER_ROWS). */
  bufferRows?: number;
  /** Retry backoff of held rows: first delay, doubled up to the last. */
  retryMs?: { first: number; max: number };
}

/**
 * Group commit: rows queue in memory and are written in one transaction at
 * the end of the event-loop turn (setImmediate), or at once when 512 are
 * waiting; one commit per row cost ~70 µs of WAL writing each, a batch pays
 * it once. Requests await committed() before answering, so an answered
 * request's row has been committed (a kill -9 loses only rows of requests
 * that were not answered yet) or, while the database refuses writes, is held
 * in the retry buffer (storage/usage-buffer.ts), which a kill -9 loses.
 * A row SQLite cannot store is isolated from its batch (storage/usage-writer.ts).
 */
export function createUsageStore(db: Db, options: UsageStoreOptions = {}): UsageStore {
  const log = options.log ?? stderrLog;
  const onLost: LostRows = options.onLost ?? lostRowsReporter(options.log);
  const writer = createUsageWriter(db, onLost);
  const buffer = createRetryBuffer(writer, {
    capacity: options.bufferRows ?? 10_000, log, firstMs: options.retryMs?.first, maxMs: options.retryMs?.max,
  });
  const reads = createUsageReads(db);

  let queued: UsageRecord[] = [];
  let waiting: { promise: Promise<void>; resolve: () => void } | undefined;
  const flush = () => {
    const rows = queued;
    queued = [];
    try {
      // Behind held rows, new ones wait their turn: only the retry timer tries the database then.
      if (!rows.length) return;
      if (buffer.rows.length) return buffer.hold(rows);
      const refused = writer.commit(rows);
      if (refused !== undefined) buffer.hold(rows, refused);
    } finally {
      const w = waiting;
      waiting = undefined;
      w?.resolve();
    }
  };

  const spent = (scope: "key" | "user", subject: string, since: number): bigint => {
    flush();
    let held = 0n;
    for (const r of buffer.rows) {
      if (r.ts >= since && (scope === "key" ? r.keyId : r.userId) === subject) held += r.costPico;
    }
    return reads.spent(scope, subject, since) + held;
  };

  return {
    insert(r) {
      queued.push(r);
      if (queued.length === 1) setImmediate(flush);
      else if (queued.length >= MAX_BATCH) flush();
    },
    committed() {
      if (!queued.length) return RESOLVED;
      if (!waiting) {
        let resolve!: () => void;
        const promise = new Promise<void>((r) => (resolve = r));
        waiting = { promise, resolve };
      }
      return waiting.promise;
    },
    flush,
    summary(by, filter = {}) {
      flush();
      return reads.summary(by, filter);
    },
    spent,
    spentLater: async (scope, subject, since) => spent(scope, subject, since),
    count() {
      flush();
      return reads.count();
    },
    available: () => buffer.available(),
    onAvailabilityChange: (listener) => buffer.onAvailabilityChange(listener),
    health: () => buffer.health(),
    rowCounts: () => ({ pending: queued.length + buffer.rows.length, written: writer.counts.written, lost: buffer.health().lost + writer.counts.rejected }),
    countUnrecorded: () => buffer.countUnrecorded(),
    close() {
      flush();
      buffer.close();
    },
  };
}

const RESOLVED = Promise.resolve();

/** The usage stores' log when they are given none. */
export const stderrLog: Pick<Logger, "warn" | "error"> = {
  warn: (m) => process.stderr.write(`gatewayz: ${m}\n`),
  error: (m) => process.stderr.write(`gatewayz: ${m}\n`),
};

/** The read side: grouped summaries, spending for budgets, the row count. */
function createUsageReads(db: Db) {
  const spentKey = db.prepare<[string, number], { c: bigint | null }>("SELECT SUM(cost_pico) AS c FROM usage WHERE key_id = ? AND ts >= ?").safeIntegers(true);
  const spentUser = db.prepare<[string, number], { c: bigint | null }>("SELECT SUM(cost_pico) AS c FROM usage WHERE user_id = ? AND ts >= ?").safeIntegers(true);
  const count = db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM usage");
  const summaries = new Map<UsageGroup, ReturnType<typeof prepareSummary>>();
  function prepareSummary(by: UsageGroup) {
    return db.prepare<Record<string, unknown>, {
      grp: string; requests: bigint; errors: bigint; cached: bigint; prompt: bigint | null; completion: bigint | null; cost: bigint | null; saved: bigint | null;
    }>(
      `SELECT ${GROUP_SQL[by]} AS grp, COUNT(*) AS requests, SUM(status NOT IN ('ok', 'cached')) AS errors, SUM(status = 'cached') AS cached,
        SUM(prompt_tokens) AS prompt, SUM(completion_tokens) AS completion, SUM(cost_pico) AS cost, SUM(saved_pico) AS saved
       FROM usage WHERE ts >= @since AND ts < @until
         AND (@user IS NULL OR user_id = @user) AND (@key IS NULL OR key_id = @key)
       GROUP BY grp ORDER BY grp`).safeIntegers(true);
  }
  return {
    summary(by: UsageGroup, filter: { since?: number; until?: number; userId?: string; keyId?: string }): UsageSummaryRow[] {
      let stmt = summaries.get(by);
      if (!stmt) summaries.set(by, (stmt = prepareSummary(by)));
      return stmt.all({ since: filter.since ?? 0, until: filter.until ?? Number.MAX_SAFE_INTEGER, user: filter.userId ?? null, key: filter.keyId ?? null })
        .map((r) => ({
          group: r.grp, requests: Number(r.requests), errors: Number(r.errors), cached: Number(r.cached),
          promptTokens: Number(r.prompt ?? 0n), completionTokens: Number(r.completion ?? 0n), costPico: r.cost ?? 0n, savedPico: r.saved ?? 0n,
        }));
    },
    spent: (scope: "key" | "user", subject: string, since: number): bigint => (scope === "key" ? spentKey : spentUser).get(subject, since)!.c ?? 0n,
    count: (): number => count.get()!.n,
  };
}
