import type { CreatedKey, KeyCache, KeyKind, KeyRecord, KeyStore } from "../storage/keys.js";
import type { BudgetPeriod, BudgetRow, LimitRow, LimitScope, LimitStore, LimitValues } from "../storage/limits.js";
import type { UsageGroup, UsageStore, UsageSummaryRow } from "../storage/usage.js";
import { GatewayError } from "../errors.js";
import type { Catalog } from "./catalog.js";
import { parseModelScope } from "./model-scope.js";
import { shippedCatalog } from "./shipped-catalog.js";
import { parseUsd } from "./money.js";

/** A limit or budget target: the whole system, a user by name, or a key by id. */
export type Target = { scope: "system" } | { scope: "user"; user: string } | { scope: "key"; keyId: string };

export interface KeyOptions extends LimitValues {
  user: string;
  name: string;
  kind?: KeyKind;
  /** Spending limit in USD, as a decimal string ("25", "0.50"). */
  budgetUsd?: string | undefined;
  /** "total" (the default) or "month"; only with budgetUsd. */
  budgetPeriod?: string | undefined;
  /** The key's own response-cache setting: "off", "on", or "default" (the same as leaving it out: the gateway's CACHE). */
  cache?: string | undefined;
  /** When the key stops working (ms since the epoch), in the future; unset: never. */
  expiresAt?: number | undefined;
  /** The models the key may call: catalog names and prefixes ending in *; unset (or ["all"]): every model. */
  models?: readonly string[] | undefined;
}

export interface LimitsView {
  row: LimitRow | undefined;
  budget: BudgetRow | undefined;
}

/**
 * The account operations, shared by the CLI and the admin RPC so neither
 * holds its own copy of the rules. Changes land in SQLite; a running gateway
 * picks them up on its next request (see core/limiter.ts).
 */
export interface Accounts {
  createKey(options: KeyOptions): CreatedKey;
  listKeys(filter?: { user?: string; includeRevoked?: boolean }): KeyRecord[];
  revokeKey(keyId: string): KeyRecord;
  rotateKey(keyId: string): CreatedKey;
  /** Sets an active key's own cache setting: "off", "on", or "default" for the gateway's CACHE. */
  setKeyCache(keyId: string, setting: string): KeyRecord;
  /** Sets when an active key expires (ms since the epoch, in the future), or null: never. */
  setKeyExpiry(keyId: string, expiresAt: number | null): KeyRecord;
  /** Sets the models an active key may call (as KeyOptions.models); ["all"]: every model. */
  setKeyModels(keyId: string, models: readonly string[]): KeyRecord;
  setLimits(target: Target, values: { [K in keyof LimitValues]?: number | null }): LimitsView;
  /** Users and keys have budgets; the system does not. The period defaults to "total". */
  setBudget(target: Target, budget: { usd: string; period?: string | undefined } | null): LimitsView;
  getLimits(target: Target): LimitsView;
  /** Usage grouped by key, user, model or day, with the sum of the groups as `total`. */
  usage(by: UsageGroup, filter?: { since?: number; until?: number; user?: string; keyId?: string }): { rows: UsageSummaryRow[]; total: UsageSummaryRow };
}

/** The longest user or key name, in characters: names are labels, shown in tables and logs. */
export const MAX_NAME_LENGTH = 100;

function checkLength(field: "user" | "name", value: string): void {
  const length = [...value].length;
  if (length > MAX_NAME_LENGTH) {
    throw new GatewayError("invalid_request", `${field} must be at most ${MAX_NAME_LENGTH} characters, got ${length}`, { param: field });
  }
}

/** An expiry must be an instant still to come: a key made already expired is a mistake. */
function checkExpiry(expiresAt: number, now = Date.now()): void {
  if (!Number.isFinite(expiresAt) || Math.abs(expiresAt) > 8.64e15) {
    throw new GatewayError("invalid_request", "expires_at is not a valid instant", { param: "expires_at" });
  }
  if (expiresAt <= now) {
    throw new GatewayError("invalid_request", `expires_at must be in the future, got ${new Date(expiresAt).toISOString()}`, { param: "expires_at" });
  }
}

/** "off" | "on" | "default" → the stored setting (null is the gateway's). */
function cacheOf(setting: string): KeyCache {
  if (setting === "off" || setting === "on") return setting;
  if (setting === "default") return null;
  throw new GatewayError("invalid_request", `a key's cache setting is 'off', 'on' or 'default', got '${setting}'`, { param: "cache" });
}

