// One row SQLite cannot store must not take its batch with it. Rows of one
// event-loop turn are committed in one transaction; when that fails for a
// reason of its own (a cost beyond int64, a NOT NULL), the batch is written
// again row by row inside one transaction, the good rows are committed, and
// the bad one is reported, loudly and with the fields that identify it (no
// secret: ids, the model, the status, the counts).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { openDb, type Db } from "../../src/storage/db.js";
import { createUsageStore, type UsageRecord } from "../../src/storage/usage.js";

let dir: string;
let db: Db;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gatewayz-row-isolation-"));
  db = openDb(join(dir, "g.db"));
});

afterEach(() => {
  if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

function row(i: number, over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    ts: 1_700_000_000_000 + i, keyId: "key_a", userId: "usr_a", protocol: "openai", requestedModel: `row-${i}`,
    model: "qwen-plus", upstreamModel: "qwen-plus", provider: "alibaba-cloud", promptTokens: 10, completionTokens: 5,
    cachedTokens: 0, reasoningTokens: 0, costPico: 1000n, latencyMs: 12, ttftMs: 3, status: "ok", errorKind: null,
    estimated: false, attempts: 1, ...over,
  };
}

const nextTurn = () => new Promise<void>((r) => setImmediate(r));
const onDisk = () => db.prepare("SELECT requested_model FROM usage ORDER BY id").pluck().all();

it("a cost beyond SQLite's int64 in one of 40 rows: the other 39 are committed, and the bad one is logged with its fields", async () => {
  const logs: string[] = [];
  const usage = createUsageStore(db, { log: { warn: (m) => logs.push(`warn ${m}`), error: (m) => logs.push(`error ${m}`) } });
  for (let i = 0; i < 40; i++) usage.insert(row(i, i === 17 ? { costPico: 10n ** 30n, promptTokens: 1e30 } : {}));
  await usage.committed();
  expect(onDisk()).toEqual(Array.from({ length: 40 }, (_, i) => `row-${i}`).filter((n) => n !== "row-17"));
  expect(logs).toHaveLength(1);
  expect(logs[0]).toMatch(/^error usage: 1 usage record\(s\) lost: /);
  expect(logs[0]).toContain("key=key_a user=usr_a protocol=openai requested_model=\"row-17\" model=qwen-plus provider=alibaba-cloud status=ok");
  expect(logs[0]).toContain(`ts=${new Date(1_700_000_000_017).toISOString()}`);
});

it("several bad rows of different kinds in one batch: each is reported on its own, every good row is kept", async () => {
  const lost: Array<[unknown, number, UsageRecord | undefined]> = [];
  const usage = createUsageStore(db, { onLost: (err, rows, r) => lost.push([err, rows, r]) });
  usage.insert(row(0));
  usage.insert(row(1, { costPico: -(10n ** 20n) })); // below int64
  usage.insert(row(2));
  usage.insert(row(3, { status: null as unknown as string })); // NOT NULL
  usage.insert(row(4));
  await usage.committed();
  expect(onDisk()).toEqual(["row-0", "row-2", "row-4"]);
  expect(lost.map(([, n, r]) => [n, r?.requestedModel])).toEqual([[1, "row-1"], [1, "row-3"]]);
  expect(String(lost[1]![0])).toMatch(/NOT NULL/);
});

it("a good batch is still one transaction: no second pass, nothing reported", async () => {
  const lost: unknown[] = [];
  const usage = createUsageStore(db, { onLost: (err) => lost.push(err) });
  for (let i = 0; i < 10; i++) usage.insert(row(i));
  await usage.committed();
  expect(onDisk()).toHaveLength(10);
  expect(lost).toEqual([]);
  await nextTurn();
  expect(onDisk()).toHaveLength(10);
});
