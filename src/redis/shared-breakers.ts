import { randomBytes } from "node:crypto";
import type { ConnectionOptions } from "node:tls";
import type { Redis } from "ioredis";
import type { Logger } from "../log.js";
import { CLOSE, OPEN, readOpenings, type Closing, type Opening } from "./circuit-wire.js";
import { openRedis, throttledWarn } from "./connection.js";
import { changeReporter, type BreakerState, type Breakers } from "../core/circuit-breaker.js";

export interface SharedBreakersOptions {
  /** REDIS_URL: redis:// or rediss://, with user and password in the URL if needed. */
  readonly url: string;
  /**
   * The most one Redis call may take. No request ever waits on these calls
   * (publishing and reading circuits happens beside the request path), so the
   * default is more lenient than the cache's 50 ms.
   */
  readonly timeoutMs?: number;
  /** Keys are `<prefix><provider>`, events go to `<prefix>events`. */
  readonly keyPrefix?: string;
  readonly log: Logger;
  /** Who opened a circuit, in the records; a replica ignores its own events. Random by default. */
  readonly replicaId?: string;
  /**
   * The local clock the deadlines of circuits opened elsewhere are kept on
   * (default performance.now). Only differences on this clock are used, and
   * it is never compared with another replica's or with Redis's, so it may be
   * any clock: times cross replicas as Redis TIME readings and durations.
   */
  readonly now?: () => number;
  /** Extra TLS settings for rediss:// (a private CA, a client certificate). */
  readonly tls?: ConnectionOptions;
}

export type SharedBreakers = Breakers & {
  /** Resolves true once connected, subscribed and caught up with the circuits already open; false after `ms` without. */
  ready(ms: number): Promise<boolean>;
  /** QUITs both connections; the breakers go on as this replica's own. */
  close(): Promise<void>;
};

export const DEFAULT_CIRCUIT_KEY_PREFIX = "gatewayz:circuit:";
const DEFAULT_TIMEOUT_MS = 250;
/** A Redis that answers but fails our calls is reported at most this often (an outage is reported once by the connection). */
const WARN_EVERY_MS = 10_000;

type ScriptClient = Redis & Record<"gzCircuitOpen" | "gzCircuitClose", (keys: number, ...args: string[]) => Promise<unknown>>;

