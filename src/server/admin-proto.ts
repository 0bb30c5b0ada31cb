import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import type {
  KeyInfoSchema,
  LimitsSchema,
  SetBudgetRequest,
  SetLimitsRequest,
  Target as ProtoTarget,
  UsageRowSchema,
} from "../../gen/gatewayz/v1/admin_pb.js";
import type { LimitsView, Target } from "../core/accounts.js";
import { formatUsd } from "../core/money.js";
import { GatewayError } from "../errors.js";
import type { KeyRecord } from "../storage/keys.js";
import type { LimitValues } from "../storage/limits.js";
import type { UsageGroup, UsageSummaryRow } from "../storage/usage.js";

/*
 * Proto <-> core translation for the admin service. Only the shape changes
 * here (proto3's "" and unset mean "not given"); every rule about keys,
 * limits and budgets lives in core/accounts.ts.
 */

const LIMIT_FIELDS = ["rpm", "tpm", "rpd", "concurrent"] as const;
const GROUPS: readonly UsageGroup[] = ["key", "user", "model", "day"];

function invalid(message: string, param: string): GatewayError {
  return new GatewayError("invalid_request", message, { param });
}

export function targetOf(t: ProtoTarget | undefined): Target {
  const which = t?.target;
  switch (which?.case) {
    case "system":
      if (!which.value) throw invalid("target.system must be true when it is the target", "target.system");
      return { scope: "system" };
    case "user":
      if (!which.value) throw invalid("target.user must name a user", "target.user");
      return { scope: "user", user: which.value };
    case "keyId":
      if (!which.value) throw invalid("target.key_id must name a key", "target.key_id");
      return { scope: "key", keyId: which.value };
    default:
      throw invalid("a target is required: system, user or key_id", "target");
  }
}

export function keyInfoOf(k: KeyRecord): MessageInitShape<typeof KeyInfoSchema> {
  return {
    id: k.id,
    user: k.userName,
    name: k.name,
    kind: k.kind,
    display: k.display,
    createdAt: timestampFromMs(k.createdAt),
    revokedAt: k.revokedAt === null ? undefined : timestampFromMs(k.revokedAt),
    replacedBy: k.replacedBy ?? "",
    cache: k.cache ?? "default",
    expiresAt: k.expiresAt === null ? undefined : timestampFromMs(k.expiresAt),
    models: [...(k.models ?? [])],
  };
}

export function limitsOf(target: ProtoTarget | undefined, view: LimitsView): MessageInitShape<typeof LimitsSchema> {
  const { row, budget } = view;
  return {
    target,
    rpm: row?.rpm,
    tpm: row?.tpm,
    rpd: row?.rpd,
    concurrent: row?.concurrent,
    budget: budget && { usd: formatUsd(budget.limitPico), period: budget.period },
  };
}

/** The fields a SetLimits request sets, with those it resets as null. */
export function limitChanges(req: SetLimitsRequest): { [K in keyof LimitValues]?: number | null } {
  const changes: { [K in keyof LimitValues]?: number | null } = {};
  for (const field of LIMIT_FIELDS) {
    if (req[field] !== undefined) changes[field] = req[field];
  }
  for (const name of req.reset) {
    const field = LIMIT_FIELDS.find((f) => f === name);
    if (!field) throw invalid(`reset takes rpm, tpm, rpd or concurrent, got '${name}'`, "reset");
    if (changes[field] !== undefined) throw invalid(`'${field}' is both set and reset`, "reset");
    changes[field] = null;
  }
  return changes;
}

/** The budget a SetBudget request sets, or null to clear it. */
export function budgetOf(req: SetBudgetRequest): { usd: string; period: string | undefined } | null {
  if (!req.clear) return { usd: req.usd, period: req.period || undefined };
  if (req.usd || req.period) throw invalid("clear takes no usd or period", "clear");
  return null;
}

export function groupOf(groupBy: string): UsageGroup {
  if (groupBy === "") return "key";
  const group = GROUPS.find((g) => g === groupBy);
  if (!group) throw invalid(`group_by is key, user, model or day, got '${groupBy}'`, "group_by");
  return group;
}

export function msOf(t: Timestamp | undefined): number | undefined {
  return t && timestampMs(t);
}

/** One row per group, and their sum as the "total" row. */
export function usageRowsOf({ rows, total }: { rows: UsageSummaryRow[]; total: UsageSummaryRow }): {
  rows: MessageInitShape<typeof UsageRowSchema>[];
  total: MessageInitShape<typeof UsageRowSchema>;
} {
  return { rows: rows.map(usageRowOf), total: usageRowOf(total) };
}

function usageRowOf(r: UsageSummaryRow): MessageInitShape<typeof UsageRowSchema> {
  return {
    group: r.group,
    requests: BigInt(r.requests),
    errors: BigInt(r.errors),
    promptTokens: BigInt(r.promptTokens),
    completionTokens: BigInt(r.completionTokens),
    costUsd: formatUsd(r.costPico),
    cached: BigInt(r.cached),
    savedUsd: formatUsd(r.savedPico),
  };
}
