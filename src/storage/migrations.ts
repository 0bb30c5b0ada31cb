/**
 * Numbered schema migrations; the database's `user_version` is the number of
 * migrations applied. Append only: a migration that has shipped never changes.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: users, their API keys (hashes only), and one usage row per request.
  `
  CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('client', 'admin')),
    hash BLOB NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    last4 TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
  );
  CREATE INDEX api_keys_user ON api_keys(user_id);
  CREATE TABLE usage (
    id INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
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
    cost_pico INTEGER NOT NULL DEFAULT 0,
    latency_ms REAL,
    ttft_ms REAL,
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
    rpm INTEGER,
    tpm INTEGER,
    rpd INTEGER,
    concurrent INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (scope, subject)
  );
  CREATE TABLE budgets (
    scope TEXT NOT NULL CHECK (scope IN ('user', 'key')),
    subject TEXT NOT NULL,
    limit_pico INTEGER NOT NULL,
    period TEXT NOT NULL CHECK (period IN ('total', 'month')),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (scope, subject)
  );
  ALTER TABLE api_keys ADD COLUMN replaced_by TEXT;
  ALTER TABLE usage ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE usage ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
  `,
  // 3: a flag on usage rows whose upstream-reported token counts were out of
  // range and clamped (src/core/usage.ts), so they can be found and checked.
  `
  ALTER TABLE usage ADD COLUMN usage_clamped INTEGER NOT NULL DEFAULT 0;
  `,
  // 4: the request id of each row (the client's x-request-id or one the gateway
  // made), so one request can be found from a log line, a trace or a client report.
  `
  ALTER TABLE usage ADD COLUMN request_id TEXT;
  CREATE INDEX usage_request_id ON usage(request_id);
  `,
  // 5: one row the readiness check writes (src/storage/write-check.ts): when
  // it last found the database writable.
  `
  CREATE TABLE health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
  );
  INSERT INTO health (id, checked_at) VALUES (1, 0);
  `,
  // 6: what each request asked for: a chat completion, a Responses API call
  // or embeddings. Rows written before it were all chats.
  `
  ALTER TABLE usage ADD COLUMN operation TEXT NOT NULL DEFAULT 'chat';
  `,
  // 7: stored Responses API responses (src/storage/responses.ts), one row
  // each: the response object as sent (its output items with it), and the
  // rest of its conversation as one JSON array (the items it continued from,
  // then its input), so previous_response_id works on every provider in one
  // read. Owned by a user; expires_at is when a sweep
  // deletes it (RESPONSES_TTL_DAYS).
  `
  CREATE TABLE responses (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    previous_id TEXT,
    body TEXT NOT NULL,
    items TEXT NOT NULL
  );
  CREATE INDEX responses_expires ON responses(expires_at);
  `,
  // 8: the response cache (src/cache/). A request answered from the cache
  // has status 'cached', the tokens of the answer it replayed, cost 0, and
  // in saved_pico what that answer cost when it was made. api_keys.cache is
  // a key's own setting ('off'), NULL for the gateway's (CACHE).
  `
  ALTER TABLE usage ADD COLUMN saved_pico INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE api_keys ADD COLUMN cache TEXT CHECK (cache IN ('off', 'on'));
  `,
  // 9: a usage row's own id, for writers that may send a row again after an
  // answer was lost (PostgreSQL's, storage/pg/pg-usage.ts: a batch timed out
  // may still have committed). SQLite's writer never does, and leaves it NULL,
  // which the partial index does not hold.
  `
  ALTER TABLE usage ADD COLUMN row_uid TEXT;
  CREATE UNIQUE INDEX usage_row_uid ON usage(row_uid) WHERE row_uid IS NOT NULL;
  `,
  // 10: a key's expiry (ms since the epoch), NULL for a key that never expires.
  `
  ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
  `,
  // 11: the models a key may call, a JSON array of catalog ids and prefixes
  // ending in * (core/model-scope.ts); NULL for every model.
  `
  ALTER TABLE api_keys ADD COLUMN models TEXT;
  `,
];
