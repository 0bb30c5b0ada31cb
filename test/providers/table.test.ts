import { afterEach, describe, expect, it } from "vitest";
import { loadConfig, type ProviderConfig } from "../../src/config.js";
import { createCatalog, type CatalogModel, type CatalogRow, type RouteRows } from "../../src/core/catalog.js";
import modelsData from "../../src/data/models.json" with { type: "json" };
import routesData from "../../src/data/routes.json" with { type: "json" };
import { GatewayError } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";
import { createProviderSet, type ProviderSet } from "../../src/providers/provider-set.js";
import { PRIORITY, PROVIDERS } from "../../src/providers/table.js";

const NO_FILE = { ENV_FILE: "/nonexistent/.env" };
const config = (env: Record<string, string> = {}) => loadConfig({ ...NO_FILE, ...env });
const provider = (id: string, env: Record<string, string> = {}): ProviderConfig => config(env).providers.find((p) => p.row.id === id)!;

/** The seed guide's failover chain, in its priority order. */
const CHAIN = [
  "huggingface", "featherless", "vercel-ai-gateway", "aihubmix", "anannas",
  "alibaba-cloud", "fireworks", "together", "google-vertex", "openrouter",
];

/** The published base URLs (shared/notes/domain.md). */
const BASE_URLS: Record<string, string> = {
  "huggingface": "https://router.huggingface.co/v1",
  "featherless": "https://api.featherless.ai/v1",
  "vercel-ai-gateway": "https://ai-gateway.vercel.sh/v1",
  "aihubmix": "https://aihubmix.com/v1",
  "anannas": "https://api.anannas.ai/v1",
  "alibaba-cloud": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
  "fireworks": "https://api.fireworks.ai/inference/v1",
  "together": "https://api.together.xyz/v1",
  "openrouter": "https://openrouter.ai/api/v1",
};

const KEY_VARS: Record<string, string> = {
  "huggingface": "HUGGINGFACE_API_KEY",
  "featherless": "FEATHERLESS_API_KEY",
  "vercel-ai-gateway": "VERCEL_AI_GATEWAY_API_KEY",
  "aihubmix": "AIHUBMIX_API_KEY",
  "anannas": "ANANNAS_API_KEY",
  "alibaba-cloud": "ALIBABA_CLOUD_API_KEY",
  "fireworks": "FIREWORKS_API_KEY",
  "together": "TOGETHER_API_KEY",
  "google-vertex": "GOOGLE_VERTEX_ACCESS_TOKEN",
  "openrouter": "OPENROUTER_API_KEY",
};

/** What `fn` throws; fails the test if it returns. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw, but it returned");
}

/** The prefix of a provider's variables: its key variable without the last word. */
const prefixOf = (id: string) => KEY_VARS[id]!.replace(/_(API_KEY|ACCESS_TOKEN)$/, "");

describe("the provider table", () => {
  it("has the ten rows of the seed guide's chain, in its order", () => {
    expect(PROVIDERS.map((p) => p.id)).toEqual(CHAIN);
    expect(PRIORITY).toEqual(CHAIN);
    expect(config().providers.map((p) => p.row.id)).toEqual(CHAIN);
    expect(config().failover.order).toEqual(CHAIN);
  });

  it("uses each provider's published base URL by default", () => {
    for (const [id, url] of Object.entries(BASE_URLS)) expect(provider(id).baseUrl, id).toBe(url);
  });

  it("reads each provider's key from its own variable, with no problem once it is set", () => {
    for (const id of CHAIN) {
      const keyVar = KEY_VARS[id]!;
      const env = { [keyVar]: `key-of-${id}`, GOOGLE_VERTEX_PROJECT: "p" };
      expect(provider(id).keyVar, id).toBe(keyVar);
      expect(provider(id, { GOOGLE_VERTEX_PROJECT: "p" }), id).toMatchObject({ apiKey: undefined, problem: `${keyVar} is not set` });
      expect(provider(id, env), id).toMatchObject({ apiKey: `key-of-${id}`, problem: undefined });
    }
  });

  it("names every override after the key variable's prefix, and each one works", () => {
    for (const id of CHAIN) {
      const p = prefixOf(id);
      expect(PROVIDERS.find((r) => r.id === id)!.envPrefix, id).toBe(p);
      const c = provider(id, {
        [KEY_VARS[id]!]: "k",
        [`${p}_BASE_URL`]: `http://127.0.0.1:9/${id}/v1/`,
        [`${p}_HEADERS`]: "X-Test: 1",
        [`${p}_TIMEOUT_MS`]: "1234",
      });
      expect(c.baseUrl, id).toBe(`http://127.0.0.1:9/${id}/v1`);
      expect(c.headers["X-Test"], id).toBe("1");
      expect(c.timeouts, id).toMatchObject({ firstByteMs: 1234, idleMs: 1234 });
      expect(c.problem, id).toBeUndefined();
    }
    expect(provider("together", { TOGETHER_BASE_URL: "http://127.0.0.1:9/v1" }).baseUrl).toBe("http://127.0.0.1:9/v1");
  });

  it("reports a base-URL override that is not a URL as the provider's problem", () => {
    expect(provider("together", { TOGETHER_API_KEY: "k", TOGETHER_BASE_URL: "not a url" }).problem).toMatch(/TOGETHER_BASE_URL is not a URL/);
  });
});

