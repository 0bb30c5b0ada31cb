// The PostgreSQL migrations (src/storage/pg/pg-migrations.ts): in step with
// the SQLite ones, the same tables, columns and indexes, applied once on an
// empty database, a no-op after, exactly once when three processes start
// together, and a newer database refused.
import pg from "pg";
import { describe, expect, it } from "vitest";
import { openDb } from "../../src/storage/db.js";
import { MIGRATIONS } from "../../src/storage/migrations.js";
import { migratePg, PG_MIGRATIONS } from "../../src/storage/pg/pg-migrations.js";
import { openSyncPg, type SyncPg } from "../../src/storage/pg/sync-pg.js";
import { runTsx } from "../support/node-child.js";
import { startPostgres } from "../support/postgres.js";

const NEWER = `the database is at schema version ${PG_MIGRATIONS.length + 1}, newer than this Gatewayz understands (${PG_MIGRATIONS.length}); upgrade Gatewayz or use another DATABASE_URL`;

/** table -> sorted column names, and sorted index names, of the SQLite schema the migrations make. */
function sqliteSchema(): { columns: Record<string, string[]>; indexes: string[] } {
  const db = openDb(":memory:");
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").pluck().all() as string[];
    const columns = Object.fromEntries(tables.map((t) => [t, (db.pragma(`table_info(${t})`) as { name: string }[]).map((c) => c.name).sort()]));
    const indexes = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").pluck().all() as string[]).sort();
    return { columns, indexes };
  } finally {
    db.close();
  }
}

