import type { CacheStats, SyncReadStore } from "./store.js";
import { RowIndex, keyHash } from "./row-index.js";
import { cacheStatements, openCacheDb, type CacheRow } from "./sqlite-schema.js";

export { keyHash } from "./row-index.js";

export interface SqliteCacheOptions {
  /** The size limit: keys' and values' bytes together (CACHE_MAX_BYTES). */
  maxBytes: number;
  /** The clock entries expire by, in ms (tests inject one). */
  now?: () => number;
  /** How often expired rows are swept and the totals re-read from the file (other workers write too). */
  sweepMs?: number;
  /** How long writes wait to be committed together: one commit for all of them. */
  commitMs?: number;
  /** A lookup reads the entries other workers added at most this often: theirs show here within it. */
  pollMs?: number;
  /**
   * How long a commit waits for another worker's write lock before it fails.
   * The wait blocks this event loop (better-sqlite3 is synchronous): hence
   * 1 s by default, not the usage database's 5 s; a cache write may fail.
   */
  busyTimeoutMs?: number;
  /** Told when a timed sweep fails (the next one tries again), or a damaged file is replaced; default: stderr. */
  warn?: (message: string) => void;
}

export interface SqliteCacheStore extends SyncReadStore {
  /** Always known here: counted in memory, re-read from the file on each sweep (other workers write too). */
  stats(): CacheStats;
  /** Deletes expired rows in batches, yielding between them; resolves with how many. One sweep at a time. */
  sweep(): Promise<number>;
}

type Op = { kind: "set"; hash: number; value: Buffer; bytes: number; expiresAt: number } | { kind: "delete"; hash: number };
interface Batch { ops: Map<string, Op>; expired: Map<string, number>; resolve: () => void; reject: (err: unknown) => void; done: Promise<void> }

