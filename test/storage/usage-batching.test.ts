// Group commit of usage rows: insert() only queues; the rows of one
// event-loop turn are written in one transaction at its end (setImmediate),
// or at once when 512 are queued; flush() and every read commit first; a
// row that cannot be written is isolated from its batch and reported to
// onLost (test/storage/usage-row-isolation.test.ts has more). What another connection
// (another process, the CLI) can see is read through a second connection on
// the same file. Then the process level: a gateway that exits, or dies of an
// uncaught exception, with rows still queued has them on disk (app.ts flushes
// on 'exit'), while a SIGKILL in the same spot loses them.

import Database from "better-sqlite3";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { openDb, type Db } from "../../src/storage/db.js";
import { createUsageStore, type UsageRecord, type UsageStoreOptions } from "../../src/storage/usage.js";
import { startTestGateway } from "../support/gateway.js";
import { ROOT, runTsx, type ChildExit } from "../support/node-child.js";

const FIXTURE = join(ROOT, "test/fixtures/usage-exit.ts");

let path: string;
const dirs: string[] = [];
const open: Db[] = [];

beforeEach(() => {
  const dir = mkdtempSync(join(tmpdir(), "gatewayz-usage-batch-"));
  dirs.push(dir);
  path = join(dir, "g.db");
});

