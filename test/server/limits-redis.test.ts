// Limits shared by replicas through Redis (REDIS_URL, src/redis/redis-quota.ts), end to end:
// three gateway processes on one database and one real redis-server, requests spread over
// them, and each limit exact across all three, as the single-process tests prove for one:
// rpm, rpd, tpm, concurrency and budgets. Also: a SIGKILLed replica's slots come back when
// their lease ends, Redis down refuses (LIMITS_FAIL_MODE=closed) or admits (open) and
// recovers by itself, and a replica whose clock is ten minutes off still counts in the same
// windows (Redis's clock).
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import modelsData from "../../src/data/models.json" with { type: "json" };
import pricingData from "../../src/data/pricing.json" with { type: "json" };
import { createCatalog, type CatalogRow, type RouteRows } from "../../src/core/catalog.js";
import { createPriceBook, type PriceRow } from "../../src/core/pricing.js";
import routesData from "../../src/data/routes.json" with { type: "json" };
import type { LimitValues } from "../../src/storage/limits.js";
import { openStores, type StoreTarget, type Stores } from "../../src/storage/stores.js";
import { useBundledReplicas } from "../support/bundled-replicas.js";
import type { GatewayChild } from "../support/gateway-child.js";
import { startTestGateway } from "../support/gateway.js";
import { startPostgres } from "../support/postgres.js";
import { startRedis, type TestRedis } from "../support/redis.js";
import { usageByStatus } from "../support/shared-usage.js";

const MODEL = "qwen-max";
const suite = useBundledReplicas();

type Engine = "sqlite" | "postgres";
interface Replicas { urls: string[]; key: string; keyId: string; target: StoreTarget; all: GatewayChild[] }

const quiet = { warn: () => {}, error: () => {} };

/** The shared database, opened as the CLI opens it, for the length of `fn`. */
async function withStores<T>(target: StoreTarget, fn: (stores: Stores) => T): Promise<T> {
  const stores = openStores(target, { listen: false, log: quiet });
  try {
    return fn(stores);
  } finally {
    await stores.close();
  }
}

/**
 * Three gateways on one database and one Redis: the first one's SQLite file,
 * or a fresh PostgreSQL (DATABASE_URL, the key created in it first); `node`
 * options go before the bundle (a skewed clock).
 */
async function replicas(engine: Engine, redis: TestRedis, env: Record<string, string> = {}, nodeOptions: string[][] = [[], [], []]): Promise<Replicas> {
  const common = { REDIS_URL: redis.url, REDIS_TIMEOUT_MS: "500", ...env };
  if (engine === "postgres") {
    const target = { databasePath: "", databaseUrl: (await startPostgres()).url };
    const created = await withStores(target, (s) => s.keys.create({ user: "replicas", name: "replicas" }));
    const all = await Promise.all(nodeOptions.map((opts) => suite.start({ ...common, DATABASE_URL: target.databaseUrl }, opts)));
    return { urls: all.map((c) => c.url), key: created.key, keyId: created.record.id, target, all };
  }
  const first = await suite.start(common, nodeOptions[0]);
  const rest = await Promise.all(nodeOptions.slice(1).map((opts) => suite.start({ ...common, DATABASE_PATH: first.dbPath }, opts)));
  const all = [first, ...rest];
  const target = { databasePath: first.dbPath };
  const keyId = await withStores(target, (s) => s.keys.list().find((k) => k.userName === "shutdown")!.id);
  return { urls: all.map((c) => c.url), key: first.key, keyId, target, all };
}

/** Sets the key's limits (and budget) in the shared database, as the CLI would: every replica reads them on its next request. */
async function limit(r: Replicas, values: LimitValues, budgetPico?: bigint): Promise<void> {
  await withStores(r.target, (s) => {
    s.limits.setLimits("key", r.keyId, values);
    if (budgetPico !== undefined) s.limits.setBudget("key", r.keyId, { limitPico: budgetPico, period: "total" });
  });
  // On PostgreSQL the replicas take the change in by NOTIFY, within milliseconds; a moment for it.
  if (r.target.databaseUrl) await new Promise((done) => setTimeout(done, 150));
}

/** What the key's usage rows cost so far (committed ones: on PostgreSQL, wait for them first). */
function spentSoFar(r: Replicas): Promise<bigint> {
  return withStores(r.target, (s) => s.usage.spent("key", r.keyId, 0));
}

const rowsByStatus = (r: Replicas) => usageByStatus(r.target, r.keyId);