describe("google-vertex", () => {
  const vertex = (env: Record<string, string>) => provider("google-vertex", env);

  it("builds its base URL from GOOGLE_VERTEX_PROJECT and GOOGLE_VERTEX_LOCATION, us-central1 by default", () => {
    expect(vertex({ GOOGLE_VERTEX_PROJECT: "my-proj", GOOGLE_VERTEX_ACCESS_TOKEN: "ya29.t" })).toMatchObject({
      baseUrl: "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/endpoints/openapi",
      apiKey: "ya29.t",
      keyVar: "GOOGLE_VERTEX_ACCESS_TOKEN",
      problem: undefined,
    });
    expect(vertex({ GOOGLE_VERTEX_PROJECT: "my-proj", GOOGLE_VERTEX_LOCATION: "europe-west4" }).baseUrl)
      .toBe("https://europe-west4-aiplatform.googleapis.com/v1/projects/my-proj/locations/europe-west4/endpoints/openapi");
  });

  it("takes its bearer from GOOGLE_VERTEX_ACCESS_TOKEN, not an _API_KEY variable", () => {
    expect(vertex({ GOOGLE_VERTEX_PROJECT: "p", GOOGLE_VERTEX_API_KEY: "k" })).toMatchObject({
      apiKey: undefined, problem: "GOOGLE_VERTEX_ACCESS_TOKEN is not set",
    });
  });

  it("reports a missing project as its problem, even with a token", () => {
    expect(vertex({ GOOGLE_VERTEX_ACCESS_TOKEN: "ya29.t" }).problem).toBe("GOOGLE_VERTEX_PROJECT is not set");
    expect(vertex({}).problem).toBe("GOOGLE_VERTEX_PROJECT is not set");
  });
});

