import { cacheConfig, type CacheConfig } from "./cache/cache-config.js";
import { sharedStateConfig, type SharedStateConfig } from "./redis/shared-config.js";
import { databaseConfig, type DatabaseConfig } from "./storage/database-config.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { definedOnly, flag, headers, integer, list, onOff, positive, readEnvFile, type Env } from "./config-values.js";
import { installation } from "./install-root.js";
import { isLogLevel, type LogFormat, type LogLevel } from "./log.js";
import { otelVariables } from "./observe/otel-options.js";
import { PRIORITY, PROVIDERS, type PhaseTimeouts, type ProviderRow } from "./providers/table.js";

/** One provider's settings, resolved from its table row and the environment. */
export interface ProviderConfig {
  readonly row: ProviderRow;
  /** Undefined when no key is configured: the provider is then unusable. The first of apiKeys. */
  readonly apiKey: string | undefined;
  /** Every key of the variable (`k1,k2,…`): requests spread over them (providers/key-ring.ts). */
  readonly apiKeys: readonly string[];
  readonly baseUrl: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeouts: PhaseTimeouts;
  /** The variable the credential is read from, for messages. */
  readonly keyVar: string;
  /** Why the provider cannot be used, if it cannot. */
  readonly problem: string | undefined;
  /**
   * No key, and no setting of it that is wrong: the provider is simply not in
   * use (listed once at start), as opposed to configured but broken (warned about).
   */
  readonly unconfigured: boolean;
}

/** How requests fail over between providers. */
export interface FailoverConfig {
  /** Provider ids in priority order (the seed guide's, unless FAILOVER_ORDER says otherwise). */
  readonly order: readonly string[];
  /** Per catalog model, its own order (MODEL_FAILOVER_ORDER="qwen-plus=openrouter,alibaba-cloud;..."). */
  readonly modelOrder: Readonly<Record<string, readonly string[]>>;
  /** Fail over on an upstream 429 and on an upstream 500 (both on by default). */
  readonly on429: boolean;
  readonly on500: boolean;
  /** The most time one request may spend failing over before its first byte. */
  readonly budgetMs: number;
  /** A retry-after up to this long is waited out on the same provider, once. */
  readonly retryAfterCapMs: number;
  /** Consecutive failures that open a provider's circuit, and how long it stays open. */
  readonly breakerFailures: number;
  readonly breakerCooldownMs: number;
}

/**
 * What one connection or request may hold, and for how long: every phase a
 * client controls has a bound, so no client can hold the process's
 * descriptors, memory or concurrency slots for ever (see the README's
 * security section).
 */
export interface ServerLimits {
  /** From a connection's first byte (or a keep-alive request's) to its complete headers. */
  readonly headersTimeoutMs: number;
  /** The whole request, headers and body, must arrive within this. */
  readonly requestTimeoutMs: number;
  /** An HTTP/1 connection idle between requests is closed after this. */
  readonly keepAliveTimeoutMs: number;
  /** An HTTP/2 session with no open stream is closed (GOAWAY) after this. */
  readonly http2IdleTimeoutMs: number;
  /** Streams one HTTP/2 session may have open at once (its SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly http2MaxStreams: number;
  /** A client that takes none of its answer for this long is treated as gone. */
  readonly sendTimeoutMs: number;
  /** Open client connections; the next one is answered with a refusal and closed. */
  readonly maxConnections: number;
  /** Deepest nesting of arrays and objects accepted in a JSON body. */
  readonly maxJsonDepth: number;
  /** Failed authentications per client address per minute before its requests are refused unread; 0 = no limit. */
  readonly authFailuresPerMinute: number;
  /** On SIGTERM/SIGINT, how long requests in flight may run before they are ended. */
  readonly drainTimeoutMs: number;
}

