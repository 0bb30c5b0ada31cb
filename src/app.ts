import type { AddressInfo } from "node:net";
import type { Config } from "./config.js";
import { createAccounts, type Accounts } from "./core/accounts.js";
import { createAuthenticator } from "./core/auth.js";
import { createBudgets } from "./core/budgets.js";
import { createBreakers, type Breakers } from "./core/circuit-breaker.js";
import { shippedCatalog } from "./core/shipped-catalog.js";
import { createGateway, type Gateway } from "./core/gateway.js";
import { createLimiter } from "./core/limiter.js";
import { createPolicy, type Policy } from "./core/policy.js";
import { localQuota, type Quota } from "./core/quota.js";
import { createPriceBook, type CachePriceRule, type PriceRow } from "./core/pricing.js";
import pricingData from "./data/pricing.json" with { type: "json" };
import { GatewayError } from "./errors.js";
import { redactingLogger, type Logger } from "./log.js";
import { createProviderSet } from "./providers/provider-set.js";
import { createRedactor } from "./providers/redact.js";
import type { AuthGate } from "./server/auth-gate.js";
import { createRequestHandler } from "./server/handler.js";
import { createListener, type RequestHandler } from "./server/listener.js";
import { createReadiness, watchReadiness, type Readiness } from "./server/readiness.js";
import type { Metrics } from "./observe/metrics.js";
import { NO_OBSERVER, type Observer } from "./observe/observer.js";
import { createMetricsRoute, startMetricsServer, type MetricsServer, type MetricsSource } from "./server/metrics-route.js";
import { NO_TRACER, type Tracer } from "./observe/trace.js";
import { startTracing } from "./observe/tracing.js";
import { createRequests } from "./server/requests.js";
import type { Db } from "./storage/db.js";
import { sweepResponses } from "./storage/responses.js";
import { openStores, type Stores } from "./storage/stores.js";
import { openAnswerCache } from "./cache/answer-cache.js";
import { createRedisQuota } from "./redis/redis-quota.js";
import { createSharedBreakers } from "./redis/shared-breakers.js";
import type { UsageStore } from "./storage/usage.js";

export interface App {
  readonly address: AddressInfo;
  /** `http://host:port`, for clients and logs. */
  readonly url: string;
  /** The METRICS_PORT server's `http://host:port`, when it is set (the scrapes go there then). */
  readonly metricsUrl: string | undefined;
  readonly gateway: Gateway;
  readonly accounts: Accounts;
  /** Keys, limits, usage and responses: SQLite, or PostgreSQL with DATABASE_URL. */
  readonly stores: Stores;
  /** The SQLite connection (tests read rows through it); throws on PostgreSQL. */
  readonly db: Db;
  readonly breakers: Breakers;
  readonly readiness: Readiness;
  /** Requests refused at the door for their key (they leave no usage row). */
  readonly gate: Pick<AuthGate, "refusals">;
  /** Open client connections. */
  readonly connections: number;
  /** Drains, then closes (see drainAndClose). Idempotent. */
  close(): Promise<void>;
  /** Cuts a drain short: what is still in flight is ended now; its usage rows are still committed. */
  hurry(): void;
}

/** After a drain's deadline, how long the requests it ended get to write their errors and rows. */
const END_GRACE_MS = 5_000;
/** How long a drain leaves idle HTTP/1 keep-alive connections open for requests already sent on them. */
const IDLE_GRACE_MS = 500;
/** How long a start waits for Redis (REDIS_URL) before opening the port anyway. */
const REDIS_STARTUP_WAIT_MS = 3_000;
/** How often expired Responses API responses are deleted (reads ignore them from the moment they expire). */
const RESPONSES_SWEEP_MS = 60 * 60 * 1000;

/** Builds the gateway from configuration and listens. Nothing happens at import. */
export interface AppOptions {
  /** The rate-limit and budget state; local unless this is a --workers worker. */
  quota?: (policy: Policy) => Quota;
  /** What a scrape answers: this process's metrics, unless this is a --workers worker (every worker's, from the primary). */
  metrics?: (local: Metrics) => MetricsSource;
}

