// Circuit breakers shared through Redis (src/core/shared-breakers.ts) against a real
// redis-server (test/support/redis.ts: a free port, killed after each test). Each "replica"
// is its own createBreakers and createSharedBreakers, with its own two connections, in this
// one process: what one opens, the others must hold open, and what one closes, they close.
// Cool-downs are short (hundreds of ms) and waits are polls with deadlines, not fixed sleeps.

import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { createBreakers } from "../../src/core/circuit-breaker.js";
import { createSharedBreakers, type SharedBreakers } from "../../src/redis/shared-breakers.js";
import { createLogger } from "../../src/log.js";
import { startRedis } from "../support/redis.js";

const toClose: Array<SharedBreakers | Redis> = [];
afterEach(async () => {
  for (const c of toClose.splice(0)) {
    if (c instanceof Redis) c.disconnect();
    else await c.close();
  }
});

interface ReplicaOptions {
  id?: string;
  threshold?: number;
  cooldownMs?: number;
  /** The wall clock of the local breaker. */
  clock?: () => number;
  /** The monotonic clock of the wrapper. */
  now?: () => number;
}

/** One replica: its local breakers, the shared wrapper, its log lines and what its listener heard. */
async function replica(url: string, o: ReplicaOptions = {}) {
  const lines: string[] = [];
  const log = createLogger("debug", (l) => lines.push(l));
  const local = createBreakers(o.threshold ?? 2, o.cooldownMs ?? 600, log, o.clock);
  const shared = createSharedBreakers(local, {
    url, log, timeoutMs: 200, ...(o.id ? { replicaId: o.id } : {}), ...(o.now ? { now: o.now } : {}),
  });
  toClose.push(shared);
  const heard: string[] = [];
  shared.onChange((p, s) => heard.push(`${p}:${s}`));
  expect(await shared.ready(5000)).toBe(true);
  return { shared, local, lines, heard };
}

function raw(url: string): Redis {
  const r = new Redis(url);
  toClose.push(r);
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 5 ms; the time it took, or a failure after `withinMs`. */
async function eventually(what: string, cond: () => boolean, withinMs: number): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (cond()) return performance.now() - start;
    if (performance.now() - start > withinMs) throw new Error(`${what}: not within ${withinMs} ms`);
    await sleep(5);
  }
}

function openOn(r: { shared: SharedBreakers }, provider: string, failures = 2) {
  for (let i = 0; i < failures; i++) r.shared.failure(provider);
  expect(r.shared.state(provider)).toBe("open");
}

