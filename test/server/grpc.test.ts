// GatewayService end to end over real gRPC (HTTP/2 cleartext): @grpc/grpc-js with
// @grpc/proto-loader loading the .proto files at run time, against a real gateway
// whose Alibaba Cloud upstream is the fake. keepCase: true throughout, so field
// names are the proto's snake_case ones, as on the wire in JSON and in OpenAI.

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import modelsData from "../../src/data/models.json" with { type: "json" };
import pricingData from "../../src/data/pricing.json" with { type: "json" };
import { partialChunk } from "../support/fake-upstream.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const LOADER_OPTIONS: protoLoader.Options = {
  includeDirs: ["proto"],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

// Loaded once; the paths are relative to includeDirs, so vitest must run from the repo root.
const gatewayPkg = grpc.loadPackageDefinition(protoLoader.loadSync("gatewayz/v1/gateway.proto", LOADER_OPTIONS));
const healthPkg = grpc.loadPackageDefinition(protoLoader.loadSync("grpc/health/v1/health.proto", LOADER_OPTIONS));
type ClientCtor = new (address: string, credentials: grpc.ChannelCredentials) => grpc.Client;
const GatewayServiceClient = ((gatewayPkg.gatewayz as grpc.GrpcObject).v1 as grpc.GrpcObject).GatewayService as unknown as ClientCtor;
const HealthClient = (((healthPkg.grpc as grpc.GrpcObject).health as grpc.GrpcObject).v1 as grpc.GrpcObject).Health as unknown as ClientCtor;

/** The decoded messages, as proto-loader hands them over with the options above. */
interface ToolCallDelta { index: number; id: string; type: string; name: string; arguments: string }
interface ChatDelta { content: string; reasoning_content: string; tool_calls: ToolCallDelta[] }
interface ChatDone {
  id: string;
  finish_reason: string;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number; cached_tokens: number; reasoning_tokens: number } | null;
  cost: { prompt_usd: string; completion_usd: string; total_usd: string } | null;
  model: string;
  provider: string;
  catalog_model: string;
}
interface ChatResponse { event: "delta" | "done"; delta: ChatDelta | null; done: ChatDone | null }

interface ChatResult {
  messages: ChatResponse[];
  deltas: ChatDelta[];
  done: ChatDone | undefined;
  /** The final status (OK or the error's). */
  status: grpc.StatusObject;
  error: grpc.ServiceError | undefined;
}

/** Dynamic client calls: grpc-js adds one method per RPC, named after it (camelCase). */
interface DynamicClient extends grpc.Client {
  chat(req: object, metadata: grpc.Metadata, options: grpc.CallOptions): grpc.ClientReadableStream<ChatResponse>;
  listModels(req: object, metadata: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: any) => void): grpc.ClientUnaryCall;
  getPricing(req: object, metadata: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: any) => void): grpc.ClientUnaryCall;
  check(req: object, metadata: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: any) => void): grpc.ClientUnaryCall;
}

let gw: TestGateway;
let client: DynamicClient;

function addressOf(url: string): string {
  return new URL(url).host; // "127.0.0.1:<port>"
}

/** Call metadata carrying `authorization` (none at all for null). */
function auth(authorization: string | null): grpc.Metadata {
  const md = new grpc.Metadata();
  if (authorization !== null) md.set("authorization", authorization);
  return md;
}

/**
 * Runs a Chat call to its end and collects everything the client saw. `onData`
 * sees each message as it arrives, with the call, so a test can cancel mid-stream.
 */
function chat(
  req: object,
  options: grpc.CallOptions = {},
  onData?: (msg: ChatResponse, call: grpc.ClientReadableStream<ChatResponse>) => void,
  c: DynamicClient = client,
  authorization: string | null = gw.authorization,
): Promise<ChatResult> {
  return new Promise((resolve) => {
    const call = c.chat(req, auth(authorization), options);
    const messages: ChatResponse[] = [];
    let error: grpc.ServiceError | undefined;
    call.on("data", (msg: ChatResponse) => {
      messages.push(msg);
      onData?.(msg, call);
    });
    // grpc-js emits "error" for a non-OK status; without a listener it would throw.
    call.on("error", (err: grpc.ServiceError) => { error = err; });
    call.on("status", (status: grpc.StatusObject) => {
      // "status" can come before the last "data"/"error" events are delivered; settle after them.
      setImmediate(() => {
        const deltas = messages.filter((m) => m.event === "delta").map((m) => m.delta!);
        const dones = messages.filter((m) => m.event === "done").map((m) => m.done!);
        resolve({ messages, deltas, done: dones.at(-1), status, error });
      });
    });
  });
}

