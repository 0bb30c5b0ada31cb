import { describe, expect, it } from "vitest";
import { createBreakers, type Breakers } from "../../src/core/circuit-breaker.js";
import { withFailover, type FailoverDeps } from "../../src/core/failover.js";
import { GatewayError, type ErrorKind } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";
import type { Route } from "../../src/providers/provider-set.js";

// The loop reads only `provider` and `upstreamId` of a route.
const route = (provider: string) => ({ provider, upstreamId: `${provider}/qwen` }) as unknown as Route;
const routes = (...providers: string[]) => providers.map(route);

const retryable = (kind: ErrorKind, upstreamStatus?: number, retryAfterMs?: number) =>
  new GatewayError(kind, `${kind} from upstream`, { retryable: true, upstreamStatus, retryAfterMs });
const e502 = () => retryable("upstream_error", 502);
const e503 = () => retryable("upstream_unavailable", 503);
const e429 = (retryAfterMs?: number) => retryable("upstream_unavailable", 429, retryAfterMs);

const HANG = Symbol("hang");
type Outcome = string | GatewayError | typeof HANG;

/**
 * An attempt that answers from a script per provider, recording each call.
 * A hanging attempt honours its signal, as the real upstream client does.
 */
function scripted(plan: Record<string, Outcome[]>) {
  const calls: Array<{ provider: string; n: number; at: number }> = [];
  const signals: AbortSignal[] = [];
  const started = Date.now();
  const attempt = async (r: Route, signal: AbortSignal, n: number): Promise<string> => {
    calls.push({ provider: r.provider, n, at: Date.now() - started });
    signals.push(signal);
    const next = plan[r.provider]?.shift();
    if (next === undefined) throw new Error(`no outcome scripted for ${r.provider}`);
    if (next === HANG) {
      return new Promise((_, reject) => {
        if (signal.aborted) reject(signal.reason);
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    }
    if (next instanceof GatewayError) throw next;
    return next;
  };
  return { attempt, calls, signals, providers: () => calls.map((c) => c.provider) };
}

function deps(over: Partial<FailoverDeps> & { threshold?: number } = {}): FailoverDeps & { lines: string[] } {
  const lines: string[] = [];
  const log = createLogger("debug", (l) => lines.push(l));
  const breakers: Breakers = over.breakers ?? createBreakers(over.threshold ?? 5, 30_000, log);
  return { breakers, budgetMs: 5_000, retryAfterCapMs: 1_000, log, lines, ...over };
}

const live = () => new AbortController().signal;

/** The rejection of a promise, failing the test if it resolves. */
async function rejection(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(GatewayError);
    return e as GatewayError;
  }
  throw new Error("expected a rejection, but it resolved");
}

describe("withFailover: trying routes in order", () => {
  it("returns the first success with its route and the attempt count", async () => {
    const s = scripted({ a: ["from a"] });
    const rs = routes("a", "b");
    const won = await withFailover(rs, live(), deps(), s.attempt);
    expect(won.value).toBe("from a");
    expect(won.route).toBe(rs[0]);
    expect(won.attempts).toBe(1);
    expect(s.providers()).toEqual(["a"]);
  });

  it("moves on past retryable errors, in order, numbering the attempts", async () => {
    const s = scripted({ a: [e502()], b: [e503()], c: ["from c"], d: ["from d"] });
    const rs = routes("a", "b", "c", "d");
    const d = deps();
    const won = await withFailover(rs, live(), d, s.attempt);
    expect(won).toMatchObject({ value: "from c", attempts: 3 });
    expect(won.route).toBe(rs[2]);
    expect(s.calls.map((c) => [c.provider, c.n])).toEqual([["a", 1], ["b", 2], ["c", 3]]);
    expect(d.lines.filter((l) => / warn +attempt \d on /.test(l))).toHaveLength(2);
  });

  it("stops at once on a non-retryable error and throws it as is", async () => {
    const clientError = new GatewayError("invalid_request", "messages must not be empty", { upstreamStatus: 400 });
    const s = scripted({ a: [clientError], b: ["from b"] });
    const err = await rejection(withFailover(routes("a", "b"), live(), deps(), s.attempt));
    expect(err).toBe(clientError);
    expect(s.providers()).toEqual(["a"]);
  });

  it("counts a non-retryable error as the provider answering: its failure count resets", async () => {
    const d = deps({ threshold: 2 });
    d.breakers.failure("a");
    const s = scripted({ a: [new GatewayError("not_found", "no such model", { upstreamStatus: 404 })] });
    await rejection(withFailover(routes("a"), live(), d, s.attempt));
    d.breakers.failure("a");
    expect(d.breakers.state("a")).toBe("closed");
  });

  it("counts a retryable error against the provider's circuit", async () => {
    const d = deps({ threshold: 1 });
    const s = scripted({ a: [e502()], b: ["from b"] });
    await withFailover(routes("a", "b"), live(), d, s.attempt);
    expect(d.breakers.state("a")).toBe("open");
    expect(d.breakers.state("b")).toBe("closed");
  });

  it("charges the gateway's own failure (no upstream status) to no provider: its failure count neither grows nor resets", async () => {
    const d = deps({ threshold: 2 });
    d.breakers.failure("a");
    const s = scripted({ a: [new GatewayError("internal", "internal error")], b: ["from b"] });
    const err = await rejection(withFailover(routes("a", "b"), live(), d, s.attempt));
    expect(err.kind).toBe("internal");
    expect(s.providers()).toEqual(["a"]); // not retryable: the next provider would fail the same way
    expect(d.breakers.state("a")).toBe("closed");
    d.breakers.failure("a"); // the second consecutive failure: the internal error in between did not count as an answer
    expect(d.breakers.state("a")).toBe("open");
  });

  it("frees a half-open probe that failed inside the gateway, without closing or reopening the circuit", async () => {
    let now = 0;
    const log = createLogger("silent");
    const breakers = createBreakers(1, 1_000, log, () => now);
    breakers.failure("a");
    now = 1_000; // cooled down: half-open
    const s = scripted({ a: [new GatewayError("internal", "internal error"), "from a"] });
    await rejection(withFailover(routes("a"), live(), deps({ breakers }), s.attempt));
    expect(breakers.state("a")).toBe("half_open");
    const won = await withFailover(routes("a"), live(), deps({ breakers }), s.attempt); // the next request may probe
    expect(won.value).toBe("from a");
    expect(breakers.state("a")).toBe("closed");
  });

  it("converts anything else thrown into an internal error without its message", async () => {
    const attempt = async (): Promise<string> => { throw new Error("secret path /etc/key"); };
    const d = deps({ threshold: 1 });
    const err = await rejection(withFailover(routes("a", "b"), live(), d, attempt));
    expect(err.kind).toBe("internal");
    expect(err.rawMessage).not.toContain("secret");
    expect(d.breakers.state("a")).toBe("closed");
  });
});

describe("withFailover: the client's cancel", () => {
  it("stops at once with the cancel and tries no other provider", async () => {
    const client = new AbortController();
    const cancel = new GatewayError("cancelled", "the client cancelled the request");
    const s = scripted({ a: [HANG], b: ["from b"] });
    const attempt = (r: Route, signal: AbortSignal, n: number) =>
      s.attempt(r, signal, n).catch((e: unknown) => { throw signal.aborted && !(signal.reason instanceof GatewayError) ? cancel : e; });
    const d = deps({ threshold: 1 });
    setTimeout(() => client.abort(), 20);
    const t0 = Date.now();
    const err = await rejection(withFailover(routes("a", "b"), client.signal, d, attempt));
    expect(err).toBe(cancel);
    expect(Date.now() - t0).toBeLessThan(500);
    expect(s.providers()).toEqual(["a"]);
    // A cancel says nothing about the provider.
    expect(d.breakers.state("a")).toBe("closed");
  });

  it("stops with the cancel while waiting out a retry-after, trying nothing more", async () => {
    const client = new AbortController();
    const s = scripted({ a: [e429(400), "from a"], b: ["from b"] });
    setTimeout(() => client.abort(), 20);
    const t0 = Date.now();
    const result = withFailover(routes("a", "b"), client.signal, deps(), s.attempt);
    await expect(result).rejects.toBeInstanceOf(GatewayError);
    expect(Date.now() - t0).toBeLessThan(300);
    expect(s.providers()).toEqual(["a"]);
  });

  it("reports a cancel during a retry-after wait as a cancel, not as the provider's failure", async () => {
    const client = new AbortController();
    const s = scripted({ a: [e429(400), "from a"] });
    setTimeout(() => client.abort(), 20);
    const err = await rejection(withFailover(routes("a"), client.signal, deps(), s.attempt));
    expect(err.kind).toBe("cancelled");
    expect(s.providers()).toEqual(["a"]);
  });
});

describe("withFailover: open circuits", () => {
  it("skips a provider whose circuit is open", async () => {
    const d = deps({ threshold: 1 });
    d.breakers.failure("a");
    const s = scripted({ a: ["from a"], b: ["from b"] });
    const won = await withFailover(routes("a", "b"), live(), d, s.attempt);
    expect(won).toMatchObject({ value: "from b", attempts: 1 });
    expect(s.providers()).toEqual(["b"]);
  });

  it("names skipped providers in the final error", async () => {
    const d = deps({ threshold: 1 });
    d.breakers.failure("a");
    const s = scripted({ b: [e502()] });
    const err = await rejection(withFailover(routes("a", "b"), live(), d, s.attempt));
    expect(err.rawMessage).toContain("a (circuit open, retry in 30 s)");
    expect(err.rawMessage).toContain("b (502)");
  });

  it("answers upstream_unavailable, cooling down, when every circuit is open", async () => {
    const d = deps({ threshold: 1 });
    d.breakers.failure("a");
    d.breakers.failure("b");
    const s = scripted({});
    const err = await rejection(withFailover(routes("a", "b"), live(), d, s.attempt));
    expect(err.kind).toBe("upstream_unavailable");
    expect(err.rawMessage).toMatch(/cooling down/);
    expect(err.rawMessage).toContain("a (circuit open");
    expect(err.rawMessage).toContain("b (circuit open");
    expect(s.calls).toEqual([]);
  });
});

describe("withFailover: retry-after", () => {
  it("waits out a retry-after within the cap and retries the same provider once", async () => {
    const s = scripted({ a: [e429(120), "from a"], b: ["from b"] });
    const won = await withFailover(routes("a", "b"), live(), deps({ retryAfterCapMs: 1_000 }), s.attempt);
    expect(won).toMatchObject({ value: "from a", attempts: 2 });
    expect(s.providers()).toEqual(["a", "a"]);
    // Timers may fire up to a millisecond early by Date.now()'s reckoning.
    expect(s.calls[1]!.at - s.calls[0]!.at).toBeGreaterThanOrEqual(119);
  });

  it("retries the same provider only once, then moves on", async () => {
    const s = scripted({ a: [e429(10), e429(10)], b: ["from b"] });
    const won = await withFailover(routes("a", "b"), live(), deps(), s.attempt);
    expect(won).toMatchObject({ value: "from b", attempts: 3 });
    expect(s.providers()).toEqual(["a", "a", "b"]);
  });

  it("moves on at once when the retry-after is beyond the cap", async () => {
    const s = scripted({ a: [e429(5_000)], b: ["from b"] });
    const t0 = Date.now();
    const won = await withFailover(routes("a", "b"), live(), deps({ retryAfterCapMs: 1_000 }), s.attempt);
    expect(won).toMatchObject({ value: "from b", attempts: 2 });
    expect(Date.now() - t0).toBeLessThan(200);
  });

  it("moves on when the retry-after would outlast the failover budget", async () => {
    const s = scripted({ a: [e429(800)], b: ["from b"] });
    const t0 = Date.now();
    const won = await withFailover(routes("a", "b"), live(), deps({ retryAfterCapMs: 1_000, budgetMs: 500 }), s.attempt);
    expect(won.value).toBe("from b");
    expect(Date.now() - t0).toBeLessThan(200);
  });
});

describe("withFailover: the budget", () => {
  it("abandons a hanging attempt when the budget runs out: upstream_timeout naming the providers tried", async () => {
    const s = scripted({ a: [e502()], b: [HANG], c: ["from c"] });
    const t0 = Date.now();
    const err = await rejection(withFailover(routes("a", "b", "c"), live(), deps({ budgetMs: 150 }), s.attempt));
    const took = Date.now() - t0;
    expect(err.kind).toBe("upstream_timeout");
    expect(err.rawMessage).toMatch(/150 ms/);
    expect(err.rawMessage).toContain("a (502)");
    expect(err.rawMessage).toContain("b (");
    expect(s.providers()).toEqual(["a", "b"]);
    expect(took).toBeGreaterThanOrEqual(145);
    expect(took).toBeLessThan(400);
  });

  it("does not count the budget's abort against the provider", async () => {
    const d = deps({ threshold: 1, budgetMs: 50 });
    const s = scripted({ a: [HANG] });
    await rejection(withFailover(routes("a"), live(), d, s.attempt));
    expect(d.breakers.state("a")).toBe("closed");
  });
});

describe("withFailover: the error when every provider fails", () => {
  it("returns a lone failure as it was", async () => {
    const only = e503();
    const s = scripted({ a: [only] });
    expect(await rejection(withFailover(routes("a"), live(), deps(), s.attempt))).toBe(only);
  });

  it("keeps the kind when every failure is of one kind", async () => {
    const timeout = (p: string) => new GatewayError("upstream_timeout", `${p} took too long`, { retryable: true });
    const s = scripted({ a: [timeout("a")], b: [timeout("b")] });
    const err = await rejection(withFailover(routes("a", "b"), live(), deps(), s.attempt));
    expect(err.kind).toBe("upstream_timeout");
    expect(err.rawMessage).toContain("a (upstream timeout)");
    expect(err.rawMessage).toContain("b (upstream timeout)");
  });

  it("answers upstream_unavailable listing every provider and its status when failures differ", async () => {
    const s = scripted({
      a: [e502()],
      b: [new GatewayError("upstream_timeout", "b took too long", { retryable: true })],
      c: [e503()],
    });
    const err = await rejection(withFailover(routes("a", "b", "c"), live(), deps(), s.attempt));
    expect(err.kind).toBe("upstream_unavailable");
    expect(err.rawMessage).toBe("all 3 providers failed: a (502); b (upstream timeout); c (503)");
  });

  it("does not count one provider retried after its retry-after as several providers", async () => {
    const s = scripted({ a: [e429(10), e429(10)] });
    const err = await rejection(withFailover(routes("a"), live(), deps(), s.attempt));
    expect(err.upstreamStatus).toBe(429);
    expect(err.rawMessage).not.toMatch(/all 2 providers/);
  });
});

describe("withFailover: the signal a successful attempt keeps", () => {
  it("still follows the caller's abort after success", async () => {
    const client = new AbortController();
    const s = scripted({ a: ["from a"] });
    const won = await withFailover(routes("a"), client.signal, deps(), s.attempt);
    expect(won.signal).toBe(s.signals[0]);
    expect(won.signal.aborted).toBe(false);
    client.abort();
    expect(won.signal.aborted).toBe(true);
  });

  it("is not aborted by the budget timer after success", async () => {
    const s = scripted({ a: [e502()], b: ["from b"] });
    const won = await withFailover(routes("a", "b"), live(), deps({ budgetMs: 40 }), s.attempt);
    await new Promise((r) => setTimeout(r, 80));
    expect(won.signal.aborted).toBe(false);
  });
});
