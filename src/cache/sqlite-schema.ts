import Database from "better-sqlite3";
import { mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname } from "node:path";

export type CacheDb = Database.Database;

/** "GzCa": marks the file as Gatewayz's cache, so it is never mistaken for (or written over) the usage database. */
const APPLICATION_ID = 0x477a4361;
/** 2: append-only rows found through each worker's in-memory index (1 had a TEXT primary key and LRU touches). */
const SCHEMA_VERSION = 2;

/**
 * Rows are only ever appended (AUTOINCREMENT: an id is never reused), so a
 * write extends the right edge of the table's b-tree and of the expiry
 * index instead of dirtying a random page of a key index: a b-tree keyed by
 * a hash dirties about one 4 KiB page per entry, which the WAL then writes
 * twice. Lookups need no index on disk: each worker keeps hash -> id in
 * memory (sqlite-store.ts) and reads new ids as they come. The id is the
 * entry's age. `hash` is the key's 30-bit hash (keyHash), `bytes` the
 * key's and the value's length, what the size limit counts; the expiry
 * index covers hash and bytes so that loading the in-memory index and
 * summing the totals scan ~25 bytes per entry, not the values.
 */
const SCHEMA = `
CREATE TABLE cache_entries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  hash INTEGER NOT NULL,
  key TEXT NOT NULL,
  value BLOB NOT NULL,
  bytes INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX cache_entries_expires_at ON cache_entries (expires_at, hash, bytes);
`;

/**
 * Opens (creating if needed) the cache's own SQLite file: WAL, so the
 * workers of a host read while one writes; synchronous=OFF, so no commit
 * or checkpoint waits on fsync, which cost about as much again as the
 * write itself. A crashed process loses nothing that way (the OS has the
 * pages); a power loss can damage the file, and a damaged file is moved
 * aside and replaced by an empty one at the next start: what is lost is a
 * cache's worth of upstream calls. A file of another application, or of a
 * newer cache schema, is refused rather than guessed at.
 */
export function openCacheDb(path: string, busyTimeoutMs: number, warn: (message: string) => void): CacheDb {
  try {
    return openOnce(path, busyTimeoutMs);
  } catch (err) {
    if (path === ":memory:" || (err as { code?: string }).code !== "SQLITE_CORRUPT") throw err;
    const aside = `${path}.corrupt-${Date.now()}`;
    renameSync(path, aside);
    for (const suffix of ["-wal", "-shm"]) rmSync(path + suffix, { force: true });
    warn(`the cache file ${path} was damaged (${(err as Error).message}); moved to ${aside}, starting empty`);
    return openOnce(path, busyTimeoutMs);
  }
}

function openOnce(path: string, busyTimeoutMs: number): CacheDb {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = OFF");
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
    // Re-read under the lock: the other worker may have just done it.
    if ((db.pragma("user_version", { simple: true }) as number) === SCHEMA_VERSION) return;
    // An older schema's entries are only a cache: they are dropped, not converted.
    db.exec("DROP TABLE IF EXISTS cache_entries");
    db.exec(SCHEMA);
    db.pragma(`application_id = ${APPLICATION_ID}`);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

/** What a delete gives back: enough to forget the row in the index and in the totals. */
export type CacheRow = { id: number; hash: number; bytes: number };

/** The statements the store runs, prepared once per connection. */
export function cacheStatements(db: CacheDb) {
  return {
    byId: db.prepare<[number], { key: unknown; value: unknown; expiresAt: unknown }>("SELECT key, value, expires_at AS expiresAt FROM cache_entries WHERE id = ?"),
    since: db.prepare<[number], { id: number; hash: number }>("SELECT id, hash FROM cache_entries WHERE id > ? ORDER BY id"),
    // The covering expiry index holds every row's hash and id: ~25 bytes an entry to read, not the values.
    all: db.prepare<[], { id: number; hash: number }>("SELECT id, hash FROM cache_entries INDEXED BY cache_entries_expires_at"),
    insert: db.prepare<[number, string, Buffer, number, number]>("INSERT INTO cache_entries (hash, key, value, bytes, expires_at) VALUES (?, ?, ?, ?, ?)"),
    // By id and key: a stale id, or another key under the same hash, deletes nothing.
    deleteRow: db.prepare<[number, string], CacheRow>("DELETE FROM cache_entries WHERE id = ? AND key = ? RETURNING id, hash, bytes"),
    // Only if still expired: another worker may have stored a fresh entry under the key since.
    deleteRowIfExpired: db.prepare<[number, string, number], CacheRow>("DELETE FROM cache_entries WHERE id = ? AND key = ? AND expires_at <= ? RETURNING id, hash, bytes"),
    deleteExpired: db.prepare<[number, number], CacheRow>("DELETE FROM cache_entries WHERE id IN (SELECT id FROM cache_entries WHERE expires_at <= ? LIMIT ?) RETURNING id, hash, bytes"),
    evictOldest: db.prepare<[], CacheRow>("DELETE FROM cache_entries WHERE id = (SELECT MIN(id) FROM cache_entries) RETURNING id, hash, bytes"),
    dataVersion: db.prepare<[], number>("PRAGMA data_version").pluck(),
    totals: db.prepare<[], { entries: number; bytes: number }>("SELECT COUNT(*) AS entries, COALESCE(SUM(bytes), 0) AS bytes FROM cache_entries"),
  };
}
