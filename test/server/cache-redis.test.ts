// The response cache in Redis (REDIS_URL), end to end on a real redis-server:
// two gateway processes serve each other's hits, a Redis killed mid-run costs
// misses and never a failed request, and entries expire.
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { startFakeUpstream, type FakeUpstream } from "../support/fake-upstream.js";
import { startGatewayChild, type GatewayChild } from "../support/gateway-child.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { startRedis } from "../support/redis.js";

const MODEL = "qwen-max";
const open: Array<{ close?: () => Promise<void>; stop?: () => Promise<void> }> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await (o.close ?? o.stop)!.call(o);
});

async function ask(url: string, authorization: string, content: string) {
  const started = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST", headers: { authorization, "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content }] }),
  });
  const body = await res.json() as { choices: Array<{ message: { content: string } }> };
  return { status: res.status, cache: res.headers.get("x-gatewayz-cache"), text: body.choices?.[0]?.message.content, ms: performance.now() - started };
}

describe("the cache in Redis", () => {
  it("is shared by two gateway processes: each serves the other's answers", async () => {
    const redis = await startRedis();
    const fake: FakeUpstream = await startFakeUpstream();
    open.push({ close: () => fake.close() });
    // Each process has its own database here, so its own user ids: the global scope lets them share.
    const env = { CACHE: "on", REDIS_URL: redis.url, CACHE_SCOPE: "global" };
    const one: GatewayChild = await startGatewayChild(fake, { env });
    open.push({ close: async () => one.dispose() });
    const two: GatewayChild = await startGatewayChild(fake, { env });
    open.push({ close: async () => two.dispose() });

    fake.enqueue({ kind: "reply", content: "made by one" }, { kind: "reply", content: "made by two" });
    expect(await ask(one.url, `Bearer ${one.key}`, "first")).toMatchObject({ status: 200, cache: "miss", text: "made by one" });
    expect(await ask(two.url, `Bearer ${two.key}`, "first")).toMatchObject({ status: 200, cache: "hit", text: "made by one" });
    expect(await ask(two.url, `Bearer ${two.key}`, "second")).toMatchObject({ cache: "miss", text: "made by two" });
    expect(await ask(one.url, `Bearer ${one.key}`, "second")).toMatchObject({ cache: "hit", text: "made by two" });
    expect(fake.requests).toHaveLength(2);
  }, 30_000);

  it("answers every request while Redis is killed, and uses it again once it is back", async () => {
    const redis = await startRedis();
    const gw: TestGateway = await startTestGateway({ CACHE: "on", REDIS_URL: redis.url, REDIS_TIMEOUT_MS: "50" });
    open.push({ close: () => gw.close() });
    // Connected before the first request: the store misses until then.
    await expect.poll(async () => (await ask(gw.url, gw.authorization, "warm-up")).status).toBe(200);

    expect((await ask(gw.url, gw.authorization, "before")).cache).toBe("miss");
    await redis.kill();
    const during = await Promise.all(["during 1", "during 2", "during 3"].map((q) => ask(gw.url, gw.authorization, q)));
    for (const r of during) {
      expect(r.status).toBe(200);
      expect(["miss", "hit"]).toContain(r.cache);
      expect(r.ms).toBeLessThan(2_000);
    }
    // The reads failed as misses at once; the store reports the outage when the connection closes.
    expect(gw.logs.some((l) => l.includes("cache: the store failed a read") && l.includes("answered as a miss"))).toBe(true);
    await expect.poll(() => gw.logs.some((l) => l.includes("cache: Redis at") && l.includes("unavailable, serving misses"))).toBe(true);

    await redis.restart();
    // Back in use: new answers reach Redis again (the in-process LRU alone would also answer hits).
    const direct = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await expect.poll(async () => {
        await ask(gw.url, gw.authorization, `after ${Math.random()}`);
        return direct.dbsize();
      }, { timeout: 10_000, interval: 200 }).toBeGreaterThan(0);
    } finally {
      direct.disconnect();
    }
    expect(gw.logs.some((l) => l.includes("cache: Redis at") && l.includes("reconnected"))).toBe(true);
  }, 30_000);

  it("lets entries expire after CACHE_TTL_S", async () => {
    const redis = await startRedis();
    const gw = await startTestGateway({ CACHE: "on", REDIS_URL: redis.url, CACHE_TTL_S: "1" });
    open.push({ close: () => gw.close() });
    await expect.poll(async () => (await ask(gw.url, gw.authorization, "warm-up")).status).toBe(200);
    expect((await ask(gw.url, gw.authorization, "short-lived")).cache).toBe("miss");
    expect((await ask(gw.url, gw.authorization, "short-lived")).cache).toBe("hit");
    // Redis itself holds the entries with that TTL (the in-process LRU in front has its own).
    const direct = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      const keys = await direct.keys("gatewayz:cache:*");
      expect(keys.length).toBeGreaterThan(0);
      for (const k of keys) expect(await direct.pttl(k)).toBeGreaterThan(0);
      for (const k of keys) expect(await direct.pttl(k)).toBeLessThanOrEqual(1_000);
    } finally {
      direct.disconnect();
    }
    await new Promise((r) => setTimeout(r, 1_200));
    expect((await ask(gw.url, gw.authorization, "short-lived")).cache).toBe("miss");
  }, 30_000);
});
