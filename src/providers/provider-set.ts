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
 * Builds one client per provider and reports each in one line, as operators
 * expect: `✓ Loaded alibaba_cloud provider client` or the reason it failed.
 */
export function createProviderSet(configs: readonly ProviderConfig[], failover: FailoverConfig, log: Logger): ProviderSet {
  const clients = new Map<string, UpstreamClient>();
  // One redactor knowing every provider's secrets: an upstream may echo more than its own.
  const redact = createRedactor(configs);
  for (const config of configs) {
    const logName = config.row.id.replace(/-/g, "_");
    try {
      clients.set(config.row.id, createUpstreamClient(config, failover, redact));
      log.info(`✓ Loaded ${logName} provider client`);
    } catch (err) {
      log.warn(`⚠ Failed to load ${logName} provider client: ${err instanceof Error ? err.message : String(err)}`);
    }
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
