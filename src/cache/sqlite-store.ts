import type { CacheStats, CacheStore } from "./store.js";
import { openCacheDb, type CacheDb } from "./sqlite-schema.js";

export interface SqliteCacheOptions {
  /** The size limit: keys' and values' bytes together (CACHE_MAX_BYTES). */
  maxBytes: number;
  /** The clock, in ms (tests inject one). */
  now?: () => number;
  /** How often expired rows are swept and the totals re-read from the file (other workers write too). */
  sweepMs?: number;
  /** A hit rewrites its row's used_at at most this often; the LRU order is this coarse. */
  touchMs?: number;
  /**
   * How long a commit waits for another worker's write lock before it fails.
   * The wait blocks this event loop (better-sqlite3 is synchronous): hence
   * 1 s by default, not the usage database's 5 s; a cache write may fail.
   */
  busyTimeoutMs?: number;
  /** Told when a timed sweep fails (the next one tries again); default: stderr. */
  warn?: (message: string) => void;
}

export interface SqliteCacheStore extends CacheStore {
  /** Always known here: counted in memory, re-read from the file on each sweep (other workers write too). */
  stats(): CacheStats;
  /** Deletes expired rows in batches, yielding between them; resolves with how many. One sweep at a time. */
  sweep(): Promise<number>;
}

type Op = { kind: "set"; value: Buffer; bytes: number; expiresAt: number; usedAt: number } | { kind: "delete" };
interface Batch { ops: Map<string, Op>; touches: Map<string, number>; expired: Set<string>; resolve: () => void; reject: (err: unknown) => void; done: Promise<void> }

/** Above this many writes queued in one turn, they are committed at once: a bound on how long a commit holds the lock. */
const MAX_BATCH = 1024;
/** Expired rows deleted per transaction by a sweep. */
const SWEEP_BATCH = 500;
/** Eviction goes below the limit by this fraction (EVICT_BATCH rows at most), so that a full cache does not evict on every commit. */
const LOW_WATER = 0.9;
const EVICT_BATCH = 500;

/**
 * The embedded cache store: one SQLite file of its own (never the usage
 * database, whose commits a request awaits), shared by the workers of a host.
 *
 * Writes are group-committed like usage rows (storage/usage.ts): set() and
 * delete() queue, and everything queued in one event-loop turn is written in
 * one transaction at its end (setImmediate), which pays the WAL commit once;
 * their promises settle with that commit. A get is a read and never waits on
 * a writer (WAL). A hit does not write: it queues a touch of used_at only
 * when the row's is older than touchMs, and the touch rides in the turn's
 * commit, so a hot key costs one UPDATE a minute, not one per hit.
 *
 * Size: the total is kept in memory (a SUM at open, plus each commit's
 * difference). When a commit takes it over maxBytes, the same transaction
 * re-reads the exact SUM if another worker has committed since the last
 * (PRAGMA data_version; it holds the write lock, so that SUM counts every
 * worker's writes, evictions included) and deletes
 * least-recently-used rows, expired ones first, to under the limit and
 * towards 90% of it. Age: a sweep on startup and every sweepMs (unref'd)
 * deletes expired rows in bounded batches and re-reads the totals.
 */
