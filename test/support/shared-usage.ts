// Usage rows read straight from a shared database, SQLite file or PostgreSQL (DATABASE_URL),
// for suites that run the same replicas on either: what a test checks is in the table itself,
// not what the gateway's own stores say of it.
import pg from "pg";
import { openDb } from "../../src/storage/db.js";
import type { StoreTarget } from "../../src/storage/stores.js";

/** Rows of a SELECT on either engine (`$1`-style parameters; rewritten to `?` for SQLite). */
export async function selectRows<R>(target: StoreTarget, sql: string, params: unknown[] = []): Promise<R[]> {
  if (target.databaseUrl) {
    const client = new pg.Client({ connectionString: target.databaseUrl });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as R[];
    } finally {
      await client.end();
    }
  }
  const db = openDb(target.databasePath);
  try {
    return db.prepare(sql.replace(/\$\d+/g, "?")).all(...params) as R[];
  } finally {
    db.close();
  }
}

/** The key's usage rows counted by status: `{ ok: 12, rejected: 15 }`. */
export async function usageByStatus(target: StoreTarget, keyId: string): Promise<Record<string, number>> {
  const rows = await selectRows<{ status: string; n: number | string }>(target, "SELECT status, COUNT(*) AS n FROM usage WHERE key_id = $1 GROUP BY status", [keyId]);
  return Object.fromEntries(rows.map((x) => [x.status, Number(x.n)]));
}
