// UsageStore.committed(): what a request awaits before its answer goes out.
// It resolves once every row inserted so far is committed (visible to another
// connection, so in the WAL, where a killed process cannot take it back) or,
// while the database refuses writes, held in the retry buffer; the group
// commit keeps its batching: one transaction per event-loop turn, or at once
// at 512 rows.

import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { openDb, type Db } from "../../src/storage/db.js";
import { createUsageStore, type UsageRecord } from "../../src/storage/usage.js";
import { fillDisk } from "../support/full-disk.js";

let dir: string;
let db: Db;
let other: Database.Database;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gatewayz-committed-"));
  db = openDb(join(dir, "g.db"));
  other = new Database(join(dir, "g.db"), { readonly: true });
});

afterEach(() => {
  other.close();
  if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

function row(i: number): UsageRecord {
  return {
    ts: 1_700_000_000_000 + i, keyId: "key_a", userId: "usr_a", protocol: "openai", requestedModel: `row-${i}`,
    model: "qwen-plus", upstreamModel: "qwen-plus", provider: "alibaba-cloud", promptTokens: 10, completionTokens: 5,
    cachedTokens: 0, reasoningTokens: 0, costPico: 1000n, latencyMs: 12, ttftMs: 3, status: "ok", errorKind: null,
    estimated: false, attempts: 1,
  };
}

/** Rows another connection sees: only committed ones. */
const visible = () => (other.prepare("SELECT COUNT(*) AS n FROM usage").get() as { n: number }).n;

it("resolves once this turn's rows are committed, and not before", async () => {
  const usage = createUsageStore(db);
  for (let i = 0; i < 3; i++) usage.insert(row(i));
  let seenWhenResolved: number | undefined;
  const done = usage.committed().then(() => (seenWhenResolved = visible()));
  await Promise.resolve();
  expect(seenWhenResolved).toBeUndefined();
  expect(visible()).toBe(0);
  await done;
  expect(seenWhenResolved).toBe(3);
});

it("every caller of one turn waits for the same single commit", async () => {
  const usage = createUsageStore(db);
  const seen: number[] = [];
  for (let i = 0; i < 5; i++) {
    usage.insert(row(i));
    void usage.committed().then(() => seen.push(visible()));
  }
  await usage.committed();
  expect(seen).toEqual([5, 5, 5, 5, 5]);
});

it("with nothing queued, it resolves before the end of the turn", async () => {
  const usage = createUsageStore(db);
  usage.insert(row(0));
  await usage.committed();
  let endOfTurn = false;
  setImmediate(() => (endOfTurn = true));
  await usage.committed();
  expect(endOfTurn).toBe(false);
});

it("the 512th row commits the batch at once and resolves those waiting; later rows wait for the end of the turn", async () => {
  const usage = createUsageStore(db);
  for (let i = 0; i < 511; i++) usage.insert(row(i));
  let first = false;
  void usage.committed().then(() => (first = true));
  usage.insert(row(511));
  await Promise.resolve();
  expect(first).toBe(true);
  expect(visible()).toBe(512);
  usage.insert(row(512));
  const later = usage.committed();
  expect(visible()).toBe(512);
  await later;
  expect(visible()).toBe(513);
});

it("while the database refuses writes, it resolves with the rows held in the retry buffer", async () => {
  const usage = createUsageStore(db, { log: { warn: () => {}, error: () => {} } });
  usage.insert(row(0));
  await usage.committed();
  fillDisk(db);
  usage.insert(row(1));
  await usage.committed();
  expect(usage.health().buffered).toBe(1);
});
