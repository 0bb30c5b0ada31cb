import { randomBytes } from "node:crypto";
import { createRetryBuffer } from "../usage-buffer.js";
import type { UsageGroup, UsageRecord, UsageStore, UsageStoreOptions, UsageSummaryRow } from "../usage.js";
import { USAGE_COLUMNS, usageValues, type LostRows } from "../usage-writer.js";
import { lostRowsReporter, stderrLog } from "../usage.js";
import { isPgRowError } from "./pg-errors.js";
import type { SyncPg } from "./sync-pg.js";

const MAX_BATCH = 512;
/**
 * How long rows gather before their batch goes out. No answer waits for its
 * row's commit on PostgreSQL (app.ts), so this costs no request anything;
 * it makes batches bigger (a row costs the server about half as much in a
 * batch of 64 as in one of 10), and it is part of what a SIGKILL can lose.
 */
const GATHER_MS = 50;

/**
 * One statement whatever the batch's size: each column goes as one array
 * parameter and unnest() turns them back into rows, so the server plans it
 * once and a batch costs one round trip.
 */
const INSERT_BATCH = `INSERT INTO usage (${USAGE_COLUMNS.map(([c]) => c).join(", ")})
  SELECT * FROM unnest(${USAGE_COLUMNS.map(([, type], i) => `$${i + 1}::${type}[]`).join(", ")})
  ON CONFLICT (row_uid) WHERE row_uid IS NOT NULL DO NOTHING`;
const INSERT_ONE = `INSERT INTO usage (${USAGE_COLUMNS.map(([c]) => c).join(", ")})
  VALUES (${USAGE_COLUMNS.map(([, type], i) => `$${i + 1}::${type}`).join(", ")})
  ON CONFLICT (row_uid) WHERE row_uid IS NOT NULL DO NOTHING`;

const GROUP_SQL: Record<UsageGroup, string> = {
  key: "COALESCE(key_id, '(none)')",
  user: "COALESCE(user_id, '(none)')",
  model: "COALESCE(model, requested_model)",
  day: "to_char(to_timestamp(ts / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
};

/** PostgreSQL's text columns cannot hold U+0000; a model name a client sent with one is kept with U+FFFD in its place. */
const NUL = /\u0000/g;
const text = (v: unknown): unknown => (typeof v === "string" && v.includes("\u0000") ? v.replace(NUL, "\uFFFD") : v);

/**
 * The usage store on PostgreSQL (DATABASE_URL). Rows are batched as in the
 * SQLite store, but gathered for GATHER_MS (or up to 512 rows) with one
 * batch in flight at a time (see flush), and the INSERT is asynchronous.
 * committed() resolves when the server has acknowledged every row inserted
 * before it (tests and a drain wait for it); a request's answer does not
 * wait for it (app.ts), so a replica killed with SIGKILL loses the rows of
 * the batches gathering and in flight. Rows PostgreSQL refuses (it is
 * down, slow past its timeout, read-only) go to the same bounded retry
 * buffer as SQLite's, retried without blocking the event loop. A batch
 * that timed out may still commit on the server; each row carries its own
 * id (row_uid, migration 9), so the retry does not write it twice.
 */
