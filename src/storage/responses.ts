import { responseOfItem } from "../responses/ids.js";
import type { Db } from "./db.js";

/** A conversation item as stored: a Responses API item with its id. */
export type StoredItem = Record<string, unknown> & { readonly type: string; readonly id: string };

export interface SavedResponse {
  readonly id: string;
  readonly userId: string;
  /** ms since the epoch. */
  readonly createdAt: number;
  readonly previousId: string | null;
  /** The response object as the client was sent it, serialised: its `output` holds the output items. */
  readonly body: string;
  /** Everything the model was given: the previous conversation, then this request's input. */
  readonly input: readonly StoredItem[];
}

export interface ItemPage {
  readonly data: StoredItem[];
  readonly hasMore: boolean;
}

/**
 * Stored Responses API responses (migration 7). Every read is by owner: a
 * response of another user, like an expired one, does not exist. Each
 * response keeps its whole conversation, so continuing from it is one read
 * and does not depend on its predecessors still being there.
 */
export interface ResponseStore {
  /**
   * Queues the response; it is committed with the others saved in this
   * event-loop turn, in one transaction (one commit a response cost more
   * than the rest of the request). Resolves once committed, rejects if the
   * transaction failed: the door answers after it, so an id a client has
   * been given can be continued from.
   */
  save(r: SavedResponse): Promise<void>;
  get(id: string, userId: string): Awaitable<unknown>;
  /** Input items then output items, in order: what a response continuing from this one starts with. */
  conversation(id: string, userId: string): Awaitable<StoredItem[] | undefined>;
  /** The response's input items, `order` "desc" newest first (OpenAI's default), after the item `after`. */
  inputItems(id: string, userId: string, page: { after?: string | undefined; limit: number; order: "asc" | "desc" }): Awaitable<ItemPage | undefined>;
  /** A stored item by its id, for item_reference: an item the gateway made, of a live response of this user. */
  item(itemId: string, userId: string): Awaitable<StoredItem | undefined>;
  delete(id: string, userId: string): Awaitable<boolean>;
  /** Deletes expired responses; returns how many (on PostgreSQL, a promise of it). */
  sweep(): number | Promise<number>;
}

export interface ResponseStoreOptions {
  /** How long a response is kept (RESPONSES_TTL_DAYS). */
  readonly ttlMs: number;
  readonly now?: () => number;
}

/** A value now (SQLite) or later (PostgreSQL). */
export type Awaitable<T> = T | Promise<T>;

/** `f` of the value, at once when it is there, else when it comes. */
function then<A, B>(v: Awaitable<A>, f: (a: A) => B): Awaitable<B> {
  return v instanceof Promise ? v.then(f) : f(v);
}

/** Deleted per statement by a sweep, so one sweep never holds the write lock for long. */
export const SWEEP_BATCH = 500;

/** The row operations under a ResponseStore: SQLite's here, PostgreSQL's in pg/pg-responses.ts. */
export interface ResponseRows {
  /** All in one transaction; on PostgreSQL a promise of it. */
  saveAll(batch: readonly SavedResponse[], ttlMs: number): void | Promise<void>;
  /** The live (unexpired) response's row of that owner; on PostgreSQL a promise of it, so a slow server never blocks the event loop. */
  row(id: string, userId: string, now: number): Awaitable<{ items: string; body: string } | undefined>;
  remove(id: string, userId: string, now: number): Awaitable<boolean>;
  /** Deletes up to SWEEP_BATCH expired rows; how many. */
  sweepBatch(now: number): number | Promise<number>;
}

export function createResponseStore(db: Db, options: ResponseStoreOptions): ResponseStore {
  const insert = db.prepare("INSERT INTO responses (id, user_id, created_at, expires_at, previous_id, body, items) VALUES (?, ?, ?, ?, ?, ?, ?)");
  const live = "id = ? AND user_id = ? AND expires_at > ?";
  const getItems = db.prepare<[string, string, number], { items: string; body: string }>(`SELECT items, body FROM responses WHERE ${live}`);
  const remove = db.prepare(`DELETE FROM responses WHERE ${live}`);
  const expired = db.prepare(`DELETE FROM responses WHERE id IN (SELECT id FROM responses WHERE expires_at <= ? LIMIT ${SWEEP_BATCH})`);
  // One row a response: a row per item made each save several random-place
  // index writes, which the commit paid for (see responses/ids.ts too).
  const saveAll = db.transaction((batch: readonly SavedResponse[], ttlMs: number) => {
    for (const r of batch) {
      insert.run(r.id, r.userId, r.createdAt, r.createdAt + ttlMs, r.previousId, r.body, JSON.stringify(r.input));
    }
  });
  return responseStoreOn({
    saveAll,
    row: (id, userId, now) => getItems.get(id, userId, now),
    remove: (id, userId, now) => remove.run(id, userId, now).changes > 0,
    sweepBatch: (now) => expired.run(now).changes,
  }, options);
}

