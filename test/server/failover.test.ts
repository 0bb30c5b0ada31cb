// Failover end to end: a real gateway whose providers are fake upstreams on
// 127.0.0.1 (one per provider row), driven by real clients: the `openai`
// package, raw fetch where the SSE wire matters, and @grpc/grpc-js for the RPC
// stream rules. Most tests use qwen-2.5-72b-instruct, served by alibaba-cloud
// (its primary) and five more providers, so its failover order starting from
// the primary is alibaba-cloud, fireworks, together, openrouter, huggingface,
// featherless.

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import OpenAI from "openai";
import type { ChatCompletionChunk } from "openai/resources/chat/completions";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import routesData from "../../src/data/routes.json" with { type: "json" };
import { partialChunk, type Behaviour } from "../support/fake-upstream.js";
import { startTestGateway, type TestGateway, type TestGatewayOptions } from "../support/gateway.js";
import { startSilentListener } from "../support/unreachable.js";

const MODEL = "qwen-2.5-72b-instruct";
const USER = [{ role: "user" as const, content: "hi" }];
/** The upstream id each provider has for MODEL, from the routes data. */
const MODEL_IDS: Record<string, string> = {
  "alibaba-cloud": "qwen2.5-72b-instruct",
  ...Object.fromEntries(routesData.routes[MODEL].map((r) => [r.provider, r.upstream_id])),
};
/** The fake's answer: "Hello from <the model id it was asked for>". */
const helloFrom = (provider: string) => `Hello from ${MODEL_IDS[provider]}`;

// ---- gateways: one per test unless a describe shares one; all closed after each test

const started: TestGateway[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((g) => g.close()));
});

/** A gateway with alibaba-cloud's fake plus fakes for `providers` (Together alone by default). */
async function gateway(env: Record<string, string | undefined> = {}, options: TestGatewayOptions = { providers: ["together"] }): Promise<TestGateway> {
  const gw = await startTestGateway(env, options);
  started.push(gw);
  return gw;
}

function client(gw: TestGateway): OpenAI {
  return new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 10_000 });
}

interface Answer { content: string; provider: string | null; attempts: string | null; ms: number }

/** One non-streaming chat through the openai SDK. */
async function ask(gw: TestGateway, model = MODEL, extra: Record<string, unknown> = {}): Promise<Answer> {
  const t0 = Date.now();
  const { data, response } = await client(gw).chat.completions.create({ model, messages: USER, ...extra }).withResponse();
  return { content: data.choices[0]?.message.content ?? "", ...served(response.headers), ms: Date.now() - t0 };
}

/** One streaming chat through the openai SDK, read to its end. */
async function askStreaming(gw: TestGateway, model = MODEL): Promise<Answer> {
  const t0 = Date.now();
  const { data, response } = await client(gw).chat.completions.create({ model, messages: USER, stream: true }).withResponse();
  let content = "";
  for await (const chunk of data) content += chunk.choices[0]?.delta.content ?? "";
  return { content, ...served(response.headers), ms: Date.now() - t0 };
}

function served(headers: Headers) {
  return { provider: headers.get("x-gatewayz-provider"), attempts: headers.get("x-gatewayz-attempts") };
}

/** The OpenAI error a non-streaming chat ends with (fails the test if it succeeds). */
async function askError(gw: TestGateway, model = MODEL): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await client(gw).chat.completions.create({ model, messages: USER });
  } catch (err) {
    expect(err).toBeInstanceOf(OpenAI.APIError);
    return err as InstanceType<typeof OpenAI.APIError>;
  }
  throw new Error("the chat succeeded; expected an error");
}

/** POST /v1/chat/completions as raw JSON, to see the SSE bytes the SDK would hide. */
function rawChat(gw: TestGateway, body: Record<string, unknown>, signal?: AbortSignal): Promise<Response> {
  return fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: gw.authorization },
    body: JSON.stringify({ model: MODEL, messages: USER, ...body }),
    signal,
  });
}

/** The `data:` payloads of an SSE body, in order. */
function sseData(text: string): string[] {
  return text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice("data: ".length));
}

interface UsageRow { provider: string | null; attempts: number; status: string; error_kind: string | null }

/** The newest usage row. Rows are group-committed at the end of the event-loop turn, so give them a moment. */
async function lastUsage(gw: TestGateway): Promise<UsageRow | undefined> {
  await new Promise((r) => setTimeout(r, 20));
  return gw.app.db.prepare("SELECT provider, attempts, status, error_kind FROM usage ORDER BY id DESC LIMIT 1").get() as UsageRow | undefined;
}

/** Provider ids in the order their fakes received requests (one shared counter across fakes). */
function callOrder(gw: TestGateway): string[] {
  return Object.entries(gw.fakes)
    .flatMap(([provider, fake]) => fake.requests.map((r) => ({ provider, seq: r.seq })))
    .sort((a, b) => a.seq - b.seq)
    .map((r) => r.provider);
}

