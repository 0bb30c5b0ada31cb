import type { ConnectionOptions } from "node:tls";
import { Redis } from "ioredis";
import type { Logger } from "../log.js";

/**
 * One bounded connection to Redis, as every part of the gateway that uses
 * Redis (the response cache, the shared limits) wants it: while Redis is
 * unreachable calls reject at once (no offline queue), a sent command that
 * gets no answer within `timeoutMs` rejects (a hung or overloaded Redis),
 * nothing is resent after a reconnect, and the client keeps reconnecting in
 * the background so the feature comes back by itself about a second after
 * Redis does. One warning when the connection is lost and one line when it is
 * back, never one per retry, and never the password.
 */
export interface RedisConnectionOptions {
  /** redis:// or rediss:// (TLS), with user and password in the URL if needed, and /db. */
  readonly url: string;
  /** The most a command may take before it rejects. */
  readonly timeoutMs: number;
  /**
   * false: no timer per command in ioredis; the caller bounds the calls whose
   * answer it waits for with `answeredWithin` (a hung Redis still drops the
   * socket after socketTimeout). Default true.
   */
  readonly commandTimeout?: boolean;
  /** How long one connection attempt may take (a TLS handshake over a WAN needs more than timeoutMs). */
  readonly connectTimeoutMs?: number;
  /** Extra TLS settings for rediss:// (a private CA, a client certificate); public CAs need none. */
  readonly tls?: ConnectionOptions;
  /** CLIENT SETNAME, so an operator's CLIENT LIST shows who is connected. */
  readonly name: string;
  readonly log?: Pick<Logger, "warn" | "info">;
  /** What the log lines say: "cache: Redis at … unavailable, <whileDown>" and "… reconnected, <whenBack>". */
  readonly what: { readonly feature: string; readonly whileDown: string; readonly whenBack: string };
}

export interface RedisConnection {
  readonly client: Redis;
  /** Connected and ready now. */
  readonly healthy: boolean;
  /** Resolves true once connected and ready, false after `ms` without (startup can wait for this, bounded). */
  ready(ms: number): Promise<boolean>;
  /** QUIT, or the socket dropped if Redis does not answer it in time. */
  close(): Promise<void>;
}

export function openRedis(options: RedisConnectionOptions): RedisConnection {
  const { url, timeoutMs, log, what } = options;
  const where = redactRedisUrl(url);
  const client = new Redis(url, {
    ...(options.commandTimeout === false ? {} : { commandTimeout: timeoutMs }),
    connectTimeout: options.connectTimeoutMs ?? 2000,
    enableOfflineQueue: false,
    // A hung Redis keeps the socket open while timed-out commands pile up: drop the socket
    // after this long without a byte back, and reconnect.
    socketTimeout: Math.max(1000, timeoutMs * 20),
    // A command in flight when the connection drops fails at once, never resent later.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // Quick at first, then every 1 s.
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1000),
    connectionName: options.name,
    ...(options.tls && /^rediss:/i.test(url) ? { tls: options.tls } : {}),
  });

  // A killed Redis closes the socket with no "error" (errors come with the reconnect attempts), hence "close" too.
  let healthy = true;
  let closing = false;
  const down = (reason: string) => {
    if (!healthy || closing) return;
    healthy = false;
    log?.warn(`${what.feature}: Redis at ${where} unavailable, ${what.whileDown}: ${redactPassword(reason, url)}`);
  };
  client.on("error", (err: Error) => down(err.message));
  client.on("close", () => down("connection closed"));
  client.on("ready", () => {
    if (healthy) return;
    healthy = true;
    log?.info(`${what.feature}: Redis at ${where} reconnected, ${what.whenBack}`);
  });

  return {
    client,
    get healthy() {
      return healthy && client.status === "ready";
    },
    ready(ms) {
      if (client.status === "ready") return Promise.resolve(true);
      return new Promise((resolve) => {
        const onReady = () => { clearTimeout(timer); resolve(true); };
        const timer = setTimeout(() => { client.off("ready", onReady); resolve(false); }, ms);
        client.once("ready", onReady);
      });
    },
    async close() {
      closing = true;
      const quit = client.status === "ready" ? client.quit().then(() => true, () => false) : Promise.resolve(false);
      const clean = await Promise.race([quit, sleep(timeoutMs * 4).then(() => false)]);
      if (!clean) client.disconnect();
    },
  };
}

/**
 * `reply`, or a rejection if it is not in within `ms`. Unlike ioredis's
 * commandTimeout, a reply that arrived in time but is still unread because
 * the event loop was busy (a loaded gateway runs for tens of ms between
 * polls) is not taken for a slow Redis: the timers phase, where a timeout
 * fires, comes before the poll that reads the socket, so the rejection waits
 * for the end of that turn (setImmediate) and is dropped if the reply came.
 */
export function answeredWithin<T>(reply: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => setImmediate(() => {
      if (settled) return;
      settled = true;
      reject(new Error(`Redis did not answer within ${ms} ms`));
    }), ms);
    reply.then((value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(value);
    }, (err: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** The URL with its password replaced by ***, for logs and errors. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable REDIS_URL)";
  }
}

/** A message (an ioredis error may quote the URL) with the URL's password replaced by ***. */
export function redactPassword(message: string, url: string): string {
  let password = "";
  try { password = decodeURIComponent(new URL(url).password); } catch { /* nothing to hide */ }
  return password ? message.split(password).join("***") : message;
}

/**
 * A warning at most every `everyMs` (a failing Redis would otherwise warn on
 * every request), with the URL's password taken out of the error's message.
 */
export function throttledWarn(log: Pick<Logger, "warn">, url: string, everyMs: number): (what: string, err: unknown) => void {
  let last = -Infinity;
  return (what, err) => {
    const t = performance.now();
    if (t - last < everyMs) return;
    last = t;
    log.warn(`${what}: ${redactPassword(err instanceof Error ? err.message : String(err), url)}`);
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
