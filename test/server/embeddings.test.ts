/**
 * POST /v1/embeddings end to end: the real `openai` SDK (and raw fetch where the SDK hides the
 * wire) against a real gateway whose DashScope is the fake, which refuses more than 10 inputs
 * per request and any encoding but float, as DashScope does.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { fakeEmbedding, fakeTokens } from "../support/fake-embeddings.js";
import { newUsageRows } from "../support/new-usage-rows.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const MODEL = "text-embedding-v4";
/** $0.07 per 1M input tokens, in pico-USD per token. */
const PICO_PER_TOKEN = 70_000;

let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  gw = await startTestGateway();
  client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.close();
});
beforeEach(() => {
  gw.fake.reset();
  usage.mark();
});

type Row = Record<string, unknown>;

/** The usage rows written since the test began: the answer follows its row, so they are there already. */
const usage = newUsageRows(() => gw.app.db);
const rows = (): Row[] => usage.rows<Row>();

function post(body: unknown, init: { authorization?: string; signal?: AbortSignal } = {}): Promise<Response> {
  return fetch(`${gw.url}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: init.authorization ?? gw.authorization },
    body: JSON.stringify(body),
    signal: init.signal,
  });
}

/** Little-endian float32 bytes in base64, back to numbers. */
function decodeBase64(text: string): number[] {
  const buf = Buffer.from(text, "base64");
  return Array.from({ length: buf.length / 4 }, (_, i) => buf.readFloatLE(i * 4));
}

describe("embeddings", () => {
  it("float: one vector per input in OpenAI's shape, usage, provider headers, and one usage row", async () => {
    const input = ["first text", "second, longer text"];
    const { data, response } = await client.embeddings.create({ model: MODEL, input, encoding_format: "float" }).withResponse();
    expect(Object.keys(data).sort()).toEqual(["data", "model", "object", "usage"]);
    expect(data.object).toBe("list");
    expect(data.model).toBe(MODEL);
    expect(data.data).toEqual(input.map((text, index) => ({ object: "embedding", index, embedding: fakeEmbedding(text) })));
    const tokens = fakeTokens(input[0]!) + fakeTokens(input[1]!);
    expect(data.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });
    expect(response.headers.get("x-gatewayz-provider")).toBe("alibaba-cloud");
    expect(response.headers.get("x-gatewayz-model")).toBe(MODEL);
    expect(response.headers.get("x-gatewayz-attempts")).toBe("1");
    const [upstream] = gw.fake.requests;
    expect(upstream!.path).toBe("/compatible-mode/v1/embeddings");
    expect(upstream!.body).toEqual({ model: MODEL, input, encoding_format: "float" });
    expect(rows()).toMatchObject([{
      operation: "embeddings", protocol: "openai", status: "ok", requested_model: MODEL, model: MODEL, provider: "alibaba-cloud",
      prompt_tokens: tokens, completion_tokens: 0, cost_pico: tokens * PICO_PER_TOKEN, attempts: 1, estimated: 0,
    }]);
  });

  it("base64, as OpenAI encodes it (little-endian float32), decodes to the float vectors; upstream is asked for floats", async () => {
    const res = await post({ model: MODEL, input: "hello", encoding_format: "base64" });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: Array<{ embedding: string }> };
    expect(typeof body.data[0]!.embedding).toBe("string");
    expect(decodeBase64(body.data[0]!.embedding)).toEqual(fakeEmbedding("hello"));
    // The SDK's default is base64, which it decodes itself.
    const sdk = await client.embeddings.create({ model: MODEL, input: "hello" });
    expect(sdk.data[0]!.embedding).toEqual(fakeEmbedding("hello"));
    expect(gw.fake.requests.map((r) => r.body.encoding_format)).toEqual(["float", "float"]);
  });

  it("dimensions: vectors of the size asked for", async () => {
    const res = await client.embeddings.create({ model: MODEL, input: ["a"], dimensions: 256, encoding_format: "float" });
    expect(res.data[0]!.embedding).toEqual(fakeEmbedding("a", 256));
    expect(gw.fake.requests[0]!.body.dimensions).toBe(256);
  });

  it("23 inputs go upstream as 10 + 10 + 3 and come back in order, with one usage row of the summed tokens and cost", async () => {
    const input = Array.from({ length: 23 }, (_, i) => `input number ${i} ${"x".repeat(i)}`);
    const res = await client.embeddings.create({ model: MODEL, input, encoding_format: "float" });
    expect(res.data.map((d) => d.index)).toEqual(input.map((_, i) => i));
    expect(res.data.map((d) => d.embedding)).toEqual(input.map((t) => fakeEmbedding(t)));
    const sent = gw.fake.requests.map((r) => r.body.input as string[]).sort((a, b) => input.indexOf(a[0]!) - input.indexOf(b[0]!));
    expect(sent.map((b) => b.length)).toEqual([10, 10, 3]);
    expect(sent.flat()).toEqual(input);
    const tokens = input.reduce((n, t) => n + fakeTokens(t), 0);
    expect(res.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });
    expect(rows()).toMatchObject([{ operation: "embeddings", status: "ok", prompt_tokens: tokens, cost_pico: tokens * PICO_PER_TOKEN, attempts: 1 }]);
  });

  it("an upstream that sends no usage: the tokens are counted by the gateway and the row says estimated", async () => {
    gw.fake.enqueue({ kind: "reply", usage: null });
    const res = await client.embeddings.create({ model: MODEL, input: "hello world", encoding_format: "float" });
    expect(res.usage.prompt_tokens).toBeGreaterThan(0);
    expect(rows()).toMatchObject([{ operation: "embeddings", status: "ok", estimated: 1, prompt_tokens: res.usage.prompt_tokens }]);
  });

  it("/v1/models says which kind each model is, and an embedding model's sizes", async () => {
    const list = (await (await fetch(`${gw.url}/v1/models`, { headers: { authorization: gw.authorization } })).json()) as { data: Row[] };
    const byId = new Map(list.data.map((m) => [m.id, m]));
    expect(byId.get(MODEL)).toMatchObject({ kind: "embedding", dimensions: [2048, 1536, 1024, 768, 512, 256, 128, 64], default_dimensions: 1024 });
    expect(byId.get("qwen-plus")).toMatchObject({ kind: "chat" });
    expect(byId.get("qwen-plus")).not.toHaveProperty("dimensions");
  });
});

describe("bad requests: OpenAI's error shape, the param at fault, nothing sent upstream, one row each", () => {
  const many = Array.from({ length: 2049 }, () => "x");
  it.each([
    ["no input", { model: MODEL }, "input", /input is required/],
    ["an empty string", { model: MODEL, input: "" }, "input", /empty string/],
    ["an empty array", { model: MODEL, input: [] }, "input", /empty array/],
    ["an empty string in the list", { model: MODEL, input: ["a", ""] }, "input", /input\[1\] must not be an empty string/],
    ["more than 2048 inputs", { model: MODEL, input: many }, "input", /2049 items; at most 2048/],
    ["a mixed list", { model: MODEL, input: ["a", 5] }, "input", /input\[1\] is not a string/],
    ["token ids, which DashScope's models do not take", { model: MODEL, input: [[1, 2, 3], [4, 5]] }, "input", /takes text only/],
    ["a single token array", { model: MODEL, input: [1, 2, 3] }, "input", /takes text only/],
    ["a size the model does not make", { model: MODEL, input: "a", dimensions: 100 }, "dimensions", /2048, 1536, 1024, 768, 512, 256, 128, 64 dimensions/],
    ["dimensions not a number", { model: MODEL, input: "a", dimensions: "big" }, "dimensions", /positive integer/],
    ["an unknown encoding", { model: MODEL, input: "a", encoding_format: "int8" }, "encoding_format", /'float' or 'base64'/],
    ["no model", { input: "a" }, "model", /model is required/],
    ["user not a string", { model: MODEL, input: "a", user: 5 }, "user", /user must be a string/],
    ["a chat model", { model: "qwen-plus", input: "a" }, "model", /'qwen-plus' is a chat model.*POST \/v1\/chat\/completions/],
  ])("%s", async (_, body, param, message) => {
    const res = await post(body);
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: { message: string; type: string; param: string; code: string } };
    expect(error).toMatchObject({ type: "invalid_request_error", param, code: "invalid_request" });
    expect(error.message).toMatch(message);
    expect(gw.fake.requests).toHaveLength(0);
    expect(rows()).toMatchObject([{ operation: "embeddings", status: "rejected", error_kind: "invalid_request" }]);
  });

  it("an embedding model asked to chat is a 400 that says so", async () => {
    const err = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("model");
    expect((err as Error).message).toMatch(/is an embedding model.*POST \/v1\/embeddings/);
  });

  it("an unknown model is a 404, and a body that is not JSON a 400, each with its row", async () => {
    expect((await post({ model: "text-embedding-v9", input: "a" })).status).toBe(404);
    const bad = await fetch(`${gw.url}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json", authorization: gw.authorization }, body: "{" });
    expect(bad.status).toBe(400);
    expect(rows()).toMatchObject([
      { operation: "embeddings", error_kind: "model_not_found" },
      { operation: "embeddings", error_kind: "invalid_request" },
    ]);
  });
});

