import type { Logger } from "../log.js";

export type BreakerState = "closed" | "open" | "half_open";

export interface Breakers {
  state(provider: string): BreakerState;
  /** Whether the provider may be tried now; in half-open state, one probe at a time. */
  tryAcquire(provider: string): boolean;
  /** The provider answered (even with a client error): close its circuit. */
  success(provider: string): void;
  /** The provider failed in a way another provider might not: count it. */
  failure(provider: string): void;
  /** The attempt told us nothing (the client cancelled, or the gateway failed before sending): free a probe slot. */
  neutral(provider: string): void;
  /** Milliseconds until an open circuit lets a probe through; 0 otherwise. */
  retryInMs(provider: string): number;
  /**
   * Calls `listener` whenever a provider's state changes: it opens, it closes,
   * or its cool-down ends (half-open, on a timer, so readiness does not wait
   * for a request to notice). Returns the unsubscribe function.
   */
  onChange(listener: (provider: string, state: BreakerState) => void): () => void;
}

interface Circuit { failures: number; openedAt: number | undefined; probing: boolean }

/**
 * Tells `listeners` a provider's state when it differs from the one last
 * told (each change once); call it whenever the state may have changed.
 */
export function changeReporter(state: (provider: string) => BreakerState, listeners: ReadonlySet<(provider: string, state: BreakerState) => void>): (provider: string) => void {
  const reported = new Map<string, BreakerState>();
  return (p) => {
    const s = state(p);
    if ((reported.get(p) ?? "closed") === s) return;
    if (s === "closed") reported.delete(p);
    else reported.set(p, s);
    for (const l of listeners) l(p, s);
  };
}

/**
 * A circuit breaker per provider. After `threshold` consecutive failures the
 * circuit opens and the provider is skipped for `cooldownMs`; then it is
 * half-open: one request probes it, and success closes the circuit while
 * failure opens it again. Every provider starts closed, so every configured
 * provider is eligible from a fresh process's first request.
 */
export function createBreakers(threshold: number, cooldownMs: number, log: Logger, now: () => number = Date.now): Breakers {
  const circuits = new Map<string, Circuit>();
  const circuit = (p: string): Circuit => {
    let c = circuits.get(p);
    if (!c) circuits.set(p, (c = { failures: 0, openedAt: undefined, probing: false }));
    return c;
  };
  const state = (p: string): BreakerState => {
    const c = circuits.get(p);
    if (!c || c.openedAt === undefined) return "closed";
    return now() - c.openedAt < cooldownMs ? "open" : "half_open";
  };
  const listeners = new Set<(provider: string, state: BreakerState) => void>();
  const report = changeReporter(state, listeners);
  // Wakes when the cool-down of the opening at `openedAt` ends; a later opening has its own timer.
  const wakeAfterCooldown = (p: string, openedAt: number) => {
    setTimeout(() => {
      if (circuits.get(p)?.openedAt !== openedAt) return;
      const left = Math.max(0, openedAt + cooldownMs - now());
      if (left > 0) wakeAfterCooldown(p, openedAt);
      else report(p);
    }, Math.max(1, openedAt + cooldownMs - now())).unref();
  };
  const open = (p: string, c: Circuit, why: string) => {
    c.openedAt = now();
    c.probing = false;
    log.warn(`circuit for ${p} opened ${why}; skipping it for ${Math.round(cooldownMs / 1000)} s`);
    report(p);
    wakeAfterCooldown(p, c.openedAt);
  };

  return {
    state,
    tryAcquire(p) {
      const s = state(p);
      if (s === "closed") return true;
      if (s === "open") return false;
      const c = circuit(p);
      if (c.probing) return false;
      c.probing = true;
      log.info(`circuit for ${p} is half-open: probing it with one request`);
      return true;
    },
    success(p) {
      const c = circuits.get(p);
      if (!c) return;
      if (c.openedAt !== undefined) log.info(`circuit for ${p} closed: it answered again`);
      circuits.delete(p);
      report(p);
    },
    failure(p) {
      const c = circuit(p);
      if (c.probing) return open(p, c, "again: the probe failed");
      c.failures++;
      if (c.openedAt === undefined && c.failures >= threshold) open(p, c, `after ${c.failures} consecutive failures`);
    },
    neutral(p) {
      const c = circuits.get(p);
      if (c) c.probing = false;
    },
    retryInMs(p) {
      const c = circuits.get(p);
      return c?.openedAt === undefined ? 0 : Math.max(0, c.openedAt + cooldownMs - now());
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
