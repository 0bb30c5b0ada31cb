import type { SyncPg } from "./sync-pg.js";

/**
 * The PostgreSQL form of src/storage/migrations.ts, number for number: entry
 * N here makes the schema that entry N there makes, so a database can move
 * from one engine to the other at any version. Append only, in step with it.
 *
 * Types: SQLite's INTEGER is 64-bit, so columns that can pass 2^31 (ms
 * timestamps, pico-USD amounts, limits, which are unbounded) are BIGINT and
 * come back from the bridge as decimal strings; token counts (capped at
 * MAX_REPORTED_TOKENS) and 0/1 flags stay INTEGER, read as numbers.
 */
export const PG_MIGRATIONS: readonly string[] = [
  // 1: users, their API keys (hashes only), and one usage row per request.
  `
  CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
  );
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('client', 'admin')),
    hash BYTEA NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    last4 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
  );
  CREATE INDEX api_keys_user ON api_keys(user_id);
  CREATE TABLE usage (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts BIGINT NOT NULL,
    key_id TEXT,
    user_id TEXT,
    protocol TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    model TEXT,
    upstream_model TEXT,
    provider TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    cost_pico BIGINT NOT NULL DEFAULT 0,
    latency_ms DOUBLE PRECISION,
    ttft_ms DOUBLE PRECISION,
    status TEXT NOT NULL,
    error_kind TEXT
  );
  CREATE INDEX usage_key_ts ON usage(key_id, ts);
  CREATE INDEX usage_user_ts ON usage(user_id, ts);
  `,
  // 2: limits and budgets as data, key rotation, and estimated-usage and
  // failover-attempt columns on usage rows.
  `
  CREATE TABLE rate_limits (
    scope TEXT NOT NULL CHECK (scope IN ('system', 'user', 'key')),
    subject TEXT NOT NULL,
    rpm BIGINT,
    tpm BIGINT,
    rpd BIGINT,
    concurrent BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (scope, subject)
  );
  CREATE TABLE budgets (
    scope TEXT NOT NULL CHECK (scope IN ('user', 'key')),
    subject TEXT NOT NULL,
    limit_pico BIGINT NOT NULL,
    period TEXT NOT NULL CHECK (period IN ('total', 'month')),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (scope, subject)
  );
  ALTER TABLE api_keys ADD COLUMN replaced_by TEXT;
  ALTER TABLE usage ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE usage ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
  `,
  // 3: the flag on usage rows whose reported token counts were clamped.
  `
  ALTER TABLE usage ADD COLUMN usage_clamped INTEGER NOT NULL DEFAULT 0;
  `,
  // 4: the request id of each row.
  `
  ALTER TABLE usage ADD COLUMN request_id TEXT;
  CREATE INDEX usage_request_id ON usage(request_id);
  `,
  // 5: the readiness check's one row.
  `
  CREATE TABLE health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at BIGINT NOT NULL
  );
  INSERT INTO health (id, checked_at) VALUES (1, 0);
  `,
  // 6: what each request asked for.
  `
  ALTER TABLE usage ADD COLUMN operation TEXT NOT NULL DEFAULT 'chat';
  `,
  // 7: stored Responses API responses.
  `
  CREATE TABLE responses (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    previous_id TEXT,
    body TEXT NOT NULL,
    items TEXT NOT NULL
  );
  CREATE INDEX responses_expires ON responses(expires_at);
  `,
  // 8: the response cache's saved cost, and a key's own cache setting.
  `
  ALTER TABLE usage ADD COLUMN saved_pico BIGINT NOT NULL DEFAULT 0;
  ALTER TABLE api_keys ADD COLUMN cache TEXT CHECK (cache IN ('off', 'on'));
  `,
  // 9: a usage row's own id: a batch retried after its answer was lost is not written twice.
  `
  ALTER TABLE usage ADD COLUMN row_uid UUID;
  CREATE UNIQUE INDEX usage_row_uid ON usage(row_uid) WHERE row_uid IS NOT NULL;
  `,
  // 10: a key's expiry (ms since the epoch), NULL for a key that never expires.
  `
  ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
  `,
  // 11: the models a key may call (a JSON array), NULL for every model.
  `
  ALTER TABLE api_keys ADD COLUMN models TEXT;
  `,
];

/** The advisory lock every replica's migration takes: "gatewayz" as 8 ASCII bytes. */
const MIGRATION_LOCK = "7449363237790906746";
/** The SQLSTATE the guard raises when another replica moved the version first. */
const VERSION_MOVED = "GZ001";

const LOCK = { sql: `SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})` };
// Under the lock: two replicas' CREATE TABLE IF NOT EXISTS at once can still collide.
const SETUP = `
  CREATE TABLE IF NOT EXISTS schema_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
  );
  INSERT INTO schema_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
`;

/** Fails the transaction unless the version (read under the lock) is still `v`. */
const guard = (v: number) => `DO $$ BEGIN
  IF (SELECT version FROM schema_version WHERE id = 1) <> ${v} THEN
    RAISE EXCEPTION 'schema_version moved past ${v}' USING ERRCODE = '${VERSION_MOVED}';
  END IF;
END $$`;

/**
 * Brings the database's schema up to PG_MIGRATIONS, one transaction per
 * migration under an advisory lock, so that replicas starting together apply
 * each migration exactly once: one whose version was moved meanwhile by
 * another replica rolls back and reads it again. Returns how many this call
 * applied. A database at a newer version is refused (the bridge is left open).
 * Each migration must finish within the bridge's statement timeout.
 */
export function migratePg(pg: SyncPg): number {
  pg.transaction([LOCK, { sql: SETUP }]);
  let applied = 0;
  for (;;) {
    const version = pg.query<{ version: number }>("SELECT version FROM schema_version WHERE id = 1")[0]!.version;
    if (version > PG_MIGRATIONS.length) {
      throw new Error(`the database is at schema version ${version}, newer than this Gatewayz understands (${PG_MIGRATIONS.length}); upgrade Gatewayz or use another DATABASE_URL`);
    }
    if (version === PG_MIGRATIONS.length) return applied;
    try {
      pg.transaction([
        LOCK,
        { sql: guard(version) },
        { sql: PG_MIGRATIONS[version]! },
        { sql: "UPDATE schema_version SET version = $1 WHERE id = 1", params: [version + 1] },
      ]);
      applied++;
    } catch (err) {
      if ((err as { code?: unknown }).code !== VERSION_MOVED) throw err;
    }
  }
}
