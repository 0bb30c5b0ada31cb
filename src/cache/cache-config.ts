import { dirname, join } from "node:path";
import { integer, onOff, type Env } from "../config-values.js";
import type { CacheScope } from "./key.js";
import { DEFAULT_REDIS_TIMEOUT_MS } from "./redis-store.js";

/** The response cache's settings (CACHE_*, REDIS_*), read with the rest of the configuration. */
export interface CacheConfig {
  /** CACHE=on|off (on, as the integration guide promises). */
  readonly enabled: boolean;
  /** CACHE_TTL_S: how long an answer is kept (3600). */
  readonly ttlMs: number;
  /** CACHE_SCOPE: who may be served an answer: the same user (default), the same key, or anyone. */
  readonly scope: CacheScope;
  /** CACHE_MAX_BYTES: the embedded store's size (and the in-process LRU's, at most 64 MiB of it). */
  readonly maxBytes: number;
  /** CACHE_MAX_ENTRY_BYTES: larger answers are not kept. */
  readonly maxEntryBytes: number;
  /** CACHE_PATH: the embedded store's file; default gatewayz-cache.sqlite beside the database. */
  readonly path: string;
  /** REDIS_URL: redis:// or rediss:// (with a password in it if any): Redis instead of the embedded store. */
  readonly redisUrl: string | undefined;
  /** REDIS_TIMEOUT_MS: a Redis call slower than this is a miss. */
  readonly redisTimeoutMs: number;
}

const SCOPES: readonly CacheScope[] = ["user", "key", "global"];

export function cacheConfig(env: Env, databasePath: string): CacheConfig {
  const scope = (env.CACHE_SCOPE || "user") as CacheScope;
  if (!SCOPES.includes(scope)) throw new Error(`CACHE_SCOPE must be user, key or global, got ${env.CACHE_SCOPE}`);
  const redisUrl = env.REDIS_URL || undefined;
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) throw new Error("REDIS_URL must start with redis:// or rediss://");
  const ttlS = integer(env, "CACHE_TTL_S", 3600);
  if (ttlS < 1) throw new Error(`CACHE_TTL_S must be at least 1, got ${env.CACHE_TTL_S}`);
  const inMemory = databasePath === ":memory:";
  return Object.freeze({
    enabled: onOff(env, "CACHE", true),
    ttlMs: ttlS * 1000,
    scope,
    maxBytes: integer(env, "CACHE_MAX_BYTES", 256 * 1024 * 1024),
    maxEntryBytes: integer(env, "CACHE_MAX_ENTRY_BYTES", 1024 * 1024),
    // An in-memory usage database (tests) gets an in-memory cache too.
    path: env.CACHE_PATH || (inMemory ? ":memory:" : join(dirname(databasePath), "gatewayz-cache.sqlite")),
    redisUrl,
    redisTimeoutMs: integer(env, "REDIS_TIMEOUT_MS", DEFAULT_REDIS_TIMEOUT_MS),
  });
}
