// The readiness write check (src/storage/write-check.ts): a real committed
// write to the one health row, which a connection that may not write fails;
// its result stands for maxAgeMs, so a storm of probes costs one write.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openDb, type Db } from "../../src/storage/db.js";
import { createWriteCheck } from "../../src/storage/write-check.js";

const dirs: string[] = [];
const dbs: Db[] = [];

afterEach(() => {
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function fileDb(): Db {
  const dir = mkdtempSync(join(tmpdir(), "gatewayz-write-check-"));
  dirs.push(dir);
  const db = openDb(join(dir, "g.db"));
  dbs.push(db);
  return db;
}

/** A clock the test moves by hand. */
function clock() {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

const checkedAt = (db: Db) => (db.prepare("SELECT checked_at FROM health WHERE id = 1").pluck().get() as number);

describe("the database write check", () => {
  it("commits the time of the check to the one health row", () => {
    const db = fileDb();
    const { now } = clock();
    const check = createWriteCheck(db, { now });
    expect(check.writable()).toBe(true);
    expect(check.lastError).toBeUndefined();
    expect(checkedAt(db)).toBe(1_000);
    expect(db.prepare("SELECT COUNT(*) FROM health").pluck().get()).toBe(1);
  });

  it("fails on a connection that may not write (SQLITE_READONLY), and passes again once it may", () => {
    const db = fileDb();
    const { now, advance } = clock();
    const check = createWriteCheck(db, { now });
    db.pragma("query_only = ON");
    expect(check.writable()).toBe(false);
    expect(check.lastError).toMatch(/readonly.*\(SQLITE_READONLY\)$/);
    db.pragma("query_only = OFF");
    advance(1_000);
    expect(check.writable()).toBe(true);
    expect(check.lastError).toBeUndefined();
  });

  it("answers from its last result for maxAgeMs: a storm of probes is one write", () => {
    const db = fileDb();
    const { now, advance } = clock();
    const check = createWriteCheck(db, { now, maxAgeMs: 1_000 });
    expect(check.writable()).toBe(true);
    db.pragma("query_only = ON");
    advance(999);
    for (let i = 0; i < 100; i++) expect(check.writable()).toBe(true);
    advance(1);
    expect(check.writable()).toBe(false);
    db.pragma("query_only = OFF");
    expect(check.writable()).toBe(false); // a failure stands as long
    advance(1_000);
    expect(check.writable()).toBe(true);
  });

  it("says the database is closed instead of throwing", () => {
    const db = fileDb();
    const check = createWriteCheck(db, { now: clock().now });
    db.close();
    expect(check.writable()).toBe(false);
    expect(check.lastError).toBe("the database is closed");
  });
});
