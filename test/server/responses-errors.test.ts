// /v1/responses when things go wrong or are limited: OpenAI's error shape
// with the right status and param, unsupported options named, a stream cut
// after its first bytes ending in response.failed + error (never
// response.completed), rate limits and budgets as on chat, a client cancel
// aborting the upstream, and one usage row per request with operation "responses".

import OpenAI, { APIError, RateLimitError } from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { KeyOptions } from "../../src/core/accounts.js";
import { newUsageRows } from "../support/new-usage-rows.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

let gw: TestGateway;
let client: OpenAI;
let users = 0;

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

interface Row { operation: string; protocol: string; status: string; error_kind: string | null; prompt_tokens: number; completion_tokens: number }
const usage = newUsageRows(() => gw.app.db, "operation, protocol, status, error_kind, prompt_tokens, completion_tokens");
const rows = () => usage.rows<Row>();

function post(body: unknown, authorization = gw.authorization) {
  return fetch(`${gw.url}/v1/responses`, { method: "POST", headers: { authorization, "content-type": "application/json" }, body: JSON.stringify(body) });
}

/** SSE frames of a Responses stream, as parsed events. */
async function frames(res: Response): Promise<Array<{ type: string; [k: string]: any }>> {
  const text = await res.text();
  return text.trim().split("\n\n").map((f) => JSON.parse(f.split("\n")[1]!.slice("data: ".length)));
}

/** The error a call fails with (the test fails if it succeeds). */
const failure = <E = APIError>(p: Promise<unknown>): Promise<E> => p.then(() => { throw new Error("expected the call to fail"); }, (e: unknown) => e as E);

const newKey = (limits: Partial<KeyOptions>) => gw.app.accounts.createKey({ user: `responses-limits-${++users}`, name: "k", ...limits }).key;
const sdk = (key: string) => new OpenAI({ apiKey: key, baseURL: `${gw.url}/v1`, maxRetries: 0 });