afterEach(() => {
  for (const db of open.splice(0)) if (db.open) db.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The gateway's connection and its usage store, plus a second connection that sees only what was committed. */
function stores(options?: UsageStoreOptions) {
  const db = openDb(path);
  const other = new Database(path, { readonly: true });
  open.push(db, other);
  const countStmt = other.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM usage");
  return { db, usage: createUsageStore(db, options), committed: () => countStmt.get()!.n };
}

/** The end of this event-loop turn: callbacks queued with setImmediate before this one have run. */
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

function row(i = 0, over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    ts: 1_700_000_000_000 + i, keyId: "key_a", userId: "usr_a", protocol: "openai", requestedModel: "qwen-plus",
    model: "qwen-plus", upstreamModel: "qwen-plus", provider: "alibaba-cloud", promptTokens: 10, completionTokens: 5,
    cachedTokens: 0, reasoningTokens: 0, costPico: 1000n, latencyMs: 12, ttftMs: 3, status: "ok", errorKind: null,
    estimated: false, attempts: 1, ...over,
  };
}

describe("group commit within a turn", () => {
  it("rows of one turn are committed together at its end, not one by one", async () => {
    const { usage, committed } = stores();
    usage.insert(row(0));
    usage.insert(row(1));
    usage.insert(row(2));
    expect(committed()).toBe(0);
    await nextTurn();
    expect(committed()).toBe(3);
    // And the next turn starts a new batch.
    usage.insert(row(3));
    expect(committed()).toBe(3);
    await nextTurn();
    expect(committed()).toBe(4);
  });

  it("one bad row in a turn's batch is isolated: the others are committed, and onLost is told of that one row", async () => {
    const onLost = vi.fn();
    const { usage, committed } = stores({ onLost });
    usage.insert(row(0));
    usage.insert(row(1));
    const bad = row(2, { protocol: null as unknown as string }); // NOT NULL: this insert fails
    usage.insert(bad);
    usage.insert(row(3));
    await nextTurn();
    expect(committed()).toBe(3);
    expect(onLost).toHaveBeenCalledTimes(1);
    expect(onLost.mock.calls[0]![0]).toBeInstanceOf(Error);
    expect(String(onLost.mock.calls[0]![0])).toMatch(/NOT NULL/);
    expect(onLost.mock.calls[0]![1]).toBe(1);
    expect(onLost.mock.calls[0]![2]).toBe(bad);
    // A later batch is not affected.
    usage.insert(row(4));
    await nextTurn();
    expect(committed()).toBe(4);
    expect(onLost).toHaveBeenCalledTimes(1);
  });

  it("a turn's rows cost one commit: a few WAL frames for 200 rows, against at least one per row in separate turns", async () => {
    const { db, usage, committed } = stores();
    const frame = (db.pragma("page_size", { simple: true }) as number) + 24;
    const walFrames = () => statSync(`${path}-wal`).size / frame;

    const before = walFrames();
    for (let i = 0; i < 200; i++) usage.insert(row(i));
    await nextTurn();
    const batched = walFrames() - before;
    expect(committed()).toBe(200);

    const middle = walFrames();
    for (let i = 0; i < 20; i++) {
      usage.insert(row(i));
      await nextTurn();
    }
    const separate = walFrames() - middle;
    expect(committed()).toBe(220);

    expect(separate).toBeGreaterThanOrEqual(20);
    expect(batched).toBeLessThan(20);
  });

  it("600 inserts in one turn: the 512th commits the first 512 at once, the other 88 at the end of the turn", async () => {
    const { usage, committed } = stores();
    for (let i = 0; i < 511; i++) usage.insert(row(i));
    expect(committed()).toBe(0);
    usage.insert(row(511));
    expect(committed()).toBe(512);
    for (let i = 512; i < 600; i++) usage.insert(row(i));
    expect(committed()).toBe(512);
    await nextTurn();
    expect(committed()).toBe(600);
    const ids = usage.summary("key");
    expect(ids).toEqual([expect.objectContaining({ group: "key_a", requests: 600 })]);
  });

  it("flush() commits now; with nothing queued it does nothing", async () => {
    const onLost = vi.fn();
    const { usage, committed } = stores({ onLost });
    usage.flush();
    usage.insert(row(0));
    usage.insert(row(1));
    usage.flush();
    expect(committed()).toBe(2);
    usage.flush();
    await nextTurn();
    // The end-of-turn commit found nothing left: no duplicates.
    expect(committed()).toBe(2);
    expect(onLost).not.toHaveBeenCalled();
  });
});

describe("reads flush first, so they see every row", () => {
  it("count()", () => {
    const { usage, committed } = stores();
    usage.insert(row(0));
    usage.insert(row(1));
    expect(usage.count()).toBe(2);
    expect(committed()).toBe(2);
  });

  it("summary()", () => {
    const { usage, committed } = stores();
    usage.insert(row(0, { userId: "usr_a", costPico: 7n }));
    usage.insert(row(1, { userId: "usr_b", status: "error", costPico: 5n }));
    // An answer from the cache: a hit, not an error; cost 0, what it saved apart.
    usage.insert(row(2, { userId: "usr_b", status: "cached", costPico: 0n, savedPico: 9n }));
    expect(usage.summary("user")).toEqual([
      { group: "usr_a", requests: 1, errors: 0, cached: 0, promptTokens: 10, completionTokens: 5, costPico: 7n, savedPico: 0n },
      { group: "usr_b", requests: 2, errors: 1, cached: 1, promptTokens: 20, completionTokens: 10, costPico: 5n, savedPico: 9n },
    ]);
    expect(usage.spent("user", "usr_b", 0)).toBe(5n); // budgets count cost only: a hit charges nothing
    expect(committed()).toBe(3);
  });

  it("spent(), for keys and users", () => {
    const { usage, committed } = stores();
    usage.insert(row(0, { keyId: "key_x", userId: "usr_x", costPico: 123n }));
    expect(usage.spent("key", "key_x", 0)).toBe(123n);
    expect(committed()).toBe(1);
    usage.insert(row(1, { keyId: "key_y", userId: "usr_x", costPico: 7n }));
    expect(usage.spent("user", "usr_x", 0)).toBe(130n);
    expect(committed()).toBe(2);
  });
});

describe("lost batches", () => {
  it("the database closed underneath: onLost gets the error and the row count, nothing throws", async () => {
    const onLost = vi.fn();
    const { db, usage } = stores({ onLost });
    usage.insert(row(0));
    usage.insert(row(1));
    db.close();
    await nextTurn();
    expect(onLost).toHaveBeenCalledTimes(1);
    const [err, rows] = onLost.mock.calls[0]!;
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/not open/);
    expect(rows).toBe(2);
    // The lost rows are dropped, not retried on every later flush.
    usage.flush();
    expect(onLost).toHaveBeenCalledTimes(1);
  });

  it("without onLost, a lost batch is reported on stderr", async () => {
    const { db, usage } = stores();
    const write = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      usage.insert(row(0));
      usage.insert(row(1));
      usage.insert(row(2));
      db.close();
      await nextTurn();
      expect(write.mock.calls.map((c) => String(c[0])).join("")).toMatch(/gatewayz: 3 usage record\(s\) lost: .*not open/);
    } finally {
      write.mockRestore();
    }
  });
});