export function createPgUsageStore(pg: SyncPg, options: UsageStoreOptions = {}): UsageStore {
  const log = options.log ?? stderrLog;
  const onLost: LostRows = options.onLost ?? lostRowsReporter(options.log);
  const counts = { written: 0, rejected: 0 };

  /** The batch in one statement; if a row of it is wrong, each row alone, so that one bad row loses only itself. */
  const write = async (rows: readonly UsageRecord[]): Promise<unknown> => {
    try {
      await pg.queryAsync(INSERT_BATCH, columnsOf(rows), "gatewayz_usage_batch");
      counts.written += rows.length;
      return undefined;
    } catch (err) {
      if (!isPgRowError(err)) return err;
    }
    for (let i = 0; i < rows.length; i++) {
      try {
        await pg.queryAsync(INSERT_ONE, usageValues(rows[i]!).map(text));
        counts.written++;
      } catch (err) {
        if (isPgRowError(err)) {
          counts.rejected++;
          onLost(err, 1, rows[i]);
          continue;
        }
        // Refused part-way: what is written stays written; the rest is held.
        buffer.hold(rows.slice(i), err);
        return undefined;
      }
    }
    return undefined;
  };
  const buffer = createRetryBuffer({ commitNoWait: write }, {
    capacity: options.bufferRows ?? 10_000, log, firstMs: options.retryMs?.first, maxMs: options.retryMs?.max,
  });

  let queued: UsageRecord[] = [];
  let next: { promise: Promise<void>; resolve: () => void } | undefined;
  /** Batches sent and not yet answered, each with its rows (spent() counts them). */
  const inFlight = new Map<Promise<void>, readonly UsageRecord[]>();

  /**
   * Settles after every batch sent so far: batches are answered in any
   * order, and committed() promises every row inserted before it, so each
   * batch's settling waits for the one before it as well (one Promise.all a
   * batch, not one a request).
   */
  let settled: Promise<void> = RESOLVED;
  /**
   * One batch in flight at a time, and one at most every GATHER_MS (sooner
   * when MAX_BATCH rows wait): the batch grows with the load instead of one
   * INSERT per event-loop turn. Each INSERT costs the gateway and the server
   * more than its rows do.
   */
  let sending = false;
  let gather: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(gather);
    gather = undefined;
    if (sending) return;
    const rows = queued;
    const done = next;
    queued = [];
    next = undefined;
    const before = settled;
    const after = (p: Promise<unknown>) => {
      settled = Promise.all([before, p]).then(() => done?.resolve());
    };
    if (!rows.length) return after(RESOLVED);
    // Behind held rows, new ones wait their turn: only the retry timer tries the database then.
    if (buffer.rows.length) {
      buffer.hold(rows);
      return after(RESOLVED);
    }
    sending = true;
    const sent: Promise<void> = write(rows).then((refused) => {
      if (refused !== undefined) buffer.hold(rows, refused);
    }, (err: unknown) => buffer.hold(rows, err)).finally(() => {
      inFlight.delete(sent);
      sending = false;
      // What gathered meanwhile goes once its window is over (or at once if it is a full batch).
      if (queued.length >= MAX_BATCH) flush();
      else if (queued.length && !gather) gather = setTimeout(flush, GATHER_MS);
    });
    inFlight.set(sent, rows);
    after(sent);
  };

  const reads = createPgUsageReads(pg);
  const unsent = function* (): Generator<UsageRecord> {
    yield* queued;
    for (const rows of inFlight.values()) yield* rows;
    yield* buffer.rows;
  };

  const pendingCost = (scope: "key" | "user", subject: string, since: number): bigint => {
    let pending = 0n;
    for (const r of unsent()) {
      if (r.ts >= since && (scope === "key" ? r.keyId : r.userId) === subject) pending += r.costPico;
    }
    return pending;
  };

  return {
    insert(r) {
      // Its own id: a batch whose answer was lost (a timeout) may have committed, and is sent again.
      queued.push({ ...r, rowUid: timeOrderedUuid() });
      if (queued.length >= MAX_BATCH) flush();
      else if (!gather && !sending) gather = setTimeout(flush, GATHER_MS);
    },
    committed() {
      if (!queued.length) return settled;
      if (!next) {
        let resolve!: () => void;
        const promise = new Promise<void>((r) => (resolve = r));
        next = { promise, resolve };
      }
      return next.promise;
    },
    flush,
    summary: (by, filter = {}) => reads.summary(by, filter),
    // Rows not committed yet count too; a batch committing at this moment may count twice, never not at all.
    spent: (scope, subject, since) => reads.spent(scope, subject, since) + pendingCost(scope, subject, since),
    spentLater: async (scope, subject, since) => (await reads.spentLater(scope, subject, since)) + pendingCost(scope, subject, since),
    count: () => reads.count(),
    available: () => buffer.available(),
    onAvailabilityChange: (listener) => buffer.onAvailabilityChange(listener),
    health: () => buffer.health(),
    rowCounts: () => {
      let pending = queued.length + buffer.rows.length;
      for (const rows of inFlight.values()) pending += rows.length;
      return { pending, written: counts.written, lost: buffer.health().lost + counts.rejected };
    },
    countUnrecorded: () => buffer.countUnrecorded(),
    async close() {
      while (queued.length || inFlight.size) {
        flush();
        await settled;
      }
      await buffer.close();
    },
  };
}