export async function startApp(config: Config, baseLog: Logger, options: AppOptions = {}): Promise<App> {
  // Every line, stack traces of internal errors included, is scrubbed of provider secrets and addresses.
  const log = redactingLogger(baseLog, createRedactor(config.providers));
  const catalog = shippedCatalog();
  for (const id of Object.keys(config.failover.modelOrder)) {
    if (catalog.find(id)?.id !== id) throw new Error(`MODEL_FAILOVER_ORDER names '${id}', which is not a catalog model id`);
  }
  const prices = createPriceBook(pricingData.models as Record<string, PriceRow>, catalog.models, pricingData.cache as CachePriceRule);
  // Traces only with an OTLP endpoint set: otherwise the OpenTelemetry SDK is not even loaded.
  const tracer: Tracer = config.otel ? await startTracing(config.otel, log) : NO_TRACER;
  // Rows the database refuses (disk full, PostgreSQL down...) are held, up to USAGE_BUFFER_ROWS, and retried; see storage/usage.ts.
  const stores = openStores({ databasePath: config.databasePath, databaseUrl: config.database.url, databaseTimeoutMs: config.database.timeoutMs },
    { listen: true, log, usage: { bufferRows: config.usageBufferRows } });
  const { keys, limits: limitStore, usage } = stores;
  // Rows still queued or held when the process exits (an uncaught error, process.exit) are written on the way out.
  const flushOnExit = () => usage.close();
  process.on("exit", flushOnExit);
  if (!config.recordUsage) log.warn("USAGE_RECORDING=off: no usage rows are written; budgets count only this process's spending");
  const policy = createPolicy(limitStore, config.limits);
  const auth = createAuthenticator(keys, config.adminKey);
  const providers = createProviderSet(config.providers, config.failover, log);
  const ownBreakers = createBreakers(config.failover.breakerFailures, config.failover.breakerCooldownMs, log);
  // REDIS_URL: an opening on any replica opens the circuit on every replica (src/redis/shared-breakers.ts).
  const sharedBreakers = config.shared.redisUrl
    ? createSharedBreakers(ownBreakers, { url: config.shared.redisUrl, timeoutMs: config.shared.timeoutMs, log })
    : undefined;
  const breakers: Breakers = sharedBreakers ?? ownBreakers;
  // Prometheus metrics unless METRICS=off (prom-client is not even loaded then); their
  // gauges read, at scrape time, state built below (requests in flight, the door's refusals).
  const metrics = config.metrics.enabled ? (await import("./observe/metrics.js")).createMetrics({
    inFlight: () => requests.inFlight,
    providers: providers.loaded,
    circuit: (provider) => breakers.state(provider),
    authRefusals: () => handler.gate.refusalsBy,
    usageRows: () => usage.rowCounts(),
    cache: () => cache?.stats(),
  }) : undefined;
  const observer: Observer = metrics?.observer ?? NO_OBSERVER;
  const metricsRoute = metrics && createMetricsRoute(options.metrics?.(metrics) ?? metrics, log);
  // REDIS_URL: limits, concurrency and budgets shared with every replica (src/redis/); else this process's, or the --workers primary's.
  const sharedQuota = config.shared.redisUrl ? createRedisQuota(policy, {
    url: config.shared.redisUrl, timeoutMs: config.shared.timeoutMs, leaseMs: config.shared.leaseMs, failMode: config.shared.failMode,
    spent: (scope, subject, since) => usage.spentLater(scope, subject, since), log,
  }) : undefined;
  const quota: Quota = sharedQuota ?? options.quota?.(policy) ?? localQuota(createLimiter(policy), createBudgets(policy, usage));
  // Connected before the port opens: a request taken before then would meet LIMITS_FAIL_MODE as if Redis were down.
  if (sharedQuota && !(await sharedQuota.ready(REDIS_STARTUP_WAIT_MS))) {
    log.warn(`limits: Redis not reachable within ${REDIS_STARTUP_WAIT_MS} ms of start; LIMITS_FAIL_MODE=${config.shared.failMode} applies until it is`);
  }
  // The response cache (src/cache/): the embedded SQLite file, or Redis with REDIS_URL; none with CACHE=off.
  const cache = config.cache.enabled ? openAnswerCache(config.cache, log) : undefined;
  const gateway = createGateway({
    catalog, prices, providers, log, auth, observer, cache,
    usage: !config.recordUsage ? withoutRecording(usage) : stores.engine === "postgres" ? answeringBeforeCommit(usage) : usage,
    quota,
    failover: { breakers, budgetMs: config.failover.budgetMs, retryAfterCapMs: config.failover.retryAfterCapMs, log },
  });
  const accounts = createAccounts(keys, limitStore, usage, catalog);
  if (!config.adminKey && keys.countAdminKeys() === 0) {
    log.warn("no admin key yet: create one with `npx gatewayz keys create --admin --user admin --name root`, or set GATEWAYZ_ADMIN_KEY");
  }
  const requests = createRequests();
  const readiness = createReadiness();
  // The database's write check, the usage store, the providers and their circuits (server/readiness.ts).
  const stopReadiness = watchReadiness(readiness, { usage, writeCheck: stores.writeCheck(), providers, breakers, log });
  const responses = stores.responses(config.responsesTtlDays * 86_400_000);
  const stopSweeping = sweepResponses(responses, RESPONSES_SWEEP_MS,
    (err) => log.warn(`expired responses could not be deleted (retried within the hour): ${err instanceof Error ? err.message : String(err)}`));
  let handle: RequestHandler = () => {};
  const listener = createListener((req, res) => handle(req, res), config.server);
  const handler = createRequestHandler({ config, gateway, providers, breakers, log, accounts, auth, connections: listener, requests, readiness, tracer, responses,
    // With METRICS_PORT set the scrapes go there, and the main port's /metrics is 404.
    metrics: config.metrics.port === undefined ? metricsRoute : undefined });
  handle = handler.handle;
  let address: AddressInfo;
  let metricsServer: MetricsServer | undefined;
  try {
    if (metricsRoute && config.metrics.port !== undefined) metricsServer = await startMetricsServer(metricsRoute, config.host, config.metrics.port);
    address = await listener.listen(config.port, config.host);
  } catch (err) {
    await metricsServer?.close();
    process.off("exit", flushOnExit);
    stopReadiness();
    stopSweeping();
    await cache?.close();
    await sharedQuota?.close();
    await sharedBreakers?.close();
    await stores.close();
    await tracer.shutdown();
    throw err;
  }
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;

  /**
   * The drain: readiness goes false (gRPC health NOT_SERVING, /readyz and
   * /healthz 503 "draining"), the port stops accepting, sessions get GOAWAY and HTTP/1
   * answers close their connections; requests in flight run to their end for
   * up to DRAIN_TIMEOUT_MS, then those left are ended explicitly
   * (shutting_down) with their upstreams aborted; every usage row is
   * committed before the database closes.
   */
  let hurried: () => void = () => {};
  const hurry = new Promise<void>((resolve) => (hurried = resolve));
  /**
   * Waits until nothing is in flight and no HTTP/1 connection is left idle,
   * or the deadline; false if requests are still running then. An idle
   * keep-alive connection is closed only after a moment (IDLE_GRACE_MS): a
   * request already on its way over it is then answered, with `connection:
   * close`, instead of meeting a reset. An answer begun before the drain
   * leaves its connection idle when it ends, so the wait repeats while
   * requests were in flight at the last close.
   */
  const settle = async (deadline: number): Promise<boolean> => {
    for (;;) {
      if (listener.connections > 0) {
        await Promise.race([new Promise((r) => setTimeout(r, Math.min(IDLE_GRACE_MS, Math.max(0, deadline - Date.now())))), hurry]);
      }
      listener.closeIdle();
      const busy = requests.inFlight > 0;
      if (!(await requests.idle(Math.max(0, deadline - Date.now())))) return false;
      if (!busy || Date.now() >= deadline || requests.ending) return true;
    }
  };
  const drainAndClose = async () => {
    readiness.set("draining", true);
    handler.draining();
    listener.stopAccepting();
    const ms = config.server.drainTimeoutMs;
    const deadline = Date.now() + ms;
    if (requests.inFlight) log.info(`draining: ${requests.inFlight} request(s) in flight; waiting up to ${ms} ms`);
    if (!(await settle(deadline))) {
      log.warn(`ending ${requests.inFlight} request(s) still in flight: the gateway is shutting down`);
      requests.abortAll(new GatewayError("shutting_down", "the gateway is shutting down; retry on another instance"));
      // Each ends its answer and records its row; bounded, in case an upstream ignores its abort.
      await requests.idle(END_GRACE_MS, false);
    }
    await listener.close();
    await metricsServer?.close();
    await providers.close();
    process.off("exit", flushOnExit);
    stopReadiness();
    stopSweeping();
    await cache?.close().catch((err: unknown) => log.warn(`cache: could not close: ${err instanceof Error ? err.message : String(err)}`));
    await sharedQuota?.close().catch((err: unknown) => log.warn(`limits: could not close Redis: ${err instanceof Error ? err.message : String(err)}`));
    await sharedBreakers?.close().catch((err: unknown) => log.warn(`circuits: could not close Redis: ${err instanceof Error ? err.message : String(err)}`));
    await stores.close();
    // The spans of the last requests, ended during the drain.
    await tracer.shutdown();
  };
  let closing: Promise<void> | undefined;
  return {
    address, url: `http://${host}:${address.port}`, metricsUrl: metricsServer && `http://${host}:${metricsServer.address.port}`, gateway, accounts, stores, breakers, readiness, gate: handler.gate,
    get db() {
      if (!stores.sqlite) throw new Error("DATABASE_URL is set: the stores are in PostgreSQL, not SQLite");
      return stores.sqlite;
    },
    get connections() {
      return listener.connections;
    },
    close: () => (closing ??= drainAndClose()),
    hurry: () => {
      hurried();
      requests.hurry();
    },
  };
}

/**
 * On PostgreSQL a request's answer does not wait for its row's batch to be
 * committed (a round trip to the server and its WAL flush, on every
 * request's path): the row goes out in the next batch, and a replica killed
 * with SIGKILL loses at most the rows of its current batches (README:
 * "What a crash loses"). A drain still commits every row before it exits.
 */
function answeringBeforeCommit(usage: UsageStore): UsageStore {
  return { ...usage, committed: () => Promise.resolve() };
}

/** The same store with inserts dropped (USAGE_RECORDING=off); reads still work, and nothing is waited for. */
function withoutRecording(usage: UsageStore): UsageStore {
  return { ...usage, insert() {}, committed: () => Promise.resolve() };
}
