import { describe, expect, it } from "vitest";
import { createMemoryFront, DEFAULT_FILL_TTL_MS, type TtlAwareStore } from "../../src/cache/memory-front.js";
import type { CacheStats, CacheStore } from "../../src/cache/store.js";

/** The seam's simplest honest implementation: a Map with expiry on a clock the test turns. */
class MapStore implements CacheStore {
  readonly entries = new Map<string, { value: Uint8Array; expires: number }>();
  gets = 0;
  failing = false;
  /** When set, get() waits for this before answering (to interleave writes). */
  gate: Promise<void> | undefined;
  closed = false;
  constructor(readonly clock: { now: number }, readonly reportStats = false) {}

  async get(key: string) {
    this.gets++;
    this.check();
    const e = this.entries.get(key);
    const value = e && e.expires > this.clock.now ? e.value : undefined;
    await this.gate; // the answer as it was when asked, delivered later
    return value;
  }
  async set(key: string, value: Uint8Array, ttlMs: number) {
    this.check();
    this.entries.set(key, { value, expires: this.clock.now + ttlMs });
  }
  async delete(key: string) { this.check(); this.entries.delete(key); }
  stats(): CacheStats | undefined {
    return this.reportStats ? { entries: this.entries.size, bytes: 42, evictions: 7 } : undefined;
  }
  async close() { this.closed = true; }
  private check() { if (this.failing) throw new Error("store down"); }
}

class TtlMapStore extends MapStore implements TtlAwareStore {
  async getWithTtl(key: string) {
    const value = await this.get(key);
    return value && { value, ttlMs: this.entries.get(key)!.expires - this.clock.now };
  }
}

const bytes = (n: number, fill = 1) => new Uint8Array(n).fill(fill);

function setup(maxBytes = 10_000, Store = MapStore) {
  const clock = { now: 1_000 };
  const store = new Store(clock);
  const front = createMemoryFront(store, { maxBytes, now: () => clock.now });
  return { clock, store, front };
}

