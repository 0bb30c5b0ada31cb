import type { Logger } from "../log.js";
import type { CacheOutcome } from "../observe/observer.js";
import type { CacheConfig } from "./cache-config.js";
import { decode, encode, type CachedAnswer } from "./codec.js";
import { createMemoryFront } from "./memory-front.js";
import { createRedisCacheStore } from "./redis-store.js";
import { createSingleFlight, type SingleFlight } from "./single-flight.js";
import { openSqliteCacheStore } from "./sqlite-store.js";
import type { CacheStats, CacheStore } from "./store.js";

/** The in-process LRU in front of either store: at most this much of CACHE_MAX_BYTES. */
const MEMORY_FRONT_MAX_BYTES = 64 * 1024 * 1024;
/** A failing store is reported at most this often (a Redis outage would otherwise warn per request). */
const WARN_EVERY_MS = 10_000;

/** What one request lets the cache do (Cache-Control: no-cache skips the read, no-store both; x-gatewayz-cache-ttl). */
export interface CacheControl {
  readonly read: boolean;
  readonly write: boolean;
  readonly ttlMs?: number | undefined;
}

export interface Found {
  readonly answer?: CachedAnswer;
  readonly outcome: Extract<CacheOutcome, "hit" | "miss" | "error">;
}

export const CACHE_DEFAULT: CacheControl = Object.freeze({ read: true, write: true });

export interface AnswerCache {
  readonly config: CacheConfig;
  /**
   * The answer under `key`: a hit, a miss, or an error (the store failed: a
   * miss, warned). Corrupt entries are dropped. Synchronous when the store
   * answers in this thread (the embedded file), a promise otherwise (Redis).
   */
  get(key: string): Found | Promise<Found>;
  /** Keeps an answer (unless larger than CACHE_MAX_ENTRY_BYTES); never throws, never awaited by a request. */
  put(key: string, answer: CachedAnswer, ttlMs?: number): void;
  /** Identical requests in flight: the first goes upstream, the others wait for its answer. */
  readonly flight: SingleFlight<CachedAnswer | undefined>;
  stats(): CacheStats | undefined;
  close(): Promise<void>;
}

/**
 * The cache as the core uses it: bytes from a store (the embedded SQLite
 * file, or Redis when REDIS_URL is set, with an in-process LRU in front),
 * answers through the codec. A store's failure is a miss and a warning,
 * never a failed request.
 */
export function openAnswerCache(config: CacheConfig, log: Logger): AnswerCache {
  let lastWarned = 0;
  const warn = (what: string, err: unknown) => {
    const now = Date.now();
    if (now - lastWarned < WARN_EVERY_MS) return;
    lastWarned = now;
    log.warn(`cache: ${what}: ${err instanceof Error ? err.message : String(err)} (answered as a miss)`);
  };
  const backing: CacheStore = config.redisUrl
    ? createRedisCacheStore({ url: config.redisUrl, timeoutMs: config.redisTimeoutMs, log })
    : openSqliteCacheStore(config.path, { maxBytes: config.maxBytes, warn: (m) => log.warn(`cache: ${m}`) });
  const store = createMemoryFront(backing, { maxBytes: Math.min(MEMORY_FRONT_MAX_BYTES, config.maxBytes) });
  /** What the store's bytes are: an answer, or a miss (an unreadable entry is dropped). */
  const found = (key: string, bytes: Uint8Array | undefined): Found => {
    if (bytes === undefined) return MISS;
    const answer = decode(bytes);
    if (answer) return { answer, outcome: "hit" };
    log.warn("cache: an unreadable entry was dropped (answered as a miss)");
    store.delete(key).catch((err: unknown) => warn("the store failed a delete", err));
    return MISS;
  };

  return {
    config,
    flight: createSingleFlight<CachedAnswer | undefined>(),
    get(key) {
      if (store.getNow) {
        let bytes: Uint8Array | undefined;
        try {
          bytes = store.getNow(key);
        } catch (err) {
          warn("the store failed a read", err);
          return ERROR;
        }
        return found(key, bytes);
      }
      return store.get(key).then((bytes) => found(key, bytes), (err: unknown) => {
        warn("the store failed a read", err);
        return ERROR;
      });
    },
    put(key, answer, ttlMs = config.ttlMs) {
      const bytes = encode(answer);
      if (bytes.byteLength > config.maxEntryBytes) return;
      store.set(key, bytes, ttlMs).catch((err: unknown) => warn("the store failed a write", err));
    },
    stats: () => store.stats(),
    close: () => store.close(),
  };
}

const MISS: Found = Object.freeze({ outcome: "miss" });
const ERROR: Found = Object.freeze({ outcome: "error" });