function counts(gw: TestGateway): Record<string, number> {
  return Object.fromEntries(Object.entries(gw.fakes).map(([p, f]) => [p, f.requests.length]));
}

/** `provider`'s circuit state for MODEL on GET /v1/models/{id}, and on /healthz. */
async function stateOf(gw: TestGateway, provider: string): Promise<{ models: string | undefined; healthz: string }> {
  const model = await (await fetch(`${gw.url}/v1/models/${MODEL}`, { headers: { authorization: gw.authorization } })).json() as {
    providers: Array<{ provider: string; state: string }>;
  };
  const health = await (await fetch(`${gw.url}/healthz`)).json() as { providers: Record<string, string> };
  return { models: model.providers.find((p) => p.provider === provider)?.state, healthz: health.providers[provider]! };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` stops throwing (for what the gateway records after the client is gone). */
async function eventually(check: () => unknown, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return void (await check());
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(20);
    }
  }
}

async function expectServedBySecond(gw: TestGateway, answer: Answer, first = "alibaba-cloud", second = "together"): Promise<void> {
  expect(answer.content).toBe(helloFrom(second));
  expect(answer.provider).toBe(second);
  expect(answer.attempts).toBe("2");
  expect(callOrder(gw)).toEqual([first, second]);
  expect(await lastUsage(gw)).toMatchObject({ provider: second, attempts: 2, status: "ok" });
}

// ---- gRPC

const LOADER_OPTIONS: protoLoader.Options = { includeDirs: ["proto"], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const gatewayPkg = grpc.loadPackageDefinition(protoLoader.loadSync("gatewayz/v1/gateway.proto", LOADER_OPTIONS));
type ClientCtor = new (address: string, credentials: grpc.ChannelCredentials) => grpc.Client;
const GatewayServiceClient = ((gatewayPkg.gatewayz as grpc.GrpcObject).v1 as grpc.GrpcObject).GatewayService as unknown as ClientCtor;

interface GrpcChatResponse {
  event: "delta" | "done";
  delta: { content: string } | null;
  done: { provider: string; attempts: number; finish_reason: string } | null;
}
interface GrpcModel { id: string; providers: Array<{ provider: string; upstream_id: string; state: string }> }
interface GatewayClient extends grpc.Client {
  chat(req: object, metadata: grpc.Metadata): grpc.ClientReadableStream<GrpcChatResponse>;
  listModels(req: object, metadata: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: { models: GrpcModel[] }) => void): grpc.ClientUnaryCall;
}

function grpcClient(gw: TestGateway): GatewayClient {
  return new GatewayServiceClient(new URL(gw.url).host, grpc.credentials.createInsecure()) as GatewayClient;
}

function metadata(gw: TestGateway): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", gw.authorization);
  return md;
}

interface GrpcChat { deltas: string[]; done: GrpcChatResponse["done"] | undefined; status: grpc.StatusObject; headers: grpc.Metadata | undefined }

function grpcChat(gw: TestGateway, model = MODEL): Promise<GrpcChat> {
  const c = grpcClient(gw);
  return new Promise((resolve) => {
    const call = c.chat({ model, messages: [{ role: "user", content: "hi" }] }, metadata(gw));
    const messages: GrpcChatResponse[] = [];
    let headers: grpc.Metadata | undefined;
    call.on("metadata", (md: grpc.Metadata) => (headers = md));
    call.on("data", (m: GrpcChatResponse) => messages.push(m));
    call.on("error", () => {});
    call.on("status", (status: grpc.StatusObject) => setImmediate(() => {
      c.close();
      resolve({
        deltas: messages.filter((m) => m.event === "delta").map((m) => m.delta!.content),
        done: messages.find((m) => m.event === "done")?.done ?? undefined,
        status,
        headers,
      });
    }));
  });
}

function grpcListModels(gw: TestGateway): Promise<GrpcModel[]> {
  const c = grpcClient(gw);
  return new Promise((resolve, reject) => {
    c.listModels({}, metadata(gw), (err, res) => {
      c.close();
      if (err) reject(err);
      else resolve(res!.models);
    });
  });
}

// ---- the tests

describe("failover triggers: the first provider fails, the next one answers", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // <P>_TIMEOUT_MS sets both the first-byte and the idle timeout.
    gw = await startTestGateway({ ALIBABA_CLOUD_TIMEOUT_MS: "250" }, { providers: ["together"] });
  });
  afterAll(() => gw?.close());
  beforeEach(() => {
    for (const f of Object.values(gw.fakes)) f.reset();
  });

  const viaStatus: Array<[string, Behaviour]> = [
    ["an upstream 502", { kind: "error", status: 502 }],
    ["an upstream 503", { kind: "error", status: 503 }],
    ["an upstream 504", { kind: "error", status: 504 }],
    ["an upstream 500", { kind: "error", status: 500 }],
    ["an upstream 429", { kind: "error", status: 429, type: "rate_limit_error" }],
    ["a 401 for the gateway's own provider key", { kind: "error", status: 401, code: "invalid_api_key", message: "Incorrect API key provided." }],
    ["a 403 for the gateway's own provider key", { kind: "error", status: 403, message: "Access denied." }],
    ["a hang before the response headers, past the first-byte timeout", { kind: "hang" }],
    ["a reset before the response headers", { kind: "reset" }],
  ];
  it.each(viaStatus)("%s", async (_, behaviour) => {
    gw.fake.enqueue(behaviour);
    await expectServedBySecond(gw, await ask(gw));
  });

  const beforeFirstChunk: Array<[string, Behaviour]> = [
    ["a stream that stalls after its headers, before its first chunk (idle timeout)", { kind: "stream-then-hang", chunks: 0, role: false }],
    ["a stream reset after its headers, before its first chunk", { kind: "stream-then-reset", chunks: 0, role: false }],
    ["a stream whose first event is malformed", { kind: "malformed", chunks: 0, role: false }],
    ["a stream whose first event is an error", { kind: "stream-then-error", chunks: 0, role: false }],
  ];
  it.each(beforeFirstChunk)("%s (streaming client)", async (_, behaviour) => {
    gw.fake.enqueue(behaviour);
    await expectServedBySecond(gw, await askStreaming(gw));
  });

  it("connection refused", async () => {
    const gw = await gateway({}, { providers: ["together"], refused: ["alibaba-cloud"] });
    const answer = await ask(gw);
    expect(answer).toMatchObject({ provider: "together", attempts: "2", content: helloFrom("together") });
    expect(gw.fake.requests).toHaveLength(0);
    expect(await lastUsage(gw)).toMatchObject({ provider: "together", attempts: 2, status: "ok" });
    expect(gw.logs.join("\n")).toMatch(/attempt 1 on alibaba-cloud failed: .*could not reach Alibaba Cloud: ECONNREFUSED/);
  });

  it("a DNS failure, quickly", async () => {
    const gw = await gateway({}, { providers: ["together"], unresolvable: ["alibaba-cloud"] });
    const answer = await ask(gw);
    expect(answer).toMatchObject({ provider: "together", attempts: "2", content: helloFrom("together") });
    expect(answer.ms).toBeLessThan(2000);
    expect(gw.fake.requests).toHaveLength(0);
    expect(await lastUsage(gw)).toMatchObject({ provider: "together", attempts: 2, status: "ok" });
    expect(gw.logs.join("\n")).toMatch(/attempt 1 on alibaba-cloud failed: .*could not reach Alibaba Cloud: (ENOTFOUND|EAI_AGAIN)/);
  });
});

describe("non-triggers: the client's own errors reach it as they are, from one provider", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({}, { providers: ["together"] });
  });
  afterAll(() => gw?.close());
  beforeEach(() => {
    for (const f of Object.values(gw.fakes)) f.reset();
  });

  async function expectOneAttempt(g: TestGateway): Promise<void> {
    expect(counts(g)).toEqual({ "alibaba-cloud": 1, together: 0 });
    expect(await lastUsage(g)).toMatchObject({ provider: "alibaba-cloud", attempts: 1, status: "error" });
  }

  it("400, with the upstream's message", async () => {
    gw.fake.enqueue({ kind: "error", status: 400, message: "Range of max_tokens should be [1, 8192]", code: "invalid_parameter_error" });
    const err = await askError(gw);
    expect(err.status).toBe(400);
    expect(err.message).toContain("Range of max_tokens should be [1, 8192]");
    await expectOneAttempt(gw);
  });

  it("404", async () => {
    gw.fake.enqueue({ kind: "error", status: 404, message: "The model does not exist.", code: "model_not_found" });
    const err = await askError(gw);
    expect(err.status).toBe(404);
    expect(err.message).toContain("The model does not exist.");
    await expectOneAttempt(gw);
  });

  it("413", async () => {
    gw.fake.enqueue({ kind: "error", status: 413, message: "Request entity too large" });
    const err = await askError(gw);
    expect(err.status).toBe(413);
    await expectOneAttempt(gw);
  });

  it("a content-filter 400 (DashScope's data_inspection_failed)", async () => {
    gw.fake.enqueue({
      kind: "error", status: 400, type: "data_inspection_failed", code: "data_inspection_failed",
      message: "Input data may contain inappropriate content.",
    });
    const err = await askError(gw);
    expect(err.status).toBe(400);
    expect(err.message).toContain("Input data may contain inappropriate content.");
    await expectOneAttempt(gw);
  });

  it("429 when FAILOVER_ON_429=false", async () => {
    const g = await gateway({ FAILOVER_ON_429: "false" });
    g.fake.enqueue({ kind: "error", status: 429, type: "rate_limit_error" });
    const err = await askError(g);
    expect(err.status).toBe(429);
    expect(err.message).toContain("429");
    await expectOneAttempt(g);
  });

  it("500 when FAILOVER_ON_500=false (a 502 from the gateway, naming the upstream's 500)", async () => {
    const g = await gateway({ FAILOVER_ON_500: "false" });
    g.fake.enqueue({ kind: "error", status: 500 });
    const err = await askError(g);
    expect(err.status).toBe(502);
    expect(err.message).toContain("(500)");
    await expectOneAttempt(g);
  });
});

describe("failover order", () => {
  const CHAIN = ["fireworks", "together", "openrouter", "huggingface", "featherless", "google-vertex"];

  it("is the priority list rotated to start at the model's primary, over the providers that serve it", async () => {
    const gw = await gateway({}, { providers: CHAIN });
    for (const p of ["alibaba-cloud", "fireworks", "together", "openrouter", "huggingface"]) gw.fakes[p]!.enqueue({ kind: "error", status: 503 });
    const answer = await ask(gw);
    expect(callOrder(gw)).toEqual(["alibaba-cloud", "fireworks", "together", "openrouter", "huggingface", "featherless"]);
    expect(answer).toMatchObject({ provider: "featherless", attempts: "6", content: helloFrom("featherless") });
    // google-vertex is configured but does not serve the model.
    expect(gw.fakes["google-vertex"]!.requests).toHaveLength(0);
    // Each provider was asked for the model under its own id.
    for (const [p, fake] of Object.entries(gw.fakes)) for (const r of fake.requests) expect(r.body.model, p).toBe(MODEL_IDS[p]);
    expect(await lastUsage(gw)).toMatchObject({ provider: "featherless", attempts: 6, status: "ok" });
  });

  it("follows FAILOVER_ORDER, still rotated to the primary, and leaves out providers it does not list", async () => {
    const gw = await gateway({ FAILOVER_ORDER: "openrouter,together,alibaba-cloud,huggingface" }, { providers: ["fireworks", "together", "openrouter", "huggingface"] });
    for (const p of ["alibaba-cloud", "huggingface", "openrouter"]) gw.fakes[p]!.enqueue({ kind: "error", status: 503 });
    const answer = await ask(gw);
    expect(callOrder(gw)).toEqual(["alibaba-cloud", "huggingface", "openrouter", "together"]);
    expect(answer).toMatchObject({ provider: "together", attempts: "4" });
  });

  it("follows MODEL_FAILOVER_ORDER for the models it names, and only those", async () => {
    const gw = await gateway(
      { MODEL_FAILOVER_ORDER: `${MODEL}=openrouter,together; qwen-plus=openrouter,alibaba-cloud` },
      { providers: ["together", "openrouter", "fireworks"] },
    );
    gw.fakes.openrouter!.enqueue({ kind: "error", status: 503 });
    expect(await ask(gw)).toMatchObject({ provider: "together", attempts: "2" });
    expect(callOrder(gw)).toEqual(["openrouter", "together"]);

    for (const f of Object.values(gw.fakes)) f.reset();
    expect(await ask(gw, "qwen-plus")).toMatchObject({ provider: "openrouter", attempts: "1", content: "Hello from qwen/qwen-plus" });
    expect(callOrder(gw)).toEqual(["openrouter"]);

    // A model it does not name keeps the rotated priority list.
    for (const f of Object.values(gw.fakes)) f.reset();
    gw.fake.enqueue({ kind: "error", status: 503 });
    expect(await ask(gw, "qwen-3-30b-a3b-instruct")).toMatchObject({ provider: "fireworks", attempts: "2" });
    expect(callOrder(gw)).toEqual(["alibaba-cloud", "fireworks"]);
  });

  it("skips a provider that has no key", async () => {
    const gw = await gateway({ FIREWORKS_API_KEY: undefined }, { providers: ["fireworks", "together"] });
    gw.fake.enqueue({ kind: "error", status: 503 });
    await expectServedBySecond(gw, await ask(gw));
    expect(gw.fakes.fireworks!.requests).toHaveLength(0);
    expect((await stateOf(gw, "fireworks")).healthz).toBe("not_configured");
    const listed = await (await fetch(`${gw.url}/v1/models/${MODEL}`, { headers: { authorization: gw.authorization } })).json() as {
      providers: Array<{ provider: string; upstream_id: string }>;
    };
    expect(listed.providers.map((p) => [p.provider, p.upstream_id])).toEqual([
      ["alibaba-cloud", MODEL_IDS["alibaba-cloud"]], ["together", MODEL_IDS.together],
    ]);
  });

  it("never calls a configured provider that does not serve the model", async () => {
    const gw = await gateway({}, { providers: ["fireworks", "together", "openrouter"] });
    gw.fake.enqueue({ kind: "error", status: 503 });
    expect(await ask(gw, "qwen-plus")).toMatchObject({ provider: "openrouter", attempts: "2" });
    expect(counts(gw)).toEqual({ "alibaba-cloud": 1, fireworks: 0, together: 0, openrouter: 1 });
  });
});

describe("Retry-After", () => {
  it("a 429 asking for 0.2 s is retried once on the same provider, under the cap", async () => {
    const gw = await gateway({ FAILOVER_RETRY_AFTER_MAX_MS: "1000" });
    gw.fake.enqueue({ kind: "error", status: 429, headers: { "retry-after": "0.2" } });
    const answer = await ask(gw);
    expect(answer).toMatchObject({ provider: "alibaba-cloud", attempts: "2", content: helloFrom("alibaba-cloud") });
    expect(answer.ms).toBeGreaterThanOrEqual(190);
    expect(counts(gw)).toEqual({ "alibaba-cloud": 2, together: 0 });
    expect(await lastUsage(gw)).toMatchObject({ provider: "alibaba-cloud", attempts: 2, status: "ok" });
  });

  it("a retry-after over the cap moves on to the next provider at once", async () => {
    const gw = await gateway({ FAILOVER_RETRY_AFTER_MAX_MS: "1000" });
    gw.fake.enqueue({ kind: "error", status: 429, headers: { "retry-after": "5" } });
    const answer = await ask(gw);
    await expectServedBySecond(gw, answer);
    expect(answer.ms).toBeLessThan(1000);
  });
});

describe("circuit breaker", () => {
  const BREAKER = { BREAKER_FAILURES: "2", BREAKER_COOLDOWN_MS: "400" };

  /** Two failed attempts on alibaba-cloud, each request served by together: the circuit opens. */
  async function openCircuit(gw: TestGateway): Promise<void> {
    gw.fake.enqueue({ kind: "error", status: 503 }, { kind: "error", status: 503 });
    expect(await ask(gw)).toMatchObject({ provider: "together", attempts: "2" });
    expect((await stateOf(gw, "alibaba-cloud")).healthz).toBe("ok"); // one failure is not enough
    expect(await ask(gw)).toMatchObject({ provider: "together", attempts: "2" });
  }

  it("opens after BREAKER_FAILURES failures: the provider is skipped, and shows as open", async () => {
    const gw = await gateway(BREAKER);
    await openCircuit(gw);
    expect(gw.logs.some((l) => /circuit for alibaba-cloud opened after 2 consecutive failures/.test(l))).toBe(true);

    const skipped = await ask(gw);
    expect(skipped).toMatchObject({ provider: "together", attempts: "1" });
    expect(counts(gw)).toEqual({ "alibaba-cloud": 2, together: 3 });
    expect(await stateOf(gw, "alibaba-cloud")).toEqual({ models: "open", healthz: "cooling_down" });
    expect(await stateOf(gw, "together")).toEqual({ models: "closed", healthz: "ok" });
    const model = (await grpcListModels(gw)).find((m) => m.id === MODEL)!;
    expect(model.providers.find((p) => p.provider === "alibaba-cloud")?.state).toBe("open");
  });

  it("after the cool-down, one request probes it (half-open), and success closes it", async () => {
    const gw = await gateway(BREAKER);
    await openCircuit(gw);
    await sleep(450);
    expect(await stateOf(gw, "alibaba-cloud")).toEqual({ models: "half_open", healthz: "probing" });
    const probe = await ask(gw);
    expect(probe).toMatchObject({ provider: "alibaba-cloud", attempts: "1", content: helloFrom("alibaba-cloud") });
    expect(counts(gw)).toEqual({ "alibaba-cloud": 3, together: 2 });
    expect(await stateOf(gw, "alibaba-cloud")).toEqual({ models: "closed", healthz: "ok" });
    const log = gw.logs.join("\n");
    expect(log).toMatch(/circuit for alibaba-cloud is half-open: probing it with one request/);
    expect(log).toMatch(/circuit for alibaba-cloud closed: it answered again/);
  });

  it("a failed probe opens it again at once", async () => {
    const gw = await gateway(BREAKER);
    await openCircuit(gw);
    await sleep(450);
    gw.fake.enqueue({ kind: "error", status: 503 });
    expect(await ask(gw)).toMatchObject({ provider: "together", attempts: "2" });
    expect(gw.logs.join("\n")).toMatch(/circuit for alibaba-cloud opened again: the probe failed/);
    expect(await stateOf(gw, "alibaba-cloud")).toEqual({ models: "open", healthz: "cooling_down" });
    expect(await ask(gw)).toMatchObject({ provider: "together", attempts: "1" });
    expect(gw.fake.requests).toHaveLength(3);
  });

  it("with every provider's circuit open, answers 503 at once without calling any", async () => {
    const gw = await gateway({ BREAKER_FAILURES: "1", BREAKER_COOLDOWN_MS: "10000" });
    gw.fake.enqueue({ kind: "error", status: 503 });
    gw.fakes.together!.enqueue({ kind: "error", status: 502 });
    expect((await askError(gw)).status).toBe(503);
    const err = await askError(gw);
    expect(err.status).toBe(503);
    expect(err.message).toMatch(/cooling down/);
    expect(err.message).toContain("alibaba-cloud");
    expect(err.message).toContain("together");
    expect(counts(gw)).toEqual({ "alibaba-cloud": 1, together: 1 });
  });
});

describe("timeouts, per phase", () => {
  it("first byte: a provider that sends no headers in time is left for the next", async () => {
    const gw = await gateway({ ALIBABA_CLOUD_FIRST_BYTE_TIMEOUT_MS: "200" });
    gw.fake.enqueue({ kind: "hang" });
    const answer = await ask(gw);
    await expectServedBySecond(gw, answer);
    expect(answer.ms).toBeGreaterThanOrEqual(190);
    expect(answer.ms).toBeLessThan(1500);
    expect(gw.logs.join("\n")).toMatch(/Alibaba Cloud did not answer within 200 ms/);
    await gw.fake.waitForAbort();
  });

  it("idle, before the first chunk: failover", async () => {
    const gw = await gateway({ ALIBABA_CLOUD_IDLE_TIMEOUT_MS: "200" });
    gw.fake.enqueue({ kind: "stream-then-hang", chunks: 0, role: false });
    const answer = await askStreaming(gw);
    await expectServedBySecond(gw, answer);
    expect(gw.logs.join("\n")).toMatch(/Alibaba Cloud sent nothing for 200 ms/);
  });

  it("idle, after chunks reached a streaming client: an SSE error event and no [DONE]", async () => {
    const gw = await gateway({ ALIBABA_CLOUD_IDLE_TIMEOUT_MS: "200" });
    gw.fake.enqueue({ kind: "stream-then-hang", chunks: 2 });
    const t0 = Date.now();
    const res = await rawChat(gw, { stream: true });
    expect(res.headers.get("x-gatewayz-provider")).toBe("alibaba-cloud");
    const events = sseData(await res.text());
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(events).not.toContain("[DONE]");
    const content = events.slice(0, -1).map((e) => (JSON.parse(e) as ChatCompletionChunk).choices[0]?.delta.content ?? "").join("");
    expect(content).toBe(partialChunk(0) + partialChunk(1));
    expect(JSON.parse(events.at(-1)!)).toMatchObject({ error: { message: expect.stringContaining("sent nothing for 200 ms") } });
    expect(counts(gw)).toEqual({ "alibaba-cloud": 1, together: 0 });
    await gw.fake.waitForAbort();
    expect(await lastUsage(gw)).toMatchObject({ provider: "alibaba-cloud", attempts: 1, status: "error", error_kind: "upstream_timeout" });
  });

  it("total, before the first byte: failover", async () => {
    const gw = await gateway({ ALIBABA_CLOUD_TOTAL_TIMEOUT_MS: "300" });
    gw.fake.enqueue({ kind: "reply", firstByteDelayMs: 3000 });
    const answer = await ask(gw);
    await expectServedBySecond(gw, answer);
    expect(answer.ms).toBeLessThan(1500);
    expect(gw.logs.join("\n")).toMatch(/Alibaba Cloud took longer than 300 ms/);
  });

  it("total, mid-stream: a steady but slow stream is cut with an error event and no [DONE]", async () => {
    const gw = await gateway({ ALIBABA_CLOUD_TOTAL_TIMEOUT_MS: "300" });
    const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(" ");
    gw.fake.enqueue({ kind: "reply", content: words, chunkDelayMs: 30 });
    const t0 = Date.now();
    const res = await rawChat(gw, { stream: true });
    const events = sseData(await res.text());
    expect(Date.now() - t0).toBeLessThan(1000); // the whole answer would take over 1.2 s
    expect(events).not.toContain("[DONE]");
    expect(events.length).toBeGreaterThan(2);
    expect(JSON.parse(events.at(-1)!)).toMatchObject({ error: { message: expect.stringContaining("took longer than 300 ms") } });
    expect(counts(gw)).toEqual({ "alibaba-cloud": 1, together: 0 });
  });

  it("connect: a provider whose TCP handshake never completes is left for the next", async () => {
    // The SYN goes to a listener whose accept queue is full, so it is dropped
    // and only the connect timeout ends the wait. undici times connects with
    // its coarse "fast timers" (ticks of about 0.5 s), so a 100 ms connect
    // timeout fires after about 1 s here; the first-byte timeout is 30 s, so
    // nothing else can end it that soon.
    const silent = await startSilentListener();
    try {
      const gw = await gateway({ ALIBABA_CLOUD_BASE_URL: silent.baseUrl, ALIBABA_CLOUD_CONNECT_TIMEOUT_MS: "100" });
      const answer = await ask(gw);
      expect(answer).toMatchObject({ provider: "together", attempts: "2", content: helloFrom("together") });
      expect(answer.ms).toBeLessThan(2500);
      expect(gw.fake.requests).toHaveLength(0);
      // The log must say it was the connect phase, not the first byte (30 s, which never ran out).
      const failure = gw.logs.find((l) => l.includes("attempt 1 on alibaba-cloud failed"));
      expect(failure).toMatch(/upstream_timeout: .*(UND_ERR_CONNECT_TIMEOUT|connect)/i);
      expect(failure).not.toContain("30000 ms");
    } finally {
      await silent.close();
    }
  });
});

describe("the failover budget", () => {
  it("bounds the whole search: every provider hanging gives a 504 within about a second, naming those tried", async () => {
    const gw = await gateway(
      { FAILOVER_TIMEOUT_MS: "500", PROVIDER_FIRST_BYTE_TIMEOUT_MS: "200" },
      { providers: ["fireworks", "together", "openrouter", "huggingface"] },
    );
    for (const f of Object.values(gw.fakes)) f.enqueue({ kind: "hang" });
    const t0 = Date.now();
    const err = await askError(gw);
    const ms = Date.now() - t0;
    expect(err.status).toBe(504);
    expect(ms).toBeGreaterThanOrEqual(450);
    expect(ms).toBeLessThan(1200);
    expect(err.message).toContain("failover budget of 500 ms");
    const tried = callOrder(gw);
    expect(tried.slice(0, 2)).toEqual(["alibaba-cloud", "fireworks"]);
    for (const p of tried) expect(err.message).toContain(p);
    // The attempt in flight when the budget ran out was aborted upstream.
    await gw.fakes[tried.at(-1)!]!.waitForAbort();
    expect(await lastUsage(gw)).toMatchObject({ status: "error", error_kind: "upstream_timeout", attempts: tried.length });
  });
});

describe("streams: failover only before the first byte reaches the client", () => {
  it("openai SDK: a reset after 2 chunks gives those chunks, then an APIError; the next provider is not called", async () => {
    const gw = await gateway();
    gw.fake.enqueue({ kind: "stream-then-reset", chunks: 2 });
    const stream = await client(gw).chat.completions.create({ model: MODEL, messages: USER, stream: true });
    let content = "";
    let error: unknown;
    try {
      for await (const chunk of stream) content += chunk.choices[0]?.delta.content ?? "";
    } catch (err) {
      error = err;
    }
    expect(content).toBe(partialChunk(0) + partialChunk(1));
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(counts(gw)).toEqual({ "alibaba-cloud": 1, together: 0 });
    expect(await lastUsage(gw)).toMatchObject({ provider: "alibaba-cloud", attempts: 1, status: "error" });
  });

  it("raw SSE: the same reset shows as an error event, with no [DONE]", async () => {
    const gw = await gateway();
    gw.fake.enqueue({ kind: "stream-then-reset", chunks: 2 });
    const res = await rawChat(gw, { stream: true });
    expect(res.status).toBe(200);
    const events = sseData(await res.text());
    expect(events).not.toContain("[DONE]");
    expect(events.slice(0, -1).every((e) => "choices" in JSON.parse(e))).toBe(true);
    expect(JSON.parse(events.at(-1)!)).toMatchObject({ error: { type: "server_error" } });
    expect(counts(gw)).toEqual({ "alibaba-cloud": 1, together: 0 });
  });

  const midStream: Array<[string, Behaviour]> = [
    ["a malformed event", { kind: "malformed", chunks: 2 }],
    ["an error event", { kind: "stream-then-error", chunks: 2, message: "upstream overloaded" }],
    ["a [DONE] without a finish_reason", { kind: "stream-then-end", chunks: 2 }],
  ];
  it.each(midStream)("raw SSE: %s after 2 chunks ends the stream with an error event, with no [DONE] and no failover", async (_, behaviour) => {
    const gw = await gateway();
    gw.fake.enqueue(behaviour);
    const res = await rawChat(gw, { stream: true });
    const events = sseData(await res.text());
    expect(events).not.toContain("[DONE]");
    const content = events.slice(0, -1).map((e) => (JSON.parse(e) as ChatCompletionChunk).choices[0]?.delta.content ?? "").join("");
    expect(content).toBe(partialChunk(0) + partialChunk(1));
    expect(JSON.parse(events.at(-1)!)).toHaveProperty("error.message");
    expect(counts(gw)).toEqual({ "alibaba-cloud": 1, together: 0 });
  });

  it("grpc-js: the same reset gives the deltas, then a non-OK status and no done", async () => {
    const gw = await gateway();
    gw.fake.enqueue({ kind: "stream-then-reset", chunks: 2 });
    const r = await grpcChat(gw);
    expect(r.deltas).toEqual([partialChunk(0), partialChunk(1)]);
    expect(r.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.done).toBeUndefined();
    expect(counts(gw)).toEqual({ "alibaba-cloud": 1, together: 0 });
  });

  it("grpc-js: a provider failing before any chunk leaves the whole stream to the next, with done.attempts 2", async () => {
    const gw = await gateway();
    gw.fake.enqueue({ kind: "stream-then-reset", chunks: 0, role: false });
    const r = await grpcChat(gw);
    expect(r.status.code).toBe(grpc.status.OK);
    expect(r.deltas.join("")).toBe(helloFrom("together"));
    expect(r.done).toMatchObject({ provider: "together", attempts: 2, finish_reason: "stop" });
    expect(r.headers?.get("x-gatewayz-provider")).toEqual(["together"]);
    expect(r.headers?.get("x-gatewayz-attempts")).toEqual(["2"]);
    expect(callOrder(gw)).toEqual(["alibaba-cloud", "together"]);
    expect(await lastUsage(gw)).toMatchObject({ provider: "together", attempts: 2, status: "ok" });
  });
});

describe("every provider failing", () => {
  it("gives a 503 naming each provider tried with its status, leaking no key or URL; the log has each status", async () => {
    const gw = await gateway({}, { providers: ["fireworks", "together"] });
    gw.fakes["alibaba-cloud"]!.enqueue({ kind: "error", status: 503 });
    gw.fakes.fireworks!.enqueue({ kind: "error", status: 502 });
    gw.fakes.together!.enqueue({ kind: "error", status: 429 });
    const err = await askError(gw);
    expect(err.status).toBe(503);
    expect(err.message).toContain("alibaba-cloud (503)");
    expect(err.message).toContain("fireworks (502)");
    expect(err.message).toContain("together (429)");
    for (const fake of Object.values(gw.fakes)) {
      expect(err.message).not.toContain(fake.apiKey);
      expect(err.message).not.toContain(new URL(fake.baseUrl).host);
    }
    expect(err.message).not.toMatch(/sk-|127\.0\.0\.1|https?:/);
    const log = gw.logs.join("\n");
    expect(log).toMatch(/attempt 1 on alibaba-cloud failed: \w+ \(503\)/);
    expect(log).toMatch(/attempt 2 on fireworks failed: \w+ \(502\)/);
    expect(log).toMatch(/attempt 3 on together failed: \w+ \(429\)/);
    expect(await lastUsage(gw)).toMatchObject({ status: "error", attempts: 3 });
  });
});

describe("cancelling during failover", () => {
  it("aborts the upstream request in flight on the second provider", async () => {
    const gw = await gateway();
    gw.fake.enqueue({ kind: "error", status: 503 });
    gw.fakes.together!.enqueue({ kind: "hang" });
    const controller = new AbortController();
    const pending = client(gw).chat.completions.create({ model: MODEL, messages: USER }, { signal: controller.signal });
    pending.catch(() => {});
    await gw.fakes.together!.waitForRequests(1);
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
    const aborted = await gw.fakes.together!.waitForAbort();
    expect(aborted.body.model).toBe(MODEL_IDS.together);
    await eventually(async () => expect(await lastUsage(gw)).toMatchObject({ status: "cancelled", attempts: 2, provider: "together" }));
  });
});

describe("what each upstream receives", () => {
  it("OpenRouter gets HTTP-Referer and X-Title, its own model id, and none of DashScope's fields", async () => {
    const gw = await gateway({}, { providers: ["openrouter"] });
    gw.fake.enqueue({ kind: "error", status: 503 });
    const answer = await ask(gw, "qwen-plus", { enable_search: true, thinking_budget: 100 });
    expect(answer).toMatchObject({ provider: "openrouter", attempts: "2", content: "Hello from qwen/qwen-plus" });
    const [dashscope] = gw.fake.requests;
    expect(dashscope!.body).toMatchObject({ model: "qwen-plus", enable_thinking: false, enable_search: true, thinking_budget: 100 });
    const [openrouter] = gw.fakes.openrouter!.requests;
    expect(openrouter!.headers["http-referer"]).toMatch(/^https:\/\/github\.com\/gatewayz/);
    expect(openrouter!.headers["x-title"]).toBe("Gatewayz");
    expect(openrouter!.headers.authorization).toBe("Bearer sk-test-openrouter");
    expect(openrouter!.body.model).toBe("qwen/qwen-plus");
    for (const field of ["enable_thinking", "enable_search", "thinking_budget"]) expect(openrouter!.body).not.toHaveProperty(field);
    // Only OpenRouter gets its attribution headers.
    expect(dashscope!.headers).not.toHaveProperty("x-title");
  });

  it("Together gets its own id for the model; Vertex gets its own id and its access token as the bearer", async () => {
    const gw = await gateway({}, { providers: ["together", "google-vertex"] });
    gw.fake.enqueue({ kind: "error", status: 503 }, { kind: "error", status: 503 });
    await ask(gw);
    expect(gw.fakes.together!.requests[0]!.body.model).toBe("Qwen/Qwen2.5-72B-Instruct-Turbo");
    expect(gw.fakes.together!.requests[0]!.headers.authorization).toBe("Bearer sk-test-together");
    expect(gw.fakes.together!.requests[0]!.headers).not.toHaveProperty("x-title");

    // qwen-3-80b-a3b-instruct: alibaba-cloud, then together, then google-vertex.
    gw.fakes.together!.enqueue({ kind: "error", status: 503 });
    const answer = await ask(gw, "qwen-3-80b-a3b-instruct");
    expect(answer).toMatchObject({ provider: "google-vertex", attempts: "3" });
    const [vertex] = gw.fakes["google-vertex"]!.requests;
    expect(vertex!.body.model).toBe("qwen/qwen3-next-80b-a3b-instruct-maas");
    expect(vertex!.headers.authorization).toBe("Bearer sk-test-google-vertex");
  });
});