/** The store over either engine's rows: batching of saves, conversations, paging, item lookup. */
export function responseStoreOn(rows: ResponseRows, { ttlMs, now = Date.now }: ResponseStoreOptions): ResponseStore {
  /** The conversation: the input items, then the output items (kept once, in the body). */
  const itemsOf = (id: string, userId: string): Awaitable<{ items: StoredItem[]; inputCount: number } | undefined> => then(rows.row(id, userId, now()), (row) => {
    if (!row) return undefined;
    const input = JSON.parse(row.items) as StoredItem[];
    const { output } = JSON.parse(row.body) as { output: StoredItem[] };
    return { items: [...input, ...output], inputCount: input.length };
  });

  let queued: SavedResponse[] = [];
  let waiting: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  const flush = () => {
    const batch = queued;
    const settle = waiting;
    queued = [];
    waiting = [];
    const fail = (err: unknown) => {
      for (const w of settle) w.reject(err);
    };
    const done = () => {
      for (const w of settle) w.resolve();
    };
    let saved: void | Promise<void>;
    try {
      saved = rows.saveAll(batch, ttlMs);
    } catch (err) {
      return fail(err);
    }
    if (saved) saved.then(done, fail);
    else done();
  };

  return {
    save: (r) => new Promise<void>((resolve, reject) => {
      queued.push(r);
      waiting.push({ resolve, reject });
      if (queued.length === 1) setImmediate(flush);
    }),
    get: (id, userId) => then(rows.row(id, userId, now()), (row) => (row === undefined ? undefined : JSON.parse(row.body) as unknown)),
    conversation: (id, userId) => then(itemsOf(id, userId), (found) => found?.items),
    inputItems: (id, userId, { after, limit, order }) => then(itemsOf(id, userId), (found) => {
      if (!found) return undefined;
      const inputs = found.items.slice(0, found.inputCount);
      if (order === "desc") inputs.reverse();
      let from = 0;
      if (after !== undefined) {
        const at = inputs.findIndex((item) => item.id === after);
        // OpenAI answers an unknown cursor with an empty page, not an error.
        if (at < 0) return { data: [], hasMore: false };
        from = at + 1;
      }
      return { data: inputs.slice(from, from + limit), hasMore: inputs.length > from + limit };
    }),
    item(itemId, userId) {
      // Items the gateway made name their response (responses/ids.ts); the newest copy wins.
      const responseId = responseOfItem(itemId);
      if (responseId === undefined) return undefined;
      return then(itemsOf(responseId, userId), (found) => found?.items.findLast((item) => item.id === itemId));
    },
    delete: (id, userId) => rows.remove(id, userId, now()),
    sweep() {
      let total = 0;
      const more = (changes: number): number | Promise<number> => {
        total += changes;
        if (changes < SWEEP_BATCH) return total;
        const next = rows.sweepBatch(now());
        return typeof next === "number" ? more(next) : next.then(more);
      };
      const first = rows.sweepBatch(now());
      return typeof first === "number" ? more(first) : first.then(more);
    },
  };
}

/** Sweeps now and then every `everyMs`, without keeping the process alive; returns the stop function. */
export function sweepResponses(store: ResponseStore, everyMs: number, onError: (err: unknown) => void): () => void {
  const run = () => {
    try {
      const swept = store.sweep();
      if (typeof swept !== "number") swept.catch(onError);
    } catch (err) {
      // A locked or full database: the next sweep tries again; reads ignore expired rows meanwhile.
      onError(err);
    }
  };
  run();
  const timer = setInterval(run, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