export interface Config {
  readonly host: string;
  readonly port: number;
  /** Origins allowed by CORS; "*" allows any. Empty disables CORS. */
  readonly corsOrigins: readonly string[];
  /** Largest request body accepted, in bytes, on every front door. */
  readonly maxBodyBytes: number;
  readonly logLevel: LogLevel;
  /** LOG_FORMAT: `text` lines, or `json` (one object per line, through pino). */
  readonly logFormat: LogFormat;
  /** METRICS=off turns the Prometheus metrics off (to measure their cost); METRICS_PORT serves them apart. */
  readonly metrics: { readonly enabled: boolean; readonly port: number | undefined };
  /**
   * The OTEL_* variables (environment or .env), when an OTLP endpoint is set:
   * tracing is on then, and off (its SDK not even loaded) otherwise.
   */
  readonly otel: Readonly<Record<string, string>> | undefined;
  readonly providers: readonly ProviderConfig[];
  /**
   * SQLite file for keys, limits and usage; ":memory:" keeps nothing. By
   * default data/gatewayz.db in the installation directory (not the working
   * one), so the server and the CLI share it from anywhere.
   */
  readonly databasePath: string;
  /** DATABASE_URL: the same stores in PostgreSQL, shared by replicas; it wins over DATABASE_PATH. */
  readonly database: DatabaseConfig;
  /** Default limits by scope; 0 means unlimited. Rows in `rate_limits` override them. */
  readonly limits: Readonly<Record<"key" | "user" | "system", LimitDefaults>>;
  /** An admin key accepted without being stored (bootstrap); compared by hash in constant time. */
  readonly adminKey: string | undefined;
  readonly failover: FailoverConfig;
  /**
   * USAGE_RECORDING=off skips the usage table, for measuring what recording
   * costs (bench/). Budgets then count only this process's spending.
   */
  readonly recordUsage: boolean;
  /** WORKERS (or --workers): processes sharing the port; 1 runs the gateway in this process. */
  readonly workers: number;
  /** Usage rows held in memory while the database refuses writes, before chats are refused. */
  readonly usageBufferRows: number;
  /** RESPONSES_TTL_DAYS: how long a stored Responses API response is kept (OpenAI keeps them 30 days). */
  readonly responsesTtlDays: number;
  /** The response cache: CACHE, CACHE_TTL_S, CACHE_SCOPE, CACHE_MAX_BYTES, CACHE_MAX_ENTRY_BYTES, CACHE_PATH, REDIS_URL, REDIS_TIMEOUT_MS. */
  readonly cache: CacheConfig;
  /** What replicas share through Redis: REDIS_URL, REDIS_TIMEOUT_MS, LIMITS_FAIL_MODE, LIMITS_LEASE_MS. */
  readonly shared: SharedStateConfig;
  readonly server: ServerLimits;
}

export interface LimitDefaults {
  readonly rpm: number;
  readonly tpm: number;
  readonly rpd: number;
  readonly concurrent: number;
}

/**
 * Reads configuration once, at the edge: the process environment wins over a
 * `.env` file (ENV_FILE, default ./.env). Invalid values throw with the
 * variable's name; a provider's missing key is not an error, it is reported.
 */
export function loadConfig(env: Env = process.env): Config {
  const merged = { ...readEnvFile(env.ENV_FILE ?? ".env"), ...definedOnly(env) };
  // PROVIDER_TIMEOUT_MS sets both waits on the upstream (first byte, gaps);
  // the per-phase variables refine it.
  const wait = integer(merged, "PROVIDER_TIMEOUT_MS", 30_000);
  const defaultTimeouts: PhaseTimeouts = {
    connectMs: integer(merged, "PROVIDER_CONNECT_TIMEOUT_MS", 10_000),
    firstByteMs: integer(merged, "PROVIDER_FIRST_BYTE_TIMEOUT_MS", wait),
    idleMs: integer(merged, "PROVIDER_IDLE_TIMEOUT_MS", wait),
    totalMs: integer(merged, "PROVIDER_TOTAL_TIMEOUT_MS", 600_000),
  };
  const logLevel = merged.LOG_LEVEL ?? "info";
  if (!isLogLevel(logLevel)) throw new Error(`LOG_LEVEL must be debug, info, warn, error or silent, got ${logLevel}`);
  const logFormat = merged.LOG_FORMAT ?? "text";
  if (logFormat !== "text" && logFormat !== "json") throw new Error(`LOG_FORMAT must be text or json, got ${logFormat}`);
  const metricsPort = merged.METRICS_PORT === undefined || merged.METRICS_PORT === "" ? undefined : integer(merged, "METRICS_PORT", 0);
  const databasePath = merged.DATABASE_PATH || join(installation().root, "data", "gatewayz.db");
  return Object.freeze({
    host: merged.HOST ?? "127.0.0.1",
    port: integer(merged, "PORT", 8000),
    corsOrigins: list(merged.CORS_ORIGINS ?? ""),
    maxBodyBytes: integer(merged, "MAX_BODY_BYTES", 10 * 1024 * 1024),
    logLevel,
    logFormat,
    metrics: Object.freeze({ enabled: onOff(merged, "METRICS", true), port: metricsPort }),
    otel: otelVariables(merged),
    providers: PROVIDERS.map((row) => providerConfig(row, merged, defaultTimeouts)),
    failover: failoverConfig(merged),
    databasePath,
    database: databaseConfig(merged),
    limits: Object.freeze({
      key: limitDefaults(merged, "RATE_LIMITS_KEY", { rpm: 600, tpm: 0, rpd: 0, concurrent: 64 }),
      user: limitDefaults(merged, "RATE_LIMITS_USER", { rpm: 0, tpm: 0, rpd: 0, concurrent: 0 }),
      system: limitDefaults(merged, "RATE_LIMITS_SYSTEM", { rpm: 0, tpm: 0, rpd: 0, concurrent: 0 }),
    }),
    adminKey: bootstrapAdminKey(merged.GATEWAYZ_ADMIN_KEY),
    recordUsage: onOff(merged, "USAGE_RECORDING", true),
    workers: Math.max(1, integer(merged, "WORKERS", 1)),
    usageBufferRows: integer(merged, "USAGE_BUFFER_ROWS", 10_000),
    responsesTtlDays: responsesTtlDays(merged),
    cache: cacheConfig(merged, databasePath),
    shared: sharedStateConfig(merged),
    server: serverLimits(merged),
  });
}