describe("upstream failures and cancels", () => {
  it("an upstream failure is OpenAI's error, with one row", async () => {
    gw.fake.enqueue({ kind: "error", status: 503 });
    const res = await post({ model: MODEL, input: "a" });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("upstream_unavailable");
    expect(rows()).toMatchObject([{ operation: "embeddings", status: "error", error_kind: "upstream_unavailable", attempts: 1 }]);
  });

  it("a malformed upstream answer is a 502 upstream_error", async () => {
    gw.fake.enqueue({ kind: "raw", status: 200, body: '{"data": [{"index": 0, "embedding": "AAAA"}]}', headers: { "content-type": "application/json" } });
    const res = await post({ model: MODEL, input: "a" });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/not a list of embeddings/);
    expect(rows()).toMatchObject([{ operation: "embeddings", status: "error", error_kind: "upstream_error" }]);
  });

  it("one failed batch fails the whole request: no partial answer, one row", async () => {
    gw.fake.enqueue({ kind: "reply" }, { kind: "error", status: 400, message: "bad batch" });
    const res = await post({ model: MODEL, input: Array.from({ length: 15 }, (_, i) => `t${i}`) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/bad batch/);
    expect(rows()).toMatchObject([{ operation: "embeddings", status: "error", error_kind: "invalid_request" }]);
  });

  it("a batch the provider asks to retry: the attempt is retried with every batch, so one provider makes every vector", async () => {
    gw.fake.enqueue({ kind: "error", status: 429, headers: { "retry-after-ms": "20" } }, { kind: "reply", firstByteDelayMs: 50 });
    const input = Array.from({ length: 12 }, (_, i) => `t${i}`);
    const res = await client.embeddings.create({ model: MODEL, input, encoding_format: "float" }).withResponse();
    expect(res.data.data.map((d) => d.embedding)).toEqual(input.map((t) => fakeEmbedding(t)));
    expect(res.response.headers.get("x-gatewayz-attempts")).toBe("2");
    // The failed attempt's other batch was aborted, then both went again.
    await gw.fake.waitForAbort(1000);
    expect(gw.fake.requests.filter((r) => r.aborted)).toHaveLength(1);
    expect(gw.fake.requests.slice(2).map((r) => r.body.input.length).sort((a, b) => a - b)).toEqual([2, 10]);
    const tokens = input.reduce((n, t) => n + fakeTokens(t), 0);
    expect(rows()).toMatchObject([{ operation: "embeddings", status: "ok", attempts: 2, prompt_tokens: tokens }]);
  });

  it("a client cancel aborts the upstream request", async () => {
    gw.fake.enqueue({ kind: "hang" });
    const ac = new AbortController();
    const pending = client.embeddings.create({ model: MODEL, input: "a" }, { signal: ac.signal });
    await gw.fake.waitForRequests(1);
    ac.abort();
    await expect(pending).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
    const aborted = await gw.fake.waitForAbort(1000);
    expect(aborted.path).toBe("/compatible-mode/v1/embeddings");
    await expect.poll(() => rows()).toMatchObject([{ operation: "embeddings", status: "cancelled" }]);
  });

  it("a revoked key is a 401, and its row says embeddings", async () => {
    const { key, record } = gw.app.accounts.createKey({ user: "revoked", name: "old" });
    gw.app.accounts.revokeKey(record.id);
    const res = await post({ model: MODEL, input: "a" }, { authorization: `Bearer ${key}` });
    expect(res.status).toBe(401);
    expect(rows()).toMatchObject([{ operation: "embeddings", key_id: record.id, status: "rejected", error_kind: "unauthenticated" }]);
  });
});

