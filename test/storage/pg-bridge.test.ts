// The synchronous PostgreSQL bridge (src/storage/pg/sync-pg.ts) against a real
// server: values both ways, errors with their SQLSTATE, transactions, the
// asynchronous calls, LISTEN across a server restart, and a bounded wait when
// the server stops answering.
import pg from "pg";
import { describe, expect, it } from "vitest";
import { openSyncPg, redactPgUrl, type SyncPg } from "../../src/storage/pg/sync-pg.js";
import { runTsx } from "../support/node-child.js";
import { startPostgres, type TestPostgres } from "../support/postgres.js";

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function notify(server: TestPostgres, channel: string, payload: string): Promise<void> {
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  try {
    await client.query("SELECT pg_notify($1, $2)", [channel, payload]);
  } finally {
    await client.end();
  }
}

async function withBridge<T>(server: TestPostgres, fn: (db: SyncPg) => Promise<T> | T, options = {}): Promise<T> {
  const db = openSyncPg(server.url, options);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

describe("the synchronous PostgreSQL bridge", { timeout: 60_000 }, () => {
  it("round-trips values synchronously: int8 as exact strings, bytea as Buffers, bigint params, NULLs", async () => {
    const server = await startPostgres();
    await withBridge(server, (db) => {
      db.query("CREATE TABLE t (id int PRIMARY KEY, big bigint, blob bytea, note text, ratio double precision)");
      const blob = Buffer.from([0, 1, 2, 253, 254, 255]);
      const big = 2n ** 62n + 1n;
      expect(db.query("INSERT INTO t VALUES ($1, $2, $3, $4, $5) RETURNING id", [1, big, blob, "one", 0.5])).toEqual([{ id: 1 }]);
      db.query("INSERT INTO t VALUES ($1, $2, $3, $4, $5)", [2, null, null, null, null]);

      const rows = db.query<{ id: number; big: string | null; blob: Buffer | null; note: string | null; ratio: number | null }>("SELECT * FROM t ORDER BY id");
      expect(rows).toHaveLength(2);
      expect(rows[0]!.big).toBe("4611686018427387905");
      expect(BigInt(rows[0]!.big!)).toBe(big);
      expect(Buffer.isBuffer(rows[0]!.blob)).toBe(true);
      expect(rows[0]!.blob!.equals(blob)).toBe(true);
      expect(rows[0]!.note).toBe("one");
      expect(rows[0]!.ratio).toBe(0.5);
      expect(rows[1]).toEqual({ id: 2, big: null, blob: null, note: null, ratio: null });

      // Past 2^53, where a JS number would already be wrong.
      expect(db.query("SELECT $1::int8 + 1 AS n", [9007199254740993n])).toEqual([{ n: "9007199254740994" }]);
      expect(db.query("SELECT $1::bytea = '\\x00ff'::bytea AS same", [Buffer.from([0, 255])])).toEqual([{ same: true }]);
      expect(db.query("SELECT 1 AS a; SELECT 2 AS b")).toEqual([{ b: 2 }]);
    });
  });

  it("rethrows PostgreSQL's errors with their message and SQLSTATE, and keeps working after them", async () => {
    const server = await startPostgres();
    await withBridge(server, (db) => {
      db.query("CREATE TABLE u (id int PRIMARY KEY)");
      db.query("INSERT INTO u VALUES (1)");
      let caught: unknown;
      try {
        db.query("INSERT INTO u VALUES ($1)", [1]);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(Error);
      expect(caught).toMatchObject({ code: "23505", constraint: "u_pkey", message: 'duplicate key value violates unique constraint "u_pkey"' });
      expect(() => db.query("SELEC 1")).toThrow(expect.objectContaining({ code: "42601", message: 'syntax error at or near "SELEC"' }));
      expect(db.query("SELECT count(*)::int AS n FROM u")).toEqual([{ n: 1 }]);
    });
  });

  it("cancels a statement past statementTimeoutMs on the server (57014)", async () => {
    const server = await startPostgres();
    await withBridge(server, (db) => {
      expect(() => db.query("SELECT pg_sleep(5)")).toThrow(expect.objectContaining({ code: "57014" }));
      expect(db.query("SELECT 1 AS one")).toEqual([{ one: 1 }]);
    }, { statementTimeoutMs: 300 });
  });

  it("commits a synchronous transaction, and rolls all of it back when a step fails", async () => {
    const server = await startPostgres();
    await withBridge(server, (db) => {
      db.query("CREATE TABLE acct (id int PRIMARY KEY, cents bigint NOT NULL CHECK (cents >= 0))");
      const out = db.transaction([
        { sql: "INSERT INTO acct VALUES (1, 100), (2, 0)" },
        { sql: "UPDATE acct SET cents = cents + $1 WHERE id = 2 RETURNING cents", params: [50n] },
        { sql: "UPDATE acct SET cents = cents - $1 WHERE id = 1 RETURNING cents", params: [50n] },
      ]);
      expect(out).toEqual([[], [{ cents: "50" }], [{ cents: "50" }]]);

      expect(() => db.transaction([
        { sql: "UPDATE acct SET cents = cents + 80 WHERE id = 2" },
        { sql: "UPDATE acct SET cents = cents - 80 WHERE id = 1" },
      ])).toThrow(expect.objectContaining({ code: "23514" }));
      expect(db.query("SELECT id, cents FROM acct ORDER BY id")).toEqual([{ id: 1, cents: "50" }, { id: 2, cents: "50" }]);
      // The connection that rolled back went back to the pool usable.
      expect(db.transaction([{ sql: "SELECT 1 AS x" }])).toEqual([[{ x: 1 }]]);
    });
  });

  it("answers asynchronous queries and transactions from the same worker, concurrently", async () => {
    const server = await startPostgres();
    await withBridge(server, async (db) => {
      await db.queryAsync("CREATE TABLE a (id int PRIMARY KEY, blob bytea)");
      const inserts = Array.from({ length: 20 }, (_, i) => db.queryAsync("INSERT INTO a VALUES ($1, $2)", [i, Buffer.from([i])]));
      await Promise.all(inserts);
      const [rows] = await Promise.all([db.queryAsync<{ n: string }>("SELECT count(*) AS n FROM a"), db.queryAsync("SELECT pg_sleep(0.05)")]);
      expect(rows).toEqual([{ n: "20" }]);
      const [[blobRow]] = await db.transactionAsync<{ blob: Buffer }>([{ sql: "SELECT blob FROM a WHERE id = $1", params: [7n] }]);
      expect(Buffer.isBuffer(blobRow!.blob) && blobRow!.blob.equals(Buffer.from([7]))).toBe(true);
      await expect(db.transactionAsync([{ sql: "DELETE FROM a" }, { sql: "SELECT 1/0" }])).rejects.toMatchObject({ code: "22012" });
      expect(db.query("SELECT count(*) AS n FROM a")).toEqual([{ n: "20" }]);
      await expect(db.queryAsync("SELECT nope")).rejects.toMatchObject({ code: "42703" });
    });
  });

  it("lets a process exit while idle (no close), and stays up for a pending async call", async () => {
    const server = await startPostgres();
    const code = `
      import { openSyncPg } from "./src/storage/pg/sync-pg.js";
      const db = openSyncPg(process.argv[1]);
      db.query("SELECT 1");
      db.listen("idle", () => {});
      db.queryAsync("SELECT pg_sleep(0.3), 42 AS x").then((rows) => console.log("async " + rows[0].x));
    `;
    const started = Date.now();
    const child = await runTsx(["--input-type=module", "-e", code, server.url]);
    expect(child.stderr).toBe("");
    expect(child.stdout).toBe("async 42\n");
    expect(child.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("delivers NOTIFY from another connection, reconnects after a server restart and reports the gap with onNotify('')", async () => {
    const server = await startPostgres();
    await withBridge(server, async (db) => {
      const got: string[] = [];
      db.listen("key_changes", (payload) => got.push(payload));
      await notify(server, "key_changes", "k1");
      await until("the first notification", () => got.length === 1);
      expect(got).toEqual(["k1"]);

      await server.restart();
      await until("the reconnect signal", () => got.length === 2);
      expect(got).toEqual(["k1", ""]);
      await notify(server, "key_changes", "k2");
      await until("a notification after the reconnect", () => got.length === 3);
      expect(got).toEqual(["k1", "", "k2"]);
      // The pool's connections from before the restart are gone; new ones serve.
      expect(db.query("SELECT 1 AS one")).toEqual([{ one: 1 }]);
    });
  });

  it("gives up on a server that stops answering within the stated bound, without the password, and recovers after", async () => {
    const server = await startPostgres();
    const url = server.url.replace("postgres@", "postgres:s3cret-pw@");
    await withBridge({ ...server, url }, async (db) => {
      expect(db.answerWithinMs).toBe(1600);
      expect(db.query("SELECT 1 AS one")).toEqual([{ one: 1 }]);
      server.pause();
      let caught: Error | undefined;
      const started = performance.now();
      try {
        db.query("SELECT 2 AS two");
      } catch (err) {
        caught = err as Error;
      } finally {
        server.resume();
      }
      const waited = performance.now() - started;
      expect(caught?.message).toBe(`PostgreSQL did not answer within 1600 ms (postgres://postgres:***@127.0.0.1:${server.port}/postgres)`);
      expect(caught?.message).not.toContain("s3cret");
      expect(waited).toBeGreaterThanOrEqual(1590);
      expect(waited).toBeLessThan(3000);
      // The late answer to the abandoned call is dropped, not taken for the next one's.
      expect(db.query("SELECT 3 AS three")).toEqual([{ three: 3 }]);
    }, { statementTimeoutMs: 300, connectTimeoutMs: 300 });
  });

  it("names the server without its password when it cannot connect, and refuses calls once closed", async () => {
    const server = await startPostgres();
    const url = server.url.replace("postgres@", "postgres:s3cret-pw@");
    await server.stop();
    const db = openSyncPg(url, { connectTimeoutMs: 1000 });
    let caught: Error & { code?: string } = new Error("no error");
    try {
      db.query("SELECT 1");
    } catch (err) {
      caught = err as typeof caught;
    }
    expect(caught.message).toContain(`PostgreSQL at postgres://postgres:***@127.0.0.1:${server.port}/postgres: `);
    expect(caught.message).not.toContain("s3cret");
    expect(caught.code).toBe("ECONNREFUSED");
    await db.close();
    expect(() => db.query("SELECT 1")).toThrow("the PostgreSQL bridge is closed");
    await expect(db.queryAsync("SELECT 1")).rejects.toThrow("the PostgreSQL bridge is closed");
  });

  it("redacts passwords from connection strings", () => {
    expect(redactPgUrl("postgres://gw:pa:ss@db.example:5432/gw?sslmode=require")).toBe("postgres://gw:***@db.example:5432/gw?sslmode=require");
    expect(redactPgUrl("postgresql://gw@db/gw")).toBe("postgresql://gw@db/gw");
    expect(redactPgUrl("postgres://db/gw?user=gw&password=hunter2&sslmode=require")).toBe("postgres://db/gw?user=gw&password=***&sslmode=require");
    expect(redactPgUrl("host=db user=gw password='a b' dbname=gw")).toBe("host=db user=gw password=*** dbname=gw");
  });
});
