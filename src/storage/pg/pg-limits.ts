import {
  budgetsByKey, checkLimitValue, LIMIT_FIELDS, limitsByKey, type BudgetDbRow, type LimitDbRow, type LimitStore,
} from "../limits.js";
import { NOTIFY_CHANGE, type ChangeFeed } from "./pg-changes.js";
import type { SyncPg } from "./sync-pg.js";

const LIMITS = "SELECT scope, subject, rpm, tpm, rpd, concurrent FROM rate_limits";
const BUDGETS = "SELECT scope, subject, limit_pico, period FROM budgets";
// A field not named keeps its value; a named one is set (null: back to the default).
const UPSERT_LIMITS = `INSERT INTO rate_limits (scope, subject, rpm, tpm, rpd, concurrent, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
  ON CONFLICT (scope, subject) DO UPDATE SET
  ${LIMIT_FIELDS.map((f, i) => `${f} = CASE WHEN $${8 + i}::boolean THEN excluded.${f} ELSE rate_limits.${f} END`).join(",\n  ")},
  updated_at = excluded.updated_at`;

/**
 * Limits and budgets on PostgreSQL (DATABASE_URL): the policy reads them on
 * every request, so it reads an in-memory copy that every replica's (and the
 * CLI's) writes refresh by NOTIFY (pg-changes.ts); dataVersion() moves with it.
 */
export function createPgLimitStore(pg: SyncPg, feed: ChangeFeed, now: () => number = Date.now): LimitStore {
  // One view of both tables: a change is taken in whole, and dataVersion moves once for it.
  const both = (l: LimitDbRow[], b: BudgetDbRow[]) => ({ limits: limitsByKey(l), budgets: budgetsByKey(b) });
  const view = feed.view("limits", {
    sync: () => both(pg.query<LimitDbRow>(LIMITS), pg.query<BudgetDbRow>(BUDGETS)),
    async: async () => {
      const [l, b] = await Promise.all([pg.queryAsync<LimitDbRow>(LIMITS), pg.queryAsync<BudgetDbRow>(BUDGETS)]);
      return both(l, b);
    },
  });
  const write = (sql: string, params: unknown[]) => {
    try {
      pg.transaction([{ sql, params }, NOTIFY_CHANGE]);
    } finally {
      view.reload();
    }
  };
  return {
    limits: () => view.get().limits,
    setLimits(scope, subject, values) {
      const set = LIMIT_FIELDS.map((f) => f in values);
      const given = LIMIT_FIELDS.map((f) => values[f] ?? null);
      for (const v of given) checkLimitValue(v);
      write(UPSERT_LIMITS, [scope, subject, ...given, now(), ...set]);
    },
    budgets: () => view.get().budgets,
    setBudget(scope, subject, budget) {
      if (budget === null) write("DELETE FROM budgets WHERE scope = $1 AND subject = $2", [scope, subject]);
      else write(`INSERT INTO budgets (scope, subject, limit_pico, period, updated_at) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (scope, subject) DO UPDATE SET limit_pico = excluded.limit_pico, period = excluded.period, updated_at = excluded.updated_at`,
      [scope, subject, budget.limitPico, budget.period, now()]);
    },
    dataVersion: () => String(view.get() && view.version),
  };
}