describe("the app", () => {
  it("close() leaves every queued row on disk and removes its process 'exit' hook", async () => {
    const hooks = process.listenerCount("exit");
    const gw = await startTestGateway({ DATABASE_PATH: path });
    expect(process.listenerCount("exit")).toBe(hooks + 1);
    for (let i = 0; i < 3; i++) gw.app.gateway.refused({ protocol: "openai", model: `close-${i}`, authorization: null }, new Error("refused"));
    await gw.close();
    expect(process.listenerCount("exit")).toBe(hooks);
    const db = new Database(path, { readonly: true });
    open.push(db);
    expect(db.prepare("SELECT requested_model FROM usage ORDER BY id").pluck().all()).toEqual(["close-0", "close-1", "close-2"]);
  });
});

/** Runs test/fixtures/usage-exit.ts in its own Node process (through tsx) and waits for it to end. */
function runFixture(mode: "exit" | "throw" | "kill", rows: number, db: string): Promise<ChildExit> {
  return runTsx([FIXTURE, db, mode, String(rows)]);
}

/** A database path in a directory of its own, removed after the test (these tests run concurrently). */
function ownDb(onTestFinished: (fn: () => void) => void): string {
  const own = mkdtempSync(join(tmpdir(), "gatewayz-usage-exit-"));
  onTestFinished(() => rmSync(own, { recursive: true, force: true }));
  return join(own, "g.db");
}

function rowsOnDisk(db: string): string[] {
  const conn = new Database(db, { readonly: true });
  try {
    return conn.prepare("SELECT requested_model FROM usage ORDER BY id").pluck().all() as string[];
  } finally {
    conn.close();
  }
}

// Each run is a fresh Node process through tsx, about a second of CPU; they run side by side.
describe.concurrent("a gateway process leaving with rows still queued", { timeout: 30_000 }, () => {
  const ROWS = 7;
  const expected = Array.from({ length: ROWS }, (_, i) => `exit-test-${i}`);

  it("process.exit(): the 'exit' hook writes them", async ({ expect, onTestFinished }) => {
    const db = ownDb(onTestFinished);
    const r = await runFixture("exit", ROWS, db);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    // Nothing had been committed when it exited: the rows on disk were written on the way out.
    expect(r.stdout).toBe(`queued ${ROWS} visible 0\n`);
    expect(rowsOnDisk(db)).toEqual(expected);
  });

  it("an uncaught exception: the rows are written all the same", async ({ expect, onTestFinished }) => {
    const db = ownDb(onTestFinished);
    const r = await runFixture("throw", ROWS, db);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("fixture: uncaught on purpose");
    expect(r.stdout).toBe(`queued ${ROWS} visible 0\n`);
    expect(rowsOnDisk(db)).toEqual(expected);
  });

  it("control: SIGKILL at the same point loses them (so the two above prove the hook)", async ({ expect, onTestFinished }) => {
    const db = ownDb(onTestFinished);
    const r = await runFixture("kill", ROWS, db);
    expect(r.signal).toBe("SIGKILL");
    expect(r.stdout).toBe(`queued ${ROWS} visible 0\n`);
    expect(rowsOnDisk(db)).toEqual([]);
  });
});
