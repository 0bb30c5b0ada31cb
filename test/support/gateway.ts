import { startApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { PROVIDERS, type ProviderRow } from "../../src/providers/table.js";
import { startFakeUpstream, type FakeUpstream } from "./fake-upstream.js";
import { closedPortUrl, UNRESOLVABLE_BASE_URL } from "./unreachable.js";

export interface TestGateway {
  readonly app: App;
  readonly url: string;
  /** Alibaba Cloud's fake (DashScope's quirks enforced); also `fakes["alibaba-cloud"]`. */
  readonly fake: FakeUpstream;
  /** One fake per provider that has one: alibaba-cloud's and those in `options.providers`. */
  readonly fakes: Readonly<Record<string, FakeUpstream>>;
  /** A client key (user "test", key name "test") created on the gateway's fresh database. */
  readonly key: string;
  /** `Bearer <key>`, ready for an Authorization header or gRPC metadata. */
  readonly authorization: string;
  /** Every log line the gateway wrote, in order. */
  readonly logs: string[];
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  /** Providers besides alibaba-cloud to give a plain OpenAI fake each, with its key and base URL set. */
  readonly providers?: readonly string[];
  /** Providers configured with a key but a base URL on a closed port: connection refused. */
  readonly refused?: readonly string[];
  /** Providers configured with a key but a base URL whose host does not resolve: DNS failure. */
  readonly unresolvable?: readonly string[];
}

/** The catalog's DashScope quirks, so the fake enforces what DashScope would. */
const STREAM_ONLY = ["qwq-plus", "qwq-32b", "qwen-omni-turbo", "qwen3-30b-a3b-thinking-2507", "qwen3-next-80b-a3b-thinking", "qwen3-235b-a22b-thinking-2507"];
const HYBRID = ["qwen-plus", "qwen-flash", "qwen-turbo", "qwen3-max", "qwen3-235b-a22b", "qwen3-32b", "qwen3-14b", "qwen3-8b"];

function rowOf(id: string): ProviderRow {
  const row = PROVIDERS.find((p) => p.id === id);
  if (!row) throw new Error(`startTestGateway: unknown provider ${id}; known: ${PROVIDERS.map((p) => p.id).join(", ")}`);
  return row;
}

/** The variables that configure a provider: its key variable (the row's keyVar or `<P>_API_KEY`) and `<P>_BASE_URL`. */
export function providerEnv(id: string, baseUrl: string, apiKey = `sk-test-${id}`): Record<string, string> {
  const row = rowOf(id);
  return { [row.keyVar ?? `${row.envPrefix}_API_KEY`]: apiKey, [`${row.envPrefix}_BASE_URL`]: baseUrl };
}

/**
 * A real gateway on an ephemeral 127.0.0.1 port whose Alibaba Cloud base URL
 * points at a fresh fake upstream; `options` add a fake (or an unreachable
 * address) for other providers. `env` overrides any variable, `undefined`
 * removing one (`{ TOGETHER_API_KEY: undefined }` leaves Together unconfigured).
 */
export async function startTestGateway(env: Record<string, string | undefined> = {}, options: TestGatewayOptions = {}): Promise<TestGateway> {
  const fakes: Record<string, FakeUpstream> = {};
  const closeFakes = () => Promise.all(Object.values(fakes).map((f) => f.close()));
  try {
    const fake = (fakes["alibaba-cloud"] = await startFakeUpstream({ streamOnlyModels: STREAM_ONLY, hybridThinkingModels: HYBRID }));
    const providers: Record<string, string> = {};
    for (const id of options.providers ?? []) {
      if (id === "alibaba-cloud") continue;
      const other = (fakes[id] = await startFakeUpstream({ apiKey: `sk-test-${id}` }));
      Object.assign(providers, providerEnv(id, other.baseUrl, other.apiKey));
    }
    for (const id of options.refused ?? []) Object.assign(providers, providerEnv(id, await closedPortUrl()));
    for (const id of options.unresolvable ?? []) Object.assign(providers, providerEnv(id, UNRESOLVABLE_BASE_URL));
    const logs: string[] = [];
    const config = loadConfig({
      ENV_FILE: "/nonexistent/.env",
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: "debug",
      DATABASE_PATH: ":memory:",
      // Unlimited unless a test sets limits: suites send many requests quickly.
      RATE_LIMITS_KEY: "rpm=0,concurrent=0",
      // Suites fail the fake on purpose many times; breaker tests set their own threshold.
      BREAKER_FAILURES: "1000",
      // close() drains: a test that leaves a request hanging should not wait for it.
      DRAIN_TIMEOUT_MS: "0",
      // Suites send the same request many times and count what reaches the fake; the cache's own tests turn it on.
      CACHE: "off",
      ALIBABA_CLOUD_API_KEY: fake.apiKey,
      ALIBABA_CLOUD_BASE_URL: fake.baseUrl,
      ...providers,
      ...env,
    });
    const app = await startApp(config, createLogger(config.logLevel, (line) => logs.push(line), config.logFormat));
    const { key } = app.accounts.createKey({ user: "test", name: "test" });
    return {
      app, url: app.url, fake, fakes, logs, key, authorization: `Bearer ${key}`,
      async close() {
        await app.close();
        await closeFakes();
      },
    };
  } catch (err) {
    await closeFakes();
    throw err;
  }
}