describe("bad requests", () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ["no input", { model: "qwen-max" }, "input"],
    ["no model", { input: "x" }, "model"],
    ["an empty input list", { model: "qwen-max", input: [] }, "input"],
    ["a temperature that is not a number", { model: "qwen-max", input: "x", temperature: "hot" }, "temperature"],
    ["max_output_tokens below 16", { model: "qwen-max", input: "x", max_output_tokens: 5 }, "max_output_tokens"],
    ["stream not a boolean", { model: "qwen-max", input: "x", stream: "yes" }, "stream"],
    ["an unknown parameter", { model: "qwen-max", input: "x", max_tokens: 5 }, "max_tokens"],
    ["17 metadata keys", { model: "qwen-max", input: "x", metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"])) }, "metadata"],
    ["a metadata value that is not a string", { model: "qwen-max", input: "x", metadata: { k: 1 } }, "metadata.k"],
    ["a metadata value over 512 characters", { model: "qwen-max", input: "x", metadata: { k: "v".repeat(513) } }, "metadata.k"],
    ["an unknown item type", { model: "qwen-max", input: [{ type: "bogus" }] }, "input[0].type"],
    ["an unknown role", { model: "qwen-max", input: [{ role: "robot", content: "x" }] }, "input[0].role"],
    ["a function_call_output without call_id", { model: "qwen-max", input: [{ type: "function_call_output", output: "x" }] }, "input[0].call_id"],
    ["an image by file id", { model: "qwen-vl", input: [{ role: "user", content: [{ type: "input_image", file_id: "file_1" }] }] }, "input[0].content[0].file_id"],
    ["json_schema without a name", { model: "qwen-max", input: "x", text: { format: { type: "json_schema", schema: {} } } }, "text.format.name"],
    ["an unknown effort", { model: "qwen-plus", input: "x", reasoning: { effort: "ultra" } }, "reasoning.effort"],
    ["a function tool without a name", { model: "qwen-max", input: "x", tools: [{ type: "function" }] }, "tools[0].name"],
  ];
  for (const [what, body, param] of cases) {
    it(`${what}: 400 with param ${param}, and a usage row`, async () => {
      const res = await post(body);
      expect(res.status).toBe(400);
      const { error } = await res.json() as { error: Record<string, unknown> };
      expect(error).toMatchObject({ type: "invalid_request_error", param });
      expect(typeof error.message).toBe("string");
      expect(rows()).toMatchObject([{ operation: "responses", protocol: "openai", status: "rejected", error_kind: "invalid_request" }]);
      expect(gw.fake.requests).toHaveLength(0);
    });
  }

  it("an unknown model is 404 model_not_found", async () => {
    const res = await post({ model: "no-such-model", input: "x" });
    expect(res.status).toBe(404);
    expect((await res.json()).error).toMatchObject({ code: "model_not_found", param: "model" });
  });

  it("built-in tools and OpenAI-only options are a 400 naming them", async () => {
    const named = async (body: Record<string, unknown>, param: string, words: string) => {
      const err = await failure(client.responses.create({ model: "qwen-max", input: "x", ...body } as never));
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err.param).toBe(param);
      expect(err.message).toContain(words);
    };
    await named({ tools: [{ type: "web_search" }] }, "tools[0].type", "'web_search' tool is not supported");
    await named({ tools: [{ type: "function", name: "f", parameters: {} }, { type: "file_search", vector_store_ids: ["vs_1"] }] }, "tools[1].type", "'file_search'");
    await named({ tool_choice: { type: "web_search_preview" } }, "tool_choice.type", "web_search_preview");
    await named({ background: true }, "background", "Background mode");
    await named({ conversation: "conv_1" }, "conversation", "Conversations API");
    await named({ top_logprobs: 3 }, "top_logprobs", "Log probabilities");
    expect(gw.fake.requests).toHaveLength(0);
  });

  it("a revoked key is 401, and its row says responses", async () => {
    const made = gw.app.accounts.createKey({ user: "revoked-responses", name: "k" });
    gw.app.accounts.revokeKey(made.record.id);
    const res = await post({ model: "qwen-max", input: "x" }, `Bearer ${made.key}`);
    expect(res.status).toBe(401);
    expect(rows()).toMatchObject([{ operation: "responses", status: "rejected", error_kind: "unauthenticated" }]);
  });

  it("GET of a route the API does not have is 404; a wrong method too", async () => {
    const auth = { authorization: gw.authorization };
    expect((await fetch(`${gw.url}/v1/responses/resp_1/other`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${gw.url}/v1/responses`, { headers: auth })).status).toBe(404);
  });
});

describe("failures", () => {
  it("an upstream error before the first byte is a plain HTTP error, as with OpenAI", async () => {
    gw.fake.enqueue({ kind: "error", status: 500 });
    const err = await failure(client.responses.create({ model: "qwen-max", input: "x", stream: true }));
    expect(err.status).toBe(502);
    expect(rows()).toMatchObject([{ operation: "responses", status: "error" }]);
  });

  it("a stream cut after its first bytes ends with response.failed and an error event, never response.completed", async () => {
    gw.fake.enqueue({ kind: "stream-then-error", chunks: 2 });
    const events = await frames(await post({ model: "qwen-max", input: "x", stream: true }));
    const types = events.map((e) => e.type);
    expect(types.slice(-2)).toEqual(["response.failed", "error"]);
    expect(types).not.toContain("response.completed");
    expect(types.filter((t) => t === "response.output_text.delta")).toHaveLength(2);
    expect(events.at(-2)!.response).toMatchObject({ status: "failed", error: { code: "server_error" } });
    expect(events.at(-1)).toMatchObject({ code: "upstream_error", error: { type: "server_error", code: "upstream_error" } });
    expect(rows()).toMatchObject([{ operation: "responses", status: "error", error_kind: "upstream_error" }]);
    expect(rows()).toHaveLength(1);
    // Stored as it ended, as OpenAI keeps a failed response: its partial text and its error.
    const kept = await client.responses.retrieve(events.at(-2)!.response.id);
    expect(kept).toMatchObject({ status: "failed", error: { code: "server_error" } });
    expect(kept.output_text.length).toBeGreaterThan(0);
  });

  it("openai-node raises the cut as an error, in responses.create and responses.stream", async () => {
    gw.fake.enqueue({ kind: "stream-then-reset", chunks: 1 }, { kind: "stream-then-reset", chunks: 1 });
    const seen: string[] = [];
    const iterate = async () => {
      for await (const e of await client.responses.create({ model: "qwen-max", input: "x", stream: true })) seen.push(e.type);
    };
    await expect(iterate()).rejects.toBeInstanceOf(OpenAI.APIError);
    expect(seen).toContain("response.failed");
    await expect(client.responses.stream({ model: "qwen-max", input: "x" }).finalResponse()).rejects.toBeTruthy();
    expect(rows().map((r) => r.status)).toEqual(["error", "error"]);
  });

  it("a client cancel aborts the upstream request, streaming or not", async () => {
    gw.fake.enqueue({ kind: "stream-then-hang", chunks: 1 });
    const ac = new AbortController();
    const stream = await client.responses.create({ model: "qwen-max", input: "x", stream: true }, { signal: ac.signal });
    const reading = (async () => {
      for await (const e of stream) if (e.type === "response.output_text.delta") ac.abort();
    })();
    await reading.catch((e: unknown) => expect(e).toBeInstanceOf(OpenAI.APIUserAbortError));
    expect((await gw.fake.waitForAbort(2000)).body.stream).toBe(true);
    gw.fake.reset();
    gw.fake.enqueue({ kind: "hang" });
    const ac2 = new AbortController();
    const pending = client.responses.create({ model: "qwen-max", input: "x" }, { signal: ac2.signal });
    await gw.fake.waitForRequests(1);
    ac2.abort();
    await expect(pending).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
    await gw.fake.waitForAbort(2000);
    await expect.poll(() => rows().map((r) => r.status)).toEqual(["cancelled", "cancelled"]);
  });
});

describe("usage, limits and budgets", () => {
  it("a success leaves one row with operation responses, the door and the tokens", async () => {
    gw.fake.enqueue({ kind: "reply", usage: { prompt_tokens: 7, completion_tokens: 3 } }, { kind: "reply", usage: { prompt_tokens: 8, completion_tokens: 2 } });
    await client.responses.create({ model: "qwen-max", input: "x" });
    await client.responses.stream({ model: "qwen-max", input: "x" }).finalResponse();
    expect(rows()).toEqual([
      { operation: "responses", protocol: "openai", status: "ok", error_kind: null, prompt_tokens: 7, completion_tokens: 3 },
      { operation: "responses", protocol: "openai", status: "ok", error_kind: null, prompt_tokens: 8, completion_tokens: 2 },
    ]);
  });

  it("rpm: limit headers on the answer, then 429 with Retry-After", async () => {
    const left = 60_000 - (Date.now() % 60_000);
    if (left < 3_000) await new Promise((r) => setTimeout(r, left + 50));
    const c = sdk(newKey({ rpm: 1 }));
    const { response } = await c.responses.create({ model: "qwen-max", input: "x" }).withResponse();
    expect(response.headers.get("x-ratelimit-limit-requests")).toBe("1");
    expect(response.headers.get("x-ratelimit-remaining-requests")).toBe("0");
    const err = await failure<RateLimitError>(c.responses.create({ model: "qwen-max", input: "x", stream: true }));
    expect(err).toBeInstanceOf(RateLimitError);
    expect(err.code).toBe("rate_limit_exceeded");
    expect(Number(err.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(rows().map((r) => [r.operation, r.status])).toEqual([["responses", "ok"], ["responses", "rejected"]]);
  });

  it("a used-up budget is 429 insufficient_quota", async () => {
    const c = sdk(newKey({ budgetUsd: "0.000001" }));
    gw.fake.enqueue({ kind: "reply", usage: { prompt_tokens: 100, completion_tokens: 100 } });
    await c.responses.create({ model: "qwen-plus", input: "x" });
    const err = await failure<RateLimitError>(c.responses.create({ model: "qwen-plus", input: "x" }));
    expect(err).toBeInstanceOf(RateLimitError);
    expect(err.code).toBe("insufficient_quota");
    expect(err.message).toMatch(/budget of \$0\.000001 is used up/);
  });
});
