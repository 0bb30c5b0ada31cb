import { integer, type Env } from "../config-values.js";
import { DEFAULT_REDIS_TIMEOUT_MS } from "../cache/redis-store.js";
import type { LimitsFailMode } from "./redis-quota.js";

/** The state shared by replicas through Redis (REDIS_URL): the limits' settings. */
export interface SharedStateConfig {
  /** REDIS_URL: set, rate limits, concurrency, budgets and circuits are shared by every replica through it. */
  readonly redisUrl: string | undefined;
  /** REDIS_TIMEOUT_MS: the most a Redis call may take. */
  readonly timeoutMs: number;
  /** LIMITS_FAIL_MODE: closed (default) refuses limited requests with 503 while Redis cannot be asked; open lets them through uncounted. */
  readonly failMode: LimitsFailMode;
  /** LIMITS_LEASE_MS: how long a dead replica's concurrency slots and budget reservations are held before they are given back (30 s). */
  readonly leaseMs: number;
}

export function sharedStateConfig(env: Env): SharedStateConfig {
  const failMode = (env.LIMITS_FAIL_MODE || "closed") as LimitsFailMode;
  if (failMode !== "closed" && failMode !== "open") throw new Error(`LIMITS_FAIL_MODE must be closed or open, got ${env.LIMITS_FAIL_MODE}`);
  const leaseMs = integer(env, "LIMITS_LEASE_MS", 30_000);
  if (leaseMs < 100) throw new Error(`LIMITS_LEASE_MS must be at least 100, got ${env.LIMITS_LEASE_MS}`);
  return Object.freeze({
    redisUrl: env.REDIS_URL || undefined,
    timeoutMs: integer(env, "REDIS_TIMEOUT_MS", DEFAULT_REDIS_TIMEOUT_MS),
    failMode,
    leaseMs,
  });
}
