import { randomBytes } from "node:crypto";
import type { BreakerState, Breakers } from "../core/circuit-breaker.js";
import type { Logger } from "../log.js";
import { openRedis, redactPassword } from "./connection.js";

export interface SharedBreakersOptions {
  /** REDIS_URL. */
  readonly url: string;
  readonly timeoutMs: number;
  /** BREAKER_COOLDOWN_MS: how long a circuit another replica opened stays open here. */
  readonly cooldownMs: number;
  readonly log: Pick<Logger, "warn" | "info">;
  readonly keyPrefix?: string;
}

export interface SharedBreakers extends Breakers {
  /** Resolves true once both connections are ready, false after `ms` without. */
  ready(ms: number): Promise<boolean>;
  close(): Promise<void>;
}

/** A circuit another replica opened, as this one holds it. */
interface Borrowed {
  /** performance.now() when its cool-down ends; half-open from then on, until a probe settles it. */
  until: number;
  probing: boolean;
  timer: NodeJS.Timeout;
}

interface Event {
  readonly provider: string;
  readonly kind: "open" | "close";
  /** For "open": how long it stays open from the moment it was sent. */
  readonly ms?: number;
  readonly by: string;
}

/**
 * Circuit breakers whose openings every replica hears about (REDIS_URL): one
 * replica's open circuit spares the others the failing provider. This
 * replica's own breakers stay as they are (core/circuit-breaker.ts, local
 * and synchronous: no request waits on Redis); when one opens, the opening is
 * published (PUBLISH, and a key with the cool-down's remaining time as its
 * TTL, for replicas that start or reconnect later), and every other replica
 * holds that provider open for the same time, then half-open: one probe at
 * a time, whose success closes the circuit everywhere and whose failure opens
 * it again, everywhere. Times travel as durations (ms left), never as clock
 * readings, so replicas whose clocks disagree still agree.
 *
 * Redis down: each replica's breakers go on alone, as without REDIS_URL.
 */