/** Whole days from 1 to 36500 (a century): a bound, so digits typed twice stop the gateway at start. */
function responsesTtlDays(env: Env): number {
  const days = positive(env, "RESPONSES_TTL_DAYS", 30);
  if (days > 36_500) throw new Error(`RESPONSES_TTL_DAYS must be a whole number of days from 1 to 36500, got ${env.RESPONSES_TTL_DAYS}`);
  return days;
}

/**
 * GATEWAYZ_ADMIN_KEY opens the whole admin API, so it must be as strong as a
 * key the gateway makes (src/storage/keys.ts): `gw_admin_` and at least 32
 * base62 characters (about 190 bits). A weak value ("secret") is refused at
 * start rather than accepted.
 */
function bootstrapAdminKey(value: string | undefined): string | undefined {
  if (!value) return undefined;
  if (!/^gw_admin_[0-9A-Za-z]{32,}$/.test(value)) {
    throw new Error(`GATEWAYZ_ADMIN_KEY must be gw_admin_ followed by at least 32 random base62 characters (0-9, A-Z, a-z); the value set (${value.length} characters, not shown) is not`);
  }
  return value;
}

function serverLimits(env: Env): ServerLimits {
  return Object.freeze({
    headersTimeoutMs: positive(env, "HEADERS_TIMEOUT_MS", 10_000),
    requestTimeoutMs: positive(env, "REQUEST_TIMEOUT_MS", 30_000),
    keepAliveTimeoutMs: positive(env, "KEEP_ALIVE_TIMEOUT_MS", 65_000),
    http2IdleTimeoutMs: positive(env, "HTTP2_IDLE_TIMEOUT_MS", 300_000),
    http2MaxStreams: positive(env, "HTTP2_MAX_STREAMS", 1_000),
    sendTimeoutMs: positive(env, "SEND_TIMEOUT_MS", 60_000),
    maxConnections: positive(env, "MAX_CONNECTIONS", defaultMaxConnections()),
    maxJsonDepth: positive(env, "MAX_JSON_DEPTH", 64),
    authFailuresPerMinute: integer(env, "AUTH_FAILURES_PER_MINUTE", 60),
    drainTimeoutMs: integer(env, "DRAIN_TIMEOUT_MS", 30_000),
  });
}

/**
 * Half the process's descriptor limit (each client connection may need an
 * upstream one), less a margin for the database and logs: with the cap below
 * the limit, a flood of connections is refused instead of starving accept().
 */
function defaultMaxConnections(): number {
  let soft: number | undefined;
  try {
    const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"));
    const value = line?.split(/\s{2,}/)[1];
    soft = value === undefined || value === "unlimited" ? undefined : Number(value);
  } catch {
    // Not Linux: no limit to read.
  }
  if (soft === undefined || !Number.isFinite(soft)) return 4096;
  return Math.min(16_384, Math.max(64, Math.floor(soft / 2) - 32));
}

/** `rpm=60,tpm=100000,rpd=5000,concurrent=8`; fields not named keep their default. */
function limitDefaults(env: Env, name: string, fallback: LimitDefaults): LimitDefaults {
  const raw = env[name]?.trim();
  if (!raw) return Object.freeze(fallback);
  const out: Record<string, number> = { ...fallback };
  for (const pair of raw.split(",")) {
    const [field, value] = pair.split("=").map((s) => s.trim());
    const n = Number(value);
    if (!field || !(field in fallback) || value === undefined || !Number.isInteger(n) || n < 0) {
      throw new Error(`${name} must look like "rpm=60,tpm=100000,rpd=5000,concurrent=8" (0 = unlimited), got ${raw}`);
    }
    out[field] = n;
  }
  return Object.freeze(out as unknown as LimitDefaults);
}

