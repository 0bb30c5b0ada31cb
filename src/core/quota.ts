import type { Budgets } from "./budgets.js";
import type { Limiter, RateLimitSnapshot, Subject } from "./limiter.js";
import type { Policy } from "./policy.js";

/** A request's share of the rate limits and the budget, held until it settles. */
export interface QuotaTicket {
  readonly snapshot: RateLimitSnapshot;
  /** Replaces the reservations by what the request used (0, 0n gives them back). Once. */
  settle(tokens: number, costPico: bigint): void;
}

/**
 * The stateful half of admission: rate limits, then budget. In one process it
 * is local and synchronous; with --workers it lives in the primary process and
 * workers ask it over IPC (src/cluster/), so limits stay exact across them.
 */
export interface Quota {
  /** Throws (or rejects with) `rate_limited`, `insufficient_quota` or `limiter_unavailable`. */
  take(subject: Subject, tokens: number, estimatePico: bigint): QuotaTicket | Promise<QuotaTicket>;
}

/** In-process and synchronous: what a single gateway uses, and what the --workers primary serves. */
export interface LocalQuota extends Quota {
  take(subject: Subject, tokens: number, estimatePico: bigint): QuotaTicket;
}

export function localQuota(limiter: Limiter, budgets: Budgets): LocalQuota {
  return {
    take(subject, tokens, estimatePico) {
      const permit = limiter.acquire(subject, tokens);
      let hold;
      try {
        hold = budgets.reserve(subject, estimatePico);
      } catch (err) {
        permit.settle(0);
        throw err;
      }
      return {
        snapshot: permit.snapshot,
        settle(used, costPico) {
          permit.settle(used);
          hold.settle(costPico);
        },
      };
    },
  };
}

/** Whether any rate limit or budget applies to the subject: if none does, there is nothing to count. */
export function quotaApplies(policy: Policy, subject: Subject): boolean {
  policy.refresh();
  for (const [scope, id] of [["key", subject.keyId], ["user", subject.userId], ["system", ""]] as const) {
    const l = policy.limitsFor(scope, id);
    if (l.rpm > 0 || l.tpm > 0 || l.rpd > 0 || l.concurrent > 0) return true;
    if (scope !== "system" && policy.budgetFor(scope, id)) return true;
  }
  return false;
}
