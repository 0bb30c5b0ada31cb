// Exactly one usage row per request, on every path, as the real front doors
// write them: success (plain, streaming, aggregated), upstream failures, limits,
// bad keys, bad bodies, unknown models, client cancels and upstreams that send
// no usage. Rows are counted against the requests sent and read field by field.

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { countTokens } from "gpt-tokenizer/encoding/cl100k_base";
import OpenAI, { APIError, APIUserAbortError, AuthenticationError, BadRequestError, InternalServerError, NotFoundError, RateLimitError } from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GatewayService } from "../../gen/gatewayz/v1/gateway_pb.js";
import { createUsageStore } from "../../src/storage/usage.js";
import { partialChunk } from "../support/fake-upstream.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const LOADER_OPTIONS: protoLoader.Options = { includeDirs: ["proto"], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const gatewayPkg = grpc.loadPackageDefinition(protoLoader.loadSync("gatewayz/v1/gateway.proto", LOADER_OPTIONS));
type ClientCtor = new (address: string, credentials: grpc.ChannelCredentials) => grpc.Client;
const GatewayServiceClient = ((gatewayPkg.gatewayz as grpc.GrpcObject).v1 as grpc.GrpcObject).GatewayService as unknown as ClientCtor;
interface GrpcChatClient extends grpc.Client {
  chat(req: object, metadata: grpc.Metadata): grpc.ClientReadableStream<{ event: string; delta?: { content: string } }>;
}

interface UsageRow {
  id: number; ts: number; key_id: string | null; user_id: string | null; protocol: string; requested_model: string;
  model: string | null; upstream_model: string | null; provider: string | null;
  prompt_tokens: number; completion_tokens: number; cached_tokens: number; reasoning_tokens: number;
  cost_pico: number; latency_ms: number; ttft_ms: number | null; status: string; error_kind: string | null;
  estimated: number; attempts: number;
}

const HI = [{ role: "user" as const, content: "hi" }];
/** HI as an estimate counts it: OpenAI's chat framing (3 a message, its role, 3 priming the reply) around "hi". */
const HI_PROMPT_TOKENS = 3 + countTokens("user") + countTokens("hi") + 3;
const PROVIDER = "alibaba-cloud";
// USD per 1M tokens = pico-USD per token.
const PRICE = {
  "qwen-plus": { prompt: 5000, completion: 15000 },
  "qwen-3-30b-a3b-instruct": { prompt: 200_000, completion: 800_000 },
  "qwq-plus": { prompt: 20_000, completion: 60_000 },
} as const;
/** A cached prompt token costs 20% of a prompt token (src/data/pricing.json's cache rule: DashScope's implicit cache). */
const cost = (model: keyof typeof PRICE, prompt: number, completion: number, cached = 0) =>
  (prompt - cached) * PRICE[model].prompt + cached * PRICE[model].prompt * 0.2 + completion * PRICE[model].completion;

let gw: TestGateway;
let client: OpenAI;
let grpcClient: GrpcChatClient;
let keyId: string;
let userId: string;
/** Chat requests this file has sent to the gateway; every one must leave exactly one row. */
let sent = 0;
let mark = 0;

beforeAll(async () => {
  gw = await startTestGateway();
  client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  grpcClient = new GatewayServiceClient(new URL(gw.url).host, grpc.credentials.createInsecure()) as GrpcChatClient;
  const record = gw.app.accounts.listKeys({ user: "test" })[0]!;
  keyId = record.id;
  userId = record.userId;
});

afterAll(async () => {
  grpcClient?.close();
  await gw?.close();
});

beforeEach(() => {
  gw.fake.reset();
  mark = (gw.app.db.prepare("SELECT COALESCE(MAX(id), 0) AS m FROM usage").get() as { m: number }).m;
});

/**
 * The rows written since the test began, once there are `n` of them (polling for
 * up to 1 s, as rows may land just after the response ends), then checks no
 * further row arrives.
 */
