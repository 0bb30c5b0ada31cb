import { mintKey, modelsColumn, randomId, SELECT_KEYS, toRecord, type CreatedKey, type KeyRecordWithHash, type KeyRow, type KeyStore, type NewKey } from "../keys.js";
import { NOTIFY_CHANGE, type ChangeFeed } from "./pg-changes.js";
import type { SyncPg } from "./sync-pg.js";

/** KeyRow as PostgreSQL gives it: BIGINT timestamps as decimal strings. */
type PgKeyRow = Omit<KeyRow, "created_at" | "revoked_at" | "expires_at"> & { created_at: string; revoked_at: string | null; expires_at: string | null };

const fromPg = (r: PgKeyRow): KeyRow => ({
  ...r, created_at: Number(r.created_at), revoked_at: r.revoked_at === null ? null : Number(r.revoked_at),
  expires_at: r.expires_at === null ? null : Number(r.expires_at),
});
const ALL = `${SELECT_KEYS} ORDER BY k.created_at, k.id COLLATE "C"`;

/**
 * Keys on PostgreSQL (DATABASE_URL). The request path finds a key by its hash
 * in an in-memory copy of every key (pg-changes.ts): no query per request,
 * none for an unknown key, and a key created, rotated or revoked on any
 * replica or by the CLI reaches it within milliseconds of the commit, by
 * NOTIFY. Admin reads and writes go to the server.
 */
export function createPgKeyStore(pg: SyncPg, feed: ChangeFeed, now: () => number = Date.now): KeyStore {
  const byHash = (rows: PgKeyRow[]) => {
    const out = new Map<string, KeyRecordWithHash>();
    for (const r of rows) out.set(r.hash.toString("latin1"), { ...toRecord(fromPg(r)), hash: r.hash });
    return out;
  };
  const view = feed.view("keys", {
    sync: () => byHash(pg.query<PgKeyRow>(ALL)),
    async: async () => byHash(await pg.queryAsync<PgKeyRow>(ALL)),
  });
  const byId = (id: string) => {
    const row = pg.query<PgKeyRow>(`${SELECT_KEYS} WHERE k.id = $1`, [id])[0];
    return row && toRecord(fromPg(row));
  };
  /** Runs the steps with the change notification in the same transaction, then takes the change in here at once. */
  const write = <R>(steps: Array<{ sql: string; params?: unknown[] }>): R[][] => {
    try {
      return pg.transaction<R>([...steps, NOTIFY_CHANGE]);
    } finally {
      view.reload();
    }
  };

  const create = (input: NewKey): CreatedKey => {
    const user = input.user.trim();
    if (!user) throw new Error("a key needs a user");
    const kind = input.kind ?? "client";
    const minted = mintKey(kind);
    const id = randomId("key");
    const at = now();
    write([
      { sql: "INSERT INTO users (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING", params: [randomId("usr"), user, at] },
      {
        sql: `INSERT INTO api_keys (id, user_id, name, kind, hash, prefix, last4, created_at, cache, expires_at, models)
          SELECT $1, u.id, $2, $3, $4, $5, $6, $7, $8, $10, $11 FROM users u WHERE u.name = $9`,
        params: [id, input.name, kind, minted.hash, minted.prefix, minted.last4, at, input.cache ?? null, user, input.expiresAt ?? null, modelsColumn(input.models)],
      },
    ]);
    return { key: minted.key, record: byId(id)! };
  };

  const changed = (sql: string, params: unknown[]) => write<{ id: string }>([{ sql, params }])[0]!.length === 1;

  return {
    create,
    findByHash: (hash) => view.get().get(hash.toString("latin1")),
    get: byId,
    list(filter = {}) {
      return pg.query<PgKeyRow>(ALL).map((r) => toRecord(fromPg(r)))
        .filter((k) => (filter.includeRevoked || k.revokedAt === null) && (!filter.user || k.userName === filter.user));
    },
    revoke: (id) => changed("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING id", [now(), id]),
    setCache: (id, cache) => changed("UPDATE api_keys SET cache = $1 WHERE id = $2 RETURNING id", [cache, id]),
    setExpiry: (id, expiresAt) => changed("UPDATE api_keys SET expires_at = $1 WHERE id = $2 RETURNING id", [expiresAt, id]),
    setModels: (id, models) => changed("UPDATE api_keys SET models = $1 WHERE id = $2 RETURNING id", [modelsColumn(models), id]),
    rotate(id) {
      const old = byId(id);
      if (!old || old.revokedAt !== null) throw new Error(`no active key ${id}`);
      const minted = mintKey(old.kind);
      const freshId = randomId("key");
      const at = now();
      // One statement: the old key is revoked only if it still is active, and the new one made only then.
      const made = write<{ id: string }>([{
        sql: `WITH old AS (
            UPDATE api_keys SET revoked_at = $1, replaced_by = $2 WHERE id = $3 AND revoked_at IS NULL AND kind = $4
            RETURNING user_id, name, kind, cache, expires_at, models)
          INSERT INTO api_keys (id, user_id, name, kind, hash, prefix, last4, created_at, cache, expires_at, models)
          SELECT $2, user_id, name, kind, $5, $6, $7, $1, cache, expires_at, models FROM old RETURNING id`,
        params: [at, freshId, id, old.kind, minted.hash, minted.prefix, minted.last4],
      }])[0]!;
      if (made.length !== 1) throw new Error(`no active key ${id}`);
      return { key: minted.key, record: byId(freshId)! };
    },
    userId: (name) => pg.query<{ id: string }>("SELECT id FROM users WHERE name = $1", [name])[0]?.id,
    countAdminKeys: () => Number(pg.query<{ n: string }>("SELECT COUNT(*) AS n FROM api_keys WHERE kind = 'admin' AND revoked_at IS NULL")[0]!.n),
  };
}
