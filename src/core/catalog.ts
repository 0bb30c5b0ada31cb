import { GatewayError } from "../errors.js";

/** What a model can do; a closed set so clients can rely on the names. */
export type Capability =
  | "chat" | "vision" | "audio" | "tools" | "json_mode" | "reasoning" | "thinking_toggle"
  | "search" | "code" | "math" | "translation" | "long_context" | "embedding";

/** How a model thinks: never, always (QwQ, *-thinking), or on request (hybrid Qwen3). */
export type ThinkingMode = "none" | "always" | "hybrid";

/** What a model is asked for: chat (completions and the Responses API) or embeddings. */
export type ModelKind = "chat" | "embedding";

/** An embedding model's shape and limits, as its provider documents them. */
export interface EmbeddingSpec {
  /** The vector sizes it can return; `dimensions` must be one of them. */
  readonly dimensions: readonly number[];
  /** The size it returns when `dimensions` is not given. */
  readonly defaultDimensions: number;
  /** Inputs per upstream request; longer lists are split (core/embedding.ts). */
  readonly maxBatch: number;
  /** Tokens per input. */
  readonly maxInputTokens: number;
  /**
   * Takes inputs as arrays of token ids (OpenAI's own embedding models do);
   * DashScope's take text only, so token arrays sent to them are a 400.
   */
  readonly tokenInput: boolean;
}

/** A provider that serves a model, and its id for it there. */
export interface ModelRoute {
  readonly provider: string;
  readonly upstreamId: string;
}

export interface CatalogModel {
  readonly id: string;
  /** The primary provider and its id for the model; routes[0] repeats them. */
  readonly provider: string;
  readonly upstreamId: string;
  /** Every provider known to serve the model, primary first (src/data/routes.json). */
  readonly routes: readonly ModelRoute[];
  readonly contextWindow: number;
  readonly capabilities: readonly Capability[];
  readonly aliases: readonly string[];
  /** The provider serves this model in streaming mode only. */
  readonly streamingOnly: boolean;
  readonly thinking: ThinkingMode;
  readonly kind: ModelKind;
  /** Set exactly when kind is "embedding". */
  readonly embedding?: EmbeddingSpec | undefined;
}

/** A row of src/data/models.json. */
export interface CatalogRow {
  id: string;
  provider: string;
  upstream_id: string;
  context_window: number;
  capabilities: string[];
  aliases: string[];
  streaming_only: boolean;
  thinking: string;
  /** "chat" when absent. */
  kind?: string;
  embedding?: { dimensions: number[]; default_dimensions: number; max_batch: number; max_input_tokens: number; token_input?: boolean };
  source?: string;
}

/** Prefixes that name a provider in front of a model id ("qwen/qwen-max"). */
const PROVIDER_PREFIXES: Readonly<Record<string, string>> = {
  "qwen": "alibaba-cloud",
  "alibaba-cloud": "alibaba-cloud",
  "alibaba": "alibaba-cloud",
};

export interface Resolution {
  readonly model: CatalogModel;
  /** True when the client's name differs from the catalog id. */
  readonly transformed: boolean;
}

export interface Catalog {
  readonly models: readonly CatalogModel[];
  /** The catalog model a client's name refers to; throws model_not_found. */
  resolve(name: string): Resolution;
  /** Like resolve, but undefined instead of throwing. */
  find(name: string): CatalogModel | undefined;
}

const THINKING: readonly string[] = ["none", "always", "hybrid"];

/** src/data/routes.json's `routes`: catalog id → other providers' ids for it. */
export type RouteRows = Readonly<Record<string, ReadonlyArray<{ provider: string; upstream_id: string }>>>;

export function createCatalog(rows: readonly CatalogRow[], routes: RouteRows = {}): Catalog {
  const ids = new Set(rows.map((r) => r.id));
  for (const id of Object.keys(routes)) if (!ids.has(id)) throw new Error(`routes: ${id} is not a catalog model`);
  const models = rows.map((row) => toModel(row, routes[row.id] ?? []));
  // Every name a model answers to, lowercased: id, primary upstream id,
  // aliases. (Other providers' ids, "Qwen/Qwen2.5-72B-Instruct", are not
  // names: clients name models, the gateway picks providers.) A collision
  // would make resolution depend on file order, so it is an error.
  const byName = new Map<string, CatalogModel>();
  for (const m of models) {
    for (const name of new Set([m.id, m.upstreamId, ...m.aliases].map((n) => n.toLowerCase()))) {
      const other = byName.get(name);
      if (other && other !== m) throw new Error(`catalog: "${name}" names both ${other.id} and ${m.id}`);
      byName.set(name, m);
    }
  }

  const find = (name: string): CatalogModel | undefined => {
    const key = name.trim().toLowerCase();
    const direct = byName.get(key);
    if (direct) return direct;
    const slash = key.indexOf("/");
    if (slash <= 0) return undefined;
    const provider = PROVIDER_PREFIXES[key.slice(0, slash)];
    const model = provider ? byName.get(key.slice(slash + 1)) : undefined;
    return model && model.provider === provider ? model : undefined;
  };

  return {
    models,
    find,
    resolve(name) {
      const model = find(name);
      if (!model) {
        throw new GatewayError("model_not_found", `The model '${name}' does not exist. GET /v1/models lists the models available.`, { param: "model" });
      }
      return { model, transformed: model.id !== name };
    },
  };
}

function toModel(row: CatalogRow, extra: RouteRows[string]): CatalogModel {
  if (!THINKING.includes(row.thinking)) throw new Error(`catalog: ${row.id} has thinking "${row.thinking}"`);
  const kind = row.kind ?? "chat";
  if (kind !== "chat" && kind !== "embedding") throw new Error(`catalog: ${row.id} has kind "${kind}"`);
  if ((kind === "embedding") !== (row.embedding !== undefined)) throw new Error(`catalog: ${row.id}: an embedding spec goes with kind "embedding", and only there`);
  const e = row.embedding;
  if (e && !e.dimensions.includes(e.default_dimensions)) throw new Error(`catalog: ${row.id}: default_dimensions is not one of its dimensions`);
  const routes = [{ provider: row.provider, upstreamId: row.upstream_id }, ...extra.map((r) => ({ provider: r.provider, upstreamId: r.upstream_id }))];
  if (new Set(routes.map((r) => r.provider)).size !== routes.length) throw new Error(`routes: ${row.id} lists a provider twice`);
  return Object.freeze({
    id: row.id,
    provider: row.provider,
    upstreamId: row.upstream_id,
    routes: Object.freeze(routes.map((r) => Object.freeze(r))),
    contextWindow: row.context_window,
    capabilities: Object.freeze(row.capabilities as Capability[]),
    aliases: Object.freeze([...row.aliases]),
    streamingOnly: row.streaming_only,
    thinking: row.thinking as ThinkingMode,
    kind,
    embedding: e && Object.freeze({
      dimensions: Object.freeze([...e.dimensions]), defaultDimensions: e.default_dimensions, maxBatch: e.max_batch, maxInputTokens: e.max_input_tokens,
      tokenInput: e.token_input ?? false,
    }),
  });
}
