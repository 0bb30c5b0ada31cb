/**
 * The Lua scripts of the shared quota (redis-quota.ts). Each runs atomically
 * in Redis, so one take checks every limit and budget of a request and then
 * takes from all of them, or from none, in one round trip, whichever replica
 * sends it: with a limit of N, exactly N of M simultaneous requests pass
 * across every replica. Time is Redis's own (TIME), never a replica's clock,
 * so skewed replicas agree on windows and leases.
 *
 * Keys (KEYS, named by the caller, one subject's each):
 * - a fixed window: `<base>:<window start ms>`, a counter that expires
 *   after its window;
 * - concurrency: a sorted set of tickets scored by lease expiry: a ticket
 *   whose replica died is dropped when its lease ends;
 * - a budget: `spent` (pico-USD settled this period, loaded from the usage
 *   rows by the first replica that needs it), `reserved` (the sum of the live
 *   reservations), `leases` (tickets by lease expiry) and `amounts` (ticket ->
 *   reserved pico): an expired reservation is given back, never leaked.
 * The spec (ARGV[1], JSON) says which KEYS index is what. Amounts are
 * decimal strings handed to INCRBY/DECRBY, which are exact on 64-bit
 * integers; only the budget's comparison is made in Lua's doubles (exact to
 * the pico below $9,007; above it, to a few pico).
 */

/** How long an unused window counter or set outlives its use, beyond its window or lease. */
const SLACK_MS = 60_000;

export const TAKE = `
local spec = cjson.decode(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local over = {}
local windows = {}
for i, w in ipairs(spec.w) do
  local start = now - (now % w.ms)
  local used = tonumber(redis.call('GET', KEYS[w.k] .. ':' .. start) or '0')
  windows[i] = { used, start + w.ms - now, start }
  if used + w.cost > w.limit then over[#over + 1] = 'w' .. i end
end
local slots = {}
for i, c in ipairs(spec.c) do
  redis.call('ZREMRANGEBYSCORE', KEYS[c.k], '-inf', now)
  local n = redis.call('ZCARD', KEYS[c.k])
  slots[i] = n
  if n + 1 > c.limit then over[#over + 1] = 'c' .. i end
end
local budgets = {}
for i, b in ipairs(spec.b) do
  local spent, reserved, leases, amounts = KEYS[b.k], KEYS[b.k + 1], KEYS[b.k + 2], KEYS[b.k + 3]
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
    local a = redis.call('HGET', amounts, m)
    if a then
      redis.call('DECRBY', reserved, a)
      redis.call('HDEL', amounts, m)
    end
    redis.call('ZREM', leases, m)
  end
  local s = redis.call('GET', spent)
  if not s then
    -- Nothing taken yet: the caller reads the period's spending from the usage rows and asks again.
    if not b.init then return cjson.encode({ load = i }) end
    redis.call('SET', spent, b.init, 'NX', 'PX', b.ttl)
    s = redis.call('GET', spent)
  end
  local r = redis.call('GET', reserved) or '0'
  budgets[i] = { s, r }
  if tonumber(s) + tonumber(r) >= tonumber(b.limit) then over[#over + 1] = 'b' .. i end
end
if #over > 0 then return cjson.encode({ over = over, w = windows, c = slots, b = budgets, now = now }) end
for i, w in ipairs(spec.w) do
  local key = KEYS[w.k] .. ':' .. windows[i][3]
  redis.call('INCRBY', key, w.cost)
  redis.call('PEXPIRE', key, w.ms + ${SLACK_MS})
end
local expires = now + spec.lease
for _, c in ipairs(spec.c) do
  redis.call('ZADD', KEYS[c.k], expires, spec.ticket)
  redis.call('PEXPIRE', KEYS[c.k], spec.lease + ${SLACK_MS})
end
for _, b in ipairs(spec.b) do
  redis.call('INCRBY', KEYS[b.k + 1], spec.est)
  redis.call('ZADD', KEYS[b.k + 2], expires, spec.ticket)
  redis.call('HSET', KEYS[b.k + 3], spec.ticket, spec.est)
  for j = 1, 3 do redis.call('PEXPIRE', KEYS[b.k + j], spec.lease + ${SLACK_MS}) end
end
return cjson.encode({ ok = 1, w = windows, c = slots, now = now })
`;

/**
 * Gives a ticket back: the tokens it reserved on tpm replaced by what it used
 * (in the window it was taken in, if that window still exists), its
 * concurrency slots and budget reservations released, and its cost added to
 * the spending, if the spending is loaded (else the next take reads it from
 * the usage rows, which hold it by then). Safe to send twice, or for a
 * ticket whose lease has lapsed.
 */
export const SETTLE = `
local spec = cjson.decode(ARGV[1])
for _, w in ipairs(spec.w) do
  if redis.call('EXISTS', KEYS[w.k]) == 1 and w.delta ~= 0 then
    if redis.call('INCRBY', KEYS[w.k], w.delta) < 0 then redis.call('SET', KEYS[w.k], 0, 'KEEPTTL') end
  end
end
for _, k in ipairs(spec.c) do redis.call('ZREM', KEYS[k], spec.ticket) end
for _, k in ipairs(spec.b) do
  if redis.call('ZREM', KEYS[k + 2], spec.ticket) == 1 then
    local a = redis.call('HGET', KEYS[k + 3], spec.ticket)
    if a then redis.call('DECRBY', KEYS[k + 1], a) end
  end
  redis.call('HDEL', KEYS[k + 3], spec.ticket)
  if spec.cost ~= '0' and redis.call('EXISTS', KEYS[k]) == 1 then redis.call('INCRBY', KEYS[k], spec.cost) end
end
return 1
`;

/**
 * Extends the leases of tickets still held (long streams): only those still
 * there (XX), so a ticket settled meanwhile is not brought back; and the
 * lifetimes of the keys they are in (`e`).
 */
export const RENEW = `
local spec = cjson.decode(ARGV[1])
local t = redis.call('TIME')
local expires = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + spec.lease
for _, h in ipairs(spec.h) do redis.call('ZADD', KEYS[h.k], 'XX', expires, h.ticket) end
for _, k in ipairs(spec.e) do redis.call('PEXPIRE', KEYS[k], spec.lease + ${SLACK_MS}) end
return 1
`;
