// The embedded cache store (src/cache/sqlite-store.ts): bytes under a key in
// a SQLite file of its own, rows only appended and found through an in-memory
// index, writes group-committed every commitMs, expiry by an injected clock,
// eviction by size, oldest first, shared by the stores (workers) open on one
// file, kept across a restart. What is on disk is read through a second,
// plain connection to the file.

import Database from "better-sqlite3";
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { keyHash, openSqliteCacheStore, type SqliteCacheOptions, type SqliteCacheStore } from "../../src/cache/sqlite-store.js";
import { openDb } from "../../src/storage/db.js";
import { runTsx } from "../support/node-child.js";

let dir: string;
let path: string;
let clock: number;
const stores: SqliteCacheStore[] = [];
const connections: Database.Database[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gatewayz-cache-"));
  path = join(dir, "gatewayz-cache.sqlite");
  clock = 1_700_000_000_000;
});

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const c of connections.splice(0)) if (c.open) c.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(options: Partial<SqliteCacheOptions> = {}, file = path): SqliteCacheStore {
  // Commits at the next timer turn, and other workers' rows looked for on every lookup, unless a test says otherwise.
  const store = openSqliteCacheStore(file, { maxBytes: 1 << 20, now: () => clock, commitMs: 0, pollMs: 0, ...options });
  stores.push(store);
  return store;
}

/** A plain connection to the file: sees only what was committed. */
function disk() {
  const db = new Database(path);
  db.pragma("busy_timeout = 1000");
  connections.push(db);
  return {
    db,
    keys: () => db.prepare<[], { key: string }>("SELECT key FROM cache_entries ORDER BY key").all().map((r) => r.key),
    /** A row written by hand, as another program (or a damaged file) might have left it. */
    insert: (key: string, value: unknown, expiresAt: unknown, bytes = 10) =>
      db.prepare("INSERT INTO cache_entries (hash, key, value, bytes, expires_at) VALUES (?, ?, ?, ?, ?)").run(keyHash(key), key, value, bytes, expiresAt),
  };
}

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined) => (value ? Buffer.from(value).toString() : undefined);
/** Past the commit timer (commitMs 0: the next timers phase). */
const nextTurn = () => new Promise<void>((r) => setTimeout(r, 5));

