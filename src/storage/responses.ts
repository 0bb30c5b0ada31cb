import type { Db } from "./db.js";

/** A conversation item as stored: a Responses API item with its id. */
export type StoredItem = Record<string, unknown> & { readonly type: string; readonly id: string };

export interface SavedResponse {
  readonly id: string;
  readonly userId: string;
  /** ms since the epoch. */
  readonly createdAt: number;
  readonly previousId: string | null;
  /** The response object as the client was sent it. */
  readonly body: unknown;
  /** Everything the model was given: the previous conversation, then this request's input. */
  readonly input: readonly StoredItem[];
  readonly output: readonly StoredItem[];
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
  save(r: SavedResponse): void;
  get(id: string, userId: string): unknown;
  /** Input items then output items, in order: what a response continuing from this one starts with. */
  conversation(id: string, userId: string): StoredItem[] | undefined;
  /** The response's input items, `order` "desc" newest first (OpenAI's default), after the item `after`. */
  inputItems(id: string, userId: string, page: { after?: string | undefined; limit: number; order: "asc" | "desc" }): ItemPage | undefined;
  /** The latest stored copy of an item, by its id, for item_reference. */
  item(itemId: string, userId: string): StoredItem | undefined;
  delete(id: string, userId: string): boolean;
  /** Deletes expired responses; returns how many. */
  sweep(): number;
}

export interface ResponseStoreOptions {
  /** How long a response is kept (RESPONSES_TTL_DAYS). */
  readonly ttlMs: number;
  readonly now?: () => number;
}

/** Deleted per statement by a sweep, so one sweep never holds the write lock for long. */
const SWEEP_BATCH = 500;

export function createResponseStore(db: Db, { ttlMs, now = Date.now }: ResponseStoreOptions): ResponseStore {
  const insert = db.prepare("INSERT INTO responses (id, user_id, created_at, expires_at, previous_id, body) VALUES (?, ?, ?, ?, ?, ?)");
  const insertItem = db.prepare("INSERT INTO response_items (response_id, seq, role, item_id, item) VALUES (?, ?, ?, ?, ?)");
  const live = "id = ? AND user_id = ? AND expires_at > ?";
  const getBody = db.prepare(`SELECT body FROM responses WHERE ${live}`).pluck();
  const exists = db.prepare(`SELECT 1 FROM responses WHERE ${live}`).pluck();
  const items = db.prepare("SELECT item FROM response_items WHERE response_id = ? ORDER BY seq").pluck();
  const inputsAsc = db.prepare("SELECT item FROM response_items WHERE response_id = ? AND role = 'input' AND seq > ? ORDER BY seq LIMIT ?").pluck();
  const inputsDesc = db.prepare("SELECT item FROM response_items WHERE response_id = ? AND role = 'input' AND seq < ? ORDER BY seq DESC LIMIT ?").pluck();
  const seqOf = db.prepare("SELECT seq FROM response_items WHERE response_id = ? AND role = 'input' AND item_id = ? ORDER BY seq DESC LIMIT 1").pluck();
  const itemById = db.prepare(`
    SELECT i.item FROM response_items i JOIN responses r ON r.id = i.response_id
    WHERE i.item_id = ? AND r.user_id = ? AND r.expires_at > ? ORDER BY r.created_at DESC, i.seq DESC LIMIT 1`).pluck();
  const remove = db.prepare(`DELETE FROM responses WHERE ${live}`);
  const expired = db.prepare(`DELETE FROM responses WHERE id IN (SELECT id FROM responses WHERE expires_at <= ? LIMIT ${SWEEP_BATCH})`);

  const save = db.transaction((r: SavedResponse) => {
    insert.run(r.id, r.userId, r.createdAt, r.createdAt + ttlMs, r.previousId, JSON.stringify(r.body));
    let seq = 0;
    for (const item of r.input) insertItem.run(r.id, seq++, "input", item.id, JSON.stringify(item));
    for (const item of r.output) insertItem.run(r.id, seq++, "output", item.id, JSON.stringify(item));
  });
  const parse = (rows: unknown[]) => rows.map((text) => JSON.parse(text as string) as StoredItem);

  return {
    save: (r) => save(r),
    get(id, userId) {
      const body = getBody.get(id, userId, now()) as string | undefined;
      return body === undefined ? undefined : JSON.parse(body);
    },
    conversation(id, userId) {
      if (!exists.get(id, userId, now())) return undefined;
      return parse(items.all(id));
    },
    inputItems(id, userId, { after, limit, order }) {
      if (!exists.get(id, userId, now())) return undefined;
      let from = order === "asc" ? -1 : Number.MAX_SAFE_INTEGER;
      if (after !== undefined) {
        const seq = seqOf.get(id, after) as number | undefined;
        // OpenAI answers an unknown cursor with an empty page, not an error.
        if (seq === undefined) return { data: [], hasMore: false };
        from = seq;
      }
      const rows = (order === "asc" ? inputsAsc : inputsDesc).all(id, from, limit + 1);
      return { data: parse(rows.slice(0, limit)), hasMore: rows.length > limit };
    },
    item(itemId, userId) {
      const text = itemById.get(itemId, userId, now()) as string | undefined;
      return text === undefined ? undefined : (JSON.parse(text) as StoredItem);
    },
    delete: (id, userId) => remove.run(id, userId, now()).changes > 0,
    sweep() {
      let total = 0;
      for (;;) {
        const { changes } = expired.run(now());
        total += changes;
        if (changes < SWEEP_BATCH) return total;
      }
    },
  };
}

/** Sweeps now and then every `everyMs`, without keeping the process alive; returns the stop function. */
export function sweepResponses(store: ResponseStore, everyMs: number, onError: (err: unknown) => void): () => void {
  const run = () => {
    try {
      store.sweep();
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
