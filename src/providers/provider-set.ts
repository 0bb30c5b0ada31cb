import type { FailoverConfig, ProviderConfig } from "../config.js";
import type { CatalogModel } from "../core/catalog.js";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import { createUpstreamClient, providerNotConfigured, type UpstreamClient } from "./openai-compatible.js";
import { createRedactor } from "./redact.js";

/** One way to serve a model: a configured provider and its id for the model. */
export interface Route {
  readonly client: UpstreamClient;
  readonly provider: string;
  readonly upstreamId: string;
}

/** The configured providers, each with its client built once at start. */
export interface ProviderSet {
  readonly configs: readonly ProviderConfig[];
  /** The ids of the providers whose client loaded (configured: key and settings valid), in table order. */
  readonly loaded: readonly string[];
  /**
   * The routes for a model in failover order: its own order if configured,
   * else the priority list rotated to start at the model's primary provider.
   * Only providers that are configured and serve the model are eligible.
   * Throws provider_not_configured when none is.
   */
  routes(model: CatalogModel): Route[];
  /** The same routes, possibly none, without throwing: what can serve the model here. */
  eligible(model: CatalogModel): readonly Route[];
  close(): Promise<void>;
}

/**
 * Builds one client per configured provider and says so at start: a line per
 * provider that loaded (`✓ Loaded alibaba-cloud provider client`), a warning
 * per provider that is configured but broken (a bad region, a missing Vertex
 * project), and one line for those with no key at all, which is the normal
 * case for most of the table and not worth ten warnings.
 */
export function createProviderSet(configs: readonly ProviderConfig[], failover: FailoverConfig, log: Logger): ProviderSet {
  const clients = new Map<string, UpstreamClient>();
  // One redactor knowing every provider's secrets: an upstream may echo more than its own.
  const redact = createRedactor(configs);
  const unconfigured: string[] = [];
  for (const config of configs) {
    const id = config.row.id;
    if (config.unconfigured) {
      unconfigured.push(id);
      continue;
    }
    try {
      clients.set(id, createUpstreamClient(config, failover, redact, log));
      log.info(`✓ Loaded ${id} provider client${config.apiKeys?.length > 1 ? ` (${config.apiKeys.length} keys)` : ""}`);
    } catch (err) {
      log.warn(`⚠ Failed to load ${id} provider client: ${err instanceof Error ? err.message : String(err)}; its models go to other providers or answer 503`);
    }
  }
  if (unconfigured.length) log.info(`Not configured (no API key): ${unconfigured.join(", ")}`);
  if (clients.size === 0) {
    log.warn("⚠ No provider is usable: chat requests answer 503 provider_not_configured until one has a key (DashScope: ALIBABA_CLOUD_API_KEY)");
  }
  const byId = new Map(configs.map((c) => [c.row.id, c]));
  const orderCache = new Map<string, Route[]>();

  const ordered = (model: CatalogModel): Route[] => {
    const served = new Map(model.routes.map((r) => [r.provider, r.upstreamId]));
    const own = failover.modelOrder[model.id];
    let order: readonly string[];
    if (own) order = own;
    else {
      // Rotate the list to start at the primary. A list that leaves the
      // primary out (FAILOVER_ORDER) means: do not use it.
      const at = failover.order.indexOf(model.provider);
      order = at < 0 ? failover.order : [...failover.order.slice(at), ...failover.order.slice(0, at)];
    }
    const routes: Route[] = [];
    for (const provider of order) {
      const client = clients.get(provider);
      const upstreamId = served.get(provider);
      if (client && upstreamId) routes.push({ client, provider, upstreamId });
    }
    return routes;
  };

  const eligible = (model: CatalogModel): Route[] => {
    let routes = orderCache.get(model.id);
    if (!routes) orderCache.set(model.id, (routes = ordered(model)));
    return routes;
  };

  return {
    configs,
    loaded: configs.map((c) => c.row.id).filter((id) => clients.has(id)),
    eligible,
    routes(model) {
      const routes = eligible(model);
      if (routes.length) return routes;
      const candidates = model.routes.map((r) => byId.get(r.provider)).filter((c): c is ProviderConfig => c !== undefined);
      const primary = providerNotConfigured(candidates[0]!);
      if (candidates.length === 1) throw primary;
      // Name the primary first, as operators grep for it, then the alternatives.
      throw new GatewayError("provider_not_configured", `${primary.rawMessage}, nor any other provider of '${model.id}' ` +
        `(set one of ${candidates.map((c) => c.keyVar).join(", ")})`);
    },
    close: async () => {
      await Promise.all([...clients.values()].map((c) => c.close()));
    },
  };
}
