// What the shared circuit breakers (shared-breakers.ts) send and keep in Redis: the scripts that
// publish an opening and a closing, the messages, and the read of the records still in force.
import type { Redis } from "ioredis";

/**
 * Publishes an opening, on Redis's clock (TIME), so that replicas whose
 * clocks disagree still agree on when it ends: the record for replicas that
 * start or reconnect later (its TTL is the time left) and the event for those
 * listening now. A record that already says "open longer" (another replica's
 * later opening) is kept. KEYS[1] the record; ARGV: ms left, replica, provider,
 * channel, the full cool-down.
 */
export const OPEN = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = tonumber(ARGV[1])
local ends = now + ms
local record = { openedAt = now, ['until'] = ends, cooldownMs = tonumber(ARGV[5]), by = ARGV[2] }
local kept = redis.call('GET', KEYS[1])
local longer = false
if kept then
  local ok, old = pcall(cjson.decode, kept)
  longer = ok and type(old) == 'table' and tonumber(old['until']) ~= nil and tonumber(old['until']) > ends
end
if not longer then redis.call('SET', KEYS[1], cjson.encode(record), 'PX', ms) end
record.provider = ARGV[3]
redis.call('PUBLISH', ARGV[4], cjson.encode(record))
return now
`;

/** A circuit closed (a request answered): the record goes, and the others end their forced open. ARGV: provider, replica, channel. */
export const CLOSE = `
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[3], cjson.encode({ provider = ARGV[1], closed = true, by = ARGV[2] }))
return 1
`;

/** An opening or a closing as it travels (the record, under `<prefix><provider>`, is the same without `provider`). */
export interface Opening { provider: string; openedAt: number; until: number; cooldownMs?: number; by: string }
export interface Closing { provider: string; closed: true; by: string }


/** The records still in force under `prefix`, each with the ms it has left (its PTTL, on Redis's clock). */
export async function readOpenings(client: Redis, prefix: string): Promise<Array<{ opening: Opening; msLeft: number }>> {
  const pattern = prefix.replace(/[*?[\]\\]/g, "\\$&") + "*";
  const found: Array<{ opening: Opening; msLeft: number }> = [];
  let cursor = "0";
  do {
    const [next, keys] = await client.scan(cursor, "MATCH", pattern, "COUNT", 100);
    cursor = next;
    if (keys.length === 0) continue;
    const reads = client.pipeline();
    for (const key of keys) reads.get(key).pttl(key);
    const replies = (await reads.exec()) ?? [];
    keys.forEach((key, i) => {
      const [getError, value] = replies[2 * i] ?? [];
      const [ttlError, ttl] = replies[2 * i + 1] ?? [];
      if (getError || ttlError || typeof value !== "string" || typeof ttl !== "number" || ttl <= 0) return;
      try {
        const record = JSON.parse(value) as Omit<Opening, "provider">;
        if (typeof record.by !== "string" || typeof record.until !== "number" || typeof record.openedAt !== "number") return;
        found.push({ opening: { ...record, provider: key.slice(prefix.length) }, msLeft: ttl });
      } catch {
        // Not one of ours: nothing to apply.
      }
    });
  } while (cursor !== "0");
  return found;
}