describe("memory front", () => {
  it("writes through to the store and answers later reads from memory", async () => {
    const { store, front } = setup();
    await front.set("k", bytes(3), 60_000);
    expect(store.entries.get("k")?.value).toEqual(bytes(3));
    expect(await front.get("k")).toEqual(bytes(3));
    expect(store.gets).toBe(0);
  });

  it("fills memory from the store on a miss, then serves memory", async () => {
    const { store, front } = setup();
    await store.set("k", bytes(4), 600_000);
    expect(await front.get("k")).toEqual(bytes(4));
    expect(await front.get("k")).toEqual(bytes(4));
    expect(store.gets).toBe(1);
    expect(await front.get("absent")).toBeUndefined();
  });

  it("keeps a filled entry no longer than the bounded default when the store cannot tell its TTL", async () => {
    const { clock, store, front } = setup();
    await store.set("k", bytes(4), 10 * DEFAULT_FILL_TTL_MS);
    await front.get("k");
    clock.now += DEFAULT_FILL_TTL_MS - 1;
    await front.get("k");
    expect(store.gets).toBe(1);
    clock.now += 2;
    await front.get("k");
    expect(store.gets).toBe(2);
  });

  it("keeps a filled entry only as long as a TTL-aware store has it", async () => {
    const { clock, store, front } = setup(10_000, TtlMapStore);
    await store.set("k", bytes(4), 5_000);
    clock.now += 4_000; // 1 s left in the store
    expect(await front.get("k")).toEqual(bytes(4));
    clock.now += 999;
    expect(await front.get("k")).toEqual(bytes(4));
    expect(store.gets).toBe(1);
    clock.now += 2;
    expect(await front.get("k")).toBeUndefined();
  });

  it("ages entries it wrote by their own TTL", async () => {
    const { clock, front } = setup();
    await front.set("k", bytes(2), 500);
    clock.now += 501;
    expect(await front.get("k")).toBeUndefined(); // the store's copy has expired too
  });

  it("deletes from memory and from the store", async () => {
    const { store, front } = setup();
    await front.set("k", bytes(2), 60_000);
    await front.delete("k");
    expect(await front.get("k")).toBeUndefined();
    expect(store.entries.has("k")).toBe(false);
  });

  it("evicts the least recently used by bytes, keys included, and counts it", async () => {
    const { store, front } = setup(300);
    await front.set("a", bytes(99), 60_000); // 100 bytes with its key
    await front.set("b", bytes(99), 60_000);
    await front.set("c", bytes(99), 60_000);
    await front.get("a"); // a is now the most recent
    await front.set("d", bytes(99), 60_000);
    expect(front.memoryStats()).toEqual({ entries: 3, bytes: 300, evictions: 1 });
    const before = store.gets;
    await front.get("b");
    expect(store.gets).toBe(before + 1); // b left memory, the store still had it
    expect(front.memoryStats().evictions).toBe(2); // bringing b back pushed out the next oldest
  });

  it("does not count expiry, replacement or deletion as eviction", async () => {
    const { clock, front } = setup();
    await front.set("a", bytes(1), 10);
    await front.set("b", bytes(1), 60_000);
    await front.set("b", bytes(2), 60_000);
    await front.delete("b");
    clock.now += 11;
    await front.get("a");
    expect(front.memoryStats()).toEqual({ entries: 0, bytes: 0, evictions: 0 });
  });

  it("keeps an entry larger than memory in the store only", async () => {
    const { store, front } = setup(100);
    await front.set("big", bytes(200), 60_000);
    expect(front.memoryStats().entries).toBe(0);
    expect(await front.get("big")).toEqual(bytes(200));
    expect(store.gets).toBe(1);
  });

  it("reports the store's stats when it has them, memory's otherwise", async () => {
    const clock = { now: 0 };
    const reporting = createMemoryFront(new MapStore(clock, true), { maxBytes: 1000, now: () => clock.now });
    await reporting.set("k", bytes(9), 1000);
    expect(reporting.stats()).toEqual({ entries: 1, bytes: 42, evictions: 7 });
    const { front } = setup();
    await front.set("k", bytes(9), 1000);
    expect(front.stats()).toEqual({ entries: 1, bytes: 10, evictions: 0 });
  });

  it("answers memory hits while the store rejects, and lets misses reject", async () => {
    const { store, front } = setup();
    await front.set("k", bytes(2), 60_000);
    store.failing = true;
    expect(await front.get("k")).toEqual(bytes(2));
    await expect(front.get("other")).rejects.toThrow("store down");
  });

  it("propagates a failed write, and memory still answers it", async () => {
    const { store, front } = setup();
    store.failing = true;
    await expect(front.set("k", bytes(2), 60_000)).rejects.toThrow("store down");
    expect(await front.get("k")).toEqual(bytes(2));
    await expect(front.delete("k")).rejects.toThrow("store down");
    expect(front.memoryStats().entries).toBe(0);
  });

  it("does not put an older value read during a delete back in memory", async () => {
    const { store, front } = setup();
    await store.set("k", bytes(2, 7), 60_000);
    let open!: () => void;
    store.gate = new Promise((resolve) => (open = resolve));
    const reading = front.get("k");
    await Promise.resolve();
    await front.delete("k"); // waits for nothing: delete does not pass the gate
    open();
    expect(await reading).toEqual(bytes(2, 7)); // it was there when asked
    store.gate = undefined;
    expect(await front.get("k")).toBeUndefined();
  });

  it("treats a TTL under a millisecond as nothing to keep in memory", async () => {
    const { store, front } = setup();
    await front.set("k", bytes(2), 0);
    expect(front.memoryStats().entries).toBe(0);
    expect(store.entries.has("k")).toBe(true);
  });

  it("closes the store and empties memory", async () => {
    const { store, front } = setup();
    await front.set("k", bytes(2), 60_000);
    await front.close();
    expect(store.closed).toBe(true);
    expect(front.memoryStats().entries).toBe(0);
  });
});
