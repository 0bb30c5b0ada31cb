// The real PostgreSQL the replica tests (issue 13) run on: started on a free
// port from a fresh cluster, reached with the `pg` client, isolated from
// another started beside it, and gone after stop.
import pg from "pg";
import { describe, expect, it } from "vitest";
import { postgresBinDir, startPostgres } from "./postgres.js";

describe("the test PostgreSQL", { timeout: 60_000 }, () => {
  it("starts a fresh cluster on a free port that the pg client reaches, and removes it on stop", async () => {
    const server = await startPostgres();
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      await client.query("CREATE TABLE t (id serial PRIMARY KEY, note text NOT NULL)");
      await client.query("INSERT INTO t (note) VALUES ($1), ($2)", ["a", "b"]);
      const { rows } = await client.query<{ n: string }>("SELECT count(*) AS n FROM t");
      expect(rows[0]!.n).toBe("2");
    } finally {
      await client.end();
    }
    await server.stop();
    const late = new pg.Client({ connectionString: server.url, connectionTimeoutMillis: 2000 });
    await expect(late.connect()).rejects.toThrow();
  });

  it("gives each test its own server: two at once share nothing", async () => {
    const [a, b] = await Promise.all([startPostgres(), startPostgres()]);
    expect(a.port).not.toBe(b.port);
    const ca = new pg.Client({ connectionString: a.url });
    const cb = new pg.Client({ connectionString: b.url });
    await Promise.all([ca.connect(), cb.connect()]);
    try {
      await ca.query("CREATE TABLE only_in_a (x int)");
      await expect(cb.query("SELECT * FROM only_in_a")).rejects.toThrow(/does not exist/);
    } finally {
      await Promise.all([ca.end(), cb.end()]);
    }
  });

  it("names what to install or set when PostgreSQL is missing", () => {
    expect(() => postgresBinDir({ PG_BIN_DIR: "/nonexistent" })).toThrow("PG_BIN_DIR=/nonexistent holds no initdb and pg_ctl");
  });
});
