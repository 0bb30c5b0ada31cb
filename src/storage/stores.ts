import type { Logger } from "../log.js";
import { openDb, type Db } from "./db.js";
import { createKeyStore, type KeyStore } from "./keys.js";
import { createLimitStore, type LimitStore } from "./limits.js";
import { createChangeFeed } from "./pg/pg-changes.js";
import { createPgKeyStore } from "./pg/pg-keys.js";
import { createPgLimitStore } from "./pg/pg-limits.js";
import { migratePg } from "./pg/pg-migrations.js";
import { createPgResponseStore } from "./pg/pg-responses.js";
import { createPgUsageLookup } from "./pg/pg-usage-lookup.js";
import { createPgUsageStore } from "./pg/pg-usage.js";
import { createPgWriteCheck } from "./pg/pg-write-check.js";
import { openSyncPg, redactPgUrl } from "./pg/sync-pg.js";
import { createResponseStore, type ResponseStore } from "./responses.js";
import { createUsageLookup, type UsageLookup } from "./usage-lookup.js";
import { createUsageStore, type UsageStore, type UsageStoreOptions } from "./usage.js";
import { createWriteCheck, type WriteCheck } from "./write-check.js";

/** Where the stores live: DATABASE_URL (PostgreSQL) when set, else the SQLite file at DATABASE_PATH. */
export interface StoreTarget {
  readonly databasePath: string;
  readonly databaseUrl?: string | undefined;
  /** PostgreSQL's statement timeout (DATABASE_TIMEOUT_MS): no query, and no wait on the server, runs longer. */
  readonly databaseTimeoutMs?: number | undefined;
}

/** Everything the gateway, the --workers primary and the CLI keep in a database, on one engine. */
export interface Stores {
  readonly engine: "sqlite" | "postgres";
  /** The file's path, or the URL without its password: for logs and messages. */
  readonly where: string;
  readonly keys: KeyStore;
  readonly limits: LimitStore;
  readonly usage: UsageStore;
  readonly usageRows: UsageLookup;
  responses(ttlMs: number): ResponseStore;
  writeCheck(): WriteCheck;
  /** The SQLite connection; undefined on PostgreSQL. */
  readonly sqlite: Db | undefined;
  /** Commits the usage rows still queued (waiting for PostgreSQL's answer), then closes the connections. */
  close(): Promise<void>;
}

export interface StoresOptions {
  /** Follow other writers' changes of keys and limits (a serving gateway); the CLI does not. */
  readonly listen: boolean;
  readonly log: Pick<Logger, "warn" | "error">;
  readonly usage?: UsageStoreOptions;
}

/**
 * Opens the database and brings its schema up to date, on SQLite or on
 * PostgreSQL: the same numbered migrations, the same refusal of a newer
 * schema. On PostgreSQL the request path reads keys and limits from memory
 * (pg-changes.ts) and writes usage rows asynchronously (pg-usage.ts).
 */
export function openStores(target: StoreTarget, options: StoresOptions): Stores {
  const usageOptions = { log: options.log, ...options.usage };
  if (!target.databaseUrl) {
    const db = openDb(target.databasePath);
    const usage = createUsageStore(db, usageOptions);
    return {
      engine: "sqlite", where: target.databasePath, sqlite: db,
      keys: createKeyStore(db), limits: createLimitStore(db), usage, usageRows: createUsageLookup(db),
      responses: (ttlMs) => createResponseStore(db, { ttlMs }),
      writeCheck: () => createWriteCheck(db),
      async close() {
        usage.close();
        db.close();
      },
    };
  }
  const timeoutMs = target.databaseTimeoutMs ?? 5_000;
  const pg = openSyncPg(target.databaseUrl, { statementTimeoutMs: timeoutMs, connectTimeoutMs: Math.min(timeoutMs, 5_000) });
  let feed;
  try {
    migratePg(pg);
    feed = createChangeFeed(pg, { listen: options.listen, log: options.log });
  } catch (err) {
    void pg.close();
    throw err;
  }
  const usage = createPgUsageStore(pg, usageOptions);
  const changes = feed;
  return {
    engine: "postgres", where: redactPgUrl(target.databaseUrl), sqlite: undefined,
    keys: createPgKeyStore(pg, changes), limits: createPgLimitStore(pg, changes), usage, usageRows: createPgUsageLookup(pg),
    responses: (ttlMs) => createPgResponseStore(pg, { ttlMs }),
    writeCheck: () => createPgWriteCheck(pg),
    async close() {
      changes.close();
      // Bounded: with the server gone, the rows still held are logged as lost rather than waited for forever.
      await Promise.race([usage.close(), new Promise((r) => setTimeout(r, pg.answerWithinMs).unref())]);
      await pg.close();
    },
  };
}