describe("rate limits and budgets, as for chat", () => {
  let users = 0;
  const keyWith = (limits: { rpm?: number; tpm?: number; budgetUsd?: string }) =>
    gw.app.accounts.createKey({ user: `embed-limits-${++users}`, name: "k", ...limits }).key;
  const embedWith = (key: string, input: string | string[]) =>
    new OpenAI({ apiKey: key, baseURL: `${gw.url}/v1`, maxRetries: 0 }).embeddings.create({ model: MODEL, input, encoding_format: "float" }).withResponse();
  const refusal = (p: Promise<unknown>) => p.then(() => { throw new Error("expected a 429"); }, (e: unknown) => e as InstanceType<typeof OpenAI.RateLimitError>);

  it("requests per minute: limit headers on every answer, then a 429 with Retry-After", async () => {
    if (60_000 - (Date.now() % 60_000) < 3_000) await new Promise((r) => setTimeout(r, 3_100)); // not across two minutes
    const key = keyWith({ rpm: 2 });
    const first = await embedWith(key, "a");
    expect(first.response.headers.get("x-ratelimit-limit-requests")).toBe("2");
    expect(first.response.headers.get("x-ratelimit-remaining-requests")).toBe("1");
    await embedWith(key, "b");
    const err = await refusal(embedWith(key, "c"));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err).toMatchObject({ status: 429, code: "rate_limit_exceeded", type: "requests" });
    expect(Number(err.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(gw.fake.requests).toHaveLength(2);
    expect(rows().map((r) => [r.operation, r.status, r.error_kind])).toEqual([
      ["embeddings", "ok", null], ["embeddings", "ok", null], ["embeddings", "rejected", "rate_limited"],
    ]);
  });

  it("tokens per minute count the input tokens: reserved from the text, settled to the upstream's count", async () => {
    const key = keyWith({ tpm: 100 });
    const text = "x".repeat(60); // reserves 20, the fake counts 15
    const { response } = await embedWith(key, text);
    expect(response.headers.get("x-ratelimit-limit-tokens")).toBe("100");
    expect(response.headers.get("x-ratelimit-remaining-tokens")).toBe("80");
    const next = await embedWith(key, text);
    expect(next.response.headers.get("x-ratelimit-remaining-tokens")).toBe(String(100 - fakeTokens(text) - 20));
    const err = await refusal(embedWith(key, "y".repeat(400))); // 134 tokens: more than the whole limit
    expect(err).toMatchObject({ status: 429, code: "rate_limit_exceeded", type: "tokens" });
    expect(gw.fake.requests).toHaveLength(2);
  });

  it("a budget is charged the embeddings' cost: once used up, 429 insufficient_quota", async () => {
    const key = keyWith({ budgetUsd: "0.000001" }); // 1 000 000 pico; 15 tokens cost 1 050 000
    await embedWith(key, "x".repeat(60));
    const err = await refusal(embedWith(key, "a"));
    expect(err).toMatchObject({ status: 429, code: "insufficient_quota" });
    expect(err.message).toMatch(/budget of \$0\.000001 is used up \(\$0\.00000105 spent\)/);
  });
});