describe("entries", () => {
  it("a value comes back byte for byte (in a file or \":memory:\"); set replaces it, delete drops it, an unknown key is a miss", async () => {
    const store = open();
    const value = new Uint8Array([0, 255, 1, 128, 0]);
    await store.set("k", value, 60_000);
    expect(await store.get("k")).toEqual(Buffer.from(value));
    await store.set("k", bytes("second"), 60_000);
    expect(text(await store.get("k"))).toBe("second");
    await store.delete("k");
    expect(await store.get("k")).toBeUndefined();
    expect(await store.get("never")).toBeUndefined();
    const memory = open({}, ":memory:"); // for tests
    await memory.set("k", value, 60_000);
    expect(await memory.get("k")).toEqual(Buffer.from(value));
  });

  it("an entry is a hit until its TTL and a miss from then on, and the expired row is deleted lazily", async () => {
    const store = open();
    await store.set("k", bytes("v"), 1000);
    clock += 999;
    expect(text(await store.get("k"))).toBe("v");
    clock += 1;
    expect(await store.get("k")).toBeUndefined();
    await nextTurn();
    expect(disk().keys()).toEqual([]);
    expect(store.stats()).toMatchObject({ entries: 0, bytes: 0, evictions: 0 });
  });

  it("a write of this turn is read back before its commit; a TTL of 0 stores nothing", async () => {
    const store = open();
    const done = store.set("k", bytes("queued"), 60_000);
    expect(text(await store.get("k"))).toBe("queued");
    await done;
    await store.set("k", bytes("gone"), 0);
    expect(await store.get("k")).toBeUndefined();
  });

  it("a row whose value is not a BLOB, or whose expiry is not a number, is a miss, not a throw", async () => {
    const store = open();
    const { insert } = disk();
    insert("text", "not bytes", clock + 60_000);
    insert("expiry", Buffer.of(0), "soon");
    expect(await store.get("text")).toBeUndefined();
    expect(await store.get("expiry")).toBeUndefined();
  });

  it("refuses an entry larger than the cache, and a value that is not bytes", async () => {
    const store = open({ maxBytes: 100 });
    await expect(store.set("k", new Uint8Array(200), 60_000)).rejects.toThrow(RangeError);
    await expect(store.set("k", "text" as unknown as Uint8Array, 60_000)).rejects.toThrow(TypeError);
  });

  it("a damaged file (as a power loss may leave one: it is not fsynced) is moved aside and replaced by an empty one", async () => {
    const first = open();
    await first.set("k", bytes("v"), 60_000);
    await first.close();
    // Page 1 after the 100-byte file header is the schema's b-tree: scrambled, the file is malformed.
    const fd = openSync(path, "r+");
    writeSync(fd, Buffer.alloc(3000, 0xa5), 0, 3000, 100);
    closeSync(fd);
    const warn = vi.fn();
    const store = open({ warn });
    expect(warn).toHaveBeenCalledWith(expect.stringMatching(/damaged .*moved to .*corrupt-\d+, starting empty/));
    expect(readdirSync(dir).some((f) => f.startsWith("gatewayz-cache.sqlite.corrupt-"))).toBe(true);
    expect(await store.get("k")).toBeUndefined();
    await store.set("k", bytes("again"), 60_000);
    expect(text(await store.get("k"))).toBe("again");
  });

  it("a file of the first schema (a TEXT primary key) is emptied and upgraded, not misread", async () => {
    const old = new Database(path);
    old.exec("CREATE TABLE cache_entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, bytes INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER NOT NULL)");
    old.prepare("INSERT INTO cache_entries VALUES ('k', x'00', 2, ?, ?)").run(clock + 60_000, clock);
    old.pragma("application_id = 1199194977"); // "GzCa"
    old.pragma("user_version = 1");
    old.close();
    const store = open();
    expect(await store.get("k")).toBeUndefined();
    await store.set("k", bytes("v2"), 60_000);
    expect(text(await store.get("k"))).toBe("v2");
    expect(store.stats()).toMatchObject({ entries: 1 });
  });

  it("refuses a file that is not a cache file (the usage database) rather than writing into it", () => {
    openDb(join(dir, "gatewayz.db")).close();
    expect(() => openSqliteCacheStore(join(dir, "gatewayz.db"), { maxBytes: 1000 })).toThrow(/not a Gatewayz cache file/);
  });
});

