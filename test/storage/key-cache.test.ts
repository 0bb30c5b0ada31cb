// Keys found by hash are cached under the database version (db-version.ts):
// SQLite's data_version, read at most once per event-loop turn, for commits by
// other connections (the CLI in another process, a second connection), plus a
// counter of this process's own writes through the key and limit stores. So a
// key revoked elsewhere is refused from the next turn on, and one revoked or
// rotated in this process at once. First the store, then a real gateway on a
// database file, revoked through a second connection, the CLI and its own
// accounts API.

import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openDb, type Db } from "../../src/storage/db.js";
import { createKeyStore, hashKey } from "../../src/storage/keys.js";
import { createLimitStore } from "../../src/storage/limits.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { ROOT, runTsx } from "../support/node-child.js";


let dir: string;
let path: string;
const open: Db[] = [];
const gateways: TestGateway[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gatewayz-key-cache-"));
  path = join(dir, "g.db");
});

afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()));
  for (const db of open.splice(0)) if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

function connect(): Db {
  const db = openDb(path);
  open.push(db);
  return db;
}

/** A later event-loop turn: the version is read afresh. */
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

describe("the key store's cache", () => {
  it("a key revoked through another connection is refused from the next turn", async () => {
    const keys = createKeyStore(connect());
    const { key, record } = keys.create({ user: "alice", name: "ci" });
    const hash = hashKey(key);
    expect(keys.findByHash(hash)?.revokedAt).toBeNull();
    await nextTurn();
    expect(keys.findByHash(hash)?.revokedAt).toBeNull(); // cached now

    expect(createKeyStore(connect()).revoke(record.id)).toBe(true);
    await nextTurn();
    expect(keys.findByHash(hash)?.revokedAt).toEqual(expect.any(Number));
  });

  it("a raw UPDATE by another connection (not through any store) is seen too", async () => {
    const keys = createKeyStore(connect());
    const { key, record } = keys.create({ user: "alice", name: "ci" });
    const hash = hashKey(key);
    expect(keys.findByHash(hash)?.revokedAt).toBeNull();
    await nextTurn();
    expect(keys.findByHash(hash)?.revokedAt).toBeNull();

    const other = new Database(path);
    open.push(other);
    other.prepare("UPDATE api_keys SET revoked_at = 42 WHERE id = ?").run(record.id);
    await nextTurn();
    expect(keys.findByHash(hash)?.revokedAt).toBe(42);
  });

  it("a rotation through another connection: the old key refused and the new one found, next turn", async () => {
    const keys = createKeyStore(connect());
    const old = keys.create({ user: "alice", name: "ci" });
    expect(keys.findByHash(hashKey(old.key))?.revokedAt).toBeNull();
    await nextTurn();

    const fresh = createKeyStore(connect()).rotate(old.record.id);
    await nextTurn();
    expect(keys.findByHash(hashKey(old.key))).toMatchObject({ revokedAt: expect.any(Number), replacedBy: fresh.record.id });
    expect(keys.findByHash(hashKey(fresh.key))).toMatchObject({ id: fresh.record.id, revokedAt: null });
  });

  it("revoked in this process: refused at once, in the same turn", () => {
    const keys = createKeyStore(connect());
    const { key, record } = keys.create({ user: "alice", name: "ci" });
    const hash = hashKey(key);
    expect(keys.findByHash(hash)?.revokedAt).toBeNull();
    expect(keys.findByHash(hash)?.revokedAt).toBeNull();
    expect(keys.revoke(record.id)).toBe(true);
    expect(keys.findByHash(hash)?.revokedAt).toEqual(expect.any(Number));
  });

  it("rotated in this process: the old key refused and the new one found, in the same turn", () => {
    const keys = createKeyStore(connect());
    const old = keys.create({ user: "alice", name: "ci" });
    expect(keys.findByHash(hashKey(old.key))?.revokedAt).toBeNull();
    const fresh = keys.rotate(old.record.id);
    expect(keys.findByHash(hashKey(old.key))).toMatchObject({ revokedAt: expect.any(Number), replacedBy: fresh.record.id });
    expect(keys.findByHash(hashKey(fresh.key))?.revokedAt).toBeNull();
  });

  it("a revoke through another store on the same connection (data_version does not move for it) is seen at once", () => {
    const db = connect();
    const keys = createKeyStore(db);
    const { key, record } = keys.create({ user: "alice", name: "ci" });
    const hash = hashKey(key);
    expect(keys.findByHash(hash)?.revokedAt).toBeNull();
    expect(createKeyStore(db).revoke(record.id)).toBe(true);
    expect(keys.findByHash(hash)?.revokedAt).toEqual(expect.any(Number));
  });

  it("a write through the limit store on the same connection empties the cache too", () => {
    const db = connect();
    const keys = createKeyStore(db);
    const { key, record } = keys.create({ user: "alice", name: "ci" });
    const hash = hashKey(key);
    expect(keys.findByHash(hash)?.revokedAt).toBeNull();
    // A revoke the key store cannot know about (same connection, no store)...
    db.prepare("UPDATE api_keys SET revoked_at = 7 WHERE id = ?").run(record.id);
    expect(keys.findByHash(hash)?.revokedAt).toBeNull();
    // ...is picked up once a store write moves this process's own counter.
    createLimitStore(db).setLimits("key", record.id, { rpm: 5 });
    expect(keys.findByHash(hash)?.revokedAt).toBe(7);
  });

  it("misses are not cached: a key created through another connection works in the same turn", () => {
    const keys = createKeyStore(connect());
    keys.create({ user: "alice", name: "warm" }); // the version is read, and the cache is live
    const key = `gw_live_${"B".repeat(32)}`;
    const hash = hashKey(key);
    expect(keys.findByHash(hash)).toBeUndefined();
    const other = new Database(path);
    open.push(other);
    other.prepare("INSERT INTO users (id, name, created_at) VALUES ('usr_b', 'bob', 1)").run();
    other.prepare(`INSERT INTO api_keys (id, user_id, name, kind, hash, prefix, last4, created_at)
      VALUES ('key_b', 'usr_b', 'ci', 'client', ?, 'gw_live_BBBB', 'BBBB', 1)`).run(hash);
    expect(keys.findByHash(hash)).toMatchObject({ id: "key_b", userName: "bob", revokedAt: null });
  });
});

