// The Redis cache store against a real redis-server (test/support/redis.ts):
// each test starts its own on a free port, persistence off. A second, plain
// ioredis client looks at the raw bytes the store wrote.

import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../src/log.js";
import { createRedisCacheStore, redactRedisUrl, type RedisCacheStore, type RedisStoreOptions } from "../../src/cache/redis-store.js";
import { startRedis, TEST_REDIS_CA } from "../support/redis.js";

const TIMEOUT_MS = 50;
/** How late past timeoutMs a rejection may come on a busy 2-core machine. */
const SLACK_MS = 150;
const open: Array<{ close(): Promise<void> } | Redis> = [];

afterEach(async () => {
  for (const c of open.splice(0)) {
    if (c instanceof Redis) c.disconnect();
    else await c.close();
  }
});

async function store(url: string, options: Partial<RedisStoreOptions> = {}): Promise<RedisCacheStore> {
  const s = createRedisCacheStore({ url, timeoutMs: TIMEOUT_MS, ...options });
  open.push(s);
  expect(await s.ready(5000)).toBe(true);
  return s;
}

function raw(url: string): Redis {
  const r = new Redis(url);
  open.push(r);
  return r;
}

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined) => (value === undefined ? undefined : new TextDecoder().decode(value));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How long the promise takes to settle, and whether it rejected. */
async function timed(p: Promise<unknown>): Promise<{ ms: number; rejected: boolean }> {
  const start = performance.now();
  const rejected = await p.then(() => false, () => true);
  return { ms: performance.now() - start, rejected };
}

function largeJson(size: number): Uint8Array {
  const words = ["cache", "redis", "answer", "model", "token", "stream", "gateway", "prompt"];
  let content = "";
  for (let i = 0; content.length < size; i++) content += words[(i * 7) % words.length] + (i % 13 === 0 ? ".\n" : " ");
  return bytes(JSON.stringify({ id: "chatcmpl-1", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content } }] }));
}

