// The rate limiter over a real policy and a real SQLite store, with an injected
// clock: exact counts per window, roll-over, scopes, rows overriding defaults,
// changes from another connection, and failing closed.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { QuotaFailureSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { Config, LimitDefaults } from "../../src/config.js";
import { createLimiter, formatDuration, rateLimitHeaders, type Subject } from "../../src/core/limiter.js";
import { createPolicy } from "../../src/core/policy.js";
import { GatewayError } from "../../src/errors.js";
import { openDb, type Db } from "../../src/storage/db.js";
import { createLimitStore } from "../../src/storage/limits.js";

const NONE: LimitDefaults = { rpm: 0, tpm: 0, rpd: 0, concurrent: 0 };
// 10 s into a UTC minute (and 10 s into a UTC day): windows end 50 s later.
const T0 = Date.UTC(2026, 0, 15, 0, 0, 10);

const K1: Subject = { keyId: "key_1", userId: "usr_a" };
const K2: Subject = { keyId: "key_2", userId: "usr_a" };
const K3: Subject = { keyId: "key_3", userId: "usr_b" };

const dbs: Db[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function defaults(over: Partial<Record<keyof Config["limits"], Partial<LimitDefaults>>> = {}): Config["limits"] {
  return { key: { ...NONE, ...over.key }, user: { ...NONE, ...over.user }, system: { ...NONE, ...over.system } };
}

function setup(limits: Config["limits"], path = ":memory:") {
  const db = openDb(path);
  dbs.push(db);
  const store = createLimitStore(db);
  const clock = { t: T0 };
  const limiter = createLimiter(createPolicy(store, limits), () => clock.t);
  return { db, store, clock, limiter };
}

/** The error an acquire throws; fails the test if it admits instead. */
function refusal(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error("the request was admitted; expected a refusal");
}

describe("requests per minute", () => {
  it("admits exactly N and refuses the N+1th with Retry-After, x-ratelimit-* and google.rpc details", () => {
    const { limiter } = setup(defaults({ key: { rpm: 3 } }));
    const snapshots = [1, 2, 3].map(() => limiter.acquire(K1, 10).snapshot);
    expect(snapshots.map((s) => s.requests?.remaining)).toEqual([2, 1, 0]);
    expect(snapshots[0]!.requests).toEqual({ limit: 3, remaining: 2, resetMs: 50_000 });

    const err = refusal(() => limiter.acquire(K1, 10));
    expect(err.kind).toBe("rate_limited");
    expect(err.openaiType).toBe("requests");
    expect(err.rawMessage).toMatch(/3 requests per minute for this key/);
    expect(err.metadata.get("retry-after")).toBe("50");
    expect(err.metadata.get("x-ratelimit-limit-requests")).toBe("3");
    expect(err.metadata.get("x-ratelimit-remaining-requests")).toBe("0");
    expect(err.metadata.get("x-ratelimit-reset-requests")).toBe("50s");
    // No token limit is configured, so no token headers.
    expect(err.metadata.get("x-ratelimit-limit-tokens")).toBeNull();

    const [retry] = err.findDetails(RetryInfoSchema);
    expect(retry?.retryDelay?.seconds).toBe(50n);
    expect(retry?.retryDelay?.nanos).toBe(0);
    const [quota] = err.findDetails(QuotaFailureSchema);
    expect(quota?.violations.map((v) => ({ subject: v.subject, description: v.description })))
      .toEqual([{ subject: "key:key_1", description: "3 requests per minute" }]);
  });

  it("a refused request takes nothing: the count stays at the limit", () => {
    const { limiter, clock } = setup(defaults({ key: { rpm: 2 } }));
    limiter.acquire(K1, 1);
    limiter.acquire(K1, 1);
    for (let i = 0; i < 5; i++) refusal(() => limiter.acquire(K1, 1));
    clock.t += 50_000; // the next minute
    expect(limiter.acquire(K1, 1).snapshot.requests).toEqual({ limit: 2, remaining: 1, resetMs: 60_000 });
  });

  it("rolls over at the UTC minute boundary, not 60 s after the first request", () => {
    const { limiter, clock } = setup(defaults({ key: { rpm: 2 } }));
    limiter.acquire(K1, 1);
    limiter.acquire(K1, 1);
    clock.t = T0 + 49_999; // still the same minute
    const err = refusal(() => limiter.acquire(K1, 1));
    expect(err.metadata.get("retry-after")).toBe("1");
    expect(err.metadata.get("x-ratelimit-reset-requests")).toBe("1ms");
    clock.t = T0 + 50_000; // the next minute starts
    limiter.acquire(K1, 1);
    limiter.acquire(K1, 1);
    refusal(() => limiter.acquire(K1, 1));
  });
});

describe("requests per day", () => {
  it("counts per UTC day and reports the time until midnight", () => {
    const { limiter, clock } = setup(defaults({ key: { rpd: 2 } }));
    limiter.acquire(K1, 1);
    clock.t += 3_600_000; // an hour later, a new minute, the same day
    limiter.acquire(K1, 1);
    clock.t += 3_600_000;
    const err = refusal(() => limiter.acquire(K1, 1));
    expect(err.rawMessage).toMatch(/2 requests per day/);
    const untilMidnight = 86_400_000 - 10_000 - 2 * 3_600_000;
    expect(err.metadata.get("retry-after")).toBe(String(untilMidnight / 1000));
    expect(err.metadata.get("x-ratelimit-reset-requests")).toBe("21h59m50s");
    clock.t = Date.UTC(2026, 0, 16, 0, 0, 0);
    limiter.acquire(K1, 1);
  });

  it("reports the tighter of rpm and rpd in the request headers", () => {
    const { limiter } = setup(defaults({ key: { rpm: 10, rpd: 3 } }));
    expect(limiter.acquire(K1, 1).snapshot.requests).toMatchObject({ limit: 3, remaining: 2 });
  });
});

describe("tokens per minute", () => {
  it("reserves the estimate, then settles to the actual use, lowering or raising it", () => {
    const { limiter } = setup(defaults({ key: { tpm: 1000 } }));
    const p1 = limiter.acquire(K1, 100);
    expect(p1.snapshot.tokens).toEqual({ limit: 1000, remaining: 900, resetMs: 50_000 });
    p1.settle(40); // used less than reserved: 40 in the window
    const p2 = limiter.acquire(K1, 10);
    expect(p2.snapshot.tokens?.remaining).toBe(1000 - 40 - 10);
    p2.settle(500); // used more than reserved: 540 in the window
    p2.settle(0); // settling twice changes nothing
    const p3 = limiter.acquire(K1, 460);
    expect(p3.snapshot.tokens?.remaining).toBe(0);
    const err = refusal(() => limiter.acquire(K1, 1));
    expect(err.kind).toBe("rate_limited");
    expect(err.openaiType).toBe("tokens");
    expect(err.metadata.get("x-ratelimit-limit-tokens")).toBe("1000");
    expect(err.metadata.get("x-ratelimit-remaining-tokens")).toBe("0");
    expect(err.metadata.get("x-ratelimit-reset-tokens")).toBe("50s");
    expect(err.rawMessage).toMatch(/1000 tokens per minute/);
  });

  it("refuses a single request bigger than the limit with a message saying to lower max_tokens", () => {
    const { limiter } = setup(defaults({ key: { tpm: 1000 } }));
    const err = refusal(() => limiter.acquire(K1, 1001));
    expect(err.kind).toBe("rate_limited");
    expect(err.rawMessage).toMatch(/1001 tokens/);
    expect(err.rawMessage).toMatch(/lower max_tokens/);
    // And nothing was taken: a request that fits still passes.
    expect(limiter.acquire(K1, 1000).snapshot.tokens?.remaining).toBe(0);
  });

  it("a reservation made in a window that has closed does not touch the new window", () => {
    const { limiter, clock } = setup(defaults({ key: { tpm: 100 } }));
    const p = limiter.acquire(K1, 100);
    clock.t += 60_000;
    p.settle(0);
    const q = limiter.acquire(K1, 100);
    expect(q.snapshot.tokens?.remaining).toBe(0);
  });
});

describe("concurrent requests", () => {
  it("holds a slot until settled; settling twice frees only one slot", () => {
    const { limiter } = setup(defaults({ key: { concurrent: 2 } }));
    const p1 = limiter.acquire(K1, 1);
    limiter.acquire(K1, 1);
    const err = refusal(() => limiter.acquire(K1, 1));
    expect(err.kind).toBe("rate_limited");
    expect(err.rawMessage).toMatch(/2 concurrent requests/);
    expect(err.metadata.get("retry-after")).toBe("1");
    p1.settle(0);
    limiter.acquire(K1, 1);
    p1.settle(0);
    refusal(() => limiter.acquire(K1, 1));
  });
});

describe("scopes", () => {
  it("two keys of one user share the user's limit; another user does not", () => {
    const { limiter } = setup(defaults({ user: { rpm: 3 } }));
    limiter.acquire(K1, 1);
    limiter.acquire(K1, 1);
    limiter.acquire(K2, 1);
    const err = refusal(() => limiter.acquire(K2, 1));
    expect(err.rawMessage).toMatch(/for this user/);
    expect(err.findDetails(QuotaFailureSchema)[0]?.violations[0]?.subject).toBe("user:usr_a");
    refusal(() => limiter.acquire(K1, 1));
    for (let i = 0; i < 3; i++) limiter.acquire(K3, 1);
  });

  it("per-key limits are per key", () => {
    const { limiter } = setup(defaults({ key: { rpm: 1 } }));
    limiter.acquire(K1, 1);
    limiter.acquire(K2, 1);
    refusal(() => limiter.acquire(K1, 1));
    refusal(() => limiter.acquire(K2, 1));
  });

  it("the system limit counts every request", () => {
    const { limiter } = setup(defaults({ system: { rpm: 2 } }));
    limiter.acquire(K1, 1);
    limiter.acquire(K3, 1);
    const err = refusal(() => limiter.acquire(K2, 1));
    expect(err.rawMessage).toMatch(/for this gateway/);
    expect(err.findDetails(QuotaFailureSchema)[0]?.violations[0]?.subject).toBe("system");
  });

  it("a request refused by one scope takes nothing from the others", () => {
    const { limiter } = setup(defaults({ key: { rpm: 1 }, user: { rpm: 2 } }));
    limiter.acquire(K1, 1);
    refusal(() => limiter.acquire(K1, 1)); // key full: must not count against the user
    limiter.acquire(K2, 1);
    refusal(() => limiter.acquire(K2, 1));
  });
});

describe("rows in rate_limits", () => {
  it("override the defaults, field by field, and 0 means unlimited", () => {
    const { limiter, store } = setup(defaults({ key: { rpm: 2, concurrent: 1 } }));
    store.setLimits("key", K1.keyId, { rpm: 0 }); // concurrent still inherits 1
    store.setLimits("key", K2.keyId, { rpm: 1 });
    for (let i = 0; i < 20; i++) limiter.acquire(K1, 1).settle(0);
    refusal(() => (limiter.acquire(K1, 1), limiter.acquire(K1, 1))); // concurrent 1
    limiter.acquire(K2, 1).settle(0);
    refusal(() => limiter.acquire(K2, 1));
    // K3 has no row: the default of 2 applies.
    limiter.acquire(K3, 1).settle(0);
    limiter.acquire(K3, 1).settle(0);
    refusal(() => limiter.acquire(K3, 1));
  });

  it("a change through this process's store applies to the next acquire", () => {
    const { limiter, store } = setup(defaults({ key: { rpm: 1 } }));
    limiter.acquire(K1, 1);
    refusal(() => limiter.acquire(K1, 1));
    store.setLimits("key", K1.keyId, { rpm: 5 });
    limiter.acquire(K1, 1);
    store.setLimits("key", K1.keyId, { rpm: null }); // back to the default of 1
    refusal(() => limiter.acquire(K1, 1));
  });

  // The version is read once per event-loop turn (src/storage/db-version.ts): a
  // request that arrives after the commit is handled in a later turn.
  const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

  it("a change through another connection to the same file applies to the next acquire", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gatewayz-limiter-"));
    dirs.push(dir);
    const path = join(dir, "gw.db");
    const { limiter } = setup(defaults({ key: { rpm: 1 } }), path);
    const other = openDb(path); // like the CLI in another process
    dbs.push(other);
    const otherStore = createLimitStore(other);

    limiter.acquire(K1, 1);
    refusal(() => limiter.acquire(K1, 1));
    otherStore.setLimits("key", K1.keyId, { rpm: 3 });
    await nextTurn();
    limiter.acquire(K1, 1);
    limiter.acquire(K1, 1);
    refusal(() => limiter.acquire(K1, 1));
    otherStore.setLimits("user", K2.userId, { concurrent: 1 });
    await nextTurn();
    limiter.acquire(K2, 1);
    refusal(() => limiter.acquire(K2, 1));
  });
});

