// The shared quota (src/redis/redis-quota.ts) on its own, against a real redis-server
// (test/support/redis.ts): how its bound on a take (REDIS_TIMEOUT_MS) tells a slow Redis from
// a busy gateway. The limits across replicas are tested through gateways in
// test/server/limits-redis.test.ts.

import { afterEach, describe, expect, it } from "vitest";
import type { Policy } from "../../src/core/policy.js";
import { GatewayError } from "../../src/errors.js";
import { createRedisQuota, type RedisQuota } from "../../src/redis/redis-quota.js";
import { startRedis } from "../support/redis.js";

const open: RedisQuota[] = [];
afterEach(async () => {
  for (const q of open.splice(0)) await q.close();
});

const UNLIMITED = { rpm: 0, tpm: 0, rpd: 0, concurrent: 0 };
/** A key limited to `concurrent` requests at once and a high rpm, nothing else. */
function policyOf(concurrent: number): Policy {
  return {
    limitsFor: (scope) => (scope === "key" ? { rpm: 1_000_000, tpm: 0, rpd: 0, concurrent } : UNLIMITED),
    budgetFor: () => undefined,
    refresh() {},
  };
}

async function quota(url: string, timeoutMs: number, concurrent = 10): Promise<RedisQuota> {
  const warnings: string[] = [];
  const q = createRedisQuota(policyOf(concurrent), {
    url, timeoutMs, leaseMs: 30_000, failMode: "closed", spent: () => 0n,
    log: { warn: (m: string) => warnings.push(m), info: () => {} },
  });
  open.push(q);
  expect(await q.ready(5_000)).toBe(true);
  return q;
}

const subject = { keyId: "k1", userId: "u1" };

function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* the event loop is busy, as under load */ }
}

describe("the shared quota's bound on a take", () => {
  it("takes an answer that came in time but waited behind a busy event loop (no false limiter_unavailable)", async () => {
    const redis = await startRedis();
    const q = await quota(redis.url, 20);
    for (let i = 0; i < 5; i++) {
      const taking = q.take(subject, 0, 0n);
      // Redis answers within a millisecond; the gateway only reads it 100 ms later, after its timer is due.
      spin(100);
      const ticket = await taking;
      expect(ticket.snapshot.requests?.limit).toBe(1_000_000);
      ticket.settle(0, 0n);
    }
  });

  it("still refuses within the bound when Redis does not answer", async () => {
    const redis = await startRedis();
    const q = await quota(redis.url, 100);
    redis.pause();
    try {
      const started = performance.now();
      const err = await Promise.resolve(q.take(subject, 0, 0n)).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).kind).toBe("limiter_unavailable");
      const took = performance.now() - started;
      expect(took).toBeGreaterThanOrEqual(95);
      expect(took).toBeLessThan(1_000);
    } finally {
      redis.resume();
    }
  });

  it("counts a slot taken behind a busy loop, and gives it back on settle", async () => {
    const redis = await startRedis();
    const q = await quota(redis.url, 20, 1);
    const first = q.take(subject, 0, 0n);
    spin(60);
    const ticket = await first;
    await expect(Promise.resolve(q.take(subject, 0, 0n))).rejects.toMatchObject({ kind: "rate_limited" });
    ticket.settle(0, 0n);
    await expect.poll(async () => {
      try {
        (await q.take(subject, 0, 0n)).settle(0, 0n);
        return "taken";
      } catch (err) {
        return (err as GatewayError).kind;
      }
    }, { timeout: 2_000 }).toBe("taken");
  });
});