describe("shared circuit breakers", () => {
  it("an opening on A reaches B within 200 ms: B holds it open for what A has left, and B's listener hears it", async () => {
    const redis = await startRedis();
    const a = await replica(redis.url, { id: "A", cooldownMs: 800 });
    const b = await replica(redis.url, { id: "B", cooldownMs: 800 });

    openOn(a, "dashscope");
    const took = await eventually("B sees the circuit open", () => b.shared.state("dashscope") === "open", 200);
    expect(took).toBeLessThan(200);
    expect(b.shared.tryAcquire("dashscope")).toBe(false);
    const left = { a: a.shared.retryInMs("dashscope"), b: b.shared.retryInMs("dashscope") };
    expect(left.b).toBeGreaterThan(0);
    expect(Math.abs(left.b - left.a)).toBeLessThan(100);
    expect(b.heard).toEqual(["dashscope:open"]);
    // Forced in the wrapper only: B's own breaker saw nothing, and other providers are untouched.
    expect(b.local.state("dashscope")).toBe("closed");
    expect(b.shared.state("openrouter")).toBe("closed");
    expect(b.shared.tryAcquire("openrouter")).toBe(true);

    // The record for replicas that start later: Redis's time, the time left as its TTL.
    const r = raw(redis.url);
    expect(await r.keys("*")).toEqual(["gatewayz:circuit:dashscope"]);
    const record = JSON.parse((await r.get("gatewayz:circuit:dashscope"))!) as Record<string, unknown>;
    expect(record.by).toBe("A");
    // The cool-down as A's breaker had it left the instant it opened (a millisecond may have passed).
    expect(record.cooldownMs).toBeGreaterThan(780);
    expect(record.cooldownMs).toBeLessThanOrEqual(800);
    expect(record.until as number - (record.openedAt as number)).toBe(record.cooldownMs);
    // Redis's clock (TIME), in ms.
    const [seconds] = await r.time();
    expect(Math.abs((record.openedAt as number) - Number(seconds) * 1000)).toBeLessThan(2000);
    const ttl = await r.pttl("gatewayz:circuit:dashscope");
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(800);
    // A published it and did not take its own event for another's.
    expect(a.heard).toEqual(["dashscope:open"]);
    expect(a.lines.filter((l) => l.includes("opened by replica"))).toEqual([]);
  });

  it("after the forced time B is half-open (one probe at a time); B's failed probe opens it again on B and on A", async () => {
    const redis = await startRedis();
    const a = await replica(redis.url, { id: "A", threshold: 3, cooldownMs: 400 });
    const b = await replica(redis.url, { id: "B", threshold: 3, cooldownMs: 400 });

    openOn(a, "p", 3);
    await eventually("B open", () => b.shared.state("p") === "open", 200);
    // Its cool-down ends on a timer: the listener hears half-open with no request.
    await eventually("B half-open", () => b.heard.includes("p:half_open"), 1000);
    expect(b.shared.state("p")).toBe("half_open");
    expect(b.shared.retryInMs("p")).toBe(0);
    expect(b.shared.tryAcquire("p")).toBe(true);
    expect(b.shared.tryAcquire("p")).toBe(false);
    b.shared.neutral("p"); // the probe told nothing: the slot is free again
    expect(b.shared.tryAcquire("p")).toBe(true);
    expect(b.shared.tryAcquire("p")).toBe(false);

    // A is half-open by now too; B's probe fails: open again on B for the cool-down, and on A.
    await eventually("A half-open", () => a.shared.state("p") === "half_open", 1000);
    b.shared.failure("p");
    expect(b.shared.state("p")).toBe("open");
    expect(b.shared.retryInMs("p")).toBeGreaterThan(300);
    await eventually("A open again", () => a.shared.state("p") === "open", 200);
    expect(a.shared.tryAcquire("p")).toBe(false);
    expect(a.heard).toEqual(["p:open", "p:half_open", "p:open"]);
    expect(b.heard).toEqual(["p:open", "p:half_open", "p:open"]);
  });

  it("a replica started after the opening learns it as it starts", async () => {
    const redis = await startRedis();
    const a = await replica(redis.url, { id: "A", cooldownMs: 800 });
    openOn(a, "p");
    const r = raw(redis.url);
    for (let i = 0; i < 40 && (await r.exists("gatewayz:circuit:p")) === 0; i++) await sleep(5);

    // ready() resolves once the records are read: open from its very first request.
    const c = await replica(redis.url, { id: "C", cooldownMs: 800 });
    expect(c.shared.state("p")).toBe("open");
    expect(c.shared.tryAcquire("p")).toBe(false);
    expect(Math.abs(c.shared.retryInMs("p") - a.shared.retryInMs("p"))).toBeLessThan(100);
    expect(c.heard).toEqual(["p:open"]);
    expect(c.lines.some((l) => /info +circuit for p opened by replica A; skipping it for/.test(l))).toBe(true);
  });

  it("a probe that succeeds on A, after the cool-down, closes the circuit on B and C too", async () => {
    const redis = await startRedis();
    const a = await replica(redis.url, { id: "A", cooldownMs: 400 });
    const b = await replica(redis.url, { id: "B", cooldownMs: 400 });
    openOn(a, "p");
    await eventually("B open", () => b.shared.state("p") === "open", 200);
    const c = await replica(redis.url, { id: "C", cooldownMs: 400 });
    expect(c.shared.state("p")).toBe("open");

    await eventually("A half-open", () => a.shared.state("p") === "half_open", 1000);
    expect(a.shared.tryAcquire("p")).toBe(true);
    a.shared.success("p");
    expect(a.shared.state("p")).toBe("closed");
    await eventually("B and C closed", () => b.shared.state("p") === "closed" && c.shared.state("p") === "closed", 200);
    expect(b.shared.tryAcquire("p")).toBe(true);
    expect(b.shared.tryAcquire("p")).toBe(true); // closed, not half-open: no probe limit
    expect(b.heard.at(-1)).toBe("p:closed");
    expect(c.heard.at(-1)).toBe("p:closed");
    expect(await raw(redis.url).exists("gatewayz:circuit:p")).toBe(0);
    expect(b.lines.some((l) => l.includes("circuit for p closed by replica A"))).toBe(true);
  });

  it("a close event ends only a forced open: a replica's own open circuit waits for its own probe", async () => {
    const redis = await startRedis();
    const a = await replica(redis.url, { id: "A", cooldownMs: 2000 });
    const b = await replica(redis.url, { id: "B", cooldownMs: 2000 });
    openOn(a, "p");
    await eventually("B open", () => b.shared.state("p") === "open", 200);
    openOn(b, "p"); // B saw the failures itself too
    // A request A let through before its opening answered after all: A closes, and says so.
    a.shared.success("p");
    await eventually("B hears the close", () => b.lines.some((l) => l.includes("circuit for p closed by replica A")), 200);
    expect(b.shared.state("p")).toBe("open");
    expect(b.local.state("p")).toBe("open");
    expect(b.shared.tryAcquire("p")).toBe(false);
  });

  it("a success that closes B's own circuit closes it on A too, as A's probe would", async () => {
    const redis = await startRedis();
    const a = await replica(redis.url, { id: "A", cooldownMs: 2000 });
    const b = await replica(redis.url, { id: "B", cooldownMs: 2000 });
    openOn(b, "p");
    await eventually("A open", () => a.shared.state("p") === "open", 200);
    // A request B let through before the opening answered after all: B's circuit closes, and A's.
    b.shared.success("p");
    await eventually("A closed", () => a.shared.state("p") === "closed", 200);
    expect(a.heard).toEqual(["p:open", "p:closed"]);
  });

  it("Redis killed: each replica goes on alone, nothing throws or waits; restarted, sharing resumes, openings made meanwhile included", async () => {
    const password = "s3cret-circuit-pass";
    const redis = await startRedis({ requirepass: password });
    const a = await replica(redis.url, { id: "A", cooldownMs: 4000 });
    const b = await replica(redis.url, { id: "B", cooldownMs: 4000 });

    await redis.kill();
    await eventually("A notices", () => a.lines.some((l) => l.includes("unavailable")), 3000);
    await eventually("B notices", () => b.lines.some((l) => l.includes("unavailable")), 3000);
    const start = performance.now();
    openOn(a, "p"); // the local threshold still opens locally
    expect(a.shared.tryAcquire("p")).toBe(false);
    openOn(b, "q");
    for (let i = 0; i < 100; i++) {
      a.shared.tryAcquire("r");
      a.shared.success("r");
      a.shared.neutral("r");
    }
    expect(performance.now() - start).toBeLessThan(50); // synchronous: nothing waited on Redis
    await sleep(200);
    expect(b.shared.state("p")).toBe("closed");
    expect(a.shared.state("q")).toBe("closed");

    await redis.restart(); // a fresh, empty Redis on the same port
    expect(await a.shared.ready(5000)).toBe(true);
    expect(await b.shared.ready(5000)).toBe(true);
    // Each republishes what it opened while Redis was away.
    await eventually("B learns p, A learns q", () => b.shared.state("p") === "open" && a.shared.state("q") === "open", 500);
    // And new openings travel again.
    openOn(a, "s");
    await eventually("B sees s", () => b.shared.state("s") === "open", 200);

    for (const r of [a, b]) {
      const redisLines = r.lines.filter((l) => l.includes("Redis at"));
      expect(redisLines).toHaveLength(2);
      expect(redisLines[0]).toMatch(/ warn +circuits: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/? unavailable, each replica's circuits on their own/);
      expect(redisLines[1]).toMatch(/ info +circuits: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/? reconnected, circuits shared again/);
      expect(r.lines.join("\n")).not.toContain(password);
    }
  });

  it("Redis hung (SIGSTOP): calls stay synchronous and local; when it answers again, sharing goes on", async () => {
    const redis = await startRedis();
    const a = await replica(redis.url, { id: "A", cooldownMs: 600 });
    const b = await replica(redis.url, { id: "B", cooldownMs: 600 });
    redis.pause();
    const start = performance.now();
    openOn(a, "p");
    expect(a.shared.tryAcquire("p")).toBe(false);
    expect(performance.now() - start).toBeLessThan(20);
    await sleep(300);
    redis.resume();
    openOn(a, "q");
    await eventually("B sees q", () => b.shared.state("q") === "open", 2000);
  });

  it("a replica whose clocks are 10 minutes off agrees on what is open and for how long (Redis TIME, durations)", async () => {
    const redis = await startRedis();
    const skew = 10 * 60_000;
    const a = await replica(redis.url, { id: "A", cooldownMs: 800 });
    const b = await replica(redis.url, { id: "B", cooldownMs: 800, clock: () => Date.now() + skew, now: () => performance.now() + skew });

    openOn(a, "p");
    await eventually("B open", () => b.shared.state("p") === "open", 200);
    expect(Math.abs(b.shared.retryInMs("p") - a.shared.retryInMs("p"))).toBeLessThan(100);
    openOn(b, "q");
    await eventually("A open", () => a.shared.state("q") === "open", 200);
    expect(Math.abs(a.shared.retryInMs("q") - b.shared.retryInMs("q"))).toBeLessThan(100);
    // A replica skewed the other way, started later, reads the records right as well.
    const c = await replica(redis.url, { id: "C", cooldownMs: 800, clock: () => Date.now() - skew, now: () => performance.now() - skew });
    expect(c.shared.state("q")).toBe("open");
    expect(Math.abs(c.shared.retryInMs("q") - b.shared.retryInMs("q"))).toBeLessThan(100);

    // The forced opens end when the openers' do, not 10 minutes early or late.
    await eventually("B half-open on p", () => b.shared.state("p") === "half_open", 1500);
    expect(a.shared.state("p")).toBe("half_open");
    await eventually("A and C half-open on q", () => a.shared.state("q") === "half_open" && c.shared.state("q") === "half_open", 300);
    expect(b.shared.state("q")).toBe("half_open");
  });

  it("close() quits both connections and leaves the local breakers working", async () => {
    const redis = await startRedis();
    const a = await replica(redis.url, { id: "A" });
    const r = raw(redis.url);
    const names = async () => (await r.client("LIST") as string).split("\n").map((l) => /name=(\S*)/.exec(l)?.[1]).filter(Boolean);
    expect((await names()).sort()).toEqual(["gatewayz-circuits", "gatewayz-circuits-events"]);
    await a.shared.close();
    for (let i = 0; i < 100 && (await names()).length > 0; i++) await sleep(10);
    expect(await names()).toEqual([]);
    openOn(a, "p");
    expect(await a.shared.ready(50)).toBe(false);
  });
});
