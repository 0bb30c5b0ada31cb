import type { AddressInfo } from "node:net";
import type { Config } from "./config.js";
import { createAccounts, type Accounts } from "./core/accounts.js";
import { createAuthenticator } from "./core/auth.js";
import { createBudgets } from "./core/budgets.js";
import { createBreakers, type Breakers } from "./core/circuit-breaker.js";
import { createCatalog, type CatalogRow, type RouteRows } from "./core/catalog.js";
import { createGateway, type Gateway } from "./core/gateway.js";
import { createLimiter } from "./core/limiter.js";
import { createPolicy, type Policy } from "./core/policy.js";
import { localQuota, type Quota } from "./core/quota.js";
import { createPriceBook, type PriceRow } from "./core/pricing.js";
import modelsData from "./data/models.json" with { type: "json" };
import pricingData from "./data/pricing.json" with { type: "json" };
import routesData from "./data/routes.json" with { type: "json" };
import type { Logger } from "./log.js";
import { createProviderSet } from "./providers/provider-set.js";
import { createRequestHandler } from "./server/handler.js";
import { createListener } from "./server/listener.js";
import { openDb, type Db } from "./storage/db.js";
import { createKeyStore } from "./storage/keys.js";
import { createLimitStore } from "./storage/limits.js";
import { createUsageStore, type UsageStore } from "./storage/usage.js";

export interface App {
  readonly address: AddressInfo;
  /** `http://host:port`, for clients and logs. */
  readonly url: string;
  readonly gateway: Gateway;
  readonly accounts: Accounts;
  readonly db: Db;
  readonly breakers: Breakers;
  close(): Promise<void>;
}

/** Builds the gateway from configuration and listens. Nothing happens at import. */
export interface AppOptions {
  /** The rate-limit and budget state; local unless this is a --workers worker. */
  quota?: (policy: Policy) => Quota;
}

export async function startApp(config: Config, log: Logger, options: AppOptions = {}): Promise<App> {
  const catalog = createCatalog(modelsData.models as CatalogRow[], routesData.routes as RouteRows);
  for (const id of Object.keys(config.failover.modelOrder)) {
    if (catalog.find(id)?.id !== id) throw new Error(`MODEL_FAILOVER_ORDER names '${id}', which is not a catalog model id`);
  }
  const prices = createPriceBook(pricingData.models as Record<string, PriceRow>, catalog.models);
  const db = openDb(config.databasePath);
  const keys = createKeyStore(db);
  const limitStore = createLimitStore(db);
  const usage = createUsageStore(db, {
    onLost: (err, rows) => log.error(`${rows} usage record(s) lost: ${err instanceof Error ? err.message : String(err)}`),
  });
  // Rows still queued when the process exits (an uncaught error, process.exit) are written on the way out.
  const flushOnExit = () => usage.flush();
  process.on("exit", flushOnExit);
  if (!config.recordUsage) log.warn("USAGE_RECORDING=off: no usage rows are written; budgets count only this process's spending");
  const policy = createPolicy(limitStore, config.limits);
  const auth = createAuthenticator(keys, config.adminKey);
  const providers = createProviderSet(config.providers, config.failover, log);
  const breakers = createBreakers(config.failover.breakerFailures, config.failover.breakerCooldownMs, log);
  const gateway = createGateway({
    catalog, prices, providers, log, auth,
    usage: config.recordUsage ? usage : withoutRecording(usage),
    quota: options.quota?.(policy) ?? localQuota(createLimiter(policy), createBudgets(policy, usage)),
    failover: { breakers, budgetMs: config.failover.budgetMs, retryAfterCapMs: config.failover.retryAfterCapMs, log },
  });
  const accounts = createAccounts(keys, limitStore, usage);
  if (!config.adminKey && keys.countAdminKeys() === 0) {
    log.warn("no admin key yet: create one with `npx gatewayz keys create --admin --user admin --name root`, or set GATEWAYZ_ADMIN_KEY");
  }
  const listener = createListener(createRequestHandler({ config, gateway, providers, breakers, log, accounts, auth }));
  let address: AddressInfo;
  try {
    address = await listener.listen(config.port, config.host);
  } catch (err) {
    process.off("exit", flushOnExit);
    db.close();
    throw err;
  }
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    address, url: `http://${host}:${address.port}`, gateway, accounts, db, breakers,
    async close() {
      await listener.close();
      await providers.close();
      process.off("exit", flushOnExit);
      usage.flush();
      db.close();
    },
  };
}

/** The same store with inserts dropped (USAGE_RECORDING=off); reads still work. */
function withoutRecording(usage: UsageStore): UsageStore {
  return { ...usage, insert() {} };
}