describe("Redis cache store", () => {
  it("returns what was set, under the key prefix, and undefined for a key never set", async () => {
    const redis = await startRedis();
    const s = await store(redis.url);
    await s.set("k1", bytes("hello"), 60_000);
    expect(text(await s.get("k1"))).toBe("hello");
    expect(await s.get("never-set")).toBeUndefined();
    expect(await raw(redis.url).keys("*")).toEqual(["gatewayz:cache:k1"]);
    expect(s.stats()).toBeUndefined();
  });

  it("says with getWithTtl how long an entry has left (for the memory front), and undefined for an absent key", async () => {
    const redis = await startRedis();
    const s = await store(redis.url);
    await s.set("k", bytes("v"), 5000);
    const found = await s.getWithTtl("k");
    expect(text(found?.value)).toBe("v");
    expect(found!.ttlMs).toBeGreaterThan(4000); // PTTL, a moment after the write
    expect(found!.ttlMs).toBeLessThanOrEqual(5000);
    expect(await s.getWithTtl("never-set")).toBeUndefined();
  });

  it("replaces an entry, and deletes it", async () => {
    const redis = await startRedis();
    const s = await store(redis.url, { keyPrefix: "t:" });
    await s.set("k", bytes("one"), 60_000);
    await s.set("k", bytes("two"), 60_000);
    expect(text(await s.get("k"))).toBe("two");
    await s.delete("k");
    expect(await s.get("k")).toBeUndefined();
    await s.delete("k"); // no entry: still fine
  });

  it("lets an entry expire after its TTL (PX)", async () => {
    const redis = await startRedis();
    const s = await store(redis.url);
    await s.set("short", bytes("v"), 150);
    const pttl = await raw(redis.url).pttl("gatewayz:cache:short");
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(150);
    expect(text(await s.get("short"))).toBe("v");
    await sleep(300);
    expect(await s.get("short")).toBeUndefined();
  });

  it("compresses a value above 4 KiB and not a small one; both come back byte for byte", async () => {
    const redis = await startRedis();
    const s = await store(redis.url);
    const r = raw(redis.url);
    const large = largeJson(20_000);
    const small = bytes('{"small":true}');
    await s.set("large", large, 60_000);
    await s.set("small", small, 60_000);

    const storedLarge = (await r.getBuffer("gatewayz:cache:large"))!;
    expect(storedLarge[0]).toBe(1);
    expect(storedLarge.byteLength).toBeLessThan(large.byteLength / 3);
    const storedSmall = (await r.getBuffer("gatewayz:cache:small"))!;
    expect([...storedSmall]).toEqual([0, ...small]);

    expect(Buffer.from((await s.get("large"))!).equals(Buffer.from(large))).toBe(true);
    expect(Buffer.from((await s.get("small"))!).equals(Buffer.from(small))).toBe(true);
    const binary = new Uint8Array(randomBytes(10_000)); // incompressible, still round-trips
    await s.set("binary", binary, 60_000);
    expect(Buffer.from((await s.get("binary"))!).equals(Buffer.from(binary))).toBe(true);
  });

  it("treats an entry with an unknown marker or bad compressed data as a miss, with a warning", async () => {
    const redis = await startRedis();
    const lines: string[] = [];
    const s = await store(redis.url, { log: createLogger("warn", (l) => lines.push(l)) });
    const r = raw(redis.url);
    await r.set("gatewayz:cache:marker", Buffer.from([9, 1, 2, 3]));
    await r.set("gatewayz:cache:deflate", Buffer.concat([Buffer.of(1), Buffer.from("not deflate data at all")]));
    await r.set("gatewayz:cache:empty", Buffer.alloc(0));
    for (const key of ["marker", "deflate", "empty"]) expect(await s.get(key)).toBeUndefined();
    expect(lines.filter((l) => l.includes("unreadable entry"))).toHaveLength(3);
  });

  it("is shared: two stores (as two gateway processes) see each other's entries", async () => {
    const redis = await startRedis();
    const a = await store(redis.url);
    const b = await store(redis.url);
    await a.set("from-a", largeJson(8000), 60_000);
    await b.set("from-b", bytes("b"), 60_000);
    expect((await b.get("from-a"))?.byteLength).toBe(largeJson(8000).byteLength);
    expect(text(await a.get("from-b"))).toBe("b");
    await b.delete("from-a");
    expect(await a.get("from-a")).toBeUndefined();
  });

  it("authenticates with the password in the URL, and never logs it", async () => {
    const redis = await startRedis({ requirepass: "s3cret-pass" });
    expect(redis.url).toContain(":s3cret-pass@");
    const s = await store(redis.url);
    await s.set("k", bytes("v"), 60_000);
    expect(text(await s.get("k"))).toBe("v");

    const lines: string[] = [];
    const wrong = createRedisCacheStore({ url: redis.url.replace("s3cret-pass", "wrong-pass"), timeoutMs: TIMEOUT_MS, log: createLogger("debug", (l) => lines.push(l)) });
    open.push(wrong);
    expect(await wrong.ready(500)).toBe(false);
    await expect(wrong.get("k")).rejects.toThrow();
    expect(lines.join("\n")).toMatch(/Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ unavailable/);
    expect(lines.join("\n")).not.toContain("wrong-pass");
    expect(redactRedisUrl("rediss://user:p%40ss@redis.example:6380/2")).toBe("rediss://user:***@redis.example:6380/2");
  });

  it("speaks TLS with a rediss:// URL, verifying the server's certificate", async () => {
    const redis = await startRedis({ tls: true, requirepass: "tls-pass" });
    expect(redis.url).toMatch(/^rediss:\/\/:tls-pass@127\.0\.0\.1:\d+$/);
    const s = await store(redis.url, { tls: { ca: TEST_REDIS_CA() } });
    await s.set("k", largeJson(6000), 60_000);
    expect((await s.get("k"))?.byteLength).toBe(largeJson(6000).byteLength);

    const untrusting = createRedisCacheStore({ url: redis.url, timeoutMs: TIMEOUT_MS }); // the system CAs do not know this one
    open.push(untrusting);
    expect(await untrusting.ready(500)).toBe(false);
    await expect(untrusting.get("k")).rejects.toThrow();
  });

  it("rejects within the timeout once Redis is killed, and works again after it restarts, without a new store", async () => {
    const redis = await startRedis();
    const lines: string[] = [];
    const s = await store(redis.url, { log: createLogger("info", (l) => lines.push(l)) });
    await s.set("k", bytes("before"), 60_000);
    await redis.kill();

    for (const call of [() => s.get("k"), () => s.set("k", bytes("v"), 60_000), () => s.delete("k")]) {
      const r = await timed(call());
      expect(r.rejected).toBe(true);
      expect(r.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    }

    await redis.restart(); // an empty server on the same port: the old entry is gone with it
    expect(await s.ready(5000)).toBe(true);
    expect(await s.get("k")).toBeUndefined();
    await s.set("k", bytes("after"), 60_000);
    expect(text(await s.get("k"))).toBe("after");
    // One warning for the outage and one line when it is over, not one per call or reconnect attempt.
    expect(lines.filter((l) => l.includes("unavailable"))).toHaveLength(1);
    expect(lines.filter((l) => l.includes("reconnected"))).toHaveLength(1);
  });

  it("rejects within the timeout when Redis hangs (SIGSTOP), drops the dead socket, and answers again when it resumes", async () => {
    const redis = await startRedis();
    const lines: string[] = [];
    const s = await store(redis.url, { log: createLogger("info", (l) => lines.push(l)) });
    await s.set("k", bytes("v"), 60_000);
    redis.pause();
    try {
      for (const call of [() => s.get("k"), () => s.set("k2", largeJson(10_000), 60_000)]) {
        const r = await timed(call());
        expect(r.rejected).toBe(true);
        expect(r.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
        expect(r.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
      }
      // Past the socket timeout (1 s) the store gives the connection up; calls still reject in time.
      await sleep(1200);
      expect(lines.join("\n")).toMatch(/unavailable, serving misses until it is back: Socket timeout/);
      const r = await timed(s.get("k"));
      expect(r.rejected).toBe(true);
      expect(r.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    } finally {
      redis.resume();
    }
    expect(await s.ready(5000)).toBe(true);
    expect(text(await s.get("k"))).toBe("v");
  });

  it("rejects within the timeout while Redis is busy (DEBUG SLEEP)", async () => {
    const redis = await startRedis();
    const s = await store(redis.url);
    const admin = raw(redis.url);
    const sleeping = admin.call("DEBUG", "SLEEP", "0.5").catch((e: Error) => e);
    await sleep(20);
    const r = await timed(s.get("k"));
    expect(r.rejected).toBe(true);
    expect(r.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    await sleeping;
  });

  it("closes promptly, even when Redis is gone", async () => {
    const redis = await startRedis();
    const s = createRedisCacheStore({ url: redis.url, timeoutMs: TIMEOUT_MS });
    expect(await s.ready(5000)).toBe(true);
    await redis.kill();
    const r = await timed(s.close());
    expect(r.rejected).toBe(false);
    expect(r.ms).toBeLessThan(TIMEOUT_MS * 4 + SLACK_MS);
    await expect(s.get("k")).rejects.toThrow();
  });
});