async function ask(url: string, key: string, extra: Record<string, unknown> = {}): Promise<{ status: number; code?: string }> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], ...extra }),
  });
  const body = await res.json() as { error?: { code?: string; type?: string } };
  return { status: res.status, ...(body.error ? { code: body.error.code ?? body.error.type ?? "" } : {}) };
}

/** `count` requests at once, spread round-robin over the replicas. */
function burst(r: Replicas, count: number, extra: Record<string, unknown> = {}) {
  return Promise.all(Array.from({ length: count }, (_, i) => ask(r.urls[i % r.urls.length]!, r.key, extra)));
}

const statuses = (results: Array<{ status: number }>) => results.map((x) => x.status).sort();
const count = (results: Array<{ status: number }>, status: number) => results.filter((x) => x.status === status).length;

describe.each(["sqlite", "postgres"] as const)("limits shared by three replicas through Redis, keys and usage in %s", (engine) => {
  it("rpm and rpd: exactly N of M simultaneous requests pass, whichever replica they reach", async () => {
    const redis = await startRedis();
    const r = await replicas(engine, redis);
    await limit(r, { rpm: 5 });
    // Answers held back a moment, so all fifteen are in flight together.
    suite.fake.onModel(MODEL, { kind: "reply", firstByteDelayMs: 200 });
    const first = await burst(r, 15);
    expect(count(first, 200)).toBe(5);
    expect(count(first, 429)).toBe(10);

    await limit(r, { rpm: 0, rpd: 7 });
    const second = await burst(r, 12);
    expect(count(second, 200)).toBe(7);
    expect(statuses(second).filter((s) => s !== 200 && s !== 429)).toEqual([]);
    // One usage row a request, whichever replica served or refused it (on SQLite committed before
    // its answer; on PostgreSQL in the batch after it).
    await expect.poll(() => rowsByStatus(r), { timeout: 2_000 }).toEqual({ ok: 12, rejected: 15 });
  }, 60_000);

  it("tpm: reservations count across replicas, so exactly as many requests as fit pass", async () => {
    const redis = await startRedis();
    const r = await replicas(engine, redis);
    // "hi" reserves ceil((16 + 2) / 3) = 6 prompt tokens, plus max_tokens 1000: 1006 a request.
    await limit(r, { tpm: 3100 });
    suite.fake.onModel(MODEL, { kind: "reply", firstByteDelayMs: 200 });
    const results = await burst(r, 9, { max_tokens: 1000 });
    expect(count(results, 200)).toBe(3);
    expect(count(results, 429)).toBe(6);
  }, 60_000);

  it("concurrency: exactly N at once across replicas, and the slots come back as requests end", async () => {
    const redis = await startRedis();
    const r = await replicas(engine, redis);
    await limit(r, { concurrent: 4 });
    suite.fake.onModel(MODEL, { kind: "reply", firstByteDelayMs: 400 });
    const first = await burst(r, 12);
    expect(count(first, 200)).toBe(4);
    expect(count(first, 429)).toBe(8);
    // Every slot was given back when its request ended.
    const second = await burst(r, 4);
    expect(count(second, 200)).toBe(4);
  }, 60_000);

  it("budgets: reservations and spending are shared, so no replica overspends on what it alone saw", async () => {
    const redis = await startRedis();
    const r = await replicas(engine, redis);
    const catalog = createCatalog(modelsData.models as CatalogRow[], routesData.routes as RouteRows);
    const prices = createPriceBook(pricingData.models as Record<string, PriceRow>, catalog.models);
    const estimate = prices.picoOf(catalog.find(MODEL)!, { promptTokens: 6, completionTokens: 1000 });
    // Room for three reservations in flight, not a fourth: refused once spent + reserved reaches the budget.
    await limit(r, {}, estimate * 5n / 2n);
    suite.fake.onModel(MODEL, { kind: "reply", firstByteDelayMs: 300, usage: { prompt_tokens: 6, completion_tokens: 1 } });
    const results = await burst(r, 9, { max_tokens: 1000 });
    expect(count(results, 200)).toBe(3);
    expect(results.filter((x) => x.status === 429).every((x) => x.code === "insufficient_quota")).toBe(true);
  }, 60_000);

  it("spending settled on one replica stops the others once it reaches the budget", async () => {
    const redis = await startRedis();
    const r = await replicas(engine, redis);
    suite.fake.onModel(MODEL, { kind: "reply" });
    // Each replica asks once under a large budget: without sharing, each would now hold its own idea of what was spent.
    await limit(r, {}, 10n ** 12n);
    for (const url of r.urls) expect((await ask(url, r.key)).status).toBe(200);
    // Room for exactly one more answer's spending, which replica 0 makes (the three rows in first).
    await expect.poll(() => rowsByStatus(r), { timeout: 2_000 }).toEqual({ ok: 3 });
    await limit(r, {}, (await spentSoFar(r)) + 1n);
    expect((await ask(r.urls[0]!, r.key)).status).toBe(200);
    await expect.poll(async () => (await ask(r.urls[1]!, r.key)).code, { timeout: 5_000 }).toBe("insufficient_quota");
    expect(await ask(r.urls[2]!, r.key)).toMatchObject({ status: 429, code: "insufficient_quota" });
    expect(await ask(r.urls[0]!, r.key)).toMatchObject({ status: 429, code: "insufficient_quota" });
  }, 60_000);

  it("gives back a SIGKILLed replica's concurrency slots when their lease ends", async () => {
    const redis = await startRedis();
    const r = await replicas(engine, redis, { LIMITS_LEASE_MS: "1500" });
    await limit(r, { concurrent: 2 });
    // Two requests hold both slots on replica 0 (their upstream never answers), which then dies without giving them back.
    suite.fake.enqueue({ kind: "hang" }, { kind: "hang" });
    const held = [ask(r.urls[0]!, r.key).catch(() => undefined), ask(r.urls[0]!, r.key).catch(() => undefined)];
    await expect.poll(() => suite.fake.requests.length, { timeout: 5_000 }).toBe(2);
    expect((await ask(r.urls[1]!, r.key)).status).toBe(429);
    const killedAt = Date.now();
    r.all[0]!.kill();
    await Promise.all(held);
    expect((await ask(r.urls[1]!, r.key)).status).toBe(429); // still leased
    await expect.poll(async () => (await ask(r.urls[2]!, r.key)).status, { timeout: 6_000, interval: 100 }).toBe(200);
    // Back within the lease (1.5 s) and the poll's step, not at once and not never.
    expect(Date.now() - killedAt).toBeLessThan(1500 + 2000);
  }, 60_000);

  it("keeps a slot held past its lease while its request is alive (the replica renews it)", async () => {
    const redis = await startRedis();
    const r = await replicas(engine, redis, { LIMITS_LEASE_MS: "600" }, [[], []]);
    await limit(r, { concurrent: 1 });
    suite.fake.enqueue({ kind: "reply", firstByteDelayMs: 2_500 });
    const long = ask(r.urls[0]!, r.key);
    await expect.poll(() => suite.fake.requests.length, { timeout: 5_000 }).toBe(1);
    // Four leases later, the slot is still the long request's.
    await new Promise((done) => setTimeout(done, 1_500));
    expect((await ask(r.urls[1]!, r.key)).status).toBe(429);
    expect((await long).status).toBe(200);
    expect((await ask(r.urls[1]!, r.key)).status).toBe(200);
  }, 60_000);

  it("frees a slot before the answer leaves: one request at a time, through every replica in turn, is never refused", async () => {
    const redis = await startRedis();
    const r = await replicas(engine, redis);
    await limit(r, { concurrent: 1 });
    suite.fake.onModel(MODEL, { kind: "reply" });
    const statuses: number[] = [];
    for (let i = 0; i < 60; i++) statuses.push((await ask(r.urls[i % 3]!, r.key)).status);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
  }, 60_000);

  it.runIf(engine === "sqlite")("answers its very first request with the limits in Redis: it opens the port once connected", async () => {
    const redis = await startRedis();
    const gw = await startTestGateway({ REDIS_URL: redis.url, RATE_LIMITS_KEY: "rpm=1000" });
    try {
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST", headers: { authorization: gw.authorization, "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "first" }] }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-ratelimit-remaining-requests")).toBe("999");
    } finally {
      await gw.close();
    }
  }, 30_000);

  it("a key created, rotated or revoked (as the CLI does, in the shared database) counts on every replica within 1 s", async () => {
    const redis = await startRedis();
    const r = await replicas(engine, redis);
    suite.fake.onModel(MODEL, { kind: "reply" });
    const cli = openStores(r.target, { listen: false, log: quiet });
    try {
      const keys = cli.keys;
      const created = keys.create({ user: "bob", name: "new" });
      const within = async (check: () => Promise<boolean>) => {
        const t = performance.now();
        await expect.poll(check, { timeout: 1_000, interval: 20 }).toBe(true);
        return performance.now() - t;
      };
      for (const url of r.urls) expect(await within(async () => (await ask(url, created.key)).status === 200)).toBeLessThan(1_000);
      const rotated = keys.rotate(created.record.id);
      for (const url of r.urls) {
        expect(await within(async () => (await ask(url, created.key)).status === 401)).toBeLessThan(1_000);
        expect((await ask(url, rotated.key)).status).toBe(200);
      }
      keys.revoke(rotated.record.id);
      for (const url of r.urls) expect(await within(async () => (await ask(url, rotated.key)).status === 401)).toBeLessThan(1_000);
    } finally {
      await cli.close();
    }
  }, 60_000);

  it("Redis down: closed refuses with 503 limiter_unavailable, open admits; both recover when it is back", async () => {
    const redis = await startRedis();
    const closed = await replicas(engine, redis, { REDIS_TIMEOUT_MS: "200" }, [[]]);
    await limit(closed, { rpm: 100 });
    suite.fake.onModel(MODEL, { kind: "reply" });
    expect((await ask(closed.urls[0]!, closed.key)).status).toBe(200);
    await redis.kill();
    expect(await ask(closed.urls[0]!, closed.key)).toMatchObject({ status: 503, code: "limiter_unavailable" });

    const open = await replicas(engine, redis, { REDIS_TIMEOUT_MS: "200", LIMITS_FAIL_MODE: "open" }, [[]]);
    await limit(open, { rpm: 100 });
    expect((await ask(open.urls[0]!, open.key)).status).toBe(200);

    await redis.restart();
    await expect.poll(async () => (await ask(closed.urls[0]!, closed.key)).status, { timeout: 10_000, interval: 200 }).toBe(200);
    expect(closed.all[0]!.output()).toMatch(/limits: Redis at redis:\/\/127\.0\.0\.1:\d+\/? unavailable/);
  }, 60_000);

  it.runIf(engine === "sqlite")("makes one Redis call a request under rpm and rpd alone, two (the take and a plain ZREM as its settle) with a concurrency limit", async () => {
    const redis = await startRedis();
    const r = await replicas(engine, redis, {}, [[]]);
    suite.fake.onModel(MODEL, { kind: "reply" });
    const calls = async () => {
      const client = new Redis(redis.url, { lazyConnect: true });
      await client.connect();
      try {
        const stats = String(await client.info("commandstats"));
        const count = (re: RegExp) => [...stats.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
        return { scripts: count(/cmdstat_(?:evalsha|eval):calls=(\d+)/g), zrem: count(/cmdstat_zrem:calls=(\d+)/g) };
      } finally {
        client.disconnect();
      }
    };
    const since = (a: { scripts: number; zrem: number }, b: { scripts: number; zrem: number }) => ({ scripts: b.scripts - a.scripts, zrem: b.zrem - a.zrem });
    await limit(r, { rpm: 1000, rpd: 10_000, concurrent: 0 });
    await ask(r.urls[0]!, r.key); // the scripts loaded, the limits read
    let before = await calls();
    for (let i = 0; i < 10; i++) expect((await ask(r.urls[0]!, r.key)).status).toBe(200);
    await new Promise((done) => setTimeout(done, 100));
    expect(since(before, await calls())).toEqual({ scripts: 10, zrem: 0 });
    await limit(r, { concurrent: 5 });
    await ask(r.urls[0]!, r.key);
    await new Promise((done) => setTimeout(done, 100));
    before = await calls();
    for (let i = 0; i < 10; i++) expect((await ask(r.urls[0]!, r.key)).status).toBe(200);
    await new Promise((done) => setTimeout(done, 100));
    expect(since(before, await calls())).toEqual({ scripts: 10, zrem: 10 });
  }, 60_000);

  it("a replica whose clock is ten minutes ahead counts in the same windows (Redis's clock)", async () => {
    const redis = await startRedis();
    const skew = ["--import", "data:text/javascript,const now = Date.now; Date.now = () => now() + 600000;"];
    const r = await replicas(engine, redis, {}, [[], skew, skew]);
    await limit(r, { rpm: 4 });
    suite.fake.onModel(MODEL, { kind: "reply", firstByteDelayMs: 200 });
    const results = await burst(r, 12);
    expect(count(results, 200)).toBe(4);
  }, 60_000);
});
