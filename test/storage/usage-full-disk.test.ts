// A full disk: usage rows the database refuses (a real SQLITE_FULL, from a
// file that may not grow: test/support/full-disk.ts) are held in a bounded
// retry buffer and committed, in order, once it has room again; at the
// buffer's capacity the store says it is unavailable (and tells listeners),
// rows keep being held up to twice that, and past it the loss is logged with
// its count. Budgets count held rows' cost, so they do not drift.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createBudgets } from "../../src/core/budgets.js";
import { createPolicy } from "../../src/core/policy.js";
import { GatewayError } from "../../src/errors.js";
import { openDb, type Db } from "../../src/storage/db.js";
import { createLimitStore } from "../../src/storage/limits.js";
import { createUsageStore, type UsageRecord, type UsageStore } from "../../src/storage/usage.js";
import { fillDisk, freeDisk, usageRows } from "../support/full-disk.js";

const NONE = { rpm: 0, tpm: 0, rpd: 0, concurrent: 0 };
const dirs: string[] = [];
const dbs: Db[] = [];

afterEach(() => {
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function row(name: string, over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    ts: 1_700_000_000_000, keyId: "key_a", userId: "usr_a", protocol: "openai", requestedModel: name,
    model: "qwen-plus", upstreamModel: "qwen-plus", provider: "alibaba-cloud", promptTokens: 10, completionTokens: 5,
    cachedTokens: 0, reasoningTokens: 0, costPico: 1000n, latencyMs: 12, ttftMs: 3, status: "ok", errorKind: null,
    estimated: false, attempts: 1, ...over,
  };
}

/** A store on a database file whose disk is already full: one committed row, then no room. */
function fullStore(bufferRows: number): { db: Db; usage: UsageStore; logs: string[] } {
  const dir = mkdtempSync(join(tmpdir(), "gatewayz-full-disk-"));
  dirs.push(dir);
  const db = openDb(join(dir, "g.db"));
  dbs.push(db);
  const logs: string[] = [];
  const log = { warn: (m: string) => logs.push(`warn ${m}`), error: (m: string) => logs.push(`error ${m}`) };
  const usage = createUsageStore(db, { bufferRows, log, retryMs: { first: 10, max: 20 } });
  usage.insert(row("before"));
  usage.flush();
  fillDisk(db);
  return { db, usage, logs };
}

function insertAll(usage: UsageStore, names: string[]): Promise<void> {
  for (const name of names) usage.insert(row(name));
  return usage.committed();
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const namesOnDisk = (db: Db) => db.prepare("SELECT requested_model FROM usage WHERE status != 'filler' ORDER BY id").pluck().all();
const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe("rows the database refuses", () => {
  it("are held (committed() still resolves), then committed in order once the disk has room", async () => {
    const { db, usage, logs } = fullStore(10);
    await insertAll(usage, names("held", 5));
    expect(usageRows(db)).toBe(1);
    expect(usage.health()).toMatchObject({ available: true, buffered: 5, capacity: 10, lost: 0 });
    expect(usage.health().lastError).toBe("database or disk is full (SQLITE_FULL)");
    expect(logs.join("\n")).toMatch(/warn usage: the database refuses writes \(database or disk is full \(SQLITE_FULL\)\); holding usage rows in memory/);

    // Rows that arrive while others are held queue behind them.
    await insertAll(usage, names("later", 2));
    expect(usage.health().buffered).toBe(7);

    freeDisk(db);
    await until(() => usage.health().buffered === 0, "the buffer to drain");
    expect(namesOnDisk(db)).toEqual(["before", ...names("held", 5), ...names("later", 2)]);
    expect(usage.health()).toMatchObject({ available: true, buffered: 0, lastError: undefined });
    expect(logs.join("\n")).toMatch(/warn usage: the database accepts writes again; 7 held usage row\(s\) committed/);
  });

  it("at capacity the store is unavailable and tells its listeners; in-flight rows are still kept; available again after the drain", async () => {
    const { db, usage, logs } = fullStore(4);
    const changes: boolean[] = [];
    usage.onAvailabilityChange((available) => changes.push(available));

    await insertAll(usage, names("a", 3));
    expect(usage.available()).toBe(true);
    await insertAll(usage, ["a-3"]);
    expect(usage.available()).toBe(false);
    expect(changes).toEqual([false]);
    expect(logs.join("\n")).toMatch(/error usage: 4 usage rows are held and the database still refuses writes .*SQLITE_FULL.*new chat requests are refused/);

    // Requests admitted before it filled still end, and their rows are kept.
    await insertAll(usage, names("in-flight", 2));
    expect(usage.health()).toMatchObject({ available: false, buffered: 6, lost: 0 });

    freeDisk(db);
    await until(() => usage.available(), "the store to be available again");
    expect(changes).toEqual([false, true]);
    expect(namesOnDisk(db)).toEqual(["before", ...names("a", 4), ...names("in-flight", 2)]);
  });

  it("past twice the capacity, rows are dropped, and the loss is logged at error with its count", async () => {
    const { usage, logs } = fullStore(600);
    await insertAll(usage, names("r", 1_203));
    expect(usage.health()).toMatchObject({ buffered: 1_200, lost: 3 });
    expect(logs.filter((l) => l.startsWith("error")).join("\n")).toMatch(/usage: 3 usage record\(s\) lost: the retry buffer is at its hard limit of 1200 rows .*SQLITE_FULL/);
  });

  it("without a buffer (USAGE_BUFFER_ROWS=0) the store is unavailable from the first refused row, which is still kept", async () => {
    const { db, usage } = fullStore(0);
    expect(usage.available()).toBe(true);
    await insertAll(usage, ["only"]);
    expect(usage.health()).toMatchObject({ available: false, buffered: 1, lost: 0 });
    freeDisk(db);
    await until(() => usage.available(), "the store to be available again");
    expect(namesOnDisk(db)).toEqual(["before", "only"]);
  });

  it("close() on a disk that is still full reports the held rows lost; on a freed disk it writes them", async () => {
    const full = fullStore(10);
    await insertAll(full.usage, names("x", 3));
    full.usage.close();
    expect(full.logs.join("\n")).toMatch(/error usage: 3 usage record\(s\) lost at shutdown: the database still refuses writes \(database or disk is full \(SQLITE_FULL\)\)/);

    const freed = fullStore(10);
    await insertAll(freed.usage, names("y", 3));
    freeDisk(freed.db);
    freed.usage.close(); // before the retry timer has run
    expect(namesOnDisk(freed.db)).toEqual(["before", ...names("y", 3)]);
  });
});

describe("budgets while rows are held", () => {
  it("spent() includes held rows' cost, so a budget loaded meanwhile sees that spending", async () => {
    const { db, usage } = fullStore(100);
    const limits = createLimitStore(db);
    // Set before the disk filled up (the budgets table has its own pages; its write may still fit).
    freeDisk(db);
    limits.setBudget("user", "usr_a", { limitPico: 5_000n, period: "total" });
    fillDisk(db);

    for (let i = 0; i < 6; i++) usage.insert(row(`spend-${i}`, { costPico: 1_000n }));
    await usage.committed();
    expect(usage.health().buffered).toBe(6);
    expect(usage.spent("user", "usr_a", 0)).toBe(7_000n); // the committed "before" row and six held ones
    expect(usage.spent("key", "key_a", 0)).toBe(7_000n);
    expect(usage.spent("user", "usr_other", 0)).toBe(0n);

    const policy = createPolicy(limits, { key: NONE, user: NONE, system: NONE });
    policy.refresh();
    const budgets = createBudgets(policy, usage);
    let refused: unknown;
    try {
      budgets.reserve({ keyId: "key_a", userId: "usr_a" }, 1n);
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(GatewayError);
    expect((refused as GatewayError).kind).toBe("insufficient_quota");
  });
});

