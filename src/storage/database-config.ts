import { positive, type Env } from "../config-values.js";
import { redactPgUrl } from "./pg/sync-pg.js";

/** DATABASE_URL and what goes with it; DATABASE_PATH stays Config.databasePath. */
export interface DatabaseConfig {
  /** postgres:// or postgresql://: keys, limits, budgets, usage and stored responses in PostgreSQL. */
  readonly url: string | undefined;
  /** DATABASE_TIMEOUT_MS: PostgreSQL's statement timeout and the longest wait for a connection. */
  readonly timeoutMs: number;
  /** DATABASE_PATH as set, when DATABASE_URL is set too and wins: the start-up log says it is ignored. */
  readonly ignoredPath: string | undefined;
}

export function databaseConfig(env: Env): DatabaseConfig {
  const url = env.DATABASE_URL || undefined;
  if (url !== undefined && !/^postgres(ql)?:\/\//i.test(url)) {
    throw new Error(`DATABASE_URL must be a postgres:// or postgresql:// URL, got ${redactPgUrl(url)} (for a SQLite file, set DATABASE_PATH)`);
  }
  return Object.freeze({
    url,
    timeoutMs: positive(env, "DATABASE_TIMEOUT_MS", 5_000),
    ignoredPath: url !== undefined && env.DATABASE_PATH ? env.DATABASE_PATH : undefined,
  });
}

/** The start-up log's line: which database this gateway uses. */
export function describeDatabaseChoice(db: DatabaseConfig): string | undefined {
  if (!db.url) return undefined;
  const ignored = db.ignoredPath ? `; DATABASE_URL wins over DATABASE_PATH (${db.ignoredPath} is not used)` : "";
  return `PostgreSQL at ${redactPgUrl(db.url)}${ignored}`;
}