async function newRows(n: number): Promise<UsageRow[]> {
  const read = () => gw.app.db.prepare("SELECT * FROM usage WHERE id > ? ORDER BY id").all(mark) as UsageRow[];
  const deadline = Date.now() + 1000;
  while (read().length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 30));
  const rows = read();
  expect(rows, `expected exactly ${n} usage row(s)`).toHaveLength(n);
  return rows;
}

async function expectError<T>(p: Promise<unknown>, cls: abstract new (...args: any[]) => T): Promise<T> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(cls);
  return err as T;
}

const mine = () => ({ key_id: keyId, user_id: userId });

describe("successful requests", () => {
  it("non-streaming: every token counter as the upstream sent it, cost from the price table", async () => {
    gw.fake.enqueue({ kind: "reply", usage: { prompt_tokens: 10, completion_tokens: 5, cached_tokens: 4, reasoning_tokens: 2 } });
    const before = Date.now();
    sent++;
    await client.chat.completions.create({ model: "qwen-plus", messages: HI });
    const [row] = await newRows(1);
    expect(row).toMatchObject({
      ...mine(), protocol: "openai", requested_model: "qwen-plus", model: "qwen-plus", upstream_model: "qwen-plus",
      provider: PROVIDER, prompt_tokens: 10, completion_tokens: 5, cached_tokens: 4, reasoning_tokens: 2,
      // 6 prompt tokens at 5,000 pico, 4 cached at 1,000, 5 completion at 15,000.
      cost_pico: 109_000, status: "ok", error_kind: null, estimated: 0, attempts: 1,
    });
    expect(row!.ts).toBeGreaterThanOrEqual(before);
    expect(row!.ts).toBeLessThanOrEqual(Date.now());
    expect(row!.latency_ms).toBeGreaterThan(0);
    expect(row!.ttft_ms).not.toBeNull();
  });

  it("streaming an alias without include_usage: the client never sees usage, the row has the upstream's", async () => {
    sent++;
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: gw.authorization, "content-type": "application/json" },
      body: JSON.stringify({ model: "qwen-3-30b", messages: HI, stream: true }),
    });
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text).toContain("data: [DONE]");
    expect(text).not.toContain("usage");
    expect(gw.fake.requests[0]!.body.stream_options).toEqual({ include_usage: true });
    const [row] = await newRows(1);
    expect(row).toMatchObject({
      ...mine(), protocol: "openai", requested_model: "qwen-3-30b", model: "qwen-3-30b-a3b-instruct",
      upstream_model: "qwen3-30b-a3b-instruct-2507", provider: PROVIDER, prompt_tokens: 10, completion_tokens: 5,
      // The resolved model's price (0.2 / 0.8 per 1M), never an alias's.
      cost_pico: cost("qwen-3-30b-a3b-instruct", 10, 5), status: "ok", estimated: 0,
    });
    expect(row!.cost_pico).toBe(6_000_000);
    expect(row!.ttft_ms).not.toBeNull();
    expect(row!.ttft_ms!).toBeLessThanOrEqual(row!.latency_ms);
    expect(row!.latency_ms).toBeGreaterThan(0);
  });

  it("streaming with include_usage: the client's usage chunk and the row agree", async () => {
    gw.fake.enqueue({ kind: "reply", usage: { prompt_tokens: 21, completion_tokens: 8, cached_tokens: 3, reasoning_tokens: 0 } });
    sent++;
    const stream = await client.chat.completions.create({ model: "qwen-plus", messages: HI, stream: true, stream_options: { include_usage: true } });
    const usages = [];
    for await (const chunk of stream) if (chunk.usage) usages.push(chunk.usage);
    expect(usages).toHaveLength(1);
    expect(usages[0]).toMatchObject({ prompt_tokens: 21, completion_tokens: 8, prompt_tokens_details: { cached_tokens: 3 } });
    const [row] = await newRows(1);
    expect(row).toMatchObject({ prompt_tokens: 21, completion_tokens: 8, cached_tokens: 3, cost_pico: cost("qwen-plus", 21, 8, 3), status: "ok" });
  });

  it("a streaming-only model asked without stream (aggregated): one row for the one request", async () => {
    gw.fake.enqueue({ kind: "reply", reasoning: "let me think", content: "42", usage: { prompt_tokens: 10, completion_tokens: 5, reasoning_tokens: 3 } });
    sent++;
    const completion = await client.chat.completions.create({ model: "qwq-plus", messages: HI });
    expect(completion.choices[0]!.message.content).toBe("42");
    expect(gw.fake.requests).toHaveLength(1);
    expect(gw.fake.requests[0]!.body.stream).toBe(true);
    const [row] = await newRows(1);
    expect(row).toMatchObject({
      ...mine(), protocol: "openai", requested_model: "qwq-plus", model: "qwq-plus", upstream_model: "qwq-plus",
      prompt_tokens: 10, completion_tokens: 5, reasoning_tokens: 3, cost_pico: 500_000, status: "ok", estimated: 0,
    });
    expect(row!.ttft_ms).not.toBeNull();
  });

  it("gRPC, gRPC-Web and Connect: the protocol is recorded", async () => {
    const md = new grpc.Metadata();
    md.set("authorization", gw.authorization);
    sent++;
    await new Promise<void>((resolve, reject) => {
      const call = grpcClient.chat({ model: "qwen-3-30b", messages: HI }, md);
      call.on("data", () => {});
      call.on("error", reject);
      call.on("end", () => resolve());
    });
    const headers = { authorization: gw.authorization };
    for (const transport of [createGrpcWebTransport({ baseUrl: gw.url }), createConnectTransport({ baseUrl: gw.url })]) {
      sent++;
      for await (const _ of createClient(GatewayService, transport).chat({ model: "qwen-plus", messages: HI }, { headers })) { /* drain */ }
    }
    const rows = await newRows(3);
    expect(rows.map((r) => r.protocol)).toEqual(["grpc", "grpc-web", "connect"]);
    expect(rows[0]).toMatchObject({ ...mine(), requested_model: "qwen-3-30b", model: "qwen-3-30b-a3b-instruct", cost_pico: 6_000_000, status: "ok" });
    for (const r of rows.slice(1)) {
      expect(r).toMatchObject({ ...mine(), model: "qwen-plus", prompt_tokens: 10, completion_tokens: 5, cost_pico: 125_000, status: "ok" });
      expect(r.ttft_ms).not.toBeNull();
    }
  });
});

