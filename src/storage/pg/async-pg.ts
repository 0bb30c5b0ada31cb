// The asynchronous half of the PostgreSQL client (sync-pg.ts), on this thread: a `pg` Pool of
// its own, so the request path's queries (usage batches, stored responses, the views' reloads)
// cost no hop to the bridge's worker thread and back (a structured clone of the parameters and a
// wake-up of each thread a query). Errors take the bridge's shape: a server's error keeps its
// SQLSTATE and fields; anything else names PostgreSQL and the URL without its password.
import pg from "pg";
import type { PgRow, PgStep } from "./sync-pg.js";

export interface AsyncPgOptions {
  readonly url: string;
  /** The URL without its password, for messages. */
  readonly redacted: string;
  readonly statementTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** When a silent server's query is given up (the pool then discards its connection). */
  readonly queryTimeoutMs: number;
  readonly applicationName: string;
}

export interface AsyncPg {
  query<R = PgRow>(sql: string, params?: readonly unknown[], name?: string): Promise<R[]>;
  transaction<R = PgRow>(steps: readonly PgStep[]): Promise<R[][]>;
  close(): Promise<void>;
}

export function createAsyncPg(o: AsyncPgOptions): AsyncPg {
  const pool = new pg.Pool({
    connectionString: o.url, connectionTimeoutMillis: o.connectTimeoutMs, application_name: o.applicationName, keepAlive: true,
    statement_timeout: o.statementTimeoutMs, query_timeout: o.queryTimeoutMs,
    // Idle connections do not keep the process alive (the CLI exits when done); a query under way does.
    allowExitOnIdle: true,
  });
  pool.on("error", () => {}); // an idle connection dropped; the pool has discarded it already
  // A server-reported error leaves the connection usable; anything else (a timeout, a dropped socket) may not.
  const broken = (err: unknown) => (err instanceof pg.DatabaseError ? undefined : err as Error);
  const shaped = (err: unknown): Error => {
    if (err instanceof pg.DatabaseError) return err;
    const message = err instanceof Error ? err.message : String(err);
    const code = (err as { code?: unknown } | null)?.code;
    const out = new Error(message === "Query read timeout"
      ? `PostgreSQL did not answer within ${o.queryTimeoutMs} ms (${o.redacted})`
      : `PostgreSQL at ${o.redacted}: ${message}`);
    return typeof code === "string" ? Object.assign(out, { code }) : out;
  };
  const params = (values: readonly unknown[] | undefined) => values?.map(function convert(v): unknown {
    if (typeof v === "bigint") return v.toString();
    return Array.isArray(v) ? v.map(convert) : v;
  });

  return {
    async query<R>(sql: string, values?: readonly unknown[], name?: string): Promise<R[]> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw shaped(err);
      }
      try {
        const result = await (name ? client.query({ name, text: sql, values: params(values) }) : client.query(sql, params(values)));
        client.release();
        return result.rows as R[];
      } catch (err) {
        client.release(broken(err));
        throw shaped(err);
      }
    },
    async transaction<R>(steps: readonly PgStep[]): Promise<R[][]> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw shaped(err);
      }
      let bad: Error | undefined;
      try {
        await client.query("BEGIN");
        const out: R[][] = [];
        for (const step of steps) out.push((await client.query(step.sql, params(step.params))).rows as R[]);
        await client.query("COMMIT");
        return out;
      } catch (err) {
        bad = broken(err);
        if (!bad) await client.query("ROLLBACK").catch((e: unknown) => (bad = e as Error));
        throw shaped(err);
      } finally {
        client.release(bad);
      }
    },
    close: () => pool.end(),
  };
}
