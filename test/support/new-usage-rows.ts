import type { Db } from "../../src/storage/db.js";

/**
 * The usage rows written since the last mark(), so each test of a suite
 * sharing one gateway sees only its own: `columns` as SQL ("*", or a list).
 */
export function newUsageRows(db: () => Db, columns = "*") {
  let after = 0;
  return {
    mark(): void {
      after = (db().prepare("SELECT COALESCE(MAX(id), 0) AS m FROM usage").get() as { m: number }).m;
    },
    rows<T = Record<string, unknown>>(): T[] {
      return db().prepare(`SELECT ${columns} FROM usage WHERE id > ? ORDER BY id`).all(after) as T[];
    },
  };
}