const RESOLVED = Promise.resolve();

const spentSql = (scope: "key" | "user") =>
  `SELECT COALESCE(SUM(cost_pico), 0) AS c FROM usage WHERE ${scope === "key" ? "key_id" : "user_id"} = $1 AND ts >= $2`;

/**
 * A UUID whose first 48 bits are the time in ms (as UUIDv7's), the other 74
 * random: ids made close in time sort close, so each lands at the right edge
 * of the unique index rather than on a random page of it (a random UUID
 * cost the server a fifth to a half more a batch), and two replicas' ids
 * never collide in practice.
 */
let pool = Buffer.alloc(0);
let at = 0;
export function timeOrderedUuid(now = Date.now()): string {
  if (at + 10 > pool.length) {
    pool = randomBytes(10 * 256);
    at = 0;
  }
  const r = pool.subarray(at, (at += 10));
  const hex = now.toString(16).padStart(12, "0") + r.toString("hex");
  // Version 7, variant 10xx.
  const v = (0x7000 | (parseInt(hex.slice(12, 16), 16) & 0x0fff)).toString(16);
  const w = (0x8000 | (parseInt(hex.slice(16, 20), 16) & 0x3fff)).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${v}-${w}-${hex.slice(20, 32)}`;
}

/** The batch as one array a column, in USAGE_COLUMNS order. */
function columnsOf(rows: readonly UsageRecord[]): unknown[][] {
  const columns: unknown[][] = USAGE_COLUMNS.map(() => new Array<unknown>(rows.length));
  for (let i = 0; i < rows.length; i++) {
    const values = usageValues(rows[i]!);
    for (let c = 0; c < values.length; c++) columns[c]![i] = text(values[c]);
  }
  return columns;
}

interface SummaryRaw { grp: string; requests: string; errors: string; cached: string; prompt: string | null; completion: string | null; cost: string | null; saved: string | null }

/** The read side, as createUsageReads in storage/usage.ts: sums come back as exact decimal strings. */
function createPgUsageReads(pg: SyncPg) {
  return {
    summary(by: UsageGroup, filter: { since?: number; until?: number; userId?: string; keyId?: string }): UsageSummaryRow[] {
      const rows = pg.query<SummaryRaw>(
        `SELECT ${GROUP_SQL[by]} AS grp, COUNT(*) AS requests, COUNT(*) FILTER (WHERE status NOT IN ('ok', 'cached')) AS errors,
           COUNT(*) FILTER (WHERE status = 'cached') AS cached, SUM(prompt_tokens) AS prompt, SUM(completion_tokens) AS completion,
           SUM(cost_pico) AS cost, SUM(saved_pico) AS saved
         FROM usage WHERE ts >= $1 AND ts < $2 AND ($3::text IS NULL OR user_id = $3) AND ($4::text IS NULL OR key_id = $4)
         GROUP BY grp ORDER BY ${GROUP_SQL[by]} COLLATE "C"`,
        [filter.since ?? 0, filter.until ?? Number.MAX_SAFE_INTEGER, filter.userId ?? null, filter.keyId ?? null]);
      return rows.map((r) => ({
        group: r.grp, requests: Number(r.requests), errors: Number(r.errors), cached: Number(r.cached),
        promptTokens: Number(r.prompt ?? 0), completionTokens: Number(r.completion ?? 0), costPico: BigInt(r.cost ?? 0), savedPico: BigInt(r.saved ?? 0),
      }));
    },
    spent: (scope: "key" | "user", subject: string, since: number): bigint => BigInt(pg.query<{ c: string }>(spentSql(scope), [subject, since])[0]!.c),
    spentLater: async (scope: "key" | "user", subject: string, since: number): Promise<bigint> =>
      BigInt((await pg.queryAsync<{ c: string }>(spentSql(scope), [subject, since]))[0]!.c),
    count: (): number => Number(pg.query<{ n: string }>("SELECT COUNT(*) AS n FROM usage")[0]!.n),
  };
}
