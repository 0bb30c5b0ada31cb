import type { Db } from "./db.js";

/**
 * A token that changes whenever the database may hold something new: another
 * connection committed (SQLite's `PRAGMA data_version`), or this process wrote
 * through one of its stores (data_version does not move for a connection's own
 * commits, so the stores count those themselves). Caches keyed on it (keys,
 * limits, budgets) are exact: the next request after any change sees it.
 *
 * The pragma is asked at most once per event-loop turn. Every request whose
 * bytes arrived after another process committed is handled in a later turn,
 * so it still sees the change; requests in the same turn were concurrent with
 * the commit anyway.
 */
export interface DbVersion {
  current(): string;
  /** This process wrote: caches must reload. */
  bump(): void;
}

const versions = new WeakMap<Db, DbVersion>();

/** The one DbVersion of a connection, shared by all the stores built on it. */
export function dbVersion(db: Db): DbVersion {
  let v = versions.get(db);
  if (!v) versions.set(db, (v = create(db)));
  return v;
}

function create(db: Db): DbVersion {
  const pragma = db.prepare<[], number>("PRAGMA data_version").pluck();
  let ownWrites = 0;
  let memo: number | undefined;
  const forget = () => { memo = undefined; };
  return {
    current() {
      if (memo === undefined) {
        memo = pragma.get()!;
        setImmediate(forget);
      }
      return `${memo}/${ownWrites}`;
    },
    bump() {
      ownWrites++;
    },
  };
}