describe("failing closed", () => {
  it("refuses with limiter_unavailable when the policy's database cannot be read", async () => {
    const { limiter, db } = setup(defaults({ key: { rpm: 100 } }));
    limiter.acquire(K1, 1);
    db.close();
    await new Promise((resolve) => setImmediate(resolve)); // the next request: a later event-loop turn
    const err = refusal(() => limiter.acquire(K1, 1));
    expect(err.kind).toBe("limiter_unavailable");
    expect(err.rawMessage).toMatch(/rate limiter is unavailable/);
  });
});

describe("rate-limit headers", () => {
  it("renders OpenAI's six header names from a snapshot", () => {
    expect(rateLimitHeaders({
      requests: { limit: 60, remaining: 59, resetMs: 1000 },
      tokens: { limit: 150000, remaining: 149984, resetMs: 6 },
    })).toEqual({
      "x-ratelimit-limit-requests": "60",
      "x-ratelimit-remaining-requests": "59",
      "x-ratelimit-reset-requests": "1s",
      "x-ratelimit-limit-tokens": "150000",
      "x-ratelimit-remaining-tokens": "149984",
      "x-ratelimit-reset-tokens": "6ms",
    });
    expect(rateLimitHeaders({})).toEqual({});
  });

  it("formatDuration writes durations the way OpenAI's reset headers do", () => {
    expect(formatDuration(0)).toBe("0ms");
    expect(formatDuration(250)).toBe("250ms");
    expect(formatDuration(999)).toBe("999ms");
    expect(formatDuration(1000)).toBe("1s");
    expect(formatDuration(1500)).toBe("1.5s");
    expect(formatDuration(50_000)).toBe("50s");
    expect(formatDuration(60_000)).toBe("1m0s");
    expect(formatDuration(61_500)).toBe("1m1.5s");
    expect(formatDuration(3_600_000)).toBe("1h0m0s");
    expect(formatDuration(86_399_000)).toBe("23h59m59s");
  });

  it("formatDuration never shows a seconds part of 60 after rounding", () => {
    // 59.96 s rounds to 60.0 s at one decimal: "1m0s", never "60s" or "1m60s".
    expect(formatDuration(59_960)).toBe("1m0s");
    expect(formatDuration(119_960)).toBe("2m0s");
    expect(formatDuration(3_599_960)).toBe("1h0m0s");
  });
});
