import { LRUCache } from "lru-cache";
import type { CacheStats, CacheStore, SyncReadStore, TtlAwareStore } from "./store.js";

export type { TtlAwareStore } from "./store.js";

/**
 * An in-process LRU in front of a shared store (SQLite or Redis), itself a
 * CacheStore: a hit in memory costs no I/O, no serialisation across
 * processes and no await on another server. Sized by bytes (keys and values)
 * and aged per entry, like the store behind it.
 *
 * Filled by reads only (write-around): an answer enters memory when it is
 * first served from the store, not when it is stored. Most answers are
 * never asked for again, and holding each one the gateway makes would keep
 * tens of MiB of short-lived answers alive in V8's old generation, which
 * every full GC then marks: that cost a miss more than the store's write.
 * What memory holds is what has been asked for twice.
 */

export interface MemoryFrontOptions {
  /** The bytes (keys + values) memory may hold; entries are evicted, least recently used first, beyond it. */
  readonly maxBytes: number;
  /**
   * The longest memory keeps an entry it read (shorter when the store says
   * the entry has less left). Bounded because it is how long this process
   * may go on serving an entry after another process deleted or replaced it
   * (another host's no-cache refresh writes the store, not this memory).
   */
  readonly fillTtlMs?: number;
  /** For tests: the clock lru-cache ages entries by. */
  readonly now?: () => number;
}

/** One minute: short enough that staleness is bounded, long enough that a hot key mostly stays in memory. */
export const DEFAULT_FILL_TTL_MS = 60_000;

export interface MemoryFront extends CacheStore {
  /** Memory's own numbers, whatever the store behind reports. */
  memoryStats(): CacheStats;
  /**
   * get() without a promise, when the store behind can answer in this thread
   * (SyncReadStore: the embedded file); undefined for one that cannot (Redis).
   * Throws where get() rejects.
   */
  readonly getNow: ((key: string) => Uint8Array | undefined) | undefined;
}

export function createMemoryFront(store: CacheStore, options: MemoryFrontOptions): MemoryFront {
  const fillTtlMs = options.fillTtlMs ?? DEFAULT_FILL_TTL_MS;
  let evictions = 0;
  const memory = new LRUCache<string, Uint8Array>({
    maxSize: Math.max(1, Math.floor(options.maxBytes)),
    // The key counts too: many small answers under 64-character keys add up. lru-cache wants a positive integer.
    sizeCalculation: (value, key) => Math.max(1, value.byteLength + key.length),
    // Expiry is not eviction (CacheStats.evictions); replacing or deleting neither.
    dispose: (_value, _key, reason) => {
      if (reason === "evict") evictions++;
    },
    // A test's clock is read on every check: lru-cache otherwise reuses one reading for ttlResolution ms.
    ...(options.now ? { perf: { now: options.now }, ttlResolution: 0 } : {}),
  });
  const ttlAware = typeof (store as Partial<TtlAwareStore>).getWithTtl === "function" ? (store as TtlAwareStore) : undefined;
  const syncRead = typeof (store as Partial<SyncReadStore>).readNow === "function" ? (store as SyncReadStore) : undefined;

  /**
   * Reads from the store in progress, by key. A set or delete of the key while
   * one is on its way marks it stale, so the older bytes it brings back are
   * still answered but not put in memory over the newer state.
   */
  const reading = new Map<string, { readers: number; stale: boolean }>();
  const invalidate = (key: string) => {
    const r = reading.get(key);
    if (r) r.stale = true;
  };

  /** Never longer than fillTtlMs either: another process may replace or delete the entry in the store. */
  const keepFor = (ttlMs: number) => (Number.isFinite(ttlMs) ? Math.min(ttlMs, fillTtlMs) : fillTtlMs);

  /** The store's entry, with how long memory may keep it: what the store has left, else the bounded default. */
  async function fromStore(key: string): Promise<{ value: Uint8Array; ttlMs: number } | undefined> {
    if (!ttlAware) {
      const value = await store.get(key);
      return value && { value, ttlMs: fillTtlMs };
    }
    const found = await ttlAware.getWithTtl(key);
    return found && { value: found.value, ttlMs: keepFor(found.ttlMs) };
  }

  const memoryStats = (): CacheStats => ({ entries: memory.size, bytes: memory.calculatedSize, evictions });

  // Nothing can change the key between the store's answer and memory's fill: no read is in progress to mark stale.
  const getNow = syncRead && ((key: string): Uint8Array | undefined => {
    const hit = memory.get(key);
    if (hit) return hit;
    const found = syncRead.readNow(key);
    if (!found) return undefined;
    const ttl = Math.floor(keepFor(found.ttlMs));
    if (ttl >= 1) memory.set(key, found.value, { ttl });
    return found.value;
  });

  return {
    getNow,
    async get(key) {
      const hit = memory.get(key);
      if (hit) return hit;
      let r = reading.get(key);
      if (!r) reading.set(key, (r = { readers: 0, stale: false }));
      r.readers++;
      try {
        // A store that rejects rejects here: the caller counts a miss and warns.
        const found = await fromStore(key);
        if (!found) return undefined;
        if (!r.stale && found.ttlMs >= 1) memory.set(key, found.value, { ttl: Math.floor(found.ttlMs) });
        return found.value;
      } finally {
        if (--r.readers === 0) reading.delete(key);
      }
    },

    set(key, value, ttlMs) {
      // Write-around: the store has the new value, memory drops the old one and fills on the next read.
      // Not async: the store's own promise, without another around it, on every miss's path.
      invalidate(key);
      memory.delete(key);
      return store.set(key, value, ttlMs);
    },

    async delete(key) {
      invalidate(key);
      memory.delete(key);
      await store.delete(key);
    },

    stats: () => store.stats() ?? memoryStats(),
    memoryStats,

    async close() {
      memory.clear();
      await store.close();
    },
  };
}
