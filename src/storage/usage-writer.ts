import type { Db } from "./db.js";
import { isWriteRefusal } from "./sqlite-errors.js";
import type { UsageRecord } from "./usage.js";

/** Told of rows that cannot be written at all; `row` is set when one row failed on its own. */
export type LostRows = (err: unknown, rows: number, row?: UsageRecord) => void;

export interface UsageWriter {
  /**
   * Writes the rows in one transaction. Returns the error when the database
   * refused writes (none of the rows is written then: they may be retried);
   * otherwise undefined, every row written except those reported to `onLost`.
   */
  commit(rows: readonly UsageRecord[]): unknown;
  /** The same, without waiting on another connection's lock: for retries off the request path. */
  commitNoWait(rows: readonly UsageRecord[]): unknown;
  /** Rows committed since start, and rows reported to `onLost` (for the metrics). */
  readonly counts: { readonly written: number; readonly rejected: number };
}

/** The usage table's columns a row fills, in order, with their PostgreSQL types (storage/pg/pg-usage.ts). */
export const USAGE_COLUMNS = [
  ["ts", "bigint"], ["key_id", "text"], ["user_id", "text"], ["protocol", "text"], ["requested_model", "text"], ["model", "text"],
  ["upstream_model", "text"], ["provider", "text"], ["prompt_tokens", "int"], ["completion_tokens", "int"], ["cached_tokens", "int"],
  ["reasoning_tokens", "int"], ["cost_pico", "bigint"], ["latency_ms", "float8"], ["ttft_ms", "float8"], ["status", "text"],
  ["error_kind", "text"], ["estimated", "int"], ["attempts", "int"], ["usage_clamped", "int"], ["request_id", "text"],
  ["operation", "text"], ["saved_pico", "bigint"], ["row_uid", "uuid"],
] as const;

/** A row's values in USAGE_COLUMNS order. */
export function usageValues(r: UsageRecord): unknown[] {
  return [r.ts, r.keyId, r.userId, r.protocol, r.requestedModel, r.model, r.upstreamModel,
    r.provider, r.promptTokens, r.completionTokens, r.cachedTokens, r.reasoningTokens, r.costPico, r.latencyMs, r.ttftMs,
    r.status, r.errorKind, r.estimated ? 1 : 0, r.attempts, r.clamped ? 1 : 0, r.requestId ?? null, r.operation ?? "chat", r.savedPico ?? 0n, r.rowUid ?? null];
}

/**
 * Isolation of bad rows: if the batch transaction fails for a reason of its
 * own (a value SQLite cannot store, a constraint), the batch is written again
 * with each row in its own try/catch inside one transaction. SQLite undoes
 * only the failing statement there, so one bad row cannot take the rest of
 * its batch with it, and the batch still costs one commit.
 */
export function createUsageWriter(db: Db, onLost: LostRows): UsageWriter {
  const insert = db.prepare(`INSERT INTO usage (${USAGE_COLUMNS.map(([c]) => c).join(", ")}) VALUES (${USAGE_COLUMNS.map(() => "?").join(", ")})`);
  const run = (r: UsageRecord) => insert.run(...usageValues(r));

  const writeAll = db.transaction((rows: readonly UsageRecord[]) => {
    for (const r of rows) run(r);
  });
  const writeEach = db.transaction((rows: readonly UsageRecord[], bad: Array<[UsageRecord, unknown]>) => {
    for (const r of rows) {
      try {
        run(r);
      } catch (err) {
        // A refusal may have rolled the whole transaction back: give the batch up to the retry buffer.
        if (isWriteRefusal(err)) throw err;
        bad.push([r, err]);
      }
    }
  });

  const counts = { written: 0, rejected: 0 };
  const commit = (rows: readonly UsageRecord[]): unknown => {
    try {
      writeAll(rows);
      counts.written += rows.length;
      return undefined;
    } catch (err) {
      if (isWriteRefusal(err)) return err;
    }
    const bad: Array<[UsageRecord, unknown]> = [];
    try {
      writeEach(rows, bad);
    } catch (err) {
      if (isWriteRefusal(err)) return err;
      counts.rejected += rows.length;
      onLost(err, rows.length); // the transaction itself cannot run (the connection is closed)
      return undefined;
    }
    counts.written += rows.length - bad.length;
    counts.rejected += bad.length;
    for (const [r, err] of bad) onLost(err, 1, r);
    return undefined;
  };

  const busyMs = db.pragma("busy_timeout", { simple: true }) as number;
  return {
    commit,
    counts,
    commitNoWait(rows) {
      if (!db.open) return commit(rows);
      db.pragma("busy_timeout = 0");
      try {
        return commit(rows);
      } finally {
        db.pragma(`busy_timeout = ${busyMs}`);
      }
    },
  };
}
