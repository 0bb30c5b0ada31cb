import type { Db } from "./db.js";
import { dbVersion } from "./db-version.js";

export type LimitScope = "system" | "user" | "key";
export type BudgetScope = "user" | "key";
export type BudgetPeriod = "total" | "month";

/** A limit of N per window; 0 means unlimited; undefined inherits the configured default. */
export interface LimitValues {
  rpm?: number | undefined;
  tpm?: number | undefined;
  rpd?: number | undefined;
  concurrent?: number | undefined;
}

export interface LimitRow extends LimitValues {
  scope: LimitScope;
  /** "" for system; else a user or key id. */
  subject: string;
}

export interface BudgetRow {
  scope: BudgetScope;
  subject: string;
  limitPico: bigint;
  period: BudgetPeriod;
}

export interface LimitStore {
  /** Rows of `rate_limits`, keyed `${scope}:${subject}`. */
  limits(): Map<string, LimitRow>;
  /** Sets the given fields; a field set to null goes back to the default. */
  setLimits(scope: LimitScope, subject: string, values: { [K in keyof LimitValues]?: number | null }): void;
  budgets(): Map<string, BudgetRow>;
  setBudget(scope: BudgetScope, subject: string, budget: { limitPico: bigint; period: BudgetPeriod } | null): void;
  /**
   * Changes whenever limits or budgets may have changed: SQLite's
   * data_version moves when another connection (the CLI, in another process)
   * commits, and this store counts its own writes, which data_version does
   * not show. Cheap enough to ask on every request.
   */
  dataVersion(): string;
}

export const LIMIT_FIELDS = ["rpm", "tpm", "rpd", "concurrent"] as const;
const FIELDS = LIMIT_FIELDS;

/** A rate_limits row as read: SQLite gives numbers, PostgreSQL's BIGINT decimal strings. */
export interface LimitDbRow { scope: LimitScope; subject: string; rpm: number | string | null; tpm: number | string | null; rpd: number | string | null; concurrent: number | string | null }
export interface BudgetDbRow { scope: BudgetScope; subject: string; limit_pico: bigint | string; period: BudgetPeriod }

/** The rows as the policy reads them, keyed `${scope}:${subject}`; an unset field inherits the default. */
export function limitsByKey(rows: readonly LimitDbRow[]): Map<string, LimitRow> {
  const out = new Map<string, LimitRow>();
  for (const r of rows) {
    const row: LimitRow = { scope: r.scope, subject: r.subject };
    for (const f of FIELDS) if (r[f] !== null) row[f] = Number(r[f]);
    out.set(`${r.scope}:${r.subject}`, row);
  }
  return out;
}

export function budgetsByKey(rows: readonly BudgetDbRow[]): Map<string, BudgetRow> {
  const out = new Map<string, BudgetRow>();
  for (const r of rows) out.set(`${r.scope}:${r.subject}`, { scope: r.scope, subject: r.subject, limitPico: BigInt(r.limit_pico), period: r.period });
  return out;
}

/** Limits are whole numbers of requests or tokens, 0 for unlimited. */
export function checkLimitValue(v: number | null): void {
  if (v !== null && (!Number.isInteger(v) || v < 0)) throw new Error(`limits must be non-negative integers, got ${v}`);
}

export function createLimitStore(db: Db, now: () => number = Date.now): LimitStore {
  const version = dbVersion(db);
  const s = {
    limits: db.prepare<[], LimitDbRow>("SELECT scope, subject, rpm, tpm, rpd, concurrent FROM rate_limits"),
    getLimit: db.prepare<[string, string], LimitDbRow>("SELECT scope, subject, rpm, tpm, rpd, concurrent FROM rate_limits WHERE scope = ? AND subject = ?"),
    upsertLimit: db.prepare(`INSERT INTO rate_limits (scope, subject, rpm, tpm, rpd, concurrent, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (scope, subject) DO UPDATE SET rpm = excluded.rpm, tpm = excluded.tpm, rpd = excluded.rpd,
      concurrent = excluded.concurrent, updated_at = excluded.updated_at`),
    budgets: db.prepare<[], BudgetDbRow>("SELECT scope, subject, limit_pico, period FROM budgets").safeIntegers(true),
    upsertBudget: db.prepare(`INSERT INTO budgets (scope, subject, limit_pico, period, updated_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (scope, subject) DO UPDATE SET limit_pico = excluded.limit_pico, period = excluded.period, updated_at = excluded.updated_at`),
    deleteBudget: db.prepare("DELETE FROM budgets WHERE scope = ? AND subject = ?"),
  };
  const setLimits = db.transaction((scope: LimitScope, subject: string, values: { [K in keyof LimitValues]?: number | null }) => {
    const current = s.getLimit.get(scope, subject);
    const merged = FIELDS.map((f) => (f in values ? values[f] ?? null : current?.[f] ?? null));
    for (const v of merged) checkLimitValue(v === null ? null : Number(v));
    s.upsertLimit.run(scope, subject, ...merged, now());
    version.bump();
  });
  return {
    limits: () => limitsByKey(s.limits.all()),
    // IMMEDIATE: it reads, then writes (see keys.ts).
    setLimits: (scope, subject, values) => setLimits.immediate(scope, subject, values),
    budgets: () => budgetsByKey(s.budgets.all()),
    setBudget(scope, subject, budget) {
      if (budget === null) s.deleteBudget.run(scope, subject);
      else s.upsertBudget.run(scope, subject, budget.limitPico, budget.period, now());
      version.bump();
    },
    dataVersion: () => version.current(),
  };
}