export function createSharedBreakers(local: Breakers, options: SharedBreakersOptions): SharedBreakers {
  const prefix = options.keyPrefix ?? "gatewayz:circuit:";
  const channel = `${prefix}events`;
  const { log, cooldownMs } = options;
  const me = randomBytes(6).toString("hex");
  const what = { feature: "circuits", whileDown: "each replica's circuits on their own until it is back", whenBack: "circuits shared again" };
  const pub = openRedis({ url: options.url, timeoutMs: options.timeoutMs, name: "gatewayz-circuits", log, what });
  // A connection in subscriber mode can send nothing else: its own, and quiet (the publisher's lines say it all).
  const sub = openRedis({ url: options.url, timeoutMs: options.timeoutMs, name: "gatewayz-circuits-events", what });

  const borrowed = new Map<string, Borrowed>();
  const listeners = new Set<(provider: string, state: BreakerState) => void>();
  const tell = (provider: string, state: BreakerState) => {
    for (const l of listeners) l(provider, state);
  };
  const failed = (what: string) => (err: unknown) =>
    log.warn(`circuits: ${what}: ${redactPassword(err instanceof Error ? err.message : String(err), options.url)}`);

  const publish = (event: Omit<Event, "by">) => {
    if (!pub.healthy) return;
    const message = JSON.stringify({ ...event, by: me });
    const key = prefix + event.provider;
    const write = event.kind === "open" ? pub.client.set(key, message, "PX", Math.max(1, Math.round(event.ms!))) : pub.client.del(key);
    write.then(() => pub.client.publish(channel, message)).catch(failed("an opening could not be shared"));
  };

  /** Holds `provider` open for `ms` because another replica's circuit opened (or this replica's borrowed probe failed). */
  const borrow = (provider: string, ms: number) => {
    const was = borrowed.get(provider);
    if (was) clearTimeout(was.timer);
    const b: Borrowed = { until: performance.now() + ms, probing: false, timer: setTimeout(() => tell(provider, "half_open"), ms) };
    b.timer.unref();
    borrowed.set(provider, b);
    if (!was || was.until <= performance.now()) tell(provider, "open");
  };
  const giveBack = (provider: string) => {
    const b = borrowed.get(provider);
    if (!b) return false;
    clearTimeout(b.timer);
    borrowed.delete(provider);
    return true;
  };

  const receive = (message: string) => {
    let event: Event;
    try {
      event = JSON.parse(message) as Event;
    } catch {
      return;
    }
    if (event.by === me || typeof event.provider !== "string") return;
    if (event.kind === "open" && typeof event.ms === "number" && event.ms > 0) {
      log.warn(`circuit for ${event.provider} opened by another replica; skipping it for ${Math.round(event.ms / 1000)} s`);
      borrow(event.provider, event.ms);
    } else if (event.kind === "close") {
      const held = giveBack(event.provider);
      // Another replica's probe succeeded: this replica's own circuit closes too.
      local.success(event.provider);
      if (held) tell(event.provider, local.state(event.provider));
    }
  };

  /** Circuits opened elsewhere while this replica was not listening (at start, after a reconnect). */
  const catchUp = async () => {
    let cursor = "0";
    do {
      const [next, keys] = await pub.client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 100);
      cursor = next;
      for (const key of keys) {
        if (key === channel) continue;
        const [[, value], [, ttl]] = (await pub.client.multi().get(key).pttl(key).exec()) as [[unknown, string | null], [unknown, number]];
        if (value && ttl > 0) receive(JSON.stringify({ ...(JSON.parse(value) as Event), ms: ttl }));
      }
    } while (cursor !== "0");
  };
  sub.client.on("message", (_channel: string, message: string) => receive(message));
  sub.client.on("ready", () => {
    sub.client.subscribe(channel).then(() => catchUp()).catch(failed("could not listen for other replicas' circuits"));
  });

  // This replica's own circuits: an opening or a closing is everyone's.
  local.onChange((provider, state) => {
    if (state === "open") publish({ provider, kind: "open", ms: local.retryInMs(provider) });
    else if (state === "closed") publish({ provider, kind: "close" });
    if (!borrowed.has(provider)) tell(provider, state);
  });

  const phase = (b: Borrowed): "open" | "half_open" => (performance.now() < b.until ? "open" : "half_open");

  return {
    state(p) {
      const b = borrowed.get(p);
      return b ? phase(b) : local.state(p);
    },
    tryAcquire(p) {
      const b = borrowed.get(p);
      if (!b) return local.tryAcquire(p);
      if (phase(b) === "open" || b.probing) return false;
      b.probing = true;
      log.info(`circuit for ${p} is half-open: probing it with one request`);
      return true;
    },
    success(p) {
      if (giveBack(p)) {
        log.info(`circuit for ${p} closed: it answered again`);
        publish({ provider: p, kind: "close" });
        tell(p, "closed");
      }
      local.success(p);
    },
    failure(p) {
      const b = borrowed.get(p);
      if (b?.probing) {
        log.warn(`circuit for ${p} opened again: the probe failed; skipping it for ${Math.round(cooldownMs / 1000)} s`);
        borrow(p, cooldownMs);
        publish({ provider: p, kind: "open", ms: cooldownMs });
        return;
      }
      local.failure(p);
    },
    neutral(p) {
      const b = borrowed.get(p);
      if (b) b.probing = false;
      local.neutral(p);
    },
    retryInMs(p) {
      const b = borrowed.get(p);
      return b ? Math.max(0, b.until - performance.now()) : local.retryInMs(p);
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    ready: async (ms) => (await Promise.all([pub.ready(ms), sub.ready(ms)])).every(Boolean),
    async close() {
      for (const p of [...borrowed.keys()]) giveBack(p);
      await Promise.all([pub.close(), sub.close()]);
    },
  };
}
