/**
 * Each worker's map of the embedded cache file (sqlite-store.ts): key hash ->
 * the id of the newest row under it. Rows are only appended, so following
 * other workers is reading the ids above the highest one seen, when the
 * file's data_version says another connection has committed. An id may be
 * stale (its row deleted by another worker): the store reads no row, drops
 * it here and looks again.
 */

/**
 * The key's 30-bit hash (FNV-1a): what a row is found by. 30 bits keep it
 * a small integer in V8, so the index costs ~40 bytes an entry; two keys
 * that share a hash are told apart by the row's key, and the older is then
 * simply not found (a miss), never answered for the other.
 */
export function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 2;
}

export interface IndexedRow {
  readonly id: number;
  readonly hash: number;
}

export class RowIndex {
  private readonly ids = new Map<number, number>();
  /** The highest id read in, and the data_version it was read at. */
  private seenId = 0;
  private seenVersion = -1;

  get(hash: number): number | undefined {
    return this.ids.get(hash);
  }

  /** A row this worker wrote, or read from the file: the newest id under a hash wins. */
  learn(row: IndexedRow): void {
    if (!((this.ids.get(row.hash) ?? 0) > row.id)) this.ids.set(row.hash, row.id);
    if (row.id > this.seenId) this.seenId = row.id;
  }

  /** A row that is gone: forgotten only if the index still points at it (not at a newer one). */
  forget(row: IndexedRow): void {
    if (this.ids.get(row.hash) === row.id) this.ids.delete(row.hash);
  }

  /**
   * Reads in the rows appended since the last look (`since(afterId)`), unless
   * the file is at the version already read. The version is taken before the
   * rows: a commit in between is read now and again next time, which is harmless.
   */
  catchUp(version: number, since: (afterId: number) => Iterable<IndexedRow>): void {
    if (version === this.seenVersion) return;
    this.seenVersion = version;
    for (const row of since(this.seenId)) this.learn(row);
  }
}