describe("group commit", () => {
  it("the sets of commitMs are committed together at its end; each set resolves once committed", async () => {
    const store = open({ commitMs: 100 });
    const { keys } = disk();
    const sets = Array.from({ length: 100 }, (_, i) => store.set(`k${String(i).padStart(3, "0")}`, bytes(`v${i}`), 60_000));
    await new Promise((r) => setTimeout(r, 50));
    expect(keys()).toHaveLength(0);
    expect(text(await store.get("k042"))).toBe("v42"); // read back from the queue
    await Promise.all(sets);
    expect(keys()).toHaveLength(100);
  });

  it("a replaced entry leaves one row, found by the next lookup in another worker too", async () => {
    const a = open();
    const b = open();
    await a.set("k", bytes("first"), 60_000);
    expect(text(await b.get("k"))).toBe("first");
    await a.set("k", bytes("second"), 60_000);
    expect(disk().keys()).toEqual(["k"]);
    expect(text(await a.get("k"))).toBe("second");
    expect(text(await b.get("k"))).toBe("second");
  });

  it("another worker's entry shows here within pollMs, not before (a lookup between polls touches no file)", async () => {
    const a = open({ pollMs: 200 });
    const b = open();
    expect(await a.get("k")).toBeUndefined(); // polls now
    await b.set("k", bytes("from b"), 60_000);
    expect(await a.get("k")).toBeUndefined();
    await new Promise((r) => setTimeout(r, 220));
    expect(text(await a.get("k"))).toBe("from b");
  });

  it("getWithTtl says how long the entry has left", async () => {
    const store = open();
    await store.set("k", bytes("v"), 5000);
    clock += 1500;
    expect(await store.getWithTtl("k")).toEqual({ value: Buffer.from("v"), ttlMs: 3500 });
    expect(await store.getWithTtl("absent")).toBeUndefined();
  });

  it("readNow answers as getWithTtl does, without a promise: queued, committed, expired, absent, closed", async () => {
    const store = open({ commitMs: 60_000 });
    const set = store.set("k", bytes("v"), 5000);
    expect(store.readNow("k")).toEqual({ value: Buffer.from("v"), ttlMs: 5000 }); // still queued
    await store.close();
    await set;
    const reopened = open();
    clock += 1500;
    expect(reopened.readNow("k")).toEqual({ value: Buffer.from("v"), ttlMs: 3500 });
    expect(reopened.readNow("absent")).toBeUndefined();
    clock += 3500;
    expect(reopened.readNow("k")).toBeUndefined();
    await reopened.close();
    expect(() => reopened.readNow("k")).toThrow(/closed/);
  });

  it("a transaction that fails rejects every set and delete in it, and writes none of them", async () => {
    const store = open();
    await store.set("kept", bytes("v"), 60_000);
    const { db, keys } = disk();
    db.exec("CREATE TRIGGER poison BEFORE INSERT ON cache_entries WHEN NEW.key = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END");
    const turn = [store.set("a", bytes("a"), 60_000), store.delete("kept"), store.set("poison", bytes("p"), 60_000), store.set("b", bytes("b"), 60_000)];
    const results = await Promise.allSettled(turn);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected", "rejected", "rejected"]);
    expect(keys()).toEqual(["kept"]);
    expect(store.stats()).toMatchObject({ entries: 1 });
    // The next turn is a new transaction.
    await store.set("c", bytes("c"), 60_000);
    expect(keys()).toEqual(["c", "kept"]);
  });

  it("a commit that cannot get the write lock (another worker holds it) rejects instead of waiting forever", async () => {
    const store = open({ busyTimeoutMs: 50, warn: vi.fn() }); // the startup sweep meets the lock too
    const { db, keys } = disk();
    db.exec("BEGIN IMMEDIATE");
    await expect(store.set("k", bytes("v"), 60_000)).rejects.toThrow(/locked|busy/i);
    db.exec("COMMIT");
    await store.set("k", bytes("v"), 60_000);
    expect(keys()).toEqual(["k"]);
  });
});

describe("size eviction", () => {
  it("a commit over maxBytes evicts the oldest entries down to 90% of it, whatever was read since, and counts them", async () => {
    // Each entry: a 2-byte key and a 98-byte value, 100 bytes; 5 fit in 500, the low-water mark is 450.
    const store = open({ maxBytes: 500 });
    for (const key of ["k1", "k2", "k3", "k4", "k5"]) await store.set(key, new Uint8Array(98), 60_000);
    expect(await store.get("k1")).toBeDefined(); // age, not use: being read does not keep k1
    await store.set("k6", new Uint8Array(98), 60_000); // 600 > 500: down to 400
    expect(disk().keys()).toEqual(["k3", "k4", "k5", "k6"]);
    expect(store.stats()).toEqual({ entries: 4, bytes: 400, evictions: 2 });
    expect(await store.get("k1")).toBeUndefined();
    expect(await store.get("k3")).toBeDefined();
  });

  it("an expired row goes before a live one, and is not counted as an eviction", async () => {
    const store = open({ maxBytes: 500 });
    await store.set("k1", new Uint8Array(98), 60_000);
    clock += 1;
    await store.set("k2", new Uint8Array(98), 10);
    await store.set("k3", new Uint8Array(298), 60_000);
    clock += 10;
    await store.set("k4", new Uint8Array(98), 60_000); // 600: k2 (expired) goes, 500 is still over 450: k1 goes
    expect(disk().keys()).toEqual(["k3", "k4"]);
    expect(store.stats()).toEqual({ entries: 2, bytes: 400, evictions: 1 });
  });

  it("two workers whose writes together go over the limit: the next timed re-read evicts, once, not in each worker", async () => {
    // Both timers fire in one turn and both see 600 on disk; the second to commit sees the first's eviction (data_version).
    const a = open({ maxBytes: 500, sweepMs: 20 });
    const b = open({ maxBytes: 500, sweepMs: 20 });
    for (const key of ["a1", "a2", "a3", "a4"]) await a.set(key, new Uint8Array(98), 60_000);
    clock += 1;
    for (const key of ["b1", "b2"]) await b.set(key, new Uint8Array(98), 60_000); // 600 on disk; b counted 200 of it
    await vi.waitFor(() => expect(disk().keys()).toEqual(["a3", "a4", "b1", "b2"]));
    await new Promise((r) => setTimeout(r, 60)); // three more ticks each
    expect(disk().keys()).toHaveLength(4);
    expect(a.stats().evictions + b.stats().evictions).toBe(2);
    expect(a.stats()).toMatchObject({ entries: 4, bytes: 400 });
  });
});