describe("headers", () => {
  it("sends OpenRouter's attribution headers by default", () => {
    expect(provider("openrouter").headers).toEqual({ "HTTP-Referer": expect.stringMatching(/^https:\/\//), "X-Title": "Gatewayz" });
  });

  it("lets OPENROUTER_HEADERS override and extend them", () => {
    const headers = provider("openrouter", { OPENROUTER_HEADERS: "X-Title: My App; X-Extra: 1" }).headers;
    expect(headers).toEqual({ "HTTP-Referer": provider("openrouter").headers["HTTP-Referer"], "X-Title": "My App", "X-Extra": "1" });
    expect(provider("openrouter", { OPENROUTER_HEADERS: '{"HTTP-Referer":"https://example.com"}' }).headers)
      .toEqual({ "HTTP-Referer": "https://example.com", "X-Title": "Gatewayz" });
  });

  it("sends no extra headers to the other providers by default", () => {
    for (const id of CHAIN.filter((p) => p !== "openrouter")) expect(provider(id).headers, id).toEqual({});
  });

});

describe("timeouts", () => {
  it("gives slow providers (huggingface, featherless) a longer first-byte timeout by default", () => {
    for (const id of CHAIN) {
      const t = provider(id).timeouts;
      if (id === "huggingface" || id === "featherless") expect(t.firstByteMs, id).toBeGreaterThan(30_000);
      else expect(t, id).toEqual({ connectMs: 10_000, firstByteMs: 30_000, idleMs: 30_000, totalMs: 600_000 });
    }
    expect(provider("huggingface").timeouts).toMatchObject({ connectMs: 10_000, idleMs: 30_000, totalMs: 600_000 });
  });

  it("keeps the slow default when only the global PROVIDER_TIMEOUT_MS is set, and yields to the provider's own", () => {
    expect(provider("huggingface", { PROVIDER_TIMEOUT_MS: "20000" }).timeouts.firstByteMs).toBeGreaterThan(30_000);
    expect(provider("together", { PROVIDER_TIMEOUT_MS: "20000" }).timeouts).toMatchObject({ firstByteMs: 20_000, idleMs: 20_000 });
    expect(provider("huggingface", { HUGGINGFACE_TIMEOUT_MS: "5000" }).timeouts).toMatchObject({ firstByteMs: 5000, idleMs: 5000 });
  });

  it("reads each phase from its own variable, per provider and globally", () => {
    expect(provider("together", {
      TOGETHER_CONNECT_TIMEOUT_MS: "100", TOGETHER_FIRST_BYTE_TIMEOUT_MS: "200",
      TOGETHER_IDLE_TIMEOUT_MS: "300", TOGETHER_TOTAL_TIMEOUT_MS: "400",
    }).timeouts).toEqual({ connectMs: 100, firstByteMs: 200, idleMs: 300, totalMs: 400 });
    expect(provider("fireworks", {
      PROVIDER_CONNECT_TIMEOUT_MS: "110", PROVIDER_FIRST_BYTE_TIMEOUT_MS: "220",
      PROVIDER_IDLE_TIMEOUT_MS: "330", PROVIDER_TOTAL_TIMEOUT_MS: "440",
    }).timeouts).toEqual({ connectMs: 110, firstByteMs: 220, idleMs: 330, totalMs: 440 });
    // A provider's own phase wins over the global one; the other phases keep theirs.
    expect(provider("fireworks", { PROVIDER_IDLE_TIMEOUT_MS: "330", FIREWORKS_IDLE_TIMEOUT_MS: "50" }).timeouts)
      .toEqual({ connectMs: 10_000, firstByteMs: 30_000, idleMs: 50, totalMs: 600_000 });
    // _TIMEOUT_MS sets both waits; a phase variable refines it.
    expect(provider("together", { TOGETHER_TIMEOUT_MS: "1500", TOGETHER_FIRST_BYTE_TIMEOUT_MS: "900" }).timeouts)
      .toMatchObject({ firstByteMs: 900, idleMs: 1500 });
  });

  it("names the variable when a timeout is not a non-negative integer", () => {
    expect(() => config({ TOGETHER_IDLE_TIMEOUT_MS: "soon" })).toThrow(/TOGETHER_IDLE_TIMEOUT_MS must be a non-negative integer/);
    expect(() => config({ PROVIDER_TOTAL_TIMEOUT_MS: "-1" })).toThrow(/PROVIDER_TOTAL_TIMEOUT_MS/);
  });
});

describe("failover configuration", () => {
  it("reads FAILOVER_ORDER as a comma-separated list of provider ids", () => {
    expect(config({ FAILOVER_ORDER: "together, openrouter,alibaba-cloud" }).failover.order).toEqual(["together", "openrouter", "alibaba-cloud"]);
  });

  it("reads MODEL_FAILOVER_ORDER as model=providers entries separated by semicolons", () => {
    expect(config({ MODEL_FAILOVER_ORDER: "qwen-plus=openrouter,alibaba-cloud; qwen-max = together ;" }).failover.modelOrder).toEqual({
      "qwen-plus": ["openrouter", "alibaba-cloud"],
      "qwen-max": ["together"],
    });
    expect(config().failover.modelOrder).toEqual({});
  });

  it("refuses unknown provider ids and malformed entries, naming the variable", () => {
    expect(() => config({ FAILOVER_ORDER: "together,nope" })).toThrow(/FAILOVER_ORDER: unknown provider nope; known: huggingface, /);
    expect(() => config({ MODEL_FAILOVER_ORDER: "qwen-plus=openrouter,nope" })).toThrow(/MODEL_FAILOVER_ORDER: unknown provider nope/);
    expect(() => config({ MODEL_FAILOVER_ORDER: "qwen-plus" })).toThrow(/MODEL_FAILOVER_ORDER must look like/);
    expect(() => config({ MODEL_FAILOVER_ORDER: "=openrouter" })).toThrow(/MODEL_FAILOVER_ORDER must look like/);
  });

  it("reads FAILOVER_ON_429 and FAILOVER_ON_500 as true/false, both on by default", () => {
    expect(config().failover).toMatchObject({ on429: true, on500: true });
    for (const no of ["false", "0", "no", "off", "FALSE"]) {
      expect(config({ FAILOVER_ON_429: no, FAILOVER_ON_500: no }).failover, no).toMatchObject({ on429: false, on500: false });
    }
    for (const yes of ["true", "1", "yes", "on", " True "]) {
      expect(config({ FAILOVER_ON_429: yes, FAILOVER_ON_500: yes }).failover, yes).toMatchObject({ on429: true, on500: true });
    }
    expect(config({ FAILOVER_ON_429: "false" }).failover).toMatchObject({ on429: false, on500: true });
    expect(() => config({ FAILOVER_ON_429: "maybe" })).toThrow(/FAILOVER_ON_429 must be true or false/);
    expect(() => config({ FAILOVER_ON_500: "2" })).toThrow(/FAILOVER_ON_500 must be true or false/);
  });
});

describe("the provider set's order", () => {
  const catalog = createCatalog(modelsData.models as CatalogRow[], routesData.routes as RouteRows);
  const model = (id: string): CatalogModel => catalog.resolve(id).model;
  let sets: ProviderSet[] = [];
  afterEach(async () => {
    await Promise.all(sets.map((s) => s.close()));
    sets = [];
  });

  /** A provider set with keys (and base URLs on a closed port) for the named providers. */
  const setOf = (ids: readonly string[], env: Record<string, string> = {}) => {
    const keys: Record<string, string> = { GOOGLE_VERTEX_PROJECT: "p" };
    for (const id of ids) {
      keys[KEY_VARS[id]!] = "k";
      keys[`${prefixOf(id)}_BASE_URL`] = `http://127.0.0.1:9/${id}/v1`;
    }
    const c = config({ ...keys, ...env });
    const lines: string[] = [];
    const set = createProviderSet(c.providers, c.failover, createLogger("debug", (l) => lines.push(l)));
    sets.push(set);
    return { set, lines };
  };
  const order = (set: ProviderSet, id: string) => set.routes(model(id)).map((r) => r.provider);

  it("rotates the priority list to start at the model's primary provider", () => {
    const { set } = setOf(CHAIN);
    expect(order(set, "qwen3-235b-a22b-instruct-2507")).toEqual([
      "alibaba-cloud", "fireworks", "together", "google-vertex", "openrouter", "huggingface", "aihubmix", "anannas",
    ]);
  });

  it("rotates from a primary other than Alibaba Cloud", () => {
    const row = { ...(modelsData.models[0] as CatalogRow), id: "m", provider: "together", upstream_id: "t/m", aliases: [] };
    const m = createCatalog([row], {
      m: [{ provider: "huggingface", upstream_id: "h/m" }, { provider: "openrouter", upstream_id: "o/m" }, { provider: "fireworks", upstream_id: "f/m" }],
    }).resolve("m").model;
    const { set } = setOf(CHAIN);
    expect(set.routes(m).map((r) => [r.provider, r.upstreamId])).toEqual([
      ["together", "t/m"], ["openrouter", "o/m"], ["huggingface", "h/m"], ["fireworks", "f/m"],
    ]);
  });

  it("keeps only providers that are configured and serve the model, each under its own id", () => {
    const { set } = setOf(["openrouter", "together", "featherless"]);
    expect(set.routes(model("qwen-2.5-72b-instruct")).map((r) => [r.provider, r.upstreamId])).toEqual([
      ["together", routesData.routes["qwen-2.5-72b-instruct"].find((r) => r.provider === "together")!.upstream_id],
      ["openrouter", routesData.routes["qwen-2.5-72b-instruct"].find((r) => r.provider === "openrouter")!.upstream_id],
      ["featherless", routesData.routes["qwen-2.5-72b-instruct"].find((r) => r.provider === "featherless")!.upstream_id],
    ]);
    // Together is configured but does not serve qwen-plus.
    expect(order(set, "qwen-plus")).toEqual(["openrouter"]);
    expect(set.eligible(model("qwen-flash"))).toEqual([]);
  });

  it("follows FAILOVER_ORDER, rotated to the primary", () => {
    const { set } = setOf(CHAIN, { FAILOVER_ORDER: "openrouter,alibaba-cloud,together" });
    expect(order(set, "qwen-2.5-72b-instruct")).toEqual(["alibaba-cloud", "together", "openrouter"]);
  });

  it("follows a model's own order from MODEL_FAILOVER_ORDER", () => {
    const { set } = setOf(CHAIN, { MODEL_FAILOVER_ORDER: "qwen-plus=openrouter,alibaba-cloud" });
    expect(set.routes(model("qwen-plus")).map((r) => [r.provider, r.upstreamId])).toEqual([["openrouter", "qwen/qwen-plus"], ["alibaba-cloud", "qwen-plus"]]);
    expect(order(set, "qwen-max")).toEqual(["alibaba-cloud", "openrouter"]);
  });

  it("reports each loaded provider in a line at start, and those with no key in one info line", () => {
    const { lines } = setOf(["alibaba-cloud", "together"]);
    expect(lines.map((l) => l.replace(/^\S+ /, ""))).toEqual([
      "info  ✓ Loaded alibaba-cloud provider client",
      "info  ✓ Loaded together provider client",
      "info  Not configured (no API key): huggingface, featherless, vercel-ai-gateway, aihubmix, anannas, fireworks, google-vertex, openrouter",
    ]);
  });

  it("warns about a provider given a wrong region, with or without a key, and when no provider is usable", () => {
    const envs: Record<string, string>[] = [{ ALIBABA_CLOUD_API_KEY: "sk-1", ALIBABA_CLOUD_REGION: "mars" }, { ALIBABA_CLOUD_REGION: "Mars" }];
    for (const env of envs) {
      const c = config(env);
      const lines: string[] = [];
      sets.push(createProviderSet(c.providers, c.failover, createLogger("debug", (l) => lines.push(l))));
      expect(lines.map((l) => l.replace(/^\S+ /, ""))).toEqual([
        "warn  ⚠ Failed to load alibaba-cloud provider client: ALIBABA_CLOUD_REGION must be one of singapore, beijing, got mars; its models go to other providers or answer 503",
        "info  Not configured (no API key): huggingface, featherless, vercel-ai-gateway, aihubmix, anannas, fireworks, together, google-vertex, openrouter",
        "warn  ⚠ No provider is usable: chat requests answer 503 provider_not_configured until one has a key (DashScope: ALIBABA_CLOUD_API_KEY)",
      ]);
    }
  });

  it("does not load a provider whose configuration has a problem, even with a key", () => {
    const c = config({ GOOGLE_VERTEX_ACCESS_TOKEN: "ya29.t" });
    expect(c.providers.find((p) => p.row.id === "google-vertex")!.problem).toBe("GOOGLE_VERTEX_PROJECT is not set");
    const lines: string[] = [];
    const set = createProviderSet(c.providers, c.failover, createLogger("debug", (l) => lines.push(l)));
    sets.push(set);
    expect(set.eligible(model("qwen-3-80b-a3b-instruct")).map((r) => r.provider)).not.toContain("google-vertex");
    expect(lines.some((l) => / warn +⚠ Failed to load google-vertex provider client: GOOGLE_VERTEX_PROJECT is not set;/.test(l))).toBe(true);
  });

  it("says exactly 'Alibaba Cloud API key not configured' for a model only Alibaba Cloud serves", () => {
    const { set } = setOf(["openrouter"]);
    const err = thrown(() => set.routes(model("qwen-flash")));
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ kind: "provider_not_configured", rawMessage: "Alibaba Cloud API key not configured" });
  });

  it("names the key variables to set when a model has alternatives and none is configured", () => {
    const { set } = setOf([]);
    expect(() => set.routes(model("qwen-plus"))).toThrow(
      "Alibaba Cloud API key not configured, nor any other provider of 'qwen-plus' (set one of ALIBABA_CLOUD_API_KEY, OPENROUTER_API_KEY)");
    const err = thrown(() => set.routes(model("qwen-3-80b-a3b-instruct"))) as GatewayError;
    expect(err).toBeInstanceOf(GatewayError);
    expect(err.kind).toBe("provider_not_configured");
    for (const id of ["alibaba-cloud", "huggingface", "vercel-ai-gateway", "together", "google-vertex", "openrouter"]) {
      expect(err.rawMessage).toContain(KEY_VARS[id]!);
    }
  });
});