function unary<T = any>(
  method: "listModels" | "getPricing" | "check",
  req: object,
  c: DynamicClient = client,
  authorization: string | null = gw.authorization,
): Promise<T> {
  return new Promise((resolve, reject) => {
    c[method](req, auth(authorization), (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

async function unaryError(method: "listModels" | "getPricing", req: object): Promise<grpc.ServiceError> {
  try {
    await unary(method, req);
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error(`${method} succeeded; expected an error`);
}

/**
 * google.protobuf.Struct as proto-loader encodes it. The well-known types come from
 * protobufjs's bundled definitions, whose Value fields are camelCase even with keepCase.
 */
function struct(obj: Record<string, unknown>): object {
  return { fields: Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, value(v)])) };
}
function value(v: unknown): object {
  if (v === null) return { nullValue: "NULL_VALUE" };
  if (typeof v === "number") return { numberValue: v };
  if (typeof v === "string") return { stringValue: v };
  if (typeof v === "boolean") return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(value) } };
  return { structValue: struct(v as Record<string, unknown>) };
}

const HI = { model: "qwen-plus", messages: [{ role: "user", content: "hi" }] };

beforeAll(async () => {
  gw = await startTestGateway();
  client = new GatewayServiceClient(addressOf(gw.url), grpc.credentials.createInsecure()) as DynamicClient;
});

afterAll(async () => {
  client?.close();
  await gw?.close();
});

beforeEach(() => {
  gw.fake.reset();
});

describe("Chat over gRPC", () => {
  it("streams deltas that concatenate to the answer, then one done with usage and exact cost", async () => {
    gw.fake.enqueue({ kind: "reply", content: "Hello there from the fake upstream" });
    const r = await chat(HI);
    expect(r.error).toBeUndefined();
    expect(r.status.code).toBe(grpc.status.OK);
    expect(r.deltas.length).toBeGreaterThan(1);
    expect(r.deltas.map((d) => d.content).join("")).toBe("Hello there from the fake upstream");
    expect(r.messages.at(-1)?.event).toBe("done");
    expect(r.messages.filter((m) => m.event === "done")).toHaveLength(1);
    expect(r.done).toMatchObject({
      finish_reason: "stop",
      provider: "alibaba-cloud",
      model: "qwen-plus",
      catalog_model: "qwen-plus",
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, cached_tokens: 0, reasoning_tokens: 0 },
      cost: { prompt_usd: "0.00000005", completion_usd: "0.000000075", total_usd: "0.000000125" },
    });
    expect(r.done!.id).toMatch(/^chatcmpl-/);
  });

  it("reports the upstream id as model and the catalog id as catalog_model for an alias", async () => {
    const r = await chat({ model: "qwen3-coder", messages: [{ role: "user", content: "hi" }] });
    expect(r.status.code).toBe(grpc.status.OK);
    expect(r.done).toMatchObject({ model: "qwen3-coder-plus", catalog_model: "qwen-coder", provider: "alibaba-cloud" });
    const [upstream] = await gw.fake.waitForRequests(1);
    expect(upstream!.body.model).toBe("qwen3-coder-plus");
    expect(upstream!.body.stream).toBe(true);
  });

  it("sends a plain text message upstream as exactly the OpenAI message", async () => {
    await chat(HI);
    const [upstream] = await gw.fake.waitForRequests(1);
    expect(upstream!.body.messages).toEqual([{ role: "user", content: "hi" }]);
  });

  it("sends parts upstream as OpenAI's content array", async () => {
    await chat({
      model: "qwen-vl",
      messages: [{
        role: "user",
        parts: [
          { text: "what is this?" },
          { image_url: { url: "https://example.com/cat.png", detail: "low" } },
        ],
      }],
    });
    const [upstream] = await gw.fake.waitForRequests(1);
    expect(upstream!.body.messages).toEqual([{
      role: "user",
      content: [
        { type: "text", text: "what is this?" },
        { type: "image_url", image_url: { url: "https://example.com/cat.png", detail: "low" } },
      ],
    }]);
  });

  it("maps the sampling, tool, format, thinking and extra_body fields to OpenAI's body names", async () => {
    const schema = { type: "object", properties: { city: { type: "string" } }, required: ["city"] };
    const r = await chat({
      ...HI,
      temperature: 0.25,
      max_tokens: 64,
      stop: ["END", "STOP"],
      seed: "42",
      tools: [{ type: "function", function: { name: "get_weather", description: "Weather for a city", parameters: struct(schema) } }],
      tool_choice: { function_name: "get_weather" },
      response_format: { type: "json_schema", json_schema: { name: "weather", schema: struct(schema), strict: true } },
      enable_thinking: true,
      extra_body: struct({ top_k: 20, vl_high_resolution_images: false }),
    });
    expect(r.status.code).toBe(grpc.status.OK);
    const [upstream] = await gw.fake.waitForRequests(1);
    expect(upstream!.body).toMatchObject({
      model: "qwen-plus",
      messages: [{ role: "user", content: "hi" }],
      temperature: 0.25,
      max_tokens: 64,
      stop: ["END", "STOP"],
      seed: 42,
      tools: [{ type: "function", function: { name: "get_weather", description: "Weather for a city", parameters: schema } }],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      response_format: { type: "json_schema", json_schema: { name: "weather", schema, strict: true } },
      enable_thinking: true,
      top_k: 20,
      vl_high_resolution_images: false,
    });
    // Unset optionals stay unset, so the provider's defaults apply.
    expect(upstream!.body).not.toHaveProperty("top_p");
    expect(upstream!.body).not.toHaveProperty("presence_penalty");
    expect(upstream!.body).not.toHaveProperty("thinking_budget");
  });

  it("sends tool_choice mode as OpenAI's string form", async () => {
    await chat({ ...HI, tool_choice: { mode: "required" }, tools: [{ function: { name: "f" } }] });
    const [upstream] = await gw.fake.waitForRequests(1);
    expect(upstream!.body.tool_choice).toBe("required");
    expect(upstream!.body.tools).toEqual([{ type: "function", function: { name: "f" } }]);
  });

  it("keeps reasoning in reasoning_content, separate from content", async () => {
    gw.fake.enqueue({ kind: "reply", reasoning: "Let me think about it", content: "The answer is 4" });
    const r = await chat({ ...HI, enable_thinking: true });
    expect(r.status.code).toBe(grpc.status.OK);
    expect(r.deltas.map((d) => d.reasoning_content).join("")).toBe("Let me think about it");
    expect(r.deltas.map((d) => d.content).join("")).toBe("The answer is 4");
    // No delta mixes the two.
    for (const d of r.deltas) expect(d.reasoning_content === "" || d.content === "").toBe(true);
    // Reasoning comes first, as the upstream sent it.
    const firstContent = r.deltas.findIndex((d) => d.content !== "");
    const lastReasoning = r.deltas.findLastIndex((d) => d.reasoning_content !== "");
    expect(lastReasoning).toBeLessThan(firstContent);
  });

  it("relays tool-call deltas with index, id, name and arguments", async () => {
    gw.fake.enqueue({
      kind: "reply",
      toolCalls: [
        { id: "call_1", name: "get_weather", arguments: '{"city":"Hangzhou"}' },
        { id: "call_2", name: "get_time", arguments: '{"tz":"Asia/Shanghai"}' },
      ],
    });
    const r = await chat(HI);
    expect(r.status.code).toBe(grpc.status.OK);
    expect(r.done?.finish_reason).toBe("tool_calls");
    const fragments = r.deltas.flatMap((d) => d.tool_calls);
    expect(fragments.length).toBeGreaterThan(2);
    const merged = new Map<number, { id: string; name: string; arguments: string }>();
    for (const f of fragments) {
      const m = merged.get(f.index) ?? { id: "", name: "", arguments: "" };
      merged.set(f.index, { id: m.id + f.id, name: m.name + f.name, arguments: m.arguments + f.arguments });
    }
    expect(Object.fromEntries(merged)).toEqual({
      0: { id: "call_1", name: "get_weather", arguments: '{"city":"Hangzhou"}' },
      1: { id: "call_2", name: "get_time", arguments: '{"tz":"Asia/Shanghai"}' },
    });
    expect(fragments.find((f) => f.id === "call_1")).toMatchObject({ index: 0, type: "function", name: "get_weather" });
  });
});

