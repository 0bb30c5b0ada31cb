import { randomBytes } from "node:crypto";
import type { ConnectionOptions } from "node:tls";
import type { Redis } from "ioredis";
import { budgetUsedUp, periodStart } from "../core/budgets.js";
import { CONCURRENCY_RETRY_MS, WINDOW_MS, rateLimited, snapshot, type Check, type Subject, type WindowDim } from "../core/limiter.js";
import type { Policy } from "../core/policy.js";
import { quotaApplies, type Quota, type QuotaTicket } from "../core/quota.js";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import type { BudgetRow, LimitScope } from "../storage/limits.js";
import { answeredWithin, openRedis, throttledWarn } from "./connection.js";
import { RENEW, SETTLE, TAKE } from "./quota-scripts.js";

/** What LIMITS_FAIL_MODE says a request meets while Redis cannot be asked: refused (503), or let through uncounted. */
export type LimitsFailMode = "closed" | "open";

export interface RedisQuotaOptions {
  /** REDIS_URL. */
  readonly url: string;
  /** REDIS_TIMEOUT_MS: a take not answered within it is Redis unavailable (LIMITS_FAIL_MODE). */
  readonly timeoutMs: number;
  /**
   * LIMITS_LEASE_MS: how long a concurrency slot or budget reservation is
   * held without its replica renewing it; what a replica that dies holds is
   * given back this long after (renewed every third of it while held).
   */
  readonly leaseMs: number;
  readonly failMode: LimitsFailMode;
  /** What a key or user spent since `since` (ms): the usage rows, read once per period by the first replica that needs it. */
  spent(scope: "key" | "user", subject: string, since: number): bigint | Promise<bigint>;
  readonly log: Pick<Logger, "warn" | "info">;
  readonly keyPrefix?: string;
  readonly tls?: ConnectionOptions;
}

export interface RedisQuota extends Quota {
  /** Resolves true once connected, false after `ms` without. */
  ready(ms: number): Promise<boolean>;
  close(): Promise<void>;
}

const NO_TICKET: QuotaTicket = { snapshot: {}, settle() {} };
/** How long a period's loaded spending is trusted before it is read from the usage rows again (what a lost settle can skew). */
const SPENT_TTL_MS = 10 * 60_000;
/** A failing Redis is reported at most this often (an outage would otherwise warn per request). */
const WARN_EVERY_MS = 10_000;

interface WindowSpec { key: string; ms: number; limit: number; cost: number }
interface SlotSpec { key: string; limit: number }
interface BudgetSpec { keys: [spent: string, reserved: string, leases: string, amounts: string]; limit: string; init: string }
interface Plan {
  ticket: string;
  /** The budgets' estimate, pico-USD. */
  est: string;
  /** The limits and budgets in force, with each one's scope and subject for the refusal's words and the headers. */
  windows: Array<WindowSpec & { scope: LimitScope; id: string; dim: WindowDim }>;
  slots: Array<SlotSpec & { scope: LimitScope; id: string }>;
  budgets: Array<BudgetSpec & { scope: "key" | "user"; id: string; budget: BudgetRow; since: number }>;
}
/** TAKE's answer (quota-scripts.ts): taken, refused (with what refused), or a budget's spending to load first. */
type Reply =
  | [status: 1, now: number, windows: number[], slots: number[]]
  | [status: 0, now: number, windows: number[], slots: number[], budgets: string[], over: string[]]
  | [status: 2, budget: number];

type ScriptClient = Redis & Record<"gzTake" | "gzSettle" | "gzRenew", (keys: number, ...args: Array<string | number>) => Promise<unknown>>;

/**
 * The rate limits, concurrency and budgets shared by every replica through
 * Redis (REDIS_URL): the third Quota beside the in-process one and the
 * --workers primary's. One script call a request (quota-scripts.ts) checks
 * and takes every limit of every scope at once, on Redis's clock; the
 * ticket's settle is a second, not awaited. A subject with no limit and no
 * budget never reaches Redis.
 *
 * Redis unavailable, or slower than REDIS_TIMEOUT_MS: LIMITS_FAIL_MODE
 * closed (the default) refuses with 503 limiter_unavailable, open lets the
 * request through uncounted; either way it recovers by itself when Redis is
 * back. A take that timed out may still have been applied: its slots are
 * released by ticket at once (best effort) and by their lease in any case.
 */
