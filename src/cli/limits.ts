import type { LimitsView, Target } from "../core/accounts.js";
import { LIMIT_FIELDS, LIMIT_OPTIONS, limitValues, optional, required, target } from "./args.js";
import { budgetText, limitText, printable, viewJson } from "./format.js";
import { UsageError, type CommandSpec, type Context, type Output } from "./spec.js";

const TARGET_OPTIONS = { system: { type: "boolean" }, user: { type: "string" }, key: { type: "string" } } as const;
const BUDGET_TARGET_OPTIONS = { user: { type: "string" }, key: { type: "string" } } as const;

function label(t: Target): string {
  switch (t.scope) {
    case "system": return "the whole system";
    case "user": return `user ${printable(t.user)}`;
    case "key": return `key ${printable(t.keyId)}`;
  }
}

/** A target's limits, each with the configured default it falls back to, and its budget. */
function shown(ctx: Context, t: Target, view: LimitsView): Output {
  const defaults = ctx.defaults(t.scope);
  const lines = [`limits for ${label(t)}`, ...LIMIT_FIELDS.map((f) => `  ${f.padEnd(10)}  ${limitText(view.row?.[f], defaults[f])}`)];
  if (t.scope !== "system") lines.push(`budget        ${budgetText(view.budget)}`);
  return { text: lines.join("\n") + "\n", json: { target: t, ...viewJson(view), defaults } };
}

export const LIMIT_COMMANDS: readonly CommandSpec[] = [
  {
    words: ["limits", "set"],
    args: [],
    usage: "(--system | --user NAME | --key ID) [--rpm N] [--tpm N] [--rpd N] [--concurrent N]",
    summary: "set rate limits: N per window, 0 = unlimited, 'default' = back to the configured default",
    options: { ...TARGET_OPTIONS, ...LIMIT_OPTIONS },
    parse({ values }) {
      const t = target(values, ["system", "user", "key"]);
      const changes = limitValues(values);
      if (Object.keys(changes).length === 0) throw new UsageError("nothing to set: give --rpm, --tpm, --rpd or --concurrent");
      return (ctx) => shown(ctx, t, ctx.accounts.setLimits(t, changes));
    },
  },
  {
    words: ["limits", "show"],
    existingDatabase: true,
    args: [],
    usage: "(--system | --user NAME | --key ID)",
    summary: "show rate limits (and the budget) of the system, a user or a key",
    options: TARGET_OPTIONS,
    parse({ values }) {
      const t = target(values, ["system", "user", "key"]);
      return (ctx) => shown(ctx, t, ctx.accounts.getLimits(t));
    },
  },
  {
    words: ["budgets", "set"],
    args: [],
    usage: "(--user NAME | --key ID) --usd X [--period total|month]",
    summary: "set a spending limit in USD, in total (the default) or per month",
    options: { ...BUDGET_TARGET_OPTIONS, usd: { type: "string" }, period: { type: "string" } },
    parse({ values }) {
      const t = target(values, ["user", "key"]);
      const budget = { usd: required(values, "usd"), period: optional(values, "period") };
      return (ctx) => shown(ctx, t, ctx.accounts.setBudget(t, budget));
    },
  },
  {
    words: ["budgets", "clear"],
    args: [],
    usage: "(--user NAME | --key ID)",
    summary: "remove a spending limit",
    options: BUDGET_TARGET_OPTIONS,
    parse({ values }) {
      const t = target(values, ["user", "key"]);
      return (ctx) => shown(ctx, t, ctx.accounts.setBudget(t, null));
    },
  },
];