describe("failed and refused requests", () => {
  it("upstream 500, plain and streaming: status error with the error kind, no tokens, no cost", async () => {
    gw.fake.enqueue({ kind: "error", status: 500 }, { kind: "error", status: 500 });
    sent += 2;
    await expectError(client.chat.completions.create({ model: "qwen-plus", messages: HI }), InternalServerError);
    await expectError(client.chat.completions.create({ model: "qwen-plus", messages: HI, stream: true }), APIError);
    const rows = await newRows(2);
    for (const row of rows) {
      expect(row).toMatchObject({
        ...mine(), protocol: "openai", model: "qwen-plus", upstream_model: "qwen-plus", provider: PROVIDER,
        prompt_tokens: 0, completion_tokens: 0, cost_pico: 0, status: "error", error_kind: "upstream_error", attempts: 1,
      });
    }
  });

  it("refused by a rate limit (429): status rejected, rate_limited, the key and the resolved model", async () => {
    const limited = gw.app.accounts.createKey({ user: "usage-limited", name: "k", rpm: 1 });
    const c = new OpenAI({ apiKey: limited.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    sent += 3;
    const results = await Promise.allSettled([1, 2, 3].map(() => c.chat.completions.create({ model: "qwen-3-30b", messages: HI })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(RateLimitError);
    const rows = await newRows(3);
    const ok = rows.filter((r) => r.status === "ok");
    const rejected = rows.filter((r) => r.status === "rejected");
    expect(ok).toHaveLength(1);
    expect(rejected).toHaveLength(2);
    for (const row of rejected) {
      expect(row).toMatchObject({
        key_id: limited.record.id, user_id: limited.record.userId, protocol: "openai", requested_model: "qwen-3-30b",
        model: "qwen-3-30b-a3b-instruct", prompt_tokens: 0, completion_tokens: 0, cost_pico: 0,
        error_kind: "rate_limited", attempts: 0,
      });
    }
  });

  it("refused by a budget (429 insufficient_quota): status rejected", async () => {
    const poor = gw.app.accounts.createKey({ user: "usage-poor", name: "k", budgetUsd: "0.000001" });
    const c = new OpenAI({ apiKey: poor.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    gw.fake.enqueue({ kind: "reply", usage: { prompt_tokens: 100, completion_tokens: 100 } });
    sent += 2;
    await c.chat.completions.create({ model: "qwen-plus", messages: HI });
    await expectError(c.chat.completions.create({ model: "qwen-plus", messages: HI }), RateLimitError);
    const rows = await newRows(2);
    expect(rows[0]).toMatchObject({ key_id: poor.record.id, status: "ok", cost_pico: 2_000_000 });
    expect(rows[1]).toMatchObject({ key_id: poor.record.id, status: "rejected", error_kind: "insufficient_quota", cost_pico: 0 });
  });

  it("an answer from the cache charges no budget: its saved cost is reported, not spent, and it is a hit, not an error", async () => {
    const poor = gw.app.accounts.createKey({ user: "usage-cached", name: "k", budgetUsd: "0.000001" });
    // The row a hit writes (status cached, cost 0, what the answer cost in saved_pico), through a usage store on the gateway's database.
    const rowsOfHits = createUsageStore(gw.app.db);
    rowsOfHits.insert({
      ts: Date.now(), keyId: poor.record.id, userId: poor.record.userId, protocol: "openai", requestedModel: "qwen-plus", model: "qwen-plus",
      upstreamModel: "qwen-plus", provider: PROVIDER, promptTokens: 100, completionTokens: 100, cachedTokens: 0, reasoningTokens: 0,
      costPico: 0n, savedPico: 5_000_000n, latencyMs: 1, ttftMs: null, status: "cached", errorKind: null, estimated: false, attempts: 0,
    });
    rowsOfHits.flush();
    const c = new OpenAI({ apiKey: poor.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    gw.fake.enqueue({ kind: "reply", usage: { prompt_tokens: 10, completion_tokens: 10 } });
    sent += 2; // the request, and the hit's row inserted above
    await c.chat.completions.create({ model: "qwen-plus", messages: HI }); // 5e-6 USD saved would be over the budget: not charged
    const rows = await newRows(2);
    expect(rows.map((r) => r.status)).toEqual(["cached", "ok"]);
    const { rows: [summary] } = gw.app.accounts.usage("key", { keyId: poor.record.id });
    expect(summary).toMatchObject({ requests: 2, errors: 0, cached: 1, costPico: BigInt(cost("qwen-plus", 10, 10)), savedPico: 5_000_000n });
  });

  // A revoked key's chat does leave a row, under that key: test/server/outside-clients.test.ts.
  it("unauthenticated (401): no row (an unauthenticated flood must not fill the disk), counted at the door instead, on the shim and over gRPC", async () => {
    const bad = (apiKey: string) => new OpenAI({ apiKey, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const rowsBefore = (gw.app.db.prepare("SELECT COUNT(*) AS n FROM usage").get() as { n: number }).n;
    const refusalsBefore = gw.app.gate.refusals;
    await expectError(bad(`gw_live_${"x".repeat(32)}`).chat.completions.create({ model: "qwen-plus", messages: HI }), AuthenticationError);
    await expectError(bad("not-a-key").chat.completions.create({ model: "qwen-plus", messages: HI }), AuthenticationError);
    const status = await new Promise<number>((resolve) => {
      const call = grpcClient.chat({ model: "qwen-plus", messages: HI }, new grpc.Metadata());
      call.on("data", () => {});
      call.on("error", (e: grpc.ServiceError) => resolve(e.code));
      call.on("end", () => resolve(grpc.status.OK));
    });
    expect(status).toBe(grpc.status.UNAUTHENTICATED);
    await new Promise((r) => setTimeout(r, 20));
    expect((gw.app.db.prepare("SELECT COUNT(*) AS n FROM usage").get() as { n: number }).n).toBe(rowsBefore);
    expect(gw.app.gate.refusals - refusalsBefore).toBe(3);
    expect(gw.fake.requests).toHaveLength(0);
  });

  it("an invalid body (400): malformed JSON and a request without messages", async () => {
    sent += 2;
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: gw.authorization, "content-type": "application/json" },
      body: "{not json",
    });
    expect(res.status).toBe(400);
    await expectError(client.chat.completions.create({ model: "qwen-plus" } as never), BadRequestError);
    const rows = await newRows(2);
    expect(rows[0]).toMatchObject({ ...mine(), protocol: "openai", requested_model: "", model: null, status: "rejected", error_kind: "invalid_request" });
    expect(rows[1]).toMatchObject({ ...mine(), protocol: "openai", requested_model: "qwen-plus", status: "rejected", error_kind: "invalid_request" });
  });

  it("an unknown model (404): the requested name, no resolved model", async () => {
    sent++;
    await expectError(client.chat.completions.create({ model: "no-such-model", messages: HI }), NotFoundError);
    const [row] = await newRows(1);
    expect(row).toMatchObject({
      ...mine(), protocol: "openai", requested_model: "no-such-model", model: null, upstream_model: null, provider: null,
      status: "rejected", error_kind: "model_not_found", cost_pico: 0, attempts: 0,
    });
  });
});

describe("streams cut short", () => {
  const STREAMED = partialChunk(0) + partialChunk(1);

  it("a client cancel mid-stream (shim): status cancelled, the streamed tokens counted and marked estimated", async () => {
    gw.fake.enqueue({ kind: "stream-then-hang", chunks: 2 });
    const controller = new AbortController();
    sent++;
    const stream = await client.chat.completions.create({ model: "qwen-plus", messages: HI, stream: true }, { signal: controller.signal });
    let got = "";
    // The SDK's stream ends quietly (or throws APIUserAbortError) once aborted.
    const err = await (async () => {
      for await (const chunk of stream) {
        got += chunk.choices[0]?.delta?.content ?? "";
        if (got === STREAMED) controller.abort();
      }
    })().then(() => undefined, (e: unknown) => e);
    if (err !== undefined) expect(err).toBeInstanceOf(APIUserAbortError);
    expect(got).toBe(STREAMED);
    await gw.fake.waitForAbort(); // the upstream request was dropped too
    const [row] = await newRows(1);
    expect(row).toMatchObject({
      ...mine(), protocol: "openai", model: "qwen-plus", status: "cancelled", error_kind: "cancelled", estimated: 1,
      prompt_tokens: HI_PROMPT_TOKENS, completion_tokens: countTokens(STREAMED),
      cost_pico: cost("qwen-plus", HI_PROMPT_TOKENS, countTokens(STREAMED)),
    });
    expect(row!.completion_tokens).toBeGreaterThan(0);
    expect(row!.ttft_ms).not.toBeNull();
  });

  it("a client cancel mid-stream (gRPC): status cancelled with the streamed tokens", async () => {
    gw.fake.enqueue({ kind: "stream-then-hang", chunks: 2 });
    const md = new grpc.Metadata();
    md.set("authorization", gw.authorization);
    sent++;
    const got = await new Promise<string>((resolve) => {
      let text = "";
      const call = grpcClient.chat({ model: "qwen-plus", messages: HI }, md);
      call.on("data", (m) => {
        text += m.delta?.content ?? "";
        if (text === STREAMED) call.cancel();
      });
      call.on("error", () => resolve(text));
      call.on("end", () => resolve(text));
    });
    expect(got).toBe(STREAMED);
    const [row] = await newRows(1);
    expect(row).toMatchObject({
      ...mine(), protocol: "grpc", status: "cancelled", error_kind: "cancelled", estimated: 1, completion_tokens: countTokens(STREAMED),
    });
  });

  it("a client that gives up on a plain request while the upstream thinks: status cancelled", async () => {
    gw.fake.enqueue({ kind: "hang" });
    const controller = new AbortController();
    sent++;
    const pending = client.chat.completions.create({ model: "qwen-plus", messages: HI }, { signal: controller.signal });
    await gw.fake.waitForRequests(1);
    controller.abort();
    await expectError(pending, APIUserAbortError);
    const [row] = await newRows(1);
    expect(row).toMatchObject({ ...mine(), status: "cancelled", error_kind: "cancelled", completion_tokens: 0, cost_pico: 0 });
  });

  it("an upstream reset mid-stream: status error, the streamed tokens estimated", async () => {
    gw.fake.enqueue({ kind: "stream-then-reset", chunks: 2 });
    sent++;
    const stream = await client.chat.completions.create({ model: "qwen-plus", messages: HI, stream: true });
    let got = "";
    const err = await (async () => {
      for await (const chunk of stream) got += chunk.choices[0]?.delta?.content ?? "";
    })().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    expect(got).toBe(STREAMED);
    const [row] = await newRows(1);
    expect(row).toMatchObject({
      ...mine(), protocol: "openai", model: "qwen-plus", status: "error", error_kind: "upstream_error", estimated: 1,
      completion_tokens: countTokens(STREAMED), attempts: 1,
    });
  });

  it("an error event mid-stream over gRPC-Web: status error", async () => {
    gw.fake.enqueue({ kind: "stream-then-error", chunks: 2 });
    sent++;
    const grpcWeb = createClient(GatewayService, createGrpcWebTransport({ baseUrl: gw.url }));
    const err = await (async () => {
      for await (const _ of grpcWeb.chat({ model: "qwen-plus", messages: HI }, { headers: { authorization: gw.authorization } })) { /* drain */ }
    })().then(() => undefined, (e: unknown) => e);
    expect(err).toBeDefined();
    const [row] = await newRows(1);
    expect(row).toMatchObject({ ...mine(), protocol: "grpc-web", status: "error", error_kind: "upstream_error", completion_tokens: countTokens(STREAMED) });
  });
});

describe("upstreams that send no usage", () => {
  const ANSWER = "Hello from qwen-plus";

  it("plain and streaming: tokens counted by the tokenizer, marked estimated, priced", async () => {
    gw.fake.enqueue({ kind: "reply", usage: null }, { kind: "reply", usage: null });
    sent += 2;
    const plain = await client.chat.completions.create({ model: "qwen-plus", messages: HI });
    expect(plain.choices[0]!.message.content).toBe(ANSWER);
    const stream = await client.chat.completions.create({ model: "qwen-plus", messages: HI, stream: true });
    for await (const _ of stream) { /* drain */ }
    const rows = await newRows(2);
    const prompt = HI_PROMPT_TOKENS;
    const completion = countTokens(ANSWER);
    for (const row of rows) {
      expect(row).toMatchObject({
        ...mine(), status: "ok", estimated: 1, prompt_tokens: prompt, completion_tokens: completion,
        cached_tokens: 0, reasoning_tokens: 0, cost_pico: cost("qwen-plus", prompt, completion),
      });
    }
    expect(rows[0]!.completion_tokens).toBeGreaterThan(0);
  });
});

describe("the whole file", () => {
  it("wrote exactly one row per chat request sent", async () => {
    const count = () => (gw.app.db.prepare("SELECT COUNT(*) AS n FROM usage").get() as { n: number }).n;
    expect(sent).toBeGreaterThan(20);
    await new Promise((r) => setTimeout(r, 50));
    expect(count()).toBe(sent);
  });
});

// Last, so the whole-file count above stays about the paths before it.
describe("requests the RPC framework refuses before the service runs", () => {
  it("an invalid message over Connect (an unknown field): one row too", async () => {
    // A Connect server-streaming request: one enveloped JSON message.
    const json = new TextEncoder().encode(JSON.stringify({ model: "qwen-plus", messages: HI, max_token: 5 }));
    const body = new Uint8Array(5 + json.length);
    new DataView(body.buffer).setUint32(1, json.length);
    body.set(json, 5);
    const res = await fetch(`${gw.url}/gatewayz.v1.GatewayService/Chat`, {
      method: "POST",
      headers: { authorization: gw.authorization, "content-type": "application/connect+json" },
      body,
    });
    const text = await res.text();
    expect(text).toMatch(/invalid_argument/);
    const [row] = await newRows(1);
    expect(row).toMatchObject({ ...mine(), protocol: "connect", status: "rejected", error_kind: "invalid_request" });
  });
});
