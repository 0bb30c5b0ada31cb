import { formatUsd } from "../core/money.js";
import type { UsageRowView } from "../storage/usage-lookup.js";
import type { UsageGroup, UsageSummaryRow } from "../storage/usage.js";
import { choice, day, optional } from "./args.js";
import { iso, printable, table } from "./format.js";
import { UsageError, type CommandSpec, type Context, type Output } from "./spec.js";

const GROUPS: readonly UsageGroup[] = ["key", "user", "model", "day"];
const DAY_MS = 86_400_000;

/** Hits over all requests of the group, 0 to 1; null for a group without requests. */
const hitRatio = (r: Omit<UsageSummaryRow, "group">): number | null => (r.requests === 0 ? null : r.cached / r.requests);
const percent = (ratio: number | null) => (ratio === null ? "-" : `${(Math.round(ratio * 1000) / 10).toFixed(1)}%`);

const numbers = (r: Omit<UsageSummaryRow, "group">) => ({
  requests: r.requests, errors: r.errors, cached: r.cached, hitRatio: hitRatio(r),
  promptTokens: r.promptTokens, completionTokens: r.completionTokens, costUsd: formatUsd(r.costPico), savedUsd: formatUsd(r.savedPico),
});

const SUMMARY_FLAGS = ["by", "since", "until", "user", "key"] as const;

/** The row of one request, every field, as `key  value` lines. */
function rowText(r: UsageRowView): string {
  const ms = (v: number | null) => (v === null ? "-" : `${Math.round(v * 10) / 10} ms`);
  const flags = [r.estimated && "estimated", r.clamped && "clamped"].filter(Boolean).join(", ");
  const lines: [string, string][] = [
    ["request", r.requestId],
    ["time", iso(r.ts)],
    ["key", `${r.keyId ?? "-"}${r.userName === null ? "" : ` (user ${r.userName})`}`],
    ["protocol", `${r.protocol}, ${r.operation}`],
    ["model", `${r.requestedModel} → ${r.model ?? "-"} (upstream ${r.upstreamModel ?? "-"})`],
    ["provider", `${r.provider ?? "-"}, ${r.attempts} attempt${r.attempts === 1 ? "" : "s"}`],
    ["status", r.errorKind ? `${r.status} (${r.errorKind})` : r.status],
    ["tokens", `${r.promptTokens} prompt (${r.cachedTokens} cached), ${r.completionTokens} completion (${r.reasoningTokens} reasoning)${flags && `, ${flags}`}`],
    ["cost", r.status === "cached" ? `${formatUsd(r.costPico)} USD (answered from the cache; saved ${formatUsd(r.savedPico)} USD)` : `${formatUsd(r.costPico)} USD`],
    ["latency", `${ms(r.latencyMs)}, first token ${ms(r.ttftMs)}`],
  ];
  return lines.map(([k, v]) => `${k.padEnd(9)} ${printable(v)}`).join("\n") + "\n";
}

function requestRows(ctx: Context, requestId: string): Output {
  const rows = ctx.usageRows.byRequestId(requestId);
  if (rows.length === 0) throw new Error(`no usage row with request id '${printable(requestId)}'`);
  return {
    text: rows.map(rowText).join("\n"),
    json: rows.map(({ costPico, savedPico, ...r }) => ({ ...r, time: iso(r.ts), costUsd: formatUsd(costPico), savedUsd: formatUsd(savedPico) })),
  };
}

export const USAGE_COMMANDS: readonly CommandSpec[] = [
  {
    words: ["usage"],
    args: [],
    existingDatabase: true,
    usage: "[--by key|user|model|day] [--since YYYY-MM-DD] [--until YYYY-MM-DD] [--user NAME] [--key ID] | --request-id ID",
    summary: "requests, errors, cache hits (with the hit ratio and the cost they saved), tokens and exact cost, grouped by key unless --by says otherwise; days are UTC, both ends included; " +
      "--request-id shows the row of one request (its x-request-id)",
    options: {
      by: { type: "string" }, since: { type: "string" }, until: { type: "string" }, user: { type: "string" }, key: { type: "string" },
      "request-id": { type: "string" },
    },
    parse({ values }) {
      const requestId = optional(values, "request-id");
      if (requestId !== undefined) {
        const other = SUMMARY_FLAGS.find((f) => values[f] !== undefined);
        if (other) throw new UsageError(`--request-id shows one request; it does not combine with --${other}`);
        return (ctx) => requestRows(ctx, requestId);
      }
      const by = choice(values, "by", GROUPS) ?? "key";
      const since = day(values, "since");
      const untilDay = day(values, "until");
      // --until names the last day included; the store's bound is exclusive.
      const filter = { since, until: untilDay === undefined ? undefined : untilDay + DAY_MS, user: optional(values, "user"), keyId: optional(values, "key") };
      return (ctx) => {
        const { rows, total: sum } = ctx.accounts.usage(by, filter);
        // Users are stored by id; operators know them by name.
        const names = by === "user" ? new Map(ctx.accounts.listKeys({ includeRevoked: true }).map((k) => [k.userId, k.userName])) : undefined;
        const cells = (group: string, r: Omit<UsageSummaryRow, "group">) =>
          [group, String(r.requests), String(r.errors), String(r.cached), percent(hitRatio(r)),
            String(r.promptTokens), String(r.completionTokens), formatUsd(r.costPico), formatUsd(r.savedPico)];
        const text = table(
          [by, "requests", "errors", "hits", "hit ratio", "prompt tokens", "completion tokens", "cost (USD)", "saved (USD)"],
          [...rows.map((r) => cells(names?.get(r.group) ?? r.group, r)), cells("total", sum)],
          ["left", "right", "right", "right", "right", "right", "right", "right", "right"],
        );
        return {
          text,
          json: {
            by, since: optional(values, "since") ?? null, until: optional(values, "until") ?? null,
            rows: rows.map((r) => ({ group: r.group, ...(names?.has(r.group) && { user: names.get(r.group) }), ...numbers(r) })),
            total: numbers(sum),
          },
        };
      };
    },
  },
];