describe("a gateway on a database file", () => {
  async function gateway(): Promise<TestGateway> {
    const gw = await startTestGateway({ DATABASE_PATH: path });
    gateways.push(gw);
    return gw;
  }

  /** One chat with this key: the HTTP status and the error message, if any. */
  async function chat(gw: TestGateway, key: string): Promise<{ status: number; message?: string }> {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: "qwen-max", messages: [{ role: "user", content: "hi" }] }),
    });
    const body = (await res.json()) as { error?: { message: string } };
    return { status: res.status, message: body.error?.message };
  }

  const keyIdOf = (gw: TestGateway) => gw.app.accounts.listKeys({ user: "test" })[0]!.id;

  it("revoked through a second connection: the next request is a 401", async () => {
    const gw = await gateway();
    expect((await chat(gw, gw.key)).status).toBe(200);
    expect((await chat(gw, gw.key)).status).toBe(200);
    const other = new Database(path);
    open.push(other);
    expect(other.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").run(Date.now(), keyIdOf(gw)).changes).toBe(1);
    expect(await chat(gw, gw.key)).toEqual({ status: 401, message: "the API key has been revoked" });
  });

  it("revoked by the CLI in another process: the next request is a 401", { timeout: 30_000 }, async () => {
    const gw = await gateway();
    expect((await chat(gw, gw.key)).status).toBe(200);
    expect((await chat(gw, gw.key)).status).toBe(200);
    const cli = await runTsx([join(ROOT, "src/cli.ts"), "--db", path, "keys", "revoke", keyIdOf(gw)]);
    expect(cli.stderr).toBe("");
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/^revoked key_/);
    expect(await chat(gw, gw.key)).toEqual({ status: 401, message: "the API key has been revoked" });
  });

  it("revoked through the gateway's own accounts: refused at once", async () => {
    const gw = await gateway();
    expect((await chat(gw, gw.key)).status).toBe(200);
    gw.app.accounts.revokeKey(keyIdOf(gw));
    expect(await chat(gw, gw.key)).toEqual({ status: 401, message: "the API key has been revoked" });
  });

  it("rotated through the gateway's own accounts: the old key refused, the new one served", async () => {
    const gw = await gateway();
    expect((await chat(gw, gw.key)).status).toBe(200);
    const fresh = gw.app.accounts.rotateKey(keyIdOf(gw));
    expect((await chat(gw, gw.key)).status).toBe(401);
    expect((await chat(gw, fresh.key)).status).toBe(200);
  });
});