function providerConfig(row: ProviderRow, env: Env, defaults: PhaseTimeouts): ProviderConfig {
  const p = row.envPrefix;
  const regionNames = Object.keys(row.regions);
  const region = (env[`${p}_REGION`] ?? regionNames[0]!).toLowerCase();
  let problem: string | undefined;
  /** A region or base URL was given and is wrong: worth a warning even without a key. */
  let wrong = false;
  // Empty is unset, as a .env template's `ALIBABA_CLOUD_BASE_URL=` means.
  let baseUrl = env[`${p}_BASE_URL`] || row.regions[region];
  if (baseUrl === undefined) {
    wrong = true;
    problem = `${p}_REGION must be one of ${regionNames.join(", ")}, got ${region}`;
    baseUrl = row.regions[regionNames[0]!]!;
  }
  // Fill `{project}`-style placeholders from `${p}_PROJECT` or the row's defaults.
  baseUrl = baseUrl.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = env[`${p}_${name.toUpperCase()}`] ?? row.params?.[name];
    if (!value) problem ??= `${p}_${name.toUpperCase()} is not set`;
    return value ?? `{${name}}`;
  });
  if (!problem && !URL.canParse(baseUrl)) {
    wrong = true;
    problem = `${p}_BASE_URL is not a URL: ${baseUrl}`;
  }
  const keyVar = row.keyVar ?? `${p}_API_KEY`;
  const apiKeys = Object.freeze((env[keyVar] ?? "").split(",").map((k) => k.trim()).filter((k) => k !== ""));
  const apiKey = apiKeys[0];
  if (!problem && !apiKey) problem = `${keyVar} is not set`;
  // A row's own timeouts (slow cold starts) are floors: a longer default wins.
  const t: PhaseTimeouts = {
    connectMs: Math.max(defaults.connectMs, row.timeouts?.connectMs ?? 0),
    firstByteMs: Math.max(defaults.firstByteMs, row.timeouts?.firstByteMs ?? 0),
    idleMs: Math.max(defaults.idleMs, row.timeouts?.idleMs ?? 0),
    totalMs: Math.max(defaults.totalMs, row.timeouts?.totalMs ?? 0),
  };
  const wait = env[`${p}_TIMEOUT_MS`];
  const firstByte = integer(env, `${p}_TIMEOUT_MS`, t.firstByteMs);  return Object.freeze({
    row,
    apiKey,
    apiKeys,
    keyVar,
    baseUrl: baseUrl.replace(/\/+$/, ""),
    headers: Object.freeze({ ...row.headers, ...headers(env, `${p}_HEADERS`) }),
    timeouts: Object.freeze({
      connectMs: integer(env, `${p}_CONNECT_TIMEOUT_MS`, t.connectMs),
      firstByteMs: integer(env, `${p}_FIRST_BYTE_TIMEOUT_MS`, firstByte),
      idleMs: integer(env, `${p}_IDLE_TIMEOUT_MS`, wait ? firstByte : t.idleMs),
      totalMs: integer(env, `${p}_TOTAL_TIMEOUT_MS`, t.totalMs),
    }),
    problem,
    unconfigured: !apiKey && !wrong,
  });
}

function failoverConfig(env: Env): FailoverConfig {
  const known = new Set(PRIORITY);
  const providerList = (raw: string, name: string): string[] => {
    const ids = list(raw);
    for (const id of ids) if (!known.has(id)) throw new Error(`${name}: unknown provider ${id}; known: ${PRIORITY.join(", ")}`);
    return ids;
  };
  const modelOrder: Record<string, readonly string[]> = {};
  for (const entry of (env.MODEL_FAILOVER_ORDER ?? "").split(";").map((s) => s.trim()).filter(Boolean)) {
    const at = entry.indexOf("=");
    if (at <= 0) throw new Error(`MODEL_FAILOVER_ORDER must look like "qwen-plus=openrouter,alibaba-cloud;qwq-plus=...", got ${entry}`);
    modelOrder[entry.slice(0, at).trim()] = providerList(entry.slice(at + 1), "MODEL_FAILOVER_ORDER");
  }
  return Object.freeze({
    order: env.FAILOVER_ORDER ? providerList(env.FAILOVER_ORDER, "FAILOVER_ORDER") : PRIORITY,
    modelOrder: Object.freeze(modelOrder),
    on429: flag(env, "FAILOVER_ON_429", true),
    on500: flag(env, "FAILOVER_ON_500", true),
    budgetMs: integer(env, "FAILOVER_TIMEOUT_MS", 60_000),
    retryAfterCapMs: integer(env, "FAILOVER_RETRY_AFTER_MAX_MS", 2_000),
    breakerFailures: Math.max(1, integer(env, "BREAKER_FAILURES", 5)),
    breakerCooldownMs: integer(env, "BREAKER_COOLDOWN_MS", 30_000),
  });
}
