// A request the gateway itself cannot send (the SDK fails to serialise its
// body before any byte leaves the process) is the gateway's failure, not the
// provider's: `internal`, never retried elsewhere, and charged to no
// provider's circuit, so no client can switch a provider off for everyone by
// sending such requests. Real routes (a ProviderSet over fake upstreams on
// 127.0.0.1), real breakers and the real failover loop; the bodies are ones
// JSON.stringify throws on, as it does on one nested ~5000 levels deep.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createBreakers, type Breakers } from "../../src/core/circuit-breaker.js";
import { createCatalog, type CatalogModel, type CatalogRow, type RouteRows } from "../../src/core/catalog.js";
import { withFailover, type FailoverDeps } from "../../src/core/failover.js";
import modelsData from "../../src/data/models.json" with { type: "json" };
import routesData from "../../src/data/routes.json" with { type: "json" };
import { GatewayError } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";
import { createProviderSet, type ProviderSet, type Route } from "../../src/providers/provider-set.js";
import { startFakeUpstream, type FakeUpstream } from "../support/fake-upstream.js";
import { providerEnv } from "../support/gateway.js";

const BREAKER_FAILURES = 5;
const MODEL = "qwen-2.5-72b-instruct";

let fakes: Record<string, FakeUpstream>;
let providers: ProviderSet;
let model: CatalogModel;
const lines: string[] = [];
const log = createLogger("debug", (l) => lines.push(l));

beforeAll(async () => {
  fakes = { "alibaba-cloud": await startFakeUpstream(), together: await startFakeUpstream() };
  const env: Record<string, string> = { ENV_FILE: "/nonexistent/.env" };
  for (const [id, fake] of Object.entries(fakes)) Object.assign(env, providerEnv(id, fake.baseUrl, fake.apiKey));
  const config = loadConfig(env);
  providers = createProviderSet(config.providers, config.failover, log);
  model = createCatalog(modelsData.models as CatalogRow[], routesData.routes as RouteRows).resolve(MODEL).model;
});
afterAll(async () => {
  await providers?.close();
  await Promise.all(Object.values(fakes ?? {}).map((f) => f.close()));
});
beforeEach(() => {
  for (const f of Object.values(fakes)) f.reset();
});

const messages = [{ role: "user", content: "hi" }];
/** Bodies the SDK's JSON.stringify throws on: a circular one (TypeError) and one holding a BigInt (TypeError). */
function unsendable(kind: "circular" | "bigint"): Record<string, unknown> {
  if (kind === "bigint") return { messages, seed: 10n };
  const body: Record<string, unknown> = { messages };
  body.self = body;
  return body;
}

function deps(breakers: Breakers): FailoverDeps {
  return { breakers, budgetMs: 5_000, retryAfterCapMs: 0, log };
}

type Call = "complete" | "stream";
/** One attempt as the gateway makes it: the route's client, its upstream id, this body. */
async function send(call: Call, route: Route, body: Record<string, unknown>, signal: AbortSignal): Promise<string> {
  const params = { ...body, model: route.upstreamId } as never;
  if (call === "complete") return (await route.client.complete(params, signal)).choices[0]!.message.content ?? "";
  let text = "";
  for await (const chunk of route.client.stream({ ...(params as object), stream: true } as never, signal)) text += chunk.choices[0]?.delta?.content ?? "";
  return text;
}

const received = () => Object.values(fakes).reduce((n, f) => n + f.requests.length, 0);

describe("a body the SDK cannot serialise", () => {
  it.each([["complete", "circular"], ["complete", "bigint"], ["stream", "circular"], ["stream", "bigint"]] as const)(
    "%s with a %s body: internal, not retryable, and nothing reached the upstream", async (call, kind) => {
      const route = providers.routes(model)[0]!;
      const err = await send(call, route, unsendable(kind), new AbortController().signal).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayError);
      expect(err).toMatchObject({ kind: "internal", retryable: false, upstreamStatus: undefined, rawMessage: "internal error" });
      expect((err as GatewayError).cause).toBeInstanceOf(TypeError); // kept, for the log
      expect(received()).toBe(0);
    });

  it(`is charged to no provider: after ${BREAKER_FAILURES * 4} such requests every circuit is closed, and a normal request succeeds`, async () => {
    const breakers = createBreakers(BREAKER_FAILURES, 30_000, log);
    const routes = providers.routes(model);
    expect(routes.map((r) => r.provider)).toEqual(["alibaba-cloud", "together"]);
    const tried: string[] = [];
    for (let i = 0; i < BREAKER_FAILURES * 4; i++) {
      const call: Call = i % 2 ? "stream" : "complete";
      const err = await withFailover(routes, new AbortController().signal, deps(breakers), (route, signal) => {
        tried.push(route.provider);
        return send(call, route, unsendable(i % 4 < 2 ? "circular" : "bigint"), signal);
      }).then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ kind: "internal", retryable: false });
    }
    // Never failed over: the next provider could not have sent it either.
    expect(new Set(tried)).toEqual(new Set(["alibaba-cloud"]));
    expect(received()).toBe(0);
    for (const r of routes) expect(breakers.state(r.provider)).toBe("closed");
    expect(lines.some((l) => /circuit for .* opened/.test(l))).toBe(false);

    const won = await withFailover(routes, new AbortController().signal, deps(breakers), (route, signal) => send("complete", route, { messages }, signal));
    expect(won).toMatchObject({ value: "Hello from qwen2.5-72b-instruct", attempts: 1 });
    expect(won.route.provider).toBe("alibaba-cloud");
    expect(fakes["alibaba-cloud"]!.requests).toHaveLength(1);
  });
});

describe("while what the upstream sends stays the upstream's failure", () => {
  const SSE = { "content-type": "text/event-stream" };
  it.each([
    ["a stream event that is not a chunk (data: null)", "stream", "data: null\n\ndata: [DONE]\n\n", SSE],
    ["a chunk whose choices are not objects", "stream", 'data: {"id":"x","choices":[null]}\n\ndata: [DONE]\n\n', SSE],
    ["a chunk whose tool calls are not a list", "stream", 'data: {"id":"x","choices":[{"index":0,"delta":{"tool_calls":{"0":1}}}]}\n\ndata: [DONE]\n\n', SSE],
    ["a completion whose choices are not objects", "complete", '{"id":"x","object":"chat.completion","choices":[7]}', { "content-type": "application/json" }],
  ] as const)("%s: retryable, so the next provider answers, and the circuit counts it", async (_, call, body, headers) => {
    fakes["alibaba-cloud"]!.enqueue({ kind: "raw", status: 200, body, headers });
    const breakers = createBreakers(1, 30_000, log);
    const won = await withFailover(providers.routes(model), new AbortController().signal, deps(breakers), (route, signal) => send(call, route, { messages }, signal));
    expect(won.route.provider).toBe("together");
    expect(won.attempts).toBe(2);
    expect(breakers.state("alibaba-cloud")).toBe("open");
  });
});
