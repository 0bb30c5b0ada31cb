import { GatewayError } from "../errors.js";
import { CACHE_DEFAULT, type CacheControl } from "./answer-cache.js";

/** The largest x-gatewayz-cache-ttl: thirty days, as a bound on typos. */
const MAX_TTL_S = 30 * 86_400;

/**
 * What a request lets the cache do, from its `Cache-Control` and
 * `x-gatewayz-cache-ttl` headers (HTTP) or metadata (RPC): `no-cache` skips
 * the lookup but keeps the fresh answer (a refresh), `no-store` neither reads
 * nor writes, as HTTP caches read them; the TTL overrides CACHE_TTL_S for the
 * answer this request stores. Other directives are ignored.
 */
export function cacheControlOf(cacheControl: string | null | undefined, ttl: string | null | undefined): CacheControl {
  if (!cacheControl && !ttl) return CACHE_DEFAULT; // almost every request: nothing to split
  let read = true;
  let write = true;
  for (const directive of (cacheControl ?? "").toLowerCase().split(",")) {
    const d = directive.trim();
    if (d === "no-cache") read = false;
    else if (d === "no-store") read = write = false;
  }
  let ttlMs: number | undefined;
  if (ttl !== null && ttl !== undefined && ttl !== "") {
    const s = Number(ttl);
    if (!/^\d+$/.test(ttl.trim()) || s < 1 || s > MAX_TTL_S) {
      throw new GatewayError("invalid_request", `x-gatewayz-cache-ttl must be a whole number of seconds from 1 to ${MAX_TTL_S}, got '${ttl.slice(0, 40)}'`, { param: "x-gatewayz-cache-ttl" });
    }
    ttlMs = s * 1000;
  }
  if (read && write && ttlMs === undefined) return CACHE_DEFAULT;
  return { read, write, ttlMs };
}

/** A header's single value (Node gives repeated ones as an array: they are joined, as HTTP joins them). */
export function headerText(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(",") : v;
}

/** x-gatewayz-cache: what the response cache did for the request (no header with CACHE=off). */
export function cacheHeader(cache: string | undefined): Record<string, string> {
  return cache === undefined ? {} : { "x-gatewayz-cache": cache };
}