export function createRedisQuota(policy: Policy, options: RedisQuotaOptions): RedisQuota {
  const prefix = options.keyPrefix ?? "gatewayz:quota:";
  const { leaseMs, log } = options;
  const connection = openRedis({
    // The take is bounded below (answeredWithin): ioredis's own timer takes a busy event loop for a slow Redis.
    url: options.url, timeoutMs: options.timeoutMs, commandTimeout: false, name: "gatewayz-limits", log, ...(options.tls ? { tls: options.tls } : {}),
    what: {
      feature: "limits",
      whileDown: options.failMode === "closed" ? "refusing limited requests (LIMITS_FAIL_MODE=closed) until it is back" : "letting requests through uncounted (LIMITS_FAIL_MODE=open) until it is back",
      whenBack: "shared limits counting again",
    },
  });
  const client = connection.client as ScriptClient;
  client.defineCommand("gzTake", { lua: TAKE });
  client.defineCommand("gzSettle", { lua: SETTLE });
  client.defineCommand("gzRenew", { lua: RENEW });

  const replica = randomBytes(6).toString("hex");
  let nextTicket = 1;
  /** Tickets with slots or reservations, by id: their keys (KEYS of RENEW) while they are held. */
  const held = new Map<string, { leased: string[]; kept: string[] }>();
  const warnOnce = throttledWarn(log, options.url, WARN_EVERY_MS);
  const warn = (what: string, err: unknown) => warnOnce(`limits: ${what}`, err);

  const plan = (subject: Subject, tokens: number, estimatePico: bigint): Plan => {
    const p: Plan = { ticket: `${replica}:${nextTicket++}`, est: String(estimatePico), windows: [], slots: [], budgets: [] };
    const t = Date.now();
    for (const [scope, id] of [["key", subject.keyId], ["user", subject.userId], ["system", ""]] as const) {
      const limits = policy.limitsFor(scope, id);
      for (const dim of ["rpm", "rpd", "tpm"] as const) {
        if (limits[dim] <= 0) continue;
        p.windows.push({ key: `${prefix}w:${scope}:${id}:${dim}`, ms: WINDOW_MS[dim], limit: limits[dim], cost: dim === "tpm" ? tokens : 1, scope, id, dim });
      }
      if (limits.concurrent > 0) p.slots.push({ key: `${prefix}c:${scope}:${id}`, limit: limits.concurrent, scope, id });
      if (scope === "system") continue;
      const budget = policy.budgetFor(scope, id);
      if (!budget) continue;
      // The period by this replica's clock: a skew of seconds only matters at a month's first instant.
      const since = periodStart(budget, t);
      const base = `${prefix}b:${scope}:${id}:${budget.period}:${since}`;
      p.budgets.push({
        keys: [`${base}:spent`, `${base}:reserved`, `${base}:leases`, `${base}:amounts`],
        limit: String(budget.limitPico), init: "", scope, id, budget, since,
      });
    }
    return p;
  };

  /** TAKE's KEYS then ARGV: windows, slots, budgets, in that order (quota-scripts.ts). */
  const takeArgs = (p: Plan): [number, ...Array<string | number>] => {
    const keys: string[] = [];
    const argv: Array<string | number> = [p.ticket, leaseMs, p.est, p.windows.length, p.slots.length, p.budgets.length];
    for (const w of p.windows) keys.push(w.key), argv.push(w.ms, w.limit, w.cost);
    for (const c of p.slots) keys.push(c.key), argv.push(c.limit);
    for (const b of p.budgets) keys.push(...b.keys), argv.push(b.limit, SPENT_TTL_MS, b.init);
    return [keys.length, ...keys, ...argv];
  };

  const checksOf = (p: Plan, windows: number[], slots: number[]): Check[] => [
    ...p.windows.map((w, i): Check => ({
      scope: w.scope, subjectId: w.id, dim: w.dim, limit: w.limit, used: windows[i * 3]!, cost: w.cost, resetMs: windows[i * 3 + 1]!,
    })),
    ...p.slots.map((s, i): Check => ({
      scope: s.scope, subjectId: s.id, dim: "concurrent", limit: s.limit, used: slots[i]!, cost: 1, resetMs: CONCURRENCY_RETRY_MS,
    })),
  ];

  const call = async (p: Plan): Promise<Exclude<Reply, [2, number]>> => {
    for (;;) {
      const reply = await answeredWithin(client.gzTake(...takeArgs(p)), options.timeoutMs) as Reply;
      if (reply[0] !== 2) return reply;
      // The period's spending is not in Redis yet: the usage rows have it (every budget of the plan, at once).
      for (const b of p.budgets) if (!b.init) b.init = String(await options.spent(b.scope, b.id, b.since));
    }
  };

  /** Settles the ticket: what it used replaces what it reserved (SETTLE). */
  const settle = (p: Plan, starts: number[], tokens: number, used: number, costPico: bigint) => {
    held.delete(p.ticket);
    // tpm windows get back what was reserved and not used; what rpm and rpd counted stands.
    const tpm = p.windows.flatMap((w, i) => (w.dim === "tpm" && starts[i] !== undefined ? [{ key: `${w.key}:${starts[i]}`, delta: used - tokens }] : []));
    const failed = (err: unknown) => warn("a settle failed (its slots go back when their lease ends)", err);
    // Sent now, before the answer: a client that has its answer finds its slot free on every replica.
    if (!tpm.length && !p.budgets.length && p.slots.length <= 1) {
      // The common case, a concurrency slot alone: a plain ZREM, no script.
      if (p.slots.length) client.zrem(p.slots[0]!.key, p.ticket).catch(failed);
      return;
    }
    const keys: string[] = [...tpm.map((w) => w.key), ...p.slots.map((c) => c.key), ...p.budgets.flatMap((b) => b.keys)];
    client.gzSettle(keys.length, ...keys, p.ticket, String(costPico), tpm.length, p.slots.length, p.budgets.length, ...tpm.map((w) => w.delta)).catch(failed);
  };

  const renewer = setInterval(() => {
    if (!held.size || !connection.healthy) return;
    const keys: string[] = [];
    const index = new Map<string, number>();
    const k = (name: string) => index.get(name) ?? (keys.push(name), index.set(name, keys.length), keys.length);
    const h: Array<{ k: number; ticket: string }> = [];
    const e = new Set<number>();
    for (const [ticket, { leased, kept }] of held) {
      for (const name of leased) h.push({ k: k(name), ticket });
      for (const name of kept) e.add(k(name));
    }
    client.gzRenew(keys.length, ...keys, JSON.stringify({ h, e: [...e], lease: leaseMs }))
      .catch((err: unknown) => warn("renewing leases failed (retried)", err));
  }, Math.max(10, Math.floor(leaseMs / 3)));
  renewer.unref();

  const unavailable = (p: Plan, err: unknown): QuotaTicket => {
    // The take may have been applied before its answer was lost: give its slots and reservations back now.
    if (p.slots.length || p.budgets.length) settle(p, [], 0, 0, 0n);
    warn(options.failMode === "closed" ? "Redis did not answer a take; refused" : "Redis did not answer a take; let through uncounted", err);
    if (options.failMode === "open") return NO_TICKET;
    throw new GatewayError("limiter_unavailable", "the shared rate limiter (Redis) is unavailable, so the request was refused", { cause: err });
  };

  return {
    async take(subject, tokens, estimatePico) {
      let p: Plan;
      try {
        if (!quotaApplies(policy, subject)) return NO_TICKET;
        p = plan(subject, tokens, estimatePico);
      } catch (err) {
        throw new GatewayError("limiter_unavailable", "the rate limiter is unavailable, so the request was refused", { cause: err });
      }
      let reply: Reply;
      try {
        reply = await call(p);
      } catch (err) {
        return unavailable(p, err);
      }
      const [status, , windows, slots] = reply;
      const checks = checksOf(p, windows, slots);
      if (status === 0) {
        const [, , , , budgets, over] = reply;
        // Rate limits first, then budgets: the order of the in-process quota.
        const limits = over.filter((o) => o[0] !== "b").map((o) => checks[(o[0] === "w" ? 0 : p.windows.length) + Number(o.slice(1)) - 1]!);
        if (limits.length) throw rateLimited(limits, snapshot(checks, false));
        const i = Number(over[0]!.slice(1)) - 1;
        const b = p.budgets[i]!;
        throw budgetUsedUp(b.scope, b.budget, BigInt(budgets[i * 2]!));
      }
      const starts = p.windows.map((_, i) => windows[i * 3 + 2]!);
      if (p.slots.length || p.budgets.length) {
        const leased = [...p.slots.map((s) => s.key), ...p.budgets.map((b) => b.keys[2])];
        const kept = [...leased, ...p.budgets.flatMap((b) => [b.keys[1], b.keys[3]])];
        held.set(p.ticket, { leased, kept });
      }
      let settled = false;
      return {
        snapshot: snapshot(checks, true),
        settle(used, costPico) {
          if (settled) return;
          settled = true;
          settle(p, starts, tokens, used, costPico);
        },
      };
    },
    ready: (ms) => connection.ready(ms),
    async close() {
      clearInterval(renewer);
      await connection.close();
    },
  };
}
