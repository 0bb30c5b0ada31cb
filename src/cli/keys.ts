import type { CreatedKey } from "../storage/keys.js";
import { choice, expiry, LIMIT_OPTIONS, limitValues, modelsFlag, optional, required } from "./args.js";
import { cacheWord, expiresText, iso, keyJson, keyStatus, modelsText, printable, table, viewJson } from "./format.js";
import { UsageError, type CommandSpec, type Context, type Output } from "./spec.js";

const CACHE_SETTINGS = ["off", "on", "default"] as const;

/** The one time a key is ever shown. */
function shownOnce(ctx: Context, created: CreatedKey, replaces?: string): Output {
  const k = created.record;
  const view = ctx.accounts.getLimits({ scope: "key", keyId: k.id });
  const lines = [
    `key   ${created.key}`,
    `id    ${k.id}`,
    `user  ${printable(k.userName)}`,
    `name  ${printable(k.name)} (${k.kind})`,
    ...(k.cache ? [`cache ${k.cache}`] : []),
    ...(k.expiresAt !== null ? [`expires ${iso(k.expiresAt)}`] : []),
    ...(k.models !== null ? [`models ${modelsText(k)}`] : []),
    ...(replaces ? [`replaces ${replaces}, now revoked`] : []),
    "",
    "Store this key now: it will not be shown again (Gatewayz keeps only its hash).",
  ];
  return {
    text: lines.join("\n") + "\n",
    json: { key: created.key, id: k.id, user: k.userName, name: k.name, kind: k.kind, display: k.display, cache: cacheWord(k),
      expires: k.expiresAt === null ? null : iso(k.expiresAt), models: k.models, ...viewJson(view), ...(replaces ? { replaces } : {}) },
  };
}