describe("several workers, restarts", () => {
  it("two stores on one file read each other's entries and deletes", async () => {
    const a = open();
    const b = open();
    await a.set("from-a", bytes("A"), 60_000);
    await b.set("from-b", bytes("B"), 60_000);
    expect(text(await b.get("from-a"))).toBe("A");
    expect(text(await a.get("from-b"))).toBe("B");
    await b.delete("from-a");
    expect(await a.get("from-a")).toBeUndefined();
  });

  it("a worker in another process reads this one's entry, and this one reads its", async () => {
    const store = openSqliteCacheStore(path, { maxBytes: 1 << 20 });
    stores.push(store);
    await store.set("parent", bytes("from parent"), 60_000);
    const child = await runTsx(["test/fixtures/cache-worker.ts", path, "parent", "child"]);
    expect(child.stderr).toBe("");
    expect(child.stdout).toBe("read from parent\n");
    expect(text(await store.get("child"))).toBe("from child");
  });

  it("entries survive a close and reopen, until their TTL", async () => {
    const first = open();
    await first.set("short", bytes("s"), 1000);
    await first.set("long", bytes("l"), 60_000);
    await first.close();
    clock += 1000;
    const second = open();
    expect(await second.get("short")).toBeUndefined();
    expect(text(await second.get("long"))).toBe("l");
  });

  it("close() commits what is queued; the store refuses work afterwards", async () => {
    const store = open();
    const set = store.set("k", bytes("v"), 60_000);
    await store.close();
    await set;
    expect(disk().keys()).toEqual(["k"]);
    await expect(store.get("k")).rejects.toThrow(/closed/);
    await expect(store.set("k", bytes("v"), 60_000)).rejects.toThrow(/closed/);
  });

  it("stats: entries and bytes (keys and values) follow sets, replacements and deletes, and are read back at open", async () => {
    const store = open();
    expect(store.stats()).toEqual({ entries: 0, bytes: 0, evictions: 0 });
    await Promise.all([store.set("a", new Uint8Array(9), 60_000), store.set("bb", new Uint8Array(8), 60_000)]);
    expect(store.stats()).toEqual({ entries: 2, bytes: 20, evictions: 0 });
    await store.set("a", new Uint8Array(19), 60_000);
    await store.delete("bb");
    await store.delete("none");
    expect(store.stats()).toEqual({ entries: 1, bytes: 20, evictions: 0 });
    expect(open().stats()).toEqual({ entries: 1, bytes: 20, evictions: 0 });
  });
});

describe("sweep", () => {
  function fill(count: number, ttlMs: number, prefix: string) {
    const { db, insert } = disk();
    db.transaction(() => {
      for (let i = 0; i < count; i++) insert(`${prefix}${i}`, Buffer.of(0), clock + ttlMs);
    })();
  }
  const count = () => disk().db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM cache_entries").get()!.n;

  it("deletes every expired row, in batches, and keeps the live ones", async () => {
    const store = open();
    fill(1234, 100, "old");
    fill(10, 60_000, "live");
    clock += 100;
    expect(await store.sweep()).toBe(1234);
    expect(count()).toBe(10);
  });

  it("runs at open, and again on its timer; the timer also re-reads the totals other workers changed", async () => {
    await open().close(); // creates the file
    fill(5, 100, "old");
    clock += 100;
    const store = open({ sweepMs: 20 });
    await vi.waitFor(() => expect(count()).toBe(0));
    fill(3, 100, "later");
    clock += 100;
    await vi.waitFor(() => expect(count()).toBe(0));
    fill(2, 60_000, "live");
    await vi.waitFor(() => expect(store.stats()).toMatchObject({ entries: 2, bytes: 20 }));
  });
});
