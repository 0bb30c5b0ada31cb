import type { Breakers } from "../core/circuit-breaker.js";
import type { Logger } from "../log.js";
import type { ProviderSet } from "../providers/provider-set.js";
import type { UsageStore } from "../storage/usage.js";
import type { WriteCheck } from "../storage/write-check.js";

/**
 * Why this process should not be sent traffic, most fundamental first (the
 * order `reasons` lists them in):
 * - draining: a shutdown has begun;
 * - database_unwritable: the write check fails (storage/write-check.ts), or
 *   the usage store's rows are being refused (a full file: SQLITE_FULL);
 * - usage_store_unavailable: the retry buffer of refused usage rows is full,
 *   so chats are refused: a consequence of the former, kept apart because it
 *   comes later (rows are held first) and can outlast it (held rows committed);
 * - no_provider_configured: no provider has a key (model lists still work);
 * - all_circuits_open: every configured provider is cooling down.
 */
export const REASONS = ["draining", "database_unwritable", "usage_store_unavailable", "no_provider_configured", "all_circuits_open"] as const;
export type Reason = (typeof REASONS)[number];

/**
 * Whether this process should be sent traffic, as the reasons it should not.
 * /readyz, /healthz and gRPC health follow it.
 */
export interface Readiness {
  readonly ready: boolean;
  /** The reasons in force, in REASONS order. */
  readonly reasons: readonly Reason[];
  set(reason: Reason, holds: boolean): void;
  /** Calls `listener` whenever the reasons in force change. */
  onChange(listener: (reasons: readonly Reason[]) => void): void;
  /** Before a probe is answered: brings checked reasons up to date (each check caches its result). */
  refresh(): void;
  /** A check for refresh() to run. */
  addCheck(check: () => void): void;
}

export function createReadiness(): Readiness {
  const held = new Set<Reason>();
  const listeners: Array<(reasons: readonly Reason[]) => void> = [];
  const checks: Array<() => void> = [];
  const reasons = () => REASONS.filter((r) => held.has(r));
  return {
    get ready() {
      return held.size === 0;
    },
    get reasons() {
      return reasons();
    },
    set(reason, holds) {
      if (held.has(reason) === holds) return;
      if (holds) held.add(reason);
      else held.delete(reason);
      const now = reasons();
      for (const l of listeners) l(now);
    },
    onChange(listener) {
      listeners.push(listener);
    },
    refresh() {
      for (const check of checks) check();
    },
    addCheck(check) {
      checks.push(check);
    },
  };
}

/**
 * The reasons that take each gRPC service out of service. "" (the server as
 * a whole, what a bare probe asks) and the chat service need everything;
 * admin calls need the database, not providers; health and reflection answer
 * until the drain.
 */
const SERVICE_REASONS: Readonly<Record<string, readonly Reason[]>> = {
  "": REASONS,
  "gatewayz.v1.GatewayService": REASONS,
  "gatewayz.v1.AdminService": ["draining", "database_unwritable"],
  "grpc.health.v1.Health": ["draining"],
  "grpc.reflection.v1.ServerReflection": ["draining"],
  "grpc.reflection.v1alpha.ServerReflection": ["draining"],
};

/** The services gRPC health reports on, besides "". */
export const HEALTH_SERVICES = Object.keys(SERVICE_REASONS).filter((s) => s !== "");

/** Each service's gRPC health status under these reasons. */
export function serviceStatuses(reasons: readonly Reason[]): Array<[string, "SERVING" | "NOT_SERVING"]> {
  return Object.entries(SERVICE_REASONS).map(([service, blocking]) =>
    [service, reasons.some((r) => blocking.includes(r)) ? "NOT_SERVING" : "SERVING"]);
}

export interface ReadinessSources {
  usage: Pick<UsageStore, "available" | "onAvailabilityChange" | "health">;
  writeCheck: WriteCheck;
  providers: Pick<ProviderSet, "loaded">;
  breakers: Pick<Breakers, "state" | "onChange">;
  log: Logger;
}

/** How often the database is checked when no probe asks, so gRPC health watches see it change. */
const WRITE_CHECK_EVERY_MS = 5_000;

/**
 * Keeps every reason but draining up to date: the usage store and the
 * breakers say when they change; the database is checked on each probe
 * (refresh; the write at most once a second) and every 5 s. Returns the stop function.
 */
export function watchReadiness(readiness: Readiness, sources: ReadinessSources): () => void {
  const { usage, writeCheck, providers, breakers, log } = sources;
  readiness.set("usage_store_unavailable", !usage.available());
  const unsubscribeUsage = usage.onAvailabilityChange((available) => readiness.set("usage_store_unavailable", !available));

  readiness.set("no_provider_configured", providers.loaded.length === 0);
  const circuits = () => readiness.set("all_circuits_open", providers.loaded.length > 0 && providers.loaded.every((p) => breakers.state(p) === "open"));
  const unsubscribeBreakers = breakers.onChange(circuits);

  let stopped = false;
  const checkDatabase = () => {
    if (stopped) return;
    // The usage store's last refusal first: its rows need new pages, which the write check's row does not.
    const refusal = usage.health().lastError ?? (writeCheck.writable() ? undefined : writeCheck.lastError);
    if ((refusal === undefined) === !readiness.reasons.includes("database_unwritable")) return;
    if (refusal === undefined) log.info("readiness: the database accepts writes again");
    else log.error(`readiness: the database refuses writes (${refusal}); not ready`);
    readiness.set("database_unwritable", refusal !== undefined);
  };
  checkDatabase();
  readiness.addCheck(checkDatabase);
  const timer = setInterval(checkDatabase, WRITE_CHECK_EVERY_MS).unref();
  return () => {
    stopped = true;
    clearInterval(timer);
    unsubscribeUsage();
    unsubscribeBreakers();
  };
}