export function openSqliteCacheStore(path: string, options: SqliteCacheOptions): SqliteCacheStore {
  const { maxBytes, now = Date.now, sweepMs = 60_000, touchMs = 60_000, busyTimeoutMs = 1000 } = options;
  if (!(maxBytes > 0)) throw new RangeError(`maxBytes must be positive, not ${maxBytes}`);
  const warn = options.warn ?? ((m: string) => process.stderr.write(`gatewayz: ${m}\n`));
  const db = openCacheDb(path, busyTimeoutMs);
  const sql = statements(db);

  const totals = { entries: 0, bytes: 0, evictions: 0 };
  /** data_version when the totals were last exact: it changes when another connection (worker) commits. */
  let summedVersion = -1;
  /** The exact totals, other workers' writes included: a scan of the covering index (~7 ms at 200k entries). */
  const sum = () => {
    // Read before the SUM: a commit in between makes the version stale, which only costs another SUM.
    summedVersion = sql.dataVersion.get()!;
    return sql.totals.get()!;
  };
  const resync = () => Object.assign(totals, sum());
  resync();

  /**
   * Deletes expired rows (one batch; they are not evictions), then least
   * recently used ones until the total is under maxBytes, and on down to the
   * low-water mark by at most EVICT_BATCH more, so that one commit holds the
   * lock for milliseconds, not for a tenth of the cache.
   */
  const evict = (at: number, estimate: { bytes: number; entries: number }) => {
    // Only this worker wrote since the totals were exact: the estimate is exact too, and no SUM is needed.
    let { bytes, entries } = sql.dataVersion.get() === summedVersion ? estimate : sum();
    let evicted = 0;
    for (const r of sql.deleteExpired.all(at, SWEEP_BATCH)) {
      bytes -= r.bytes;
      entries--;
    }
    while (bytes > maxBytes || (bytes > maxBytes * LOW_WATER && evicted < EVICT_BATCH)) {
      const r = sql.evictOldest.get();
      if (!r) break;
      bytes -= r.bytes;
      entries--;
      evicted++;
    }
    return { bytes, entries, evicted };
  };

  const writeBatch = db.transaction((b: Batch, at: number) => {
    let bytes = 0;
    let entries = 0;
    for (const [key, op] of b.ops) {
      if (op.kind === "set") {
        const old = sql.bytesOf.get(key);
        sql.upsert.run(key, op.value, op.bytes, op.expiresAt, op.usedAt);
        bytes += op.bytes - (old?.bytes ?? 0);
        if (!old) entries++;
      } else {
        const old = sql.deleteKey.get(key);
        if (old) {
          bytes -= old.bytes;
          entries--;
        }
      }
    }
    for (const key of b.expired) {
      const old = sql.deleteKeyIfExpired.get(key, at);
      if (old) {
        bytes -= old.bytes;
        entries--;
      }
    }
    for (const [key, usedAt] of b.touches) sql.touch.run(usedAt, key, usedAt);
    const estimate = { bytes: totals.bytes + bytes, entries: totals.entries + entries };
    return estimate.bytes > maxBytes ? evict(at, estimate) : { ...estimate, evicted: 0 };
  });

  let batch: Batch | undefined;
  let closed = false;
  const queue = (): Batch => {
    if (batch) return batch;
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    // Nobody awaits a batch of touches only: its failure must not be an unhandled rejection.
    done.catch(() => {});
    batch = { ops: new Map(), touches: new Map(), expired: new Set(), resolve, reject, done };
    setImmediate(flush);
    return batch;
  };
  const flush = () => {
    const b = batch;
    if (!b) return;
    batch = undefined;
    try {
      const t = writeBatch.immediate(b, now());
      totals.bytes = t.bytes;
      totals.entries = t.entries;
      totals.evictions += t.evicted;
      b.resolve();
    } catch (err) {
      b.reject(err);
    }
  };
  const write = (key: string, op: Op): Promise<void> => {
    if (closed) return Promise.reject(new Error("the cache store is closed"));
    const b = queue();
    b.ops.set(key, op);
    b.touches.delete(key);
    if (b.ops.size >= MAX_BATCH) flush();
    return b.done;
  };

  let sweeping: Promise<number> | undefined;
  const sweep = (): Promise<number> => {
    sweeping ??= sweepBatches().finally(() => (sweeping = undefined));
    return sweeping;
  };
  const sweepBatches = async (): Promise<number> => {
    let deleted = 0;
    for (;;) {
      if (closed) return deleted;
      const rows = db.transaction(() => sql.deleteExpired.all(now(), SWEEP_BATCH)).immediate();
      for (const r of rows) totals.bytes -= r.bytes;
      totals.entries -= rows.length;
      deleted += rows.length;
      if (rows.length < SWEEP_BATCH) return deleted;
      await new Promise<void>((r) => setImmediate(r));
    }
  };
  const tick = () => {
    sweep().then(() => {
      if (closed) return;
      resync();
      if (totals.bytes > maxBytes) queue();
    }).catch((err: unknown) => warn(`cache: sweep failed: ${err instanceof Error ? err.message : String(err)}`));
  };
  const timer = setInterval(tick, sweepMs);
  timer.unref();
  setImmediate(tick);

  return {
    get(key) {
      if (closed) return Promise.reject(new Error("the cache store is closed"));
      const at = now();
      const queued = batch?.ops.get(key);
      if (queued) return Promise.resolve(queued.kind === "set" && queued.expiresAt > at ? Buffer.from(queued.value) : undefined);
      let row;
      try {
        row = sql.get.get(key);
      } catch (err) {
        return Promise.reject(err);
      }
      if (!row) return MISS;
      if (typeof row.expiresAt !== "number" || row.expiresAt <= at) {
        queue().expired.add(key);
        return MISS;
      }
      // A value that is not a BLOB (written by something else, or damaged) is a miss, not a crash.
      if (!Buffer.isBuffer(row.value)) return MISS;
      if (!(at - row.usedAt < touchMs)) queue().touches.set(key, at);
      return Promise.resolve(row.value);
    },
    set(key, value, ttlMs) {
      if (!(value instanceof Uint8Array)) return Promise.reject(new TypeError("a cache value is a Uint8Array"));
      if (!Number.isFinite(ttlMs)) return Promise.reject(new RangeError(`ttlMs must be finite, not ${ttlMs}`));
      // Nothing lives for 0 ms: the entry is replaced by none.
      if (ttlMs <= 0) return write(key, { kind: "delete" });
      const bytes = Buffer.byteLength(key) + value.byteLength;
      if (bytes > maxBytes * LOW_WATER) return Promise.reject(new RangeError(`a cache entry of ${bytes} bytes does not fit in ${maxBytes}`));
      const at = now();
      // A copy: the caller may reuse its array before the turn's commit.
      return write(key, { kind: "set", value: Buffer.from(value), bytes, expiresAt: at + ttlMs, usedAt: at });
    },
    delete: (key) => write(key, { kind: "delete" }),
    stats: (): CacheStats => ({ ...totals }),
    sweep,
    async close() {
      if (closed) return;
      clearInterval(timer);
      flush();
      closed = true;
      await sweeping?.catch(() => {});
      db.close();
    },
  };
}

