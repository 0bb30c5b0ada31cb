/**
 * Whether this process should be sent traffic, as the reasons it should
 * not: "draining" during a shutdown, "usage_store_unavailable" while usage
 * rows cannot be committed. gRPC health, /healthz (and load balancers
 * reading them) follow it.
 */
export interface Readiness {
  readonly ready: boolean;
  /** The reasons in force, in the order they were raised. */
  readonly reasons: readonly string[];
  set(reason: string, holds: boolean): void;
  onChange(listener: (ready: boolean) => void): void;
}

export function createReadiness(): Readiness {
  const reasons = new Set<string>();
  const listeners: Array<(ready: boolean) => void> = [];
  return {
    get ready() {
      return reasons.size === 0;
    },
    get reasons() {
      return [...reasons];
    },
    set(reason, holds) {
      const was = reasons.size === 0;
      if (holds) reasons.add(reason);
      else reasons.delete(reason);
      const now = reasons.size === 0;
      if (now !== was) for (const l of listeners) l(now);
    },
    onChange(listener) {
      listeners.push(listener);
    },
  };
}
