import type { Db } from "../../src/storage/db.js";

const COLUMNS = `ts, key_id, user_id, protocol, requested_model, model, upstream_model, provider, prompt_tokens,
  completion_tokens, cached_tokens, reasoning_tokens, cost_pico, latency_ms, ttft_ms, status, error_kind, estimated, attempts`;

/**
 * A full disk, for real: the file may not grow past its current size (SQLite's
 * `max_page_count`, a setting of this connection), and the room left in the
 * usage table's pages is filled with copies of its newest row (status
 * 'filler', no cost), until SQLite answers SQLITE_FULL. From then on a usage row like
 * those fails with a genuine SQLITE_FULL, as when the disk is full, while
 * reads go on working. Needs one usage row to copy; returns the rows it added.
 */
export function fillDisk(db: Db): number {
  db.pragma(`max_page_count = ${db.pragma("page_count", { simple: true }) as number}`);
  // No cost (spending stays the test's own), and no bigger than the row copied: rows like it cannot fit after it.
  const filler = COLUMNS.replace("status", "'filler'").replace("cost_pico", "0");
  const copy = db.prepare(`INSERT INTO usage (${COLUMNS}) SELECT ${filler} FROM usage ORDER BY id DESC LIMIT 1`);
  for (let added = 0; ; added++) {
    try {
      if (copy.run().changes !== 1) throw new Error("fillDisk: the usage table has no row to copy");
    } catch (err) {
      if ((err as { code?: string }).code === "SQLITE_FULL") return added;
      throw err;
    }
  }
}

/** Room again: the file may grow as it likes. */
export function freeDisk(db: Db): void {
  db.pragma("max_page_count = 1073741823");
}

/** Rows in the usage table that are not fillDisk's. */
export function usageRows(db: Db): number {
  return (db.prepare("SELECT COUNT(*) AS n FROM usage WHERE status != 'filler'").get() as { n: number }).n;
}
