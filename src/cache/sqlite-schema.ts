import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

export type CacheDb = Database.Database;

/** "GzCa": marks the file as Gatewayz's cache, so it is never mistaken for (or written over) the usage database. */
const APPLICATION_ID = 0x477a4361;
const SCHEMA_VERSION = 1;

/**
 * A plain rowid table, not WITHOUT ROWID: values are KiBs, and SQLite keeps
 * large rows out of a rowid table's b-tree better. `bytes` is the key's and
 * the value's length, what the size limit counts. The (used_at, bytes) index
 * serves LRU eviction in order and is a covering index for the SUM(bytes)
 * and COUNT(*) that resynchronise the totals: a scan of ~30 bytes per entry,
 * not of every value.
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS cache_entries (
  key TEXT PRIMARY KEY,
  value BLOB NOT NULL,
  bytes INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_entries_expires_at ON cache_entries (expires_at);
CREATE INDEX IF NOT EXISTS cache_entries_used_at ON cache_entries (used_at, bytes);
`;

/**
 * Opens (creating if needed) the cache's own SQLite file: WAL, so the
 * workers of a host read while one writes; synchronous=NORMAL, so a commit
 * does not wait on fsync (a power loss may drop the last entries of a cache,
 * which costs only upstream calls). A file of another application, or of a
 * newer cache schema, is refused rather than guessed at.
 */
export function openCacheDb(path: string, busyTimeoutMs: number): CacheDb {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    migrate(db, path);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

function migrate(db: CacheDb, path: string): void {
  const appId = db.pragma("application_id", { simple: true }) as number;
  const version = db.pragma("user_version", { simple: true }) as number;
  if (appId !== APPLICATION_ID && (appId !== 0 || version !== 0)) {
    throw new Error(`${path} is not a Gatewayz cache file (application_id ${appId}, user_version ${version}); give the cache its own file`);
  }
  if (version > SCHEMA_VERSION) {
    throw new Error(`the cache file is at schema version ${version}, newer than this Gatewayz understands (${SCHEMA_VERSION}); delete it or use another path`);
  }
  if (version === SCHEMA_VERSION) return;
  // BEGIN IMMEDIATE: two workers starting at once create the schema one after the other.
  db.transaction(() => {
    db.exec(SCHEMA);
    db.pragma(`application_id = ${APPLICATION_ID}`);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
