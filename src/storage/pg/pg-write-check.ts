import type { WriteCheck, WriteCheckOptions } from "../write-check.js";
import { describePgError } from "./pg-errors.js";
import type { SyncPg } from "./sync-pg.js";

/**
 * The readiness write check on PostgreSQL: the same one-row write as on
 * SQLite (write-check.ts), sent without waiting for it, so a probe never
 * blocks the event loop on a slow server. writable() answers with the
 * latest result and starts a new write when that is older than maxAgeMs;
 * while a write is outstanding past maxAgeMs the server counts as not
 * writable (it is slow or gone).
 */
export function createPgWriteCheck(pg: SyncPg, { maxAgeMs = 1_000, now = Date.now }: WriteCheckOptions = {}): WriteCheck {
  let checkedAt = -Infinity;
  let sentAt: number | undefined;
  let lastError: string | undefined;
  const check = () => {
    const at = now();
    sentAt = at;
    pg.queryAsync("UPDATE health SET checked_at = $1 WHERE id = 1", [at]).then(() => {
      lastError = undefined;
    }, (err: unknown) => {
      lastError = describePgError(err);
    }).finally(() => {
      checkedAt = at;
      sentAt = undefined;
    });
  };
  return {
    writable() {
      const at = now();
      if (sentAt !== undefined) {
        if (at - sentAt > maxAgeMs) lastError = `PostgreSQL has not confirmed a write for ${at - sentAt} ms`;
      } else if (at - checkedAt >= maxAgeMs) {
        check();
      }
      return lastError === undefined;
    },
    get lastError() {
      return lastError;
    },
  };
}