export const KEY_COMMANDS: readonly CommandSpec[] = [
  {
    words: ["keys", "create"],
    args: [],
    usage: "--user NAME --name NAME [--admin] [--rpm N] [--tpm N] [--rpd N] [--concurrent N] [--budget-usd X] [--budget-period total|month] [--cache off|on] [--expires DATE|DURATION] [--models LIST]",
    summary: "create a key and print it, once; --cache sets the key's own response-cache setting (default: the gateway's CACHE); " +
      "--expires 2027-01-01 (or 2027-01-01T12:00:00Z, or 30d, 12h, 45m, 90s from now) is when it stops working; " +
      "--models 'qwen-plus,qwen3*' the only models it may call (catalog names, or prefixes ending in *)",
    options: {
      user: { type: "string" }, name: { type: "string" }, admin: { type: "boolean" }, ...LIMIT_OPTIONS,
      "budget-usd": { type: "string" }, "budget-period": { type: "string" }, cache: { type: "string" }, expires: { type: "string" }, models: { type: "string" },
    },
    parse({ values }) {
      const user = required(values, "user");
      const name = required(values, "name");
      const budgetUsd = optional(values, "budget-usd");
      const budgetPeriod = optional(values, "budget-period");
      const cache = choice(values, "cache", CACHE_SETTINGS);
      // A new key has no row yet, so `default` is the same as leaving the flag out.
      const l = limitValues(values);
      const expires = optional(values, "expires");
      const models = optional(values, "models");
      const options = {
        user, name, kind: values.admin ? "admin" as const : "client" as const, budgetUsd, budgetPeriod, cache,
        rpm: l.rpm ?? undefined, tpm: l.tpm ?? undefined, rpd: l.rpd ?? undefined, concurrent: l.concurrent ?? undefined,
        ...(expires === undefined ? {} : { expiresAt: expiry(expires, Date.now(), false)! }),
        ...(models === undefined ? {} : { models: modelsFlag(models) }),
      };
      return (ctx) => shownOnce(ctx, ctx.accounts.createKey(options));
    },
  },
  {
    words: ["keys", "list"],
    args: [],
    existingDatabase: true,
    usage: "[--user NAME] [--all]",
    summary: "list keys (--all includes revoked ones); never prints a key",
    options: { user: { type: "string" }, all: { type: "boolean" } },
    parse({ values }) {
      const filter = { user: optional(values, "user"), includeRevoked: values.all === true };
      return (ctx) => {
        const keys = ctx.accounts.listKeys(filter);
        const rows = keys.map((k) => [k.id, k.userName, k.name, k.kind, k.display, iso(k.createdAt), expiresText(k), modelsText(k), cacheWord(k), keyStatus(k)]);
        return {
          text: rows.length ? table(["id", "user", "name", "kind", "display", "created", "expires", "models", "cache", "status"], rows) : "no keys\n",
          json: keys.map(keyJson),
        };
      };
    },
  },
  {
    words: ["keys", "revoke"],
    existingDatabase: true,
    args: ["key-id"],
    usage: "<key-id>",
    summary: "revoke a key; it stops working on the gateway's next request",
    options: {},
    parse({ args: [id] }) {
      return (ctx) => {
        const k = ctx.accounts.revokeKey(id!);
        return { text: `revoked ${k.id} (${printable(k.userName)}/${printable(k.name)})\n`, json: keyJson(k) };
      };
    },
  },
  {
    words: ["keys", "rotate"],
    existingDatabase: true,
    args: ["key-id"],
    usage: "<key-id>",
    summary: "replace a key with a new one (same user, name, kind, limits and budget) and revoke the old one",
    options: {},
    parse({ args: [id] }) {
      return (ctx) => shownOnce(ctx, ctx.accounts.rotateKey(id!), id!);
    },
  },
  {
    words: ["keys", "update"],
    existingDatabase: true,
    args: ["key-id"],
    usage: "<key-id> [--expires DATE|DURATION|never] [--models LIST|all]",
    summary: "change an active key: --expires sets when it stops working (as keys create takes it), never clears it; " +
      "--models the models it may call, all for every one; the gateway applies it on the key's next request",
    options: { expires: { type: "string" }, models: { type: "string" } },
    parse({ args: [id], values }) {
      const raw = optional(values, "expires");
      const models = optional(values, "models");
      if (raw === undefined && models === undefined) throw new UsageError("nothing to change: give --expires or --models");
      // Read at parse time, so the instant of "30d" is the command's; both checked before either is applied.
      const at = raw === undefined ? undefined : expiry(raw, Date.now(), true);
      const scope = models === undefined ? undefined : modelsFlag(models);
      return (ctx) => {
        const expired = at === undefined ? undefined : ctx.accounts.setKeyExpiry(id!, at);
        const k = scope === undefined ? expired! : ctx.accounts.setKeyModels(id!, scope);
        const lines = [
          ...(at !== undefined ? [`expires ${expiresText(k)}`] : []),
          ...(scope !== undefined ? [`models ${modelsText(k)}`] : []),
        ];
        return { text: `${lines.join(", ")} for ${k.id} (${printable(k.userName)}/${printable(k.name)})\n`, json: keyJson(k) };
      };
    },
  },
  {
    words: ["keys", "cache"],
    existingDatabase: true,
    args: ["key-id", "setting"],
    usage: "<key-id> off|on|default",
    summary: "set a key's own response-cache setting: off, on, or default (the gateway's CACHE); the gateway applies it on the key's next request",
    options: {},
    parse({ args: [id, setting] }) {
      const chosen = CACHE_SETTINGS.find((c) => c === setting);
      if (!chosen) throw new UsageError(`the setting is one of ${CACHE_SETTINGS.join(", ")}, got '${setting}'`);
      return (ctx) => {
        const k = ctx.accounts.setKeyCache(id!, chosen);
        return { text: `cache ${cacheWord(k)} for ${k.id} (${printable(k.userName)}/${printable(k.name)})\n`, json: keyJson(k) };
      };
    },
  },
];
