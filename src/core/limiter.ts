import { create } from "@bufbuild/protobuf";
import { QuotaFailureSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { GatewayError } from "../errors.js";
import type { LimitScope } from "../storage/limits.js";
import type { Policy } from "./policy.js";

export type WindowDim = "rpm" | "tpm" | "rpd";
export const WINDOW_MS: Readonly<Record<WindowDim, number>> = { rpm: 60_000, tpm: 60_000, rpd: 86_400_000 };
export const CONCURRENCY_RETRY_MS = 1_000;

/** Who a request counts against. */
export interface Subject {
  readonly keyId: string;
  readonly userId: string;
}

/** The tightest request and token limits a response reports (OpenAI's x-ratelimit-* headers). */
export interface RateLimitSnapshot {
  requests?: { limit: number; remaining: number; resetMs: number };
  tokens?: { limit: number; remaining: number; resetMs: number };
}

export interface Permit {
  readonly snapshot: RateLimitSnapshot;
  /** Replaces the token reservation by what was used, and frees the concurrency slot. Once. */
  settle(actualTokens: number): void;
}

export interface Limiter {
  /** Admits the request or throws `rate_limited` (or `limiter_unavailable`: fail closed). */
  acquire(subject: Subject, estimatedTokens: number): Permit;
}

interface Counter { windowStart: number; used: number }
/** One limit a request is checked against: what it would use of it, and what is used already. */
export interface Check { scope: LimitScope; subjectId: string; dim: WindowDim | "concurrent"; limit: number; used: number; cost: number; resetMs: number; counter?: Counter }

/**
 * Requests per minute and per day, tokens per minute and concurrent requests,
 * each per key, per user and system-wide, in fixed windows aligned to the
 * clock (UTC minutes and days). Exact within one process: a request checks
 * every applicable counter and then takes from all of them in one synchronous
 * step, so with a limit of N exactly N of M simultaneous requests pass. It is
 * not shared between processes; see the README.
 */
export function createLimiter(policy: Policy, now: () => number = Date.now): Limiter {
  const counters = new Map<string, Counter>();
  const inFlight = new Map<string, number>();

  const counter = (key: string, dim: WindowDim, t: number): Counter => {
    const windowStart = t - (t % WINDOW_MS[dim]);
    let c = counters.get(key);
    if (!c) counters.set(key, (c = { windowStart, used: 0 }));
    else if (c.windowStart !== windowStart) { c.windowStart = windowStart; c.used = 0; }
    return c;
  };

  const plan = (subject: Subject, tokens: number, t: number): Check[] => {
    const checks: Check[] = [];
    const scopes: Array<[LimitScope, string]> = [["key", subject.keyId], ["user", subject.userId], ["system", ""]];
    for (const [scope, id] of scopes) {
      const limits = policy.limitsFor(scope, id);
      for (const dim of ["rpm", "rpd", "tpm"] as const) {
        if (limits[dim] <= 0) continue;
        const c = counter(`${scope}:${id}:${dim}`, dim, t);
        const resetMs = c.windowStart + WINDOW_MS[dim] - t;
        checks.push({ scope, subjectId: id, dim, limit: limits[dim], used: c.used, cost: dim === "tpm" ? tokens : 1, resetMs, counter: c });
      }
      if (limits.concurrent > 0) {
        const used = inFlight.get(`${scope}:${id}`) ?? 0;
        checks.push({ scope, subjectId: id, dim: "concurrent", limit: limits.concurrent, used, cost: 1, resetMs: CONCURRENCY_RETRY_MS });
      }
    }
    return checks;
  };

  return {
    acquire(subject, estimatedTokens) {
      const t = now();
      let checks: Check[];
      try {
        policy.refresh();
        checks = plan(subject, estimatedTokens, t);
      } catch (err) {
        throw new GatewayError("limiter_unavailable", "the rate limiter is unavailable, so the request was refused", { cause: err });
      }
      const over = checks.filter((c) => c.used + c.cost > c.limit);
      if (over.length) throw rateLimited(over, snapshot(checks, false));
      for (const c of checks) {
        if (c.counter) c.counter.used += c.cost;
        else inFlight.set(`${c.scope}:${c.subjectId}`, c.used + 1);
      }
      let settled = false;
      return {
        snapshot: snapshot(checks, true),
        settle(actualTokens) {
          if (settled) return;
          settled = true;
          for (const c of checks) {
            // A reservation made in a window that has since closed is left there.
            if (c.dim === "tpm" && c.counter && c.counter.windowStart === t - (t % WINDOW_MS.tpm)) {
              c.counter.used = Math.max(0, c.counter.used + actualTokens - estimatedTokens);
            } else if (c.dim === "concurrent") {
              const key = `${c.scope}:${c.subjectId}`;
              inFlight.set(key, Math.max(0, (inFlight.get(key) ?? 1) - 1));
            }
          }
        },
      };
    },
  };
}

/** The tightest request limit and token limit, counting this request if it was admitted. */
export function snapshot(checks: readonly Check[], admitted: boolean): RateLimitSnapshot {
  const out: RateLimitSnapshot = {};
  for (const c of checks) {
    if (c.dim === "concurrent") continue;
    const remaining = Math.max(0, c.limit - c.used - (admitted ? c.cost : 0));
    const slot = c.dim === "tpm" ? "tokens" : "requests";
    const current = out[slot];
    if (!current || remaining < current.remaining) out[slot] = { limit: c.limit, remaining, resetMs: c.resetMs };
  }
  return out;
}

const DIM_TEXT: Record<Check["dim"], string> = {
  rpm: "requests per minute", rpd: "requests per day", tpm: "tokens per minute", concurrent: "concurrent requests",
};

/** The refusal of a request over `over` (the 429 every door maps), with its Retry-After and QuotaFailure. */
export function rateLimited(over: readonly Check[], snap: RateLimitSnapshot): GatewayError {
  const quota = { desc: QuotaFailureSchema, value: create(QuotaFailureSchema, {
    violations: over.map((c) => ({ subject: c.scope === "system" ? "system" : `${c.scope}:${c.subjectId}`, description: `${c.limit} ${DIM_TEXT[c.dim]}` })),
  }) };
  // A reservation above a tpm limit fails in every window: no Retry-After
  // (the next window would fail the same way), and `x-should-retry: false`,
  // which the OpenAI SDKs obey instead of retrying.
  const tooBig = over.find((c) => c.dim === "tpm" && c.cost > c.limit);
  if (tooBig) {
    return new GatewayError("rate_limited",
      `this request needs an estimated ${tooBig.cost} tokens, more than the ${tooBig.scope === "system" ? "gateway" : tooBig.scope}'s limit of ${tooBig.limit} ${DIM_TEXT.tpm}; lower max_tokens`,
      { openaiType: "tokens", headers: { ...NO_RETRY, ...rateLimitHeaders(snap) }, details: [quota], refusal: { dimension: "tpm", scope: tooBig.scope } });
  }
  const retryMs = Math.max(...over.map((c) => c.resetMs));
  const message = `rate limit reached: ${over.map((c) => `${c.limit} ${DIM_TEXT[c.dim]} for this ${c.scope === "system" ? "gateway" : c.scope}`).join("; ")}; retry in ${Math.ceil(retryMs / 1000)} s`;
  const seconds = Math.floor(retryMs / 1000);
  return new GatewayError("rate_limited", message, {
    openaiType: over.some((c) => c.dim !== "tpm") ? "requests" : "tokens",
    refusal: { dimension: over[0]!.dim, scope: over[0]!.scope },
    headers: { "retry-after": String(Math.max(1, Math.ceil(retryMs / 1000))), ...rateLimitHeaders(snap) },
    details: [
      { desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay: { seconds: BigInt(seconds), nanos: (retryMs % 1000) * 1_000_000 } }) },
      quota,
    ],
  });
}

/** The header OpenAI's SDKs read before any other to decide whether to retry (openai-node, openai-python). */
export const NO_RETRY: Readonly<Record<string, string>> = Object.freeze({ "x-should-retry": "false" });

/** OpenAI's header names: x-ratelimit-{limit,remaining,reset}-{requests,tokens}. */
export function rateLimitHeaders(snap: RateLimitSnapshot): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kind of ["requests", "tokens"] as const) {
    const s = snap[kind];
    if (!s) continue;
    out[`x-ratelimit-limit-${kind}`] = String(s.limit);
    out[`x-ratelimit-remaining-${kind}`] = String(s.remaining);
    out[`x-ratelimit-reset-${kind}`] = formatDuration(s.resetMs);
  }
  return out;
}

/** 61500 → "1m1.5s", 250 → "250ms": the duration form OpenAI uses in reset headers. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  // Round once, to tenths of a second, before splitting: 59.96 s is "1m0s", never "60s".
  const tenths = Math.round(ms / 100);
  const h = Math.floor(tenths / 36_000);
  const m = Math.floor((tenths % 36_000) / 600);
  const s = (tenths % 600) / 10;
  return `${h ? `${h}h` : ""}${h || m ? `${m}m` : ""}${s}s`;
}