/** A circuit another replica opened, as this replica holds it (the local breaker knows nothing of it). */
interface Forced {
  /** On options.now: open before, half-open from then on until a probe here or a close event settles it. */
  until: number;
  /** The opening's full cool-down: what a failed probe here opens it again for. */
  cooldownMs: number;
  probing: boolean;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Circuit breakers shared by replicas through Redis (issue 13): one
 * replica's open circuit spares the others the failing provider.
 *
 * The local breakers (circuit-breaker.ts) stay the truth of what this replica
 * saw, and every method stays synchronous: no request waits on Redis. When a
 * local circuit opens, the opening is published (a Lua script: Redis TIME, a
 * record with the time left as its TTL, and an event); every other replica,
 * subscribed on a second connection, holds that provider open ("forced") for
 * the time left, measured on its own monotonic clock from the moment the
 * event arrives. A replica that starts or reconnects later reads the records
 * still in force (their PTTL is the time left, on Redis's clock).
 *
 * When a forced open ends, the provider is half-open on this replica (not
 * closed): exactly one probe at a time, as with a local opening, so N
 * replicas send N probes, not N floods. The probe's success closes the
 * circuit here and, through a close event, on every replica holding it
 * forced; its failure opens it again here for the opening's full cool-down
 * and publishes that opening. A close event ends only a forced open: a
 * replica's own local circuit (it saw the failures itself) ends by its own
 * probe. The state reported is the stricter of the forced and local ones.
 *
 * Redis down or slow: every call to it is fire-and-forget with bounded
 * timeouts, so the breakers behave as the local ones; one warning when the
 * connection is lost and one line when it is back (src/redis/connection.ts),
 * the URL without its password. After a reconnect the replica re-reads the
 * records and republishes its own circuits still open (an opening during the
 * outage is shared once Redis is back).
 */
export function createSharedBreakers(local: Breakers, options: SharedBreakersOptions): SharedBreakers {
  const prefix = options.keyPrefix ?? DEFAULT_CIRCUIT_KEY_PREFIX;
  const channel = `${prefix}events`;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const now = options.now ?? (() => performance.now());
  const me = options.replicaId ?? randomBytes(6).toString("hex");
  const { log } = options;
  const tls = options.tls ? { tls: options.tls } : {};
  const pub = openRedis({
    url: options.url, timeoutMs, name: "gatewayz-circuits", log, ...tls,
    what: { feature: "circuits", whileDown: "each replica's circuits on their own until it is back", whenBack: "circuits shared again" },
  });
  // A connection in subscriber mode can send nothing but (un)subscriptions, hence a second one;
  // without a logger, since it goes down and up with the first (one warning, one info, in all).
  const sub = openRedis({
    url: options.url, timeoutMs, name: "gatewayz-circuits-events", ...tls,
    what: { feature: "circuits", whileDown: "", whenBack: "" },
  });
  const client = pub.client as ScriptClient;
  client.defineCommand("gzCircuitOpen", { lua: OPEN });
  client.defineCommand("gzCircuitClose", { lua: CLOSE });

  const forced = new Map<string, Forced>();
  /** This replica's own open circuits and their cool-down (retryInMs at the opening), to republish after a reconnect. */
  const ownOpen = new Map<string, number>();
  let closed = false;

  const warn = throttledWarn(log, options.url, WARN_EVERY_MS);
  // While the connection is down, its one warning said it all.
  const failed = (what: string) => (err: unknown) => {
    if (pub.healthy && !closed) warn(`circuits: ${what}`, err);
  };

  // Listeners hear the combined state, each change once (as the local breakers tell theirs).
  const listeners = new Set<(provider: string, state: BreakerState) => void>();
  const report = changeReporter((p) => state(p), listeners);

  const state = (p: string): BreakerState => {
    const own = local.state(p);
    const f = forced.get(p);
    if (!f) return own;
    if (own === "open" || now() < f.until) return "open";
    return "half_open";
  };

  // Wakes when a forced open ends, so listeners hear "half_open" without waiting for a request.
  const arm = (p: string, f: Forced) => {
    f.timer = setTimeout(() => {
      if (forced.get(p) !== f) return;
      if (f.until - now() > 0) arm(p, f);
      else report(p);
    }, Math.max(1, Math.ceil(f.until - now())));
    f.timer.unref();
  };
  const force = (p: string, ms: number, cooldownMs: number) => {
    const until = now() + ms;
    const old = forced.get(p);
    if (old && old.until >= until) return;
    if (old?.timer) clearTimeout(old.timer);
    const f: Forced = { until, cooldownMs, probing: false, timer: undefined };
    forced.set(p, f);
    arm(p, f);
    report(p);
  };
  const unforce = (p: string): boolean => {
    const f = forced.get(p);
    if (!f) return false;
    if (f.timer) clearTimeout(f.timer);
    forced.delete(p);
    return true;
  };

  const publishOpen = (p: string, msLeft: number, cooldownMs: number) => {
    if (closed || !pub.healthy || msLeft < 1) return;
    client.gzCircuitOpen(1, prefix + p, String(Math.ceil(msLeft)), me, p, channel, String(Math.ceil(cooldownMs)))
      .catch(failed(`the opening of ${p}'s circuit could not be shared`));
  };
  const publishClose = (p: string) => {
    if (closed || !pub.healthy) return;
    client.gzCircuitClose(1, prefix + p, p, me, channel).catch(failed(`the closing of ${p}'s circuit could not be shared`));
  };

  /** Another replica's opening, with `msLeft` on the clock it was measured on (Redis's). */
  const apply = (o: Opening, msLeft: number) => {
    if (o.by === me || !(msLeft > 0)) return;
    const cooldownMs = typeof o.cooldownMs === "number" && o.cooldownMs > 0 ? o.cooldownMs : o.until - o.openedAt;
    if (!forced.has(o.provider) && local.state(o.provider) !== "open") {
      log.info(`circuit for ${o.provider} opened by replica ${o.by}; skipping it for ${Math.round(msLeft / 1000)} s`);
    }
    force(o.provider, msLeft, cooldownMs);
  };
  const receive = (message: string) => {
    let event: Partial<Opening & Closing>;
    try {
      event = JSON.parse(message) as Partial<Opening & Closing>;
    } catch {
      return;
    }
    if (typeof event.provider !== "string" || !event.provider || typeof event.by !== "string" || event.by === me) return;
    if (event.closed === true) {
      if (unforce(event.provider)) {
        log.info(`circuit for ${event.provider} closed by replica ${event.by}: its probe answered`);
        report(event.provider);
      }
      return;
    }
    if (typeof event.openedAt !== "number" || typeof event.until !== "number") return;
    // Published the instant the script ran (pub/sub keeps no backlog), so this much is left now.
    apply(event as Opening, event.until - event.openedAt);
  };

  /** Circuits opened while this replica was not listening (at start, after a reconnect), and its own opened meanwhile. */
  const catchUp = async () => {
    for (const { opening, msLeft } of await readOpenings(client, prefix)) apply(opening, msLeft);
    // Openings this replica could not publish while Redis was away.
    for (const [p, cooldownMs] of ownOpen) {
      if (local.state(p) === "open") publishOpen(p, local.retryInMs(p), cooldownMs);
    }
  };

  let subscribed = false;
  let synced = false;
  let syncing: Promise<void> | undefined;
  let again = false;
  const waiters = new Set<(ok: boolean) => void>();
  const sync = () => {
    if (closed || !subscribed || pub.client.status !== "ready") return;
    if (syncing) {
      again = true;
      return;
    }
    syncing = catchUp().then(
      () => {
        synced = true;
        for (const w of waiters) w(true);
        waiters.clear();
      },
      failed("the circuits already open could not be read"),
    ).finally(() => {
      syncing = undefined;
      if (again) {
        again = false;
        sync();
      }
    });
  };
  const lost = () => {
    synced = false;
  };
  pub.client.on("ready", sync);
  pub.client.on("close", lost);
  sub.client.on("close", () => {
    subscribed = false;
    lost();
  });
  // ioredis resubscribes by itself after a reconnect, but only after "ready": subscribing here
  // too (idempotent) tells us when it is done, so the records are read with no gap for events.
  sub.client.on("ready", () => {
    sub.client.subscribe(channel).then(() => {
      subscribed = true;
      sync();
    }, failed("could not listen for other replicas' circuits"));
  });
  sub.client.on("message", (from: string, message: string) => {
    if (from === channel && !closed) receive(message);
  });

  local.onChange((p, s) => {
    if (s === "open") {
      // Just opened: what it has left is its whole cool-down.
      const cooldownMs = local.retryInMs(p);
      ownOpen.set(p, cooldownMs);
      publishOpen(p, cooldownMs, cooldownMs);
    } else if (s === "closed") {
      ownOpen.delete(p);
    }
    report(p);
  });

  return {
    state,
    tryAcquire(p) {
      const f = forced.get(p);
      if (!f) return local.tryAcquire(p);
      if (now() < f.until || f.probing) return false;
      const own = local.state(p);
      // The local breaker has its say too: refused while its own circuit is open, one probe slot when half-open.
      if (!local.tryAcquire(p)) return false;
      f.probing = true;
      if (own === "closed") log.info(`circuit for ${p} is half-open: probing it with one request`);
      return true;
    },
    success(p) {
      const wasOpen = forced.has(p) || local.state(p) !== "closed";
      if (unforce(p) && local.state(p) === "closed") log.info(`circuit for ${p} closed: it answered again`);
      local.success(p);
      report(p);
      if (wasOpen) publishClose(p);
    },
    failure(p) {
      const f = forced.get(p);
      if (!f?.probing) return local.failure(p);
      // This replica's probe of a circuit opened elsewhere failed: open again, here and everywhere.
      f.probing = false;
      const ownBefore = local.state(p);
      log.warn(`circuit for ${p} opened again: the probe failed; skipping it for ${Math.round(f.cooldownMs / 1000)} s`);
      unforce(p);
      force(p, f.cooldownMs, f.cooldownMs);
      local.failure(p);
      // Unless the local breaker just opened too (its listener published that opening).
      if (!(ownBefore !== "open" && local.state(p) === "open")) publishOpen(p, f.cooldownMs, f.cooldownMs);
    },
    neutral(p) {
      const f = forced.get(p);
      if (f) f.probing = false;
      local.neutral(p);
    },
    retryInMs(p) {
      const f = forced.get(p);
      return Math.max(local.retryInMs(p), f ? Math.max(0, Math.ceil(f.until - now())) : 0);
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    ready(ms) {
      if (synced) return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = (ok: boolean) => { clearTimeout(timer); resolve(ok); };
        const timer = setTimeout(() => { waiters.delete(done); resolve(false); }, ms);
        waiters.add(done);
      });
    },
    async close() {
      closed = true;
      synced = false;
      for (const w of waiters) w(false);
      waiters.clear();
      await Promise.all([pub.close(), sub.close()]);
    },
  };
}