describe("ListModels and GetPricing over gRPC", () => {
  it("lists every catalog model with its upstream id, context window, capabilities and aliases", async () => {
    const res = await unary("listModels", {});
    const ids = res.models.map((m: { id: string }) => m.id);
    expect(ids).toEqual(modelsData.models.map((m) => m.id));
    for (const row of modelsData.models) {
      const m = res.models.find((x: { id: string }) => x.id === row.id);
      expect(m).toEqual({
        id: row.id,
        provider: row.provider,
        upstream_id: row.upstream_id,
        context_window: row.context_window,
        capabilities: row.capabilities,
        aliases: row.aliases,
        streaming_only: row.streaming_only,
        kind: "kind" in row ? row.kind : "chat",
        dimensions: "embedding" in row ? row.embedding?.dimensions : [],
        default_dimensions: "embedding" in row ? row.embedding?.default_dimensions : 0,
        // Only Alibaba Cloud is configured on this gateway, so it alone can serve.
        providers: [{ provider: "alibaba-cloud", upstream_id: row.upstream_id, state: "closed" }],
      });
    }
  });

  it("filters by provider", async () => {
    expect((await unary("listModels", { provider: "alibaba-cloud" })).models).toHaveLength(modelsData.models.length);
    expect((await unary("listModels", { provider: "nobody" })).models).toEqual([]);
  });

  it("prices one model exactly", async () => {
    const res = await unary("getPricing", { model: "qwen-flash" });
    expect(res.prices).toEqual([
      // A cached prompt token at 20% of a prompt token (DashScope's implicit cache).
      { model: "qwen-flash", prompt_usd_per_million: "0.001", completion_usd_per_million: "0.003", cached_prompt_usd_per_million: "0.0002", context_window: 1000000 },
    ]);
  });

  it("prices every catalog model when no model is named", async () => {
    const res = await unary("getPricing", {});
    expect(res.prices.map((p: { model: string }) => p.model)).toEqual(modelsData.models.map((m) => m.id));
    const plus = res.prices.find((p: { model: string }) => p.model === "qwen-plus");
    expect(plus).toMatchObject({ prompt_usd_per_million: "0.005", completion_usd_per_million: "0.015" });
    const book = pricingData.models as Record<string, { prompt: string; completion: string }>;
    for (const p of res.prices as Array<{ model: string; prompt_usd_per_million: string; completion_usd_per_million: string }>) {
      if (!book[p.model]) continue;
      expect(Number(p.prompt_usd_per_million)).toBe(Number(book[p.model]!.prompt));
      expect(Number(p.completion_usd_per_million)).toBe(Number(book[p.model]!.completion));
    }
  });

  it("resolves an alias to its catalog model", async () => {
    const res = await unary("getPricing", { model: "qwen3-coder" });
    expect(res.prices).toHaveLength(1);
    expect(res.prices[0]).toMatchObject({ model: "qwen-coder", prompt_usd_per_million: "0.008", completion_usd_per_million: "0.024" });
  });

  it("answers NOT_FOUND for an unknown model", async () => {
    const err = await unaryError("getPricing", { model: "gpt-nope" });
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(err.details).toContain("gpt-nope");
  });
});