/** Above this many writes queued, they are committed at once: a bound on how long a commit holds the lock. */
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
 * What a miss costs is what this design is for. Rows are only appended
 * (sqlite-schema.ts), and each worker finds them through an in-memory index,
 * hash -> id (row-index.ts): a lookup of an absent key touches no file at all, a present
 * one reads its row by id. The index is loaded at open from the covering
 * expiry index, and follows other workers by reading the ids above the last
 * one seen, when the file's data_version says another connection has
 * committed: at most every pollMs on a lookup, and always inside this
 * worker's own commit (it holds the write lock then, so nothing is missed).
 * A stale id (another worker deleted or replaced the entry) reads no row,
 * which is a miss.
 *
 * Writes queue for commitMs and are committed in one transaction, which
 * pays the WAL commit once for all of them; their promises settle with it.
 * A write of the queue is read back before its commit.
 *
 * Size: the total is kept in memory (a SUM at open, plus each commit's
 * difference). When a commit takes it over maxBytes, the same transaction
 * re-reads the exact SUM if another worker has committed since the last
 * (it holds the write lock, so that SUM counts every worker's writes,
 * evictions included), deletes expired rows, then the oldest ones, to under
 * the limit and towards 90% of it: eviction is by age, and the in-process
 * LRU in front (memory-front.ts) keeps what is hot. Age: a sweep on startup
 * and every sweepMs (unref'd) deletes expired rows in bounded batches and
 * re-reads the totals.
 */
export function openSqliteCacheStore(path: string, options: SqliteCacheOptions): SqliteCacheStore {
  const { maxBytes, now = Date.now, sweepMs = 60_000, commitMs = 50, pollMs = 50, busyTimeoutMs = 1000 } = options;
  if (!(maxBytes > 0)) throw new RangeError(`maxBytes must be positive, not ${maxBytes}`);
  const warn = options.warn ?? ((m: string) => process.stderr.write(`gatewayz: ${m}\n`));
  const db = openCacheDb(path, busyTimeoutMs, warn);
  const sql = cacheStatements(db);

  const index = new RowIndex();
  /** When a lookup last read other workers' rows (performance.now()). */
  let polledAt = -Infinity;
  /** Reads into the index the rows other workers appended since the last look. */
  const catchUp = () => index.catchUp(sql.dataVersion.get()!, (after) => sql.since.iterate(after));
  // At open: every row, from the covering expiry index (no values read).
  db.transaction(() => index.catchUp(sql.dataVersion.get()!, () => sql.all.iterate()))();

  const totals = { entries: 0, bytes: 0, evictions: 0 };
  /** data_version when the totals were last exact: it changes when another connection (worker) commits. */
  let summedVersion = -1;
  /** The exact totals, other workers' writes included: a scan of the covering index (~7 ms at 200k entries). */
  const sum = () => {
    summedVersion = sql.dataVersion.get()!;
    return sql.totals.get()!;
  };
  const resync = () => Object.assign(totals, sum());
  resync();

  /**
   * Deletes expired rows (one batch; they are not evictions), then the
   * oldest ones until the total is under maxBytes, and on down to the
   * low-water mark by at most EVICT_BATCH more, so that one commit holds the
   * lock for milliseconds, not for a tenth of the cache.
   */
  const evict = (at: number, estimate: { bytes: number; entries: number }, removed: CacheRow[]) => {
    // Only this worker wrote since the totals were exact: the estimate is exact too, and no SUM is needed.
    let { bytes, entries } = sql.dataVersion.get() === summedVersion ? estimate : sum();
    let evicted = 0;
    const drop = (r: CacheRow) => {
      bytes -= r.bytes;
      entries--;
      removed.push(r);
    };
    for (const r of sql.deleteExpired.all(at, SWEEP_BATCH)) drop(r);
    while (bytes > maxBytes || (bytes > maxBytes * LOW_WATER && evicted < EVICT_BATCH)) {
      const r = sql.evictOldest.get();
      if (!r) break;
      drop(r);
      evicted++;
    }
    return { bytes, entries, evicted };
  };

  /** One commit. The index is changed only after it, by the caller: a failed transaction leaves it as it was. */
  const writeBatch = db.transaction((b: Batch, at: number) => {
    catchUp();
    let bytes = 0;
    let entries = 0;
    const added: CacheRow[] = [];
    const removed: CacheRow[] = [];
    const remove = (r: CacheRow | undefined) => {
      if (!r) return;
      bytes -= r.bytes;
      entries--;
      removed.push(r);
    };
    for (const [key, op] of b.ops) {
      const old = index.get(op.hash);
      if (old !== undefined) remove(sql.deleteRow.get(old, key));
      if (op.kind === "set") {
        const id = Number(sql.insert.run(op.hash, key, op.value, op.bytes, op.expiresAt).lastInsertRowid);
        added.push({ id, hash: op.hash, bytes: op.bytes });
        bytes += op.bytes;
        entries++;
      }
    }
    for (const [key, id] of b.expired) remove(sql.deleteRowIfExpired.get(id, key, at));
    const estimate = { bytes: totals.bytes + bytes, entries: totals.entries + entries };
    const after = estimate.bytes > maxBytes ? evict(at, estimate, removed) : { ...estimate, evicted: 0 };
    return { ...after, added, removed };
  });
  const forget = (rows: CacheRow[]) => {
    for (const r of rows) index.forget(r);
  };

  let batch: Batch | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const queue = (): Batch => {
    if (batch) return batch;
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    // Nobody awaits a batch of expired deletes only: its failure must not be an unhandled rejection.
    done.catch(() => {});
    batch = { ops: new Map(), expired: new Map(), resolve, reject, done };
    timer = setTimeout(flush, commitMs);
    return batch;
  };
  const flush = () => {
    const b = batch;
    if (!b) return;
    batch = undefined;
    clearTimeout(timer);
    try {
      const t = writeBatch.immediate(b, now());
      // Everything up to this commit's rows was read in under the write lock (catchUp).
      for (const r of t.added) index.learn(r);
      forget(t.removed);
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
      forget(rows);
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
  const sweeper = setInterval(tick, sweepMs);
  sweeper.unref();
  setImmediate(tick);

  /** The entry now, read in this thread (better-sqlite3 is synchronous): no promise on a lookup's path. Throws where getWithTtl rejects. */
  const readNow = (key: string): { value: Buffer; ttlMs: number } | undefined => {
    if (closed) throw new Error("the cache store is closed");
    const at = now();
    const queued = batch?.ops.get(key);
    if (queued) return queued.kind === "set" && queued.expiresAt > at ? { value: queued.value, ttlMs: queued.expiresAt - at } : undefined;
    const hash = keyHash(key);
    let row;
    let id: number | undefined;
    // Twice at most: an id whose row is gone (another worker replaced, expired or evicted it) is dropped, and the rows added since are read.
    for (let look = 0; look < 2 && !row; look++) {
      id = index.get(hash);
      if (id === undefined) {
        const t = performance.now();
        if (t - polledAt < pollMs) return undefined;
        polledAt = t;
        catchUp();
        id = index.get(hash);
        if (id === undefined) return undefined;
      }
      row = sql.byId.get(id);
      if (!row) index.forget({ id, hash });
    }
    if (!row || id === undefined) return undefined;
    if (row.key !== key) return undefined; // another key under the same hash
    if (typeof row.expiresAt !== "number" || row.expiresAt <= at) {
      queue().expired.set(key, id);
      return undefined;
    }
    // A value that is not a BLOB (written by something else, or damaged) is a miss, not a crash.
    return Buffer.isBuffer(row.value) ? { value: row.value, ttlMs: row.expiresAt - at } : undefined;
  };
  const getWithTtl = (key: string): Promise<{ value: Buffer; ttlMs: number } | undefined> => {
    try {
      const found = readNow(key);
      return found ? Promise.resolve(found) : MISS;
    } catch (err) {
      return Promise.reject(err);
    }
  };

  return {
    readNow,
    getWithTtl,
    get: (key) => getWithTtl(key).then((found) => found?.value),
    set(key, value, ttlMs) {
      if (!(value instanceof Uint8Array)) return Promise.reject(new TypeError("a cache value is a Uint8Array"));
      if (!Number.isFinite(ttlMs)) return Promise.reject(new RangeError(`ttlMs must be finite, not ${ttlMs}`));
      const hash = keyHash(key);
      // Nothing lives for 0 ms: the entry is replaced by none.
      if (ttlMs <= 0) return write(key, { kind: "delete", hash });
      const bytes = Buffer.byteLength(key) + value.byteLength;
      if (bytes > maxBytes * LOW_WATER) return Promise.reject(new RangeError(`a cache entry of ${bytes} bytes does not fit in ${maxBytes}`));
      // Kept as given (CacheStore.set: the caller hands the bytes over), seen as a Buffer for the binding: no copy.
      const kept = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      return write(key, { kind: "set", hash, value: kept, bytes, expiresAt: now() + ttlMs });
    },
    delete: (key) => write(key, { kind: "delete", hash: keyHash(key) }),
    stats: (): CacheStats => ({ ...totals }),
    sweep,
    async close() {
      if (closed) return;
      clearInterval(sweeper);
      flush();
      closed = true;
      await sweeping?.catch(() => {});
      db.close();
    },
  };
}

const MISS: Promise<undefined> = Promise.resolve(undefined);
