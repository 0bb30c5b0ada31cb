import { GatewayError } from "../errors.js";
import type { BudgetRow } from "../storage/limits.js";
import type { UsageStore } from "../storage/usage.js";
import { formatUsd } from "./money.js";
import { NO_RETRY, type Subject } from "./limiter.js";
import type { Policy } from "./policy.js";

export interface BudgetHold {
  /** Replaces the reservation by the actual cost. Once. */
  settle(actualPico: bigint): void;
}

export interface Budgets {
  /** Refuses with insufficient_quota if a budget is already used up by spending plus requests in flight. */
  reserve(subject: Subject, estimatePico: bigint): BudgetHold;
}

interface Account { periodStart: number; spent: bigint; reserved: bigint }

const NO_HOLD: BudgetHold = { settle() {} };

/**
 * Spending limits per key and per user, for all time or per UTC calendar
 * month. Spending so far is read from the usage table once per subject and
 * period, then kept in memory as requests settle.
 *
 * Reserve-then-settle: a request reserves its worst case (prompt estimate +
 * max_tokens at the model's prices) and is refused when spent + reserved has
 * reached the budget. A budget is therefore overshot by at most the actual
 * cost of the requests already in flight when it ran out, beyond what they
 * reserved; with max_tokens set, by nothing more than their reservations.
 */
export function createBudgets(policy: Policy, usage: UsageStore, now: () => number = Date.now): Budgets {
  const accounts = new Map<string, Account>();

  const account = (scope: "key" | "user", id: string, budget: BudgetRow, t: number): Account => {
    const start = periodStart(budget, t);
    const key = `${scope}:${id}`;
    let a = accounts.get(key);
    if (!a || a.periodStart !== start) {
      a = { periodStart: start, spent: usage.spent(scope, id, start), reserved: 0n };
      accounts.set(key, a);
    }
    return a;
  };

  return {
    reserve(subject, estimatePico) {
      const t = now();
      try {
        policy.refresh(); // usually a no-op: the limiter has just done it
      } catch (err) {
        throw new GatewayError("limiter_unavailable", "budgets are unavailable, so the request was refused", { cause: err });
      }
      const held: Account[] = [];
      for (const [scope, id] of [["key", subject.keyId], ["user", subject.userId]] as const) {
        const budget = policy.budgetFor(scope, id);
        if (!budget) continue;
        const a = account(scope, id, budget, t);
        if (a.spent + a.reserved >= budget.limitPico) throw budgetUsedUp(scope, budget, a.spent);
        held.push(a);
      }
      if (!held.length) return NO_HOLD;
      for (const a of held) a.reserved += estimatePico;
      let settled = false;
      return {
        settle(actualPico) {
          if (settled) return;
          settled = true;
          for (const a of held) {
            a.reserved -= estimatePico;
            a.spent += actualPico;
          }
        },
      };
    },
  };
}

/** The refusal of a request whose key's or user's budget is used up for its period. */
export function budgetUsedUp(scope: "key" | "user", budget: BudgetRow, spent: bigint): GatewayError {
  const period = budget.period === "month" ? " this month" : "";
  // Used up for its period (or for good): no retry can succeed before an admin raises it.
  return new GatewayError("insufficient_quota",
    `the ${scope}'s budget of $${formatUsd(budget.limitPico)}${period} is used up ($${formatUsd(spent)} spent)`, { headers: NO_RETRY, refusal: { dimension: "budget", scope } });
}

/** Where a budget's period began: the UTC month's first instant, or 0 for a total budget. */
export function periodStart(budget: BudgetRow, t: number): number {
  return budget.period === "month" ? monthStart(t) : 0;
}

function monthStart(t: number): number {
  const d = new Date(t);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}
