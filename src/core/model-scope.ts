import { GatewayError } from "../errors.js";
import type { Catalog, CatalogModel } from "./catalog.js";

/**
 * The models a key may call (`keys create --models 'qwen-plus,qwen3*'`):
 * catalog model ids, and prefixes ending in `*`. A name is resolved to its
 * catalog id when the scope is set (an alias or `qwen/qwen-max` is stored as
 * `qwen-max`), and a request's model is resolved before it is checked, so no
 * other spelling of a model slips past. null: every model.
 */
export type ModelScope = readonly string[];

/** What a prefix may hold before its `*`: the characters of model ids. */
const PREFIX = /^[A-Za-z0-9._:/-]+\*$/;
/** A scope is a short list: more entries than this is a mistake, not a policy. */
const MAX_ENTRIES = 100;

const RULE = "a comma-separated list of catalog model ids, aliases or prefixes ending in * (qwen-plus,qwen3*), or all";

/**
 * The scope a `--models` text (or the admin API's list) describes; null for
 * "all". Throws invalid_request naming the entry and the rule.
 */
export function parseModelScope(entries: readonly string[], catalog: Pick<Catalog, "find" | "models">): ModelScope | null {
  const list = entries.map((e) => e.trim()).filter((e) => e !== "");
  if (list.length === 1 && list[0] === "all") return null;
  if (!list.length) throw scopeError("", "is empty");
  if (list.length > MAX_ENTRIES) throw scopeError(list.join(","), `has ${list.length} entries, over ${MAX_ENTRIES}`);
  const out = new Set<string>();
  for (const entry of list) {
    if (entry.endsWith("*")) {
      if (!PREFIX.test(entry)) throw scopeError(entry, "is not a prefix of model ids");
      const prefix = entry.slice(0, -1).toLowerCase();
      if (!catalog.models.some((m) => m.id.toLowerCase().startsWith(prefix))) throw scopeError(entry, "matches no catalog model");
      out.add(`${prefix}*`);
      continue;
    }
    const model = catalog.find(entry);
    if (!model) throw scopeError(entry, "is not a catalog model (GET /v1/models lists them)");
    out.add(model.id);
  }
  return [...out];
}

/** The comma-separated form the CLI takes. */
export function splitModels(text: string): string[] {
  return text.split(",");
}

/** Whether a key with this scope may call the model (already resolved to its catalog id). */
export function allowsModel(scope: ModelScope | null | undefined, model: Pick<CatalogModel, "id">): boolean {
  if (!scope) return true;
  const id = model.id.toLowerCase();
  return scope.some((e) => (e.endsWith("*") ? id.startsWith(e.slice(0, -1)) : e === model.id));
}

/** The refusal of a model outside the key's scope: 403 on every door. */
export function modelNotAllowed(model: Pick<CatalogModel, "id">): GatewayError {
  return new GatewayError("model_not_allowed",
    `this API key may not use the model '${model.id}'; GET /v1/models lists the models it may use`, { param: "model" });
}

function scopeError(entry: string, why: string): GatewayError {
  return new GatewayError("invalid_request", `models '${entry}' ${why}: give ${RULE}`, { param: "models" });
}