export function createAccounts(keys: KeyStore, limits: LimitStore, usage: UsageStore,
  catalog: Pick<Catalog, "find" | "models"> = shippedCatalog()): Accounts {
  const subjectOf = (target: Target): { scope: LimitScope; subject: string } => {
    switch (target.scope) {
      case "system": return { scope: "system", subject: "" };
      case "user": {
        const id = keys.userId(target.user);
        if (!id) throw new GatewayError("not_found", `no user named '${target.user}'`);
        return { scope: "user", subject: id };
      }
      case "key": {
        if (!keys.get(target.keyId)) throw new GatewayError("not_found", `no key with id '${target.keyId}'`);
        return { scope: "key", subject: target.keyId };
      }
    }
  };
  const view = (target: Target): LimitsView => {
    const { scope, subject } = subjectOf(target);
    return { row: limits.limits().get(`${scope}:${subject}`), budget: limits.budgets().get(`${scope}:${subject}`) };
  };
  const toPico = (usd: string): bigint => {
    try {
      return parseUsd(usd);
    } catch {
      throw new GatewayError("invalid_request", `a budget is a USD amount with at most 6 decimals, got '${usd}'`);
    }
  };
  const periodOf = (period: string | undefined): BudgetPeriod => {
    if (period === undefined || period === "total" || period === "month") return period ?? "total";
    throw new GatewayError("invalid_request", `a budget period is 'total' or 'month', got '${period}'`);
  };
  const checkLimits = (values: { [K in keyof LimitValues]?: number | null }) => {
    for (const [field, v] of Object.entries(values)) {
      if (v !== null && v !== undefined && (!Number.isInteger(v) || v < 0)) {
        throw new GatewayError("invalid_request", `${field} must be a non-negative integer (0 = unlimited), got ${v}`);
      }
    }
  };

  return {
    createKey(o) {
      if (!o.user.trim()) throw new GatewayError("invalid_request", "a key needs a user");
      if (!o.name.trim()) throw new GatewayError("invalid_request", "a key needs a name");
      checkLength("user", o.user);
      checkLength("name", o.name);
      const limitValues = { rpm: o.rpm, tpm: o.tpm, rpd: o.rpd, concurrent: o.concurrent };
      checkLimits(limitValues);
      const pico = o.budgetUsd === undefined ? undefined : toPico(o.budgetUsd);
      const period = periodOf(o.budgetPeriod);
      if (pico === undefined && o.budgetPeriod !== undefined) throw new GatewayError("invalid_request", "a budget period needs a budget amount");
      const cache = o.cache === undefined ? null : cacheOf(o.cache);
      if (o.expiresAt !== undefined) checkExpiry(o.expiresAt);
      const models = o.models === undefined ? null : parseModelScope(o.models, catalog);
      const created = keys.create({ user: o.user, name: o.name, kind: o.kind ?? "client", cache, expiresAt: o.expiresAt ?? null, models });
      const set = Object.fromEntries(Object.entries(limitValues).filter(([, v]) => v !== undefined));
      if (Object.keys(set).length) limits.setLimits("key", created.record.id, set);
      if (pico !== undefined) limits.setBudget("key", created.record.id, { limitPico: pico, period });
      return created;
    },
    listKeys: (filter) => keys.list(filter),
    revokeKey(keyId) {
      if (!keys.revoke(keyId)) {
        throw new GatewayError("not_found", keys.get(keyId) ? `key '${keyId}' is already revoked` : `no key with id '${keyId}'`);
      }
      return keys.get(keyId)!;
    },
    rotateKey(keyId) {
      const old = keys.get(keyId);
      if (!old || old.revokedAt !== null) throw new GatewayError("not_found", `no active key with id '${keyId}'`);
      const fresh = keys.rotate(keyId);
      // The new key inherits the old one's limits and budget.
      const row = limits.limits().get(`key:${keyId}`);
      if (row) limits.setLimits("key", fresh.record.id, { rpm: row.rpm, tpm: row.tpm, rpd: row.rpd, concurrent: row.concurrent });
      const budget = limits.budgets().get(`key:${keyId}`);
      if (budget) limits.setBudget("key", fresh.record.id, { limitPico: budget.limitPico, period: budget.period });
      return fresh;
    },
    setKeyCache(keyId, setting) {
      const cache = cacheOf(setting);
      const key = keys.get(keyId);
      if (!key || key.revokedAt !== null) throw new GatewayError("not_found", `no active key with id '${keyId}'`);
      keys.setCache(keyId, cache);
      return keys.get(keyId)!;
    },
    setKeyExpiry(keyId, expiresAt) {
      if (expiresAt !== null) checkExpiry(expiresAt);
      const key = keys.get(keyId);
      if (!key || key.revokedAt !== null) throw new GatewayError("not_found", `no active key with id '${keyId}'`);
      keys.setExpiry(keyId, expiresAt);
      return keys.get(keyId)!;
    },
    setKeyModels(keyId, entries) {
      const models = parseModelScope(entries, catalog);
      const key = keys.get(keyId);
      if (!key || key.revokedAt !== null) throw new GatewayError("not_found", `no active key with id '${keyId}'`);
      keys.setModels(keyId, models);
      return keys.get(keyId)!;
    },
    setLimits(target, values) {
      checkLimits(values);
      const { scope, subject } = subjectOf(target);
      limits.setLimits(scope, subject, values);
      return view(target);
    },
    setBudget(target, budget) {
      if (target.scope === "system") throw new GatewayError("invalid_request", "budgets are set on users and keys, not on the system");
      const value = budget && { limitPico: toPico(budget.usd), period: periodOf(budget.period) };
      const { subject } = subjectOf(target);
      limits.setBudget(target.scope, subject, value);
      return view(target);
    },
    getLimits: view,
    usage(by, filter = {}) {
      const userId = filter.user === undefined ? undefined : keys.userId(filter.user) ?? "(no such user)";
      const rows = usage.summary(by, { since: filter.since, until: filter.until, userId, keyId: filter.keyId });
      const total: UsageSummaryRow = { group: "total", requests: 0, errors: 0, cached: 0, promptTokens: 0, completionTokens: 0, costPico: 0n, savedPico: 0n };
      for (const r of rows) {
        total.requests += r.requests;
        total.errors += r.errors;
        total.cached += r.cached;
        total.promptTokens += r.promptTokens;
        total.completionTokens += r.completionTokens;
        total.costPico += r.costPico;
        total.savedPico += r.savedPico;
      }
      return { rows, total };
    },
  };
}
