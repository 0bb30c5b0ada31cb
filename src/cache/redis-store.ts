import { deflateRawSync, inflateRawSync } from "node:zlib";
import type { ConnectionOptions } from "node:tls";
import type { Logger } from "../log.js";
import { openRedis } from "../redis/connection.js";

export { redactRedisUrl } from "../redis/connection.js";
import type { CacheStats, TtlAwareStore } from "./store.js";

/**
 * The cache store shared by every gateway process on every host (REDIS_URL).
 * A cache must never slow a request down much nor fail it, so every call is
 * bounded: while Redis is unreachable calls reject at once (no offline queue),
 * a sent command that gets no answer within `timeoutMs` rejects (a hung or
 * overloaded Redis), and the client keeps reconnecting in the background so
 * the cache comes back by itself. The caller turns a rejection into a miss.
 *
 * Stored value: one marker byte, then the bytes as given (RAW) or
 * raw-deflated (DEFLATE) when larger than `compressAboveBytes`. deflateRaw at
 * level 1 was measured against gzip and brotli on 2-20 KiB chat JSON: all
 * three shrink it to about a quarter, deflateRaw decompresses fastest (about
 * 40 µs for 20 KiB, a hit's cost) and compresses in about 85 µs.
 */
export interface RedisStoreOptions {
  /** redis:// or rediss:// (TLS), with user and password in the URL if needed, and /db. */
  readonly url: string;
  /** REDIS_TIMEOUT_MS: the most a call may take before it is a miss. */
  readonly timeoutMs?: number;
  /** Every key is prefixed, so a Redis shared with other applications stays tidy. */
  readonly keyPrefix?: string;
  readonly compressAboveBytes?: number;
  /** How long one connection attempt may take (a TLS handshake over a WAN needs more than timeoutMs). */
  readonly connectTimeoutMs?: number;
  /** Extra TLS settings for rediss:// (a private CA, a client certificate); public CAs need none. */
  readonly tls?: ConnectionOptions;
  readonly log?: Logger;
}

/**
 * 50 ms: a same-region Redis answers a GET in well under 1 ms, so 50 ms
 * only trips when Redis is really in trouble, and it stays small next to an
 * upstream model call (hundreds of ms at least) that a miss leads to.
 */
export const DEFAULT_REDIS_TIMEOUT_MS = 50;
export const DEFAULT_REDIS_KEY_PREFIX = "gatewayz:cache:";
export const DEFAULT_COMPRESS_ABOVE_BYTES = 4096;

const RAW = 0;
const DEFLATE = 1;
/** A corrupt or hostile entry must not inflate into a huge buffer: far above any answer the gateway stores. */
const MAX_INFLATED_BYTES = 64 * 1024 * 1024;

export interface RedisCacheStore extends TtlAwareStore {
  /** Resolves true once connected and ready, false after `ms` without (startup can wait for this, bounded). */
  ready(ms: number): Promise<boolean>;
}

export function createRedisCacheStore(options: RedisStoreOptions): RedisCacheStore {
  const timeoutMs = options.timeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS;
  const prefix = options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX;
  const compressAbove = options.compressAboveBytes ?? DEFAULT_COMPRESS_ABOVE_BYTES;
  const log = options.log;
  const connection = openRedis({
    url: options.url, timeoutMs, name: "gatewayz-cache", log,
    ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
    ...(options.tls ? { tls: options.tls } : {}),
    what: { feature: "cache", whileDown: "serving misses until it is back", whenBack: "cache serving again" },
  });
  const { client } = connection;

  const getWithTtl = async (key: string): Promise<{ value: Uint8Array; ttlMs: number } | undefined> => {
    // One round trip: GET and PTTL pipelined (a PTTL of -2 means it expired in between: nothing to keep).
    const replies = await client.pipeline().getBuffer(prefix + key).pttl(prefix + key).exec();
    const [[getError, stored], [ttlError, pttl]] = replies as [[Error | null, Buffer | null], [Error | null, number]];
    if (getError) throw getError;
    if (stored === null) return undefined;
    const value = decode(stored);
    if (value === undefined) {
      log?.warn("cache: unreadable entry in Redis, treated as a miss");
      return undefined;
    }
    return { value, ttlMs: ttlError || pttl === -1 ? Infinity : Math.max(0, pttl) };
  };

  return {
    getWithTtl,
    get: async (key) => (await getWithTtl(key))?.value,
    async set(key, value, ttlMs) {
      await client.set(prefix + key, encode(value, compressAbove), "PX", Math.max(1, Math.ceil(ttlMs)));
    },
    async delete(key) {
      await client.del(prefix + key);
    },
    stats(): CacheStats | undefined {
      return undefined; // counting one prefix's keys and bytes would take a SCAN of the whole Redis
    },
    close: () => connection.close(),
    ready: (ms) => connection.ready(ms),
  };
}

export function encode(value: Uint8Array, compressAbove: number): Buffer {
  if (value.byteLength <= compressAbove) return Buffer.concat([Buffer.of(RAW), value]);
  return Buffer.concat([Buffer.of(DEFLATE), deflateRawSync(value, { level: 1 })]);
}

/** The stored bytes back, or undefined when the marker is unknown or the compressed data is bad. */
export function decode(stored: Buffer): Uint8Array | undefined {
  if (stored.byteLength === 0) return undefined;
  const body = stored.subarray(1);
  if (stored[0] === RAW) return body;
  if (stored[0] !== DEFLATE) return undefined;
  try {
    return inflateRawSync(body, { maxOutputLength: MAX_INFLATED_BYTES });
  } catch {
    return undefined;
  }
}