function pgSchema(db: SyncPg): { columns: Record<string, string[]>; indexes: string[] } {
  const rows = db.query<{ table_name: string; column_name: string }>(
    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_version'");
  const columns: Record<string, string[]> = {};
  for (const r of rows) (columns[r.table_name] ??= []).push(r.column_name);
  for (const t in columns) columns[t]!.sort();
  // Those PostgreSQL makes for primary keys and UNIQUE columns, as SQLite does (sqlite_autoindex_*, left out above).
  const indexes = db.query<{ indexname: string }>(
    "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key' ORDER BY indexname")
    .map((r) => r.indexname);
  return { columns, indexes };
}

describe("the PostgreSQL migrations", { timeout: 60_000 }, () => {
  it("are as many as the SQLite migrations (add the PostgreSQL form of each new one)", () => {
    expect(PG_MIGRATIONS.length).toBe(MIGRATIONS.length);
  });

  it("apply all on an empty database, making the SQLite schema's tables, columns, indexes and checks, then are a no-op", async () => {
    const server = await startPostgres();
    const db = openSyncPg(server.url);
    try {
      expect(migratePg(db)).toBe(PG_MIGRATIONS.length);
      expect(db.query("SELECT version FROM schema_version")).toEqual([{ version: PG_MIGRATIONS.length }]);
      expect(pgSchema(db)).toEqual(sqliteSchema());

      const types = Object.fromEntries(db.query<{ c: string; t: string; identity: string | null }>(
        `SELECT table_name || '.' || column_name AS c, data_type AS t, identity_generation AS identity
         FROM information_schema.columns WHERE table_schema = 'public'`).map((r) => [r.c, r.identity ? `${r.t} ${r.identity}` : r.t]));
      expect(types).toMatchObject({
        "usage.id": "bigint ALWAYS", "usage.ts": "bigint", "usage.cost_pico": "bigint", "usage.saved_pico": "bigint",
        "usage.latency_ms": "double precision", "usage.prompt_tokens": "integer", "api_keys.hash": "bytea",
        "api_keys.created_at": "bigint", "budgets.limit_pico": "bigint", "responses.expires_at": "bigint", "health.checked_at": "bigint",
      });

      // A row as the usage writer makes one: the id is the database's, amounts exact.
      const [row] = db.query<{ id: string; cost_pico: string; operation: string }>(
        `INSERT INTO usage (ts, protocol, requested_model, status, cost_pico) VALUES ($1, 'openai', 'qwen-plus', 'ok', $2) RETURNING id, cost_pico, operation`,
        [Date.now(), 2n ** 60n]);
      expect(row).toEqual({ id: "1", cost_pico: String(2n ** 60n), operation: "chat" });
      expect(() => db.query("INSERT INTO usage (id, ts, protocol, requested_model, status) VALUES (5, 0, 'x', 'x', 'ok')")).toThrow(expect.objectContaining({ code: "428C9" }));
      db.query("INSERT INTO users VALUES ('u1', 'me', 0)");
      expect(() => db.query("INSERT INTO api_keys (id, user_id, name, kind, hash, prefix, last4, created_at) VALUES ('k', 'u1', 'n', 'root', $1, 'p', 'l', 0)", [Buffer.from("h")]))
        .toThrow(expect.objectContaining({ code: "23514" }));
      db.query("INSERT INTO api_keys (id, user_id, name, kind, hash, prefix, last4, created_at) VALUES ('k', 'u1', 'n', 'admin', $1, 'p', 'l', 0)", [Buffer.from("h")]);
      expect(() => db.query("UPDATE api_keys SET cache = 'sometimes'")).toThrow(expect.objectContaining({ code: "23514" }));
      expect(() => db.query("INSERT INTO budgets VALUES ('user', 'u1', 1, 'week', 0)")).toThrow(expect.objectContaining({ code: "23514" }));
      expect(db.query("SELECT id, checked_at FROM health")).toEqual([{ id: 1, checked_at: "0" }]);

      expect(migratePg(db)).toBe(0);
      expect(db.query("SELECT version FROM schema_version")).toEqual([{ version: PG_MIGRATIONS.length }]);
    } finally {
      await db.close();
    }
  });

  it("applies each migration exactly once when three processes migrate the same database at the same moment", async () => {
    const server = await startPostgres();
    // The three hold back on a lock the test holds until all three wait on it, then start together.
    const gate = new pg.Client({ connectionString: server.url });
    await gate.connect();
    try {
      await gate.query("SELECT pg_advisory_lock(42)");
      const code = `
        import { openSyncPg } from "./src/storage/pg/sync-pg.js";
        import { migratePg } from "./src/storage/pg/pg-migrations.js";
        const db = openSyncPg(process.argv[1]);
        db.query("SELECT pg_advisory_lock_shared(42)");
        const applied = migratePg(db);
        await db.close();
        console.log("applied " + applied);
      `;
      const children = [1, 2, 3].map(() => runTsx(["--input-type=module", "-e", code, server.url]));
      for (let waiting = 0; waiting < 3; await new Promise((r) => setTimeout(r, 20))) {
        const { rows } = await gate.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 42 AND NOT granted");
        waiting = rows[0]!.n;
      }
      await gate.query("SELECT pg_advisory_unlock(42)");
      const exits = await Promise.all(children);
      for (const exit of exits) expect(exit).toMatchObject({ code: 0, stderr: "" });
      const applied = exits.map((e) => Number(/^applied (\d+)$/m.exec(e.stdout)![1]));
      expect(applied.reduce((a, b) => a + b, 0)).toBe(PG_MIGRATIONS.length);
      const { rows } = await gate.query("SELECT version FROM schema_version");
      expect(rows).toEqual([{ version: PG_MIGRATIONS.length }]);
    } finally {
      await gate.end();
    }
  });

  it("refuses a database at a newer schema version, leaving it as it is", async () => {
    const server = await startPostgres();
    const db = openSyncPg(server.url);
    try {
      migratePg(db);
      db.query("UPDATE schema_version SET version = $1", [PG_MIGRATIONS.length + 1]);
      expect(() => migratePg(db)).toThrow(NEWER);
      expect(db.query("SELECT version FROM schema_version")).toEqual([{ version: PG_MIGRATIONS.length + 1 }]);
    } finally {
      await db.close();
    }
  });
});
