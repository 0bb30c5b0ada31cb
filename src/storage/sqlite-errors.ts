import Database from "better-sqlite3";
import { GatewayError } from "../errors.js";
import { describePgError, isPgUnavailable } from "./pg/pg-errors.js";

/**
 * Result codes (extended ones included, e.g. SQLITE_IOERR_WRITE) that mean
 * the database refuses writes for now, not that this write is wrong: a full
 * disk, an I/O error, a read-only file, another connection holding the lock.
 * The same write may succeed later, so usage rows refused this way are held
 * and retried (storage/usage.ts) instead of being dropped.
 */
const REFUSALS = ["SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_PROTOCOL", "SQLITE_NOMEM"];

/** The SQLite result code of a better-sqlite3 error ("SQLITE_FULL"), if it is one. */
export function sqliteCode(err: unknown): string | undefined {
  return err instanceof Database.SqliteError ? err.code : undefined;
}

/** Whether the database refused a write for a reason that may pass (see REFUSALS). */
export function isWriteRefusal(err: unknown): boolean {
  const code = sqliteCode(err);
  return code !== undefined && REFUSALS.some((r) => code === r || code.startsWith(`${r}_`));
}

/** "database or disk is full (SQLITE_FULL)": SQLite's own words and its code, which hold no paths or data. */
export function describeStorageError(err: unknown): string {
  const code = sqliteCode(err);
  if (code === undefined) return describePgError(err);
  const message = err instanceof Error ? err.message : String(err);
  return code ? `${message} (${code})` : message;
}

/**
 * A storage failure as the error vocabulary's `storage_unavailable`, so an
 * admin call or the CLI says what failed instead of "internal error".
 * The same for PostgreSQL (DATABASE_URL) down, slow or refusing writes.
 * Undefined for anything else (a bug stays `internal`).
 */
export function storageErrorOf(err: unknown): GatewayError | undefined {
  if (isPgUnavailable(err)) return new GatewayError("storage_unavailable", `PostgreSQL is unavailable: ${describePgError(err)}`, { cause: err });
  if (!isWriteRefusal(err)) return undefined;
  const code = sqliteCode(err)!;
  const what = /^SQLITE_(BUSY|LOCKED)/.test(code) ? "the database is locked by another connection"
    : code.startsWith("SQLITE_CANTOPEN") ? "the database cannot be opened"
    : "the database refused the write";
  return new GatewayError("storage_unavailable", `${what}: ${describeStorageError(err)}`, { cause: err });
}