const MISS: Promise<undefined> = Promise.resolve(undefined);

function statements(db: CacheDb) {
  type Bytes = { bytes: number };
  return {
    get: db.prepare<[string], { value: unknown; expiresAt: unknown; usedAt: number }>("SELECT value, expires_at AS expiresAt, used_at AS usedAt FROM cache_entries WHERE key = ?"),
    bytesOf: db.prepare<[string], Bytes>("SELECT bytes FROM cache_entries WHERE key = ?"),
    upsert: db.prepare<[string, Buffer, number, number, number]>(`INSERT INTO cache_entries (key, value, bytes, expires_at, used_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (key) DO UPDATE SET value = excluded.value, bytes = excluded.bytes, expires_at = excluded.expires_at, used_at = excluded.used_at`),
    deleteKey: db.prepare<[string], Bytes>("DELETE FROM cache_entries WHERE key = ? RETURNING bytes"),
    // Only if still expired: another worker may have stored a fresh entry under the key since.
    deleteKeyIfExpired: db.prepare<[string, number], Bytes>("DELETE FROM cache_entries WHERE key = ? AND expires_at <= ? RETURNING bytes"),
    touch: db.prepare<[number, string, number]>("UPDATE cache_entries SET used_at = ? WHERE key = ? AND used_at < ?"),
    deleteExpired: db.prepare<[number, number], Bytes>("DELETE FROM cache_entries WHERE rowid IN (SELECT rowid FROM cache_entries WHERE expires_at <= ? LIMIT ?) RETURNING bytes"),
    evictOldest: db.prepare<[], Bytes>("DELETE FROM cache_entries WHERE rowid = (SELECT rowid FROM cache_entries ORDER BY used_at LIMIT 1) RETURNING bytes"),
    dataVersion: db.prepare<[], number>("PRAGMA data_version").pluck(),
    totals: db.prepare<[], { entries: number; bytes: number }>("SELECT COUNT(*) AS entries, COALESCE(SUM(bytes), 0) AS bytes FROM cache_entries"),
  };
}
