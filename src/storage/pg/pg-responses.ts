import { responseStoreOn, SWEEP_BATCH, type ResponseStore, type ResponseStoreOptions } from "../responses.js";
import type { SyncPg } from "./sync-pg.js";

const LIVE = "id = $1 AND user_id = $2 AND expires_at > $3";

/**
 * Stored Responses API responses on PostgreSQL (DATABASE_URL), so a
 * conversation continued through another replica finds its predecessor.
 * Saves are batched (one multi-row INSERT a turn); reads and deletes are one
 * query by primary key. All are asynchronous: a slow server delays only
 * the requests that need a stored response, never the event loop.
 */
export function createPgResponseStore(pg: SyncPg, options: ResponseStoreOptions): ResponseStore {
  return responseStoreOn({
    async saveAll(batch, ttlMs) {
      await pg.queryAsync(`INSERT INTO responses (id, user_id, created_at, expires_at, previous_id, body, items)
        SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[])`, [
        batch.map((r) => r.id), batch.map((r) => r.userId), batch.map((r) => r.createdAt), batch.map((r) => r.createdAt + ttlMs),
        batch.map((r) => r.previousId), batch.map((r) => r.body), batch.map((r) => JSON.stringify(r.input)),
      ]);
    },
    row: async (id, userId, now) => (await pg.queryAsync<{ items: string; body: string }>(`SELECT items, body FROM responses WHERE ${LIVE}`, [id, userId, now]))[0],
    remove: async (id, userId, now) => (await pg.queryAsync(`DELETE FROM responses WHERE ${LIVE} RETURNING id`, [id, userId, now])).length > 0,
    sweepBatch: async (now) => (await pg.queryAsync(
      `DELETE FROM responses WHERE id IN (SELECT id FROM responses WHERE expires_at <= $1 LIMIT ${SWEEP_BATCH}) RETURNING id`, [now])).length,
  }, options);
}