describe("Chat errors over gRPC", () => {
  it("unknown model → NOT_FOUND naming the model, and nothing reaches the upstream", async () => {
    const r = await chat({ model: "gpt-nope", messages: [{ role: "user", content: "hi" }] });
    expect(r.status.code).toBe(grpc.status.NOT_FOUND);
    expect(r.error?.code).toBe(grpc.status.NOT_FOUND);
    expect(r.status.details).toContain("gpt-nope");
    expect(r.messages).toEqual([]);
    expect(gw.fake.requests).toHaveLength(0);
  });

  it("empty messages → INVALID_ARGUMENT", async () => {
    const r = await chat({ model: "qwen-plus", messages: [] });
    expect(r.status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(r.status.details).toMatch(/messages/);
    expect(gw.fake.requests).toHaveLength(0);
  });

  it("content and parts both set → INVALID_ARGUMENT", async () => {
    const r = await chat({ model: "qwen-plus", messages: [{ role: "user", content: "hi", parts: [{ text: "hi" }] }] });
    expect(r.status.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it("upstream 503 → UNAVAILABLE", async () => {
    gw.fake.enqueue({ kind: "error", status: 503, message: "overloaded" });
    const r = await chat(HI);
    expect(r.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.done).toBeUndefined();
  });

  it("no provider key → UNAVAILABLE, 'Alibaba Cloud API key not configured'", async () => {
    const noKey = await startTestGateway({ ALIBABA_CLOUD_API_KEY: "" });
    const c = new GatewayServiceClient(addressOf(noKey.url), grpc.credentials.createInsecure()) as DynamicClient;
    try {
      const r = await chat(HI, {}, undefined, c, noKey.authorization);
      expect(r.status.code).toBe(grpc.status.UNAVAILABLE);
      expect(r.status.details).toContain("Alibaba Cloud API key not configured");
      expect(noKey.fake.requests).toHaveLength(0);
    } finally {
      c.close();
      await noKey.close();
    }
  });

  it.each([
    ["stream-then-reset" as const],
    ["stream-then-error" as const],
  ])("mid-stream upstream failure (%s) → partial deltas, then an error status and no done", async (kind) => {
    gw.fake.enqueue({ kind, chunks: 2 });
    const r = await chat(HI);
    expect(r.deltas.map((d) => d.content).join("")).toBe(partialChunk(0) + partialChunk(1));
    expect(r.status.code).not.toBe(grpc.status.OK);
    expect(r.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.messages.some((m) => m.event === "done")).toBe(false);
  });

  it("malformed upstream stream → error status and no done", async () => {
    gw.fake.enqueue({ kind: "malformed", chunks: 1 });
    const r = await chat(HI);
    expect(r.status.code).not.toBe(grpc.status.OK);
    expect(r.done).toBeUndefined();
  });
});

describe("deadlines and cancellation over gRPC", () => {
  it("a deadline → DEADLINE_EXCEEDED, and the upstream request is aborted", async () => {
    gw.fake.enqueue({ kind: "hang" });
    const started = Date.now();
    const r = await chat(HI, { deadline: Date.now() + 300 });
    expect(r.status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(2000);
    const aborted = await gw.fake.waitForAbort(2000);
    expect(aborted.body.model).toBe("qwen-plus");
  });

  it("call.cancel() mid-stream → CANCELLED on the client and the upstream is aborted within ~1 s", async () => {
    gw.fake.enqueue({ kind: "stream-then-hang", chunks: 2 });
    let cancelledAt = 0;
    const r = await chat(HI, {}, (_msg, call) => {
      if (!cancelledAt) {
        cancelledAt = Date.now();
        call.cancel();
      }
    });
    expect(cancelledAt).toBeGreaterThan(0);
    expect(r.status.code).toBe(grpc.status.CANCELLED);
    expect(r.done).toBeUndefined();
    await gw.fake.waitForAbort(1000);
    expect(Date.now() - cancelledAt).toBeLessThan(1500);
  });
});

describe("authentication", () => {
  const UNKNOWN = "Bearer gw_live_" + "0123456789abcdefghijABCDEFGHIJxy";

  async function expectUnauthenticated(authorization: string | null, code: grpc.status = grpc.status.UNAUTHENTICATED) {
    const r = await chat(HI, {}, undefined, client, authorization);
    expect(r.status.code).toBe(code);
    expect(r.error?.code).toBe(code);
    expect(r.messages).toEqual([]);
    // Refused at the door: the fake upstream never heard of it.
    expect(gw.fake.requests).toHaveLength(0);
  }

  it.each([
    ["no key", null],
    ["a malformed key", "Bearer sk-123"],
    ["an unknown well-formed key", UNKNOWN],
  ])("Chat with %s → UNAUTHENTICATED, nothing upstream", async (_what, authorization) => {
    await expectUnauthenticated(authorization);
  });

  it("Chat with a revoked key → UNAUTHENTICATED, nothing upstream", async () => {
    const { key, record } = gw.app.accounts.createKey({ user: "u", name: "n" });
    // Valid until revoked.
    expect((await chat(HI, {}, undefined, client, `Bearer ${key}`)).status.code).toBe(grpc.status.OK);
    gw.app.accounts.revokeKey(record.id);
    gw.fake.reset();
    await expectUnauthenticated(`Bearer ${key}`);
  });

  it("Chat with an admin key → PERMISSION_DENIED, nothing upstream", async () => {
    const { key } = gw.app.accounts.createKey({ user: "root", name: "admin", kind: "admin" });
    await expectUnauthenticated(`Bearer ${key}`, grpc.status.PERMISSION_DENIED);
  });

  it("ListModels and GetPricing without a key → UNAUTHENTICATED", async () => {
    const list = await unary("listModels", {}, client, null).catch((e: grpc.ServiceError) => e);
    expect(list.code).toBe(grpc.status.UNAUTHENTICATED);
    const pricing = await unary("getPricing", {}, client, null).catch((e: grpc.ServiceError) => e);
    expect(pricing.code).toBe(grpc.status.UNAUTHENTICATED);
  });
});

describe("grpc.health.v1 over gRPC", () => {
  it("Check('') → SERVING; the service → SERVING; an unknown one → NOT_FOUND", async () => {
    const health = new HealthClient(addressOf(gw.url), grpc.credentials.createInsecure()) as DynamicClient;
    try {
      // Health stays open: no key sent.
      expect(await unary("check", { service: "" }, health, null)).toEqual({ status: "SERVING" });
      expect(await unary("check", { service: "gatewayz.v1.GatewayService" }, health, null)).toEqual({ status: "SERVING" });
      const err = await unary("check", { service: "nope" }, health, null).catch((e: grpc.ServiceError) => e);
      expect(err.code).toBe(grpc.status.NOT_FOUND);
    } finally {
      health.close();
    }
  });
});
