/**
 * Where cached answers are kept: bytes under a key, for a time. Two
 * implementations behind this one seam: the embedded one (SQLite, in its own
 * file, shared by the workers of one host; cache/sqlite-store.ts) and Redis
 * when REDIS_URL is set (shared by every host; cache/redis-store.ts), either
 * with an in-process LRU in front (cache/memory-front.ts). What the bytes
 * mean is the codec's business (cache/codec.ts), what the key is the key's
 * (cache/key.ts): a store knows neither.
 *
 * A store that fails (Redis down or slower than its timeout, a locked or
 * full SQLite file) rejects; the caller treats that as a miss and warns,
 * and a request is never failed by its cache.
 */
export interface CacheStore {
  /** The entry's bytes; undefined when there is none or it has expired. */
  get(key: string): Promise<Uint8Array | undefined>;
  /**
   * Keeps the bytes for `ttlMs`, replacing any entry under the key. The bytes
   * are handed over, not copied (a copy on every miss's path): the caller
   * must not change them afterwards. Bytes a store hands back are shared
   * the same way: read-only.
   */
  set(key: string, value: Uint8Array, ttlMs: number): Promise<void>;
  /** Drops the entry, if there is one (a corrupt entry, Cache-Control: no-cache). */
  delete(key: string): Promise<void>;
  /** What the store holds now, for the metrics; undefined where it cannot tell cheaply (Redis). */
  stats(): CacheStats | undefined;
  close(): Promise<void>;
}

export interface CacheStats {
  readonly entries: number;
  readonly bytes: number;
  /** Entries dropped to make room (by size), since start; expiry is not eviction. */
  readonly evictions: number;
}

/**
 * A store that can say how long an entry has left (both real stores can),
 * so that the in-process LRU in front does not keep it longer.
 */
export interface TtlAwareStore extends CacheStore {
  /** The entry's bytes and the ms it has left (Infinity when it has no expiry); undefined when there is none. */
  getWithTtl(key: string): Promise<{ value: Uint8Array; ttlMs: number } | undefined>;
}

/**
 * A store that can answer in this thread without waiting (the embedded
 * SQLite file: better-sqlite3 reads synchronously), so that a lookup, on
 * every request's path, makes no promise. Redis cannot.
 */
export interface SyncReadStore extends TtlAwareStore {
  /** What getWithTtl resolves with, now; throws where it rejects. */
  readNow(key: string): { value: Uint8Array; ttlMs: number } | undefined;
}
