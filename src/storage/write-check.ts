import type { Db } from "./db.js";
import { describeStorageError } from "./sqlite-errors.js";

/** Whether the database takes writes now: what readiness asks before it says "ready". */
export interface WriteCheck {
  /** The latest result; a new write when it is older than `maxAgeMs`. */
  writable(): boolean;
  /** Why the latest write failed ("database or disk is full (SQLITE_FULL)"); undefined when it succeeded. */
  readonly lastError: string | undefined;
}

export interface WriteCheckOptions {
  /** How long a result stands, so a storm of probes costs one write per interval. */
  maxAgeMs?: number;
  now?: () => number;
}

/**
 * A real write, committed: the time of the check, into the one row of the
 * `health` table (migration 5). It fails on a read-only file or connection
 * (SQLITE_READONLY), an I/O error, a lock held past busy_timeout, or a full
 * disk when the write-ahead log must grow. A row rewritten in place needs no
 * new page, so a full database file may still take it: the usage store's
 * refused rows tell that (server/readiness.ts asks both).
 */
export function createWriteCheck(db: Db, { maxAgeMs = 1_000, now = Date.now }: WriteCheckOptions = {}): WriteCheck {
  const write = db.prepare(`INSERT INTO health (id, checked_at) VALUES (1, ?)
    ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at`);
  let checkedAt = -Infinity;
  let lastError: string | undefined;
  return {
    writable() {
      const at = now();
      if (at - checkedAt < maxAgeMs) return lastError === undefined;
      checkedAt = at;
      try {
        if (!db.open) throw new Error("the database is closed");
        write.run(at);
        lastError = undefined;
      } catch (err) {
        lastError = describeStorageError(err);
      }
      return lastError === undefined;
    },
    get lastError() {
      return lastError;
    },
  };
}
