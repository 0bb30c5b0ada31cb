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

function setup(maxBytes = 10_000, Store = MapStore, fillTtlMs?: number) {
  const clock = { now: 1_000 };
  const store = new Store(clock);
  const front = createMemoryFront(store, { maxBytes, now: () => clock.now, ...(fillTtlMs === undefined ? {} : { fillTtlMs }) });
  return { clock, store, front };
}

describe("memory front", () => {
  it("writes to the store only; the first read fills memory, the next is answered from memory", async () => {
    const { store, front } = setup();
    await front.set("k", bytes(3), 60_000);
    expect(store.entries.get("k")?.value).toEqual(bytes(3));
    expect(front.memoryStats().entries).toBe(0); // write-around: a write does not fill memory
    expect(await front.get("k")).toEqual(bytes(3));
    expect(store.gets).toBe(1);
    expect(await front.get("k")).toEqual(bytes(3));
    expect(store.gets).toBe(1);
  });

  it("fills memory from the store on a miss, then serves memory; an absent key is not remembered", async () => {
    const { store, front } = setup();
    await store.set("k", bytes(4), 600_000);
    expect(await front.get("k")).toEqual(bytes(4));
    expect(await front.get("k")).toEqual(bytes(4));
    expect(store.gets).toBe(1);
    expect(await front.get("absent")).toBeUndefined();
    expect(await front.get("absent")).toBeUndefined();
    expect(store.gets).toBe(3); // a miss asks the store each time: it may have been written since
    expect(front.memoryStats().entries).toBe(1);
  });

  it("a set after a fill replaces it: the next read returns the new value from the store", async () => {
    const { store, front } = setup();
    await store.set("k", bytes(2, 1), 60_000);
    expect(await front.get("k")).toEqual(bytes(2, 1));
    await front.set("k", bytes(2, 2), 60_000);
    expect(front.memoryStats().entries).toBe(0); // the old value is dropped, the new one not added
    expect(await front.get("k")).toEqual(bytes(2, 2));
    expect(store.gets).toBe(2);
    expect(await front.get("k")).toEqual(bytes(2, 2)); // and that read filled memory again
    expect(store.gets).toBe(2);
  });

  it("keeps a filled entry no longer than the bounded default when the store cannot tell its TTL", async () => {
    const { clock, store, front } = setup();
    await store.set("k", bytes(4), 10 * DEFAULT_FILL_TTL_MS);
    await front.get("k");
    clock.now += DEFAULT_FILL_TTL_MS - 1;
    await front.get("k");
    expect(store.gets).toBe(1);
    clock.now += 2;
    expect(await front.get("k")).toEqual(bytes(4)); // from the store, which still has it
    expect(store.gets).toBe(2);
  });

  it("keeps a filled entry no longer than fillTtlMs when given", async () => {
    const { clock, store, front } = setup(10_000, MapStore, 1_000);
    await store.set("k", bytes(4), 600_000);
    await front.get("k");
    clock.now += 999;
    await front.get("k");
    expect(store.gets).toBe(1);
    clock.now += 2;
    await front.get("k");
    expect(store.gets).toBe(2);
  });

  it("a TTL-aware store's remaining TTL bounds memory", async () => {
    const { clock, store, front } = setup(10_000, TtlMapStore);
    await store.set("k", bytes(4), 5_000);
    clock.now += 4_000; // 1 s left in the store
    expect(await front.get("k")).toEqual(bytes(4));
    clock.now += 999;
    expect(await front.get("k")).toEqual(bytes(4));
    expect(store.gets).toBe(1);
    clock.now += 2;
    expect(await front.get("k")).toBeUndefined(); // memory let it go with the store, not DEFAULT_FILL_TTL_MS later
    expect(store.gets).toBe(2);
  });

  it("fillTtlMs bounds memory too when a TTL-aware store's TTL is longer, or it has none", async () => {
    const { clock, store, front } = setup(10_000, TtlMapStore, 1_000);
    await store.set("long", bytes(4), 600_000);
    await store.set("forever", bytes(5), Infinity); // getWithTtl says Infinity
    await front.get("long");
    await front.get("forever");
    clock.now += 999;
    await front.get("long");
    await front.get("forever");
    expect(store.gets).toBe(2);
    clock.now += 2;
    expect(await front.get("long")).toEqual(bytes(4)); // from the store again: another process may have replaced it
    expect(await front.get("forever")).toEqual(bytes(5));
    expect(store.gets).toBe(4);
  });

  it("ages a filled entry by what its write's TTL has left (TTL-aware store)", async () => {
    const { clock, store, front } = setup(10_000, TtlMapStore);
    await front.set("k", bytes(2), 500);
    clock.now += 100;
    expect(await front.get("k")).toEqual(bytes(2)); // fills with the 400 ms left
    clock.now += 399;
    expect(await front.get("k")).toEqual(bytes(2));
    expect(store.gets).toBe(1);
    clock.now += 2;
    expect(await front.get("k")).toBeUndefined();
  });

  it("deletes from memory and from the store", async () => {
    const { store, front } = setup();
    await front.set("k", bytes(2), 60_000);
    await front.get("k"); // in memory now
    await front.delete("k");
    expect(front.memoryStats().entries).toBe(0);
    expect(await front.get("k")).toBeUndefined();
    expect(store.entries.has("k")).toBe(false);
  });

  it("evicts the least recently used by bytes, keys included, and counts it", async () => {
    const { store, front } = setup(300);
    for (const key of ["a", "b", "c", "d"]) await store.set(key, bytes(99), 60_000); // 100 bytes each with its key
    for (const key of ["a", "b", "c"]) await front.get(key); // memory is full
    expect(front.memoryStats()).toEqual({ entries: 3, bytes: 300, evictions: 0 });
    await front.get("a"); // a memory hit, and a is now the most recent
    expect(store.gets).toBe(3);
    await front.get("d"); // pushes out b, not a
    expect(front.memoryStats()).toEqual({ entries: 3, bytes: 300, evictions: 1 });
    await front.get("b");
    expect(store.gets).toBe(5); // b left memory, the store still had it
    expect(front.memoryStats().evictions).toBe(2); // bringing b back pushed out the next oldest (c)
    await front.get("a");
    await front.get("d");
    expect(store.gets).toBe(5); // a and d stayed
  });

  it("does not count expiry, replacement or deletion as eviction", async () => {
    const { clock, store, front } = setup(10_000, TtlMapStore);
    await store.set("a", bytes(1), 10);
    await store.set("b", bytes(1), 60_000);
    await store.set("c", bytes(1), 60_000);
    await front.get("a");
    await front.get("b");
    await Promise.all([front.get("c"), front.get("c")]); // both fill: the second replaces the first
    await front.set("b", bytes(2), 60_000);
    await front.get("b");
    await front.delete("b");
    clock.now += 11;
    expect(await front.get("a")).toBeUndefined(); // expired in memory and in the store
    expect(front.memoryStats()).toEqual({ entries: 1, bytes: 2, evictions: 0 });
  });

  it("keeps an entry larger than memory in the store only", async () => {
    const { store, front } = setup(100);
    await store.set("big", bytes(200), 60_000);
    expect(await front.get("big")).toEqual(bytes(200));
    expect(await front.get("big")).toEqual(bytes(200));
    expect(store.gets).toBe(2);
    expect(front.memoryStats()).toEqual({ entries: 0, bytes: 0, evictions: 0 });
  });

  it("reports the store's stats when it has them, memory's otherwise", async () => {
    const clock = { now: 0 };
    const reporting = createMemoryFront(new MapStore(clock, true), { maxBytes: 1000, now: () => clock.now });
    await reporting.set("k", bytes(9), 1000);
    expect(reporting.stats()).toEqual({ entries: 1, bytes: 42, evictions: 7 });
    const { front } = setup();
    await front.set("k", bytes(9), 1000);
    expect(front.stats()).toEqual({ entries: 0, bytes: 0, evictions: 0 }); // a write alone is not in memory
    await front.get("k");
    expect(front.stats()).toEqual({ entries: 1, bytes: 10, evictions: 0 });
  });

  it("answers memory hits while the store rejects (after a fill), and lets misses reject", async () => {
    const { store, front } = setup();
    await store.set("k", bytes(2), 60_000);
    await front.get("k");
    store.failing = true;
    expect(await front.get("k")).toEqual(bytes(2));
    await expect(front.get("other")).rejects.toThrow("store down");
  });

  it("propagates a failed write, and memory holds neither the new value nor the old one", async () => {
    const { store, front } = setup();
    await store.set("k", bytes(2, 1), 60_000);
    await front.get("k");
    store.failing = true;
    await expect(front.set("k", bytes(2, 2), 60_000)).rejects.toThrow("store down");
    expect(front.memoryStats().entries).toBe(0);
    await expect(front.get("k")).rejects.toThrow("store down"); // so a read goes to the store
    store.failing = false;
    expect(await front.get("k")).toEqual(bytes(2, 1)); // the store kept the old one
    store.failing = true;
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

  it("does not put an older value read during a set in memory over the new one", async () => {
    const { store, front } = setup();
    await store.set("k", bytes(2, 7), 60_000);
    let open!: () => void;
    store.gate = new Promise((resolve) => (open = resolve));
    const reading = front.get("k");
    await Promise.resolve();
    await front.set("k", bytes(2, 8), 60_000); // set does not pass the gate either
    open();
    expect(await reading).toEqual(bytes(2, 7));
    store.gate = undefined;
    expect(front.memoryStats().entries).toBe(0);
    expect(await front.get("k")).toEqual(bytes(2, 8));
  });

  it("treats a TTL under a millisecond left as nothing to keep in memory", async () => {
    const { store, front } = setup(10_000, TtlMapStore);
    await store.set("k", bytes(2), 0.5);
    expect(await front.get("k")).toEqual(bytes(2));
    expect(front.memoryStats().entries).toBe(0);
  });

  it("closes the store and empties memory", async () => {
    const { store, front } = setup();
    await store.set("k", bytes(2), 60_000);
    await front.get("k");
    expect(front.memoryStats().entries).toBe(1);
    await front.close();
    expect(store.closed).toBe(true);
    expect(front.memoryStats().entries).toBe(0);
  });

  it("getNow: memory, else a store that answers in this thread (it fills memory); none for a store that cannot", async () => {
    const clock = { now: 1_000 };
    const entries = new Map<string, { value: Uint8Array; expires: number }>();
    let reads = 0;
    const syncStore = Object.assign(new TtlMapStore(clock), {
      readNow(key: string) {
        reads++;
        const e = entries.get(key);
        return e && e.expires > clock.now ? { value: e.value, ttlMs: e.expires - clock.now } : undefined;
      },
    });
    const front = createMemoryFront(syncStore, { maxBytes: 10_000, now: () => clock.now });
    entries.set("k", { value: bytes(3), expires: clock.now + 5_000 });
    expect(front.getNow!("k")).toEqual(bytes(3));
    expect(front.getNow!("k")).toEqual(bytes(3));
    expect(reads).toBe(1); // the second from memory
    expect(front.getNow!("absent")).toBeUndefined();
    clock.now += 5_001; // memory keeps it no longer than the store had it
    entries.delete("k");
    expect(front.getNow!("k")).toBeUndefined();
    expect(setup().front.getNow).toBeUndefined();
  });
});
