// Circuit breakers shared through Redis (REDIS_URL, src/redis/shared-breakers.ts), end to end
// with gateway processes on one real redis-server: a circuit one replica opens spares the
// others the failing provider at once (they send it nothing), a replica started later learns
// it, and a probe that succeeds on one replica closes the circuit on those that only held it.
import { describe, expect, it } from "vitest";
import { useBundledReplicas } from "../support/bundled-replicas.js";
import type { GatewayChild } from "../support/gateway-child.js";
import { startRedis } from "../support/redis.js";

const MODEL = "qwen-max";
const suite = useBundledReplicas();

async function replica(env: Record<string, string>, dbPath?: string): Promise<GatewayChild> {
  return suite.start({ BREAKER_FAILURES: "2", BREAKER_COOLDOWN_MS: "1500", FAILOVER_ON_500: "true", ...env, ...(dbPath ? { DATABASE_PATH: dbPath } : {}) });
}

async function ask(c: GatewayChild, key: string): Promise<number> {
  const res = await fetch(`${c.url}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }] }),
  });
  await res.arrayBuffer();
  return res.status;
}

describe("circuit breakers shared by replicas through Redis", () => {
  it("one replica's open circuit spares the others; a later replica learns it; a probe's success closes it where it was borrowed", async () => {
    const redis = await startRedis();
    const env = { REDIS_URL: redis.url, REDIS_TIMEOUT_MS: "500" };
    const a = await replica(env);
    const b = await replica(env, a.dbPath);
    const key = a.key;

    suite.fake.onModel(MODEL, { kind: "error", status: 500 });
    while (!/circuit for \S+ opened after/.test(a.output())) {
      expect(await ask(a, key)).toBeGreaterThanOrEqual(500);
      expect(suite.fake.requests.length).toBeLessThan(10);
    }
    const sent = suite.fake.requests.length;
    // B never failed itself, yet skips the provider from its first request: nothing reaches the upstream.
    await b.waitForOutput(/opened by replica/, 5_000);
    expect(await ask(b, key)).toBe(503);
    expect(suite.fake.requests.length).toBe(sent);
    // A replica started while the circuit is open reads it at start.
    const c = await replica(env, a.dbPath);
    await c.waitForOutput(/opened by replica/, 5_000);
    expect(await ask(c, key)).toBe(503);
    expect(suite.fake.requests.length).toBe(sent);

    // After the cool-down, B's probe succeeds: the circuit closes on C too, which then sends two
    // requests at once (half-open, it would let one probe through and refuse the other). A, whose
    // circuit opened on its own failures, closes it on its own probe.
    suite.fake.onModel(MODEL, { kind: "reply", firstByteDelayMs: 100 });
    await new Promise((done) => setTimeout(done, 1_600));
    expect(await ask(b, key)).toBe(200);
    await expect.poll(async () => (await Promise.all([ask(c, key), ask(c, key)])).join(), { timeout: 5_000 }).toBe("200,200");
    expect(await ask(a, key)).toBe(200);
    expect(await Promise.all([ask(a, key), ask(a, key)])).toEqual([200, 200]);
  }, 60_000);
});
