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
 *   whose replica died stops counting when its lease ends (it is pruned by
 *   the first take it would otherwise refuse);
 * - a budget: `spent` (pico-USD settled this period, loaded from the usage
 *   rows by the first replica that needs it), `reserved` (the sum of the live
 *   reservations), `leases` (tickets by lease expiry) and `amounts` (ticket ->
 *   reserved pico): an expired reservation is given back, never leaked.
 * TAKE and SETTLE take their specs as flat ARGV and answer with plain
 * arrays, never JSON: decoding and encoding it was a third of a take's time
 * in Redis, and the replica's JSON.parse on top (bench/ANALYSIS.md). KEYS
 * come in the order windows, slots, budgets (four keys each), and ARGV says
 * how many of each. Amounts are decimal strings handed to INCRBY/DECRBY,
 * which are exact on 64-bit integers; only the budget's comparison is made
 * in Lua's doubles (exact to the pico below $9,007; above it, to a few
 * pico).
 */

/** How long an unused window counter or set outlives its use, beyond its window or lease. */
const SLACK_MS = 60_000;

export const TAKE = `
local ticket, lease, est = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local nw, nc, nb = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local over, windows, slots, budgets = {}, {}, {}, {}
for i = 1, nw do
  local a = 6 + (i - 1) * 3
  local ms, limit, cost = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local start = now - (now % ms)
  local used = tonumber(redis.call('GET', KEYS[i] .. ':' .. start) or '0')
  windows[#windows + 1], windows[#windows + 2], windows[#windows + 3] = used, start + ms - now, start
  if used + cost > limit then over[#over + 1] = 'w' .. i end
end
local a = 6 + nw * 3
for i = 1, nc do
  local key, limit = KEYS[nw + i], tonumber(ARGV[a + i])
  local n = redis.call('ZCARD', key)
  -- Tickets whose lease ended (a dead replica's) only matter when they would refuse: pruned then.
  if n + 1 > limit then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    n = redis.call('ZCARD', key)
  end
  slots[i] = n
  if n + 1 > limit then over[#over + 1] = 'c' .. i end
end
a = a + nc
for i = 1, nb do
  local k = nw + nc + (i - 1) * 4
  local spent, reserved, leases, amounts = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local limit, ttl, init = ARGV[a + (i - 1) * 3 + 1], ARGV[a + (i - 1) * 3 + 2], ARGV[a + (i - 1) * 3 + 3]
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
    local held = redis.call('HGET', amounts, m)
    if held then
      redis.call('DECRBY', reserved, held)
      redis.call('HDEL', amounts, m)
    end
    redis.call('ZREM', leases, m)
  end
  local s = redis.call('GET', spent)
  if not s then
    -- Nothing taken yet: the caller reads the period's spending from the usage rows and asks again.
    if init == '' then return { 2, i } end
    redis.call('SET', spent, init, 'NX', 'PX', ttl)
    s = redis.call('GET', spent)
  end
  local r = redis.call('GET', reserved) or '0'
  budgets[#budgets + 1], budgets[#budgets + 2] = s, r
  if tonumber(s) + tonumber(r) >= tonumber(limit) then over[#over + 1] = 'b' .. i end
end
if #over > 0 then return { 0, now, windows, slots, budgets, over } end
for i = 1, nw do
  local key, ms, cost = KEYS[i] .. ':' .. windows[(i - 1) * 3 + 3], tonumber(ARGV[6 + (i - 1) * 3 + 1]), tonumber(ARGV[6 + (i - 1) * 3 + 3])
  -- A new window's counter gets its lifetime once; later takes leave it.
  if redis.call('INCRBY', key, cost) == cost then redis.call('PEXPIRE', key, ms + ${SLACK_MS}) end
end
local expires = now + lease
for i = 1, nc do
  redis.call('ZADD', KEYS[nw + i], expires, ticket)
  redis.call('PEXPIRE', KEYS[nw + i], lease + ${SLACK_MS})
end
for i = 1, nb do
  local k = nw + nc + (i - 1) * 4
  redis.call('INCRBY', KEYS[k + 2], est)
  redis.call('ZADD', KEYS[k + 3], expires, ticket)
  redis.call('HSET', KEYS[k + 4], ticket, est)
  for j = 2, 4 do redis.call('PEXPIRE', KEYS[k + j], lease + ${SLACK_MS}) end
end
return { 1, now, windows, slots }
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
local ticket, cost = ARGV[1], ARGV[2]
local nw, nc, nb = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 1, nw do
  local delta = tonumber(ARGV[5 + i])
  if delta ~= 0 and redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], delta) < 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
  end
end
for i = 1, nc do redis.call('ZREM', KEYS[nw + i], ticket) end
for i = 1, nb do
  local k = nw + nc + (i - 1) * 4
  if redis.call('ZREM', KEYS[k + 3], ticket) == 1 then
    local a = redis.call('HGET', KEYS[k + 4], ticket)
    if a then redis.call('DECRBY', KEYS[k + 2], a) end
  end
  redis.call('HDEL', KEYS[k + 4], ticket)
  if cost ~= '0' and redis.call('EXISTS', KEYS[k + 1]) == 1 then redis.call('INCRBY', KEYS[k + 1], cost) end
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
