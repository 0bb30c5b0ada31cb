/**
 * Self-test for the fake upstream, driven by the real `openai` client: if openai-node accepts
 * what the fake sends, the gateway's tests are exercising a faithful copy of the wire format.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import OpenAI from "openai";
import type { ChatCompletionChunk, ChatCompletionCreateParamsNonStreaming } from "openai/resources/chat/completions";
import { startFakeUpstream, partialChunk, type FakeUpstream } from "./fake-upstream.js";

const params: ChatCompletionCreateParamsNonStreaming = {
  model: "qwen-plus",
  messages: [{ role: "user", content: "hi" }],
};

async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const c of stream) out.push(c);
  return out;
}

const contentOf = (chunks: ChatCompletionChunk[]) => chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");

/** Await a promise expected to reject and hand back the error for assertions. */
async function failure(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe("fake upstream", () => {
  let fake: FakeUpstream;
  let client: OpenAI;

  beforeAll(async () => {
    fake = await startFakeUpstream({ streamOnlyModels: ["qwq-plus"], hybridThinkingModels: ["qwen3-hybrid"] });
    client = new OpenAI({ apiKey: "sk-fake", baseURL: fake.baseUrl, maxRetries: 0 });
  });
  afterEach(() => {
    fake.reset();
    fake.apiKey = "sk-fake";
  });
  afterAll(async () => {
    await fake.close();
  });

  it("non-streaming reply has OpenAI's fields and usage, and the request is recorded", async () => {
    const res = await client.chat.completions.create(params);
    expect(res.id).toMatch(/^chatcmpl-/);
    expect(res.object).toBe("chat.completion");
    expect(res.model).toBe("qwen-plus");
    expect(res.choices[0]!.message).toEqual({ role: "assistant", content: "Hello from qwen-plus" });
    expect(res.choices[0]!.finish_reason).toBe("stop");
    expect(res.usage).toEqual({
      prompt_tokens: 10,
      completion_tokens: 5,
      total_tokens: 15,
      prompt_tokens_details: { cached_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0 },
    });
    const [rec] = fake.requests;
    expect(rec).toMatchObject({ method: "POST", path: "/compatible-mode/v1/chat/completions", aborted: false });
    expect(rec!.headers.authorization).toBe("Bearer sk-fake");
    expect(rec!.body).toMatchObject(params);
  });

  it("reply behaviour controls content, reasoning, usage; queue beats onModel beats default", async () => {
    fake.onModel("qwen-plus", { kind: "reply", content: "override" });
    fake.enqueue({ kind: "reply", content: "queued", reasoning: "think", usage: { prompt_tokens: 3, completion_tokens: 4, cached_tokens: 2, reasoning_tokens: 1 } });
    const first = await client.chat.completions.create(params);
    expect(first.choices[0]!.message.content).toBe("queued");
    expect((first.choices[0]!.message as any).reasoning_content).toBe("think");
    expect(first.usage).toMatchObject({ total_tokens: 7, prompt_tokens_details: { cached_tokens: 2 }, completion_tokens_details: { reasoning_tokens: 1 } });
    const second = await client.chat.completions.create(params);
    expect(second.choices[0]!.message.content).toBe("override");

    fake.enqueue({ kind: "reply", usage: null });
    const noUsage = await client.chat.completions.create({ ...params, model: "other" });
    expect(noUsage.usage).toBeUndefined();
  });

  it("streams content in several chunks with no usage unless include_usage is set", async () => {
    const chunks = await collect(await client.chat.completions.create({ ...params, stream: true }));
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: "assistant", content: "" });
    expect(chunks.filter((c) => c.choices[0]?.delta.content).length).toBeGreaterThanOrEqual(3);
    expect(contentOf(chunks)).toBe("Hello from qwen-plus");
    const last = chunks.at(-1)!;
    expect(last.choices[0]).toMatchObject({ delta: {}, finish_reason: "stop" });
    expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0]!.id)).toBe(true);
    expect(chunks.some((c) => "usage" in c)).toBe(false);
  });

  it("with include_usage, sends a final choices:[] usage chunk (and usage:null before it)", async () => {
    const chunks = await collect(
      await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } }),
    );
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 });
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe("stop");
  });

  it("streams reasoning_content before content", async () => {
    fake.enqueue({ kind: "reply", reasoning: "Let me think about it", content: "Answer here", chunkDelayMs: 1 });
    const chunks = await collect(await client.chat.completions.create({ ...params, stream: true }));
    const reasoning = chunks.map((c) => (c.choices[0]?.delta as any)?.reasoning_content ?? "");
    expect(reasoning.filter(Boolean).length).toBeGreaterThan(1);
    expect(reasoning.join("")).toBe("Let me think about it");
    const firstContent = chunks.findIndex((c) => c.choices[0]?.delta.content);
    const lastReasoning = reasoning.findLastIndex(Boolean);
    expect(lastReasoning).toBeLessThan(firstContent);
    expect(contentOf(chunks)).toBe("Answer here");
  });

  it("streams tool calls as OpenAI fragments that openai-node reassembles", async () => {
    const toolCalls = [
      { id: "call_1", name: "get_weather", arguments: '{"city":"Paris","unit":"c"}' },
      { id: "call_2", name: "get_time", arguments: '{"tz":"CET"}' },
    ];
    fake.enqueue({ kind: "reply", toolCalls });
    const chunks = await collect(await client.chat.completions.create({ ...params, stream: true }));
    const frags = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(frags[0]).toEqual({ index: 0, id: "call_1", type: "function", function: { name: "get_weather", arguments: "" } });
    expect(frags[1]).toEqual({ index: 0, function: { arguments: expect.any(String) } });
    expect(frags.filter((f) => f.index === 0).length).toBeGreaterThan(2);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("tool_calls");

    // The SDK's own accumulator validates the fragments (type/name/arguments present).
    fake.enqueue({ kind: "reply", toolCalls });
    const final = await client.chat.completions.stream({ ...params, stream: true }).finalChatCompletion();
    expect(final.choices[0]!.message.tool_calls).toMatchObject(
      toolCalls.map((t) => ({ id: t.id, type: "function", function: { name: t.name, arguments: t.arguments } })),
    );

    fake.enqueue({ kind: "reply", toolCalls });
    const nonStream = await client.chat.completions.create(params);
    expect(nonStream.choices[0]!.message.content).toBeNull();
    expect(nonStream.choices[0]!.finish_reason).toBe("tool_calls");
    expect(nonStream.choices[0]!.message.tool_calls).toHaveLength(2);
  });

  it("error behaviour becomes an OpenAI.APIError with status, message and headers", async () => {
    fake.enqueue({ kind: "error", status: 429, message: "slow down", code: "rate_limit_exceeded", headers: { "retry-after": "1" } });
    const err = await failure(client.chat.completions.create(params));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err).toMatchObject({ status: 429, code: "rate_limit_exceeded", type: "invalid_request_error" });
    expect(err.message).toBe("429 slow down");
    expect(err.headers.get("retry-after")).toBe("1");

    fake.enqueue({ kind: "error", status: 503 });
    const err2 = await failure(client.chat.completions.create({ ...params, stream: true }));
    expect(err2).toBeInstanceOf(OpenAI.APIError);
    expect(err2).toMatchObject({ status: 503, type: "server_error", message: "503 fake upstream error 503" });
  });

  it("raw behaviour sends its status, headers and body verbatim", async () => {
    fake.enqueue({ kind: "raw", status: 502, body: "<html>Bad Gateway</html>", headers: { "content-type": "text/html", "x-proxy": "edge" } });
    const res = await fetch(`${fake.baseUrl}/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer sk-fake", "content-type": "application/json" },
      body: JSON.stringify(params),
    });
    expect(res.status).toBe(502);
    expect(res.headers.get("content-type")).toBe("text/html");
    expect(res.headers.get("x-proxy")).toBe("edge");
    expect(await res.text()).toBe("<html>Bad Gateway</html>");

    fake.enqueue({ kind: "raw", status: 503, body: "" });
    const err = await failure(client.chat.completions.create(params));
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect(err.status).toBe(503);
  });

  it("wrong key → 401 invalid_api_key", async () => {
    const bad = new OpenAI({ apiKey: "sk-wrong", baseURL: fake.baseUrl, maxRetries: 0 });
    const err = await failure(bad.chat.completions.create(params));
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err).toMatchObject({ status: 401, code: "invalid_api_key", message: "401 Incorrect API key provided." });
  });

  it("rejects unknown routes, bad JSON and missing fields with OpenAI error bodies", async () => {
    const headers = { authorization: "Bearer sk-fake", "content-type": "application/json" };
    const notFound = await fetch(`${fake.baseUrl}/nope`, { headers });
    expect(notFound.status).toBe(404);
    expect((await notFound.json()).error).toMatchObject({ type: "invalid_request_error", param: null });

    const badJson = await fetch(`${fake.baseUrl}/chat/completions`, { method: "POST", headers, body: "{oops" });
    expect(badJson.status).toBe(400);
    expect(badJson.headers.get("content-type")).toBe("application/json");

    const noModel = await failure(client.chat.completions.create({ messages: params.messages } as any));
    expect(noModel).toMatchObject({ status: 400 });
    const noMessages = await failure(client.chat.completions.create({ model: "qwen-plus" } as any));
    expect(noMessages).toMatchObject({ status: 400, param: "messages" });

    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(expect.arrayContaining(["qwq-plus", "qwen3-hybrid"]));
  });

  it("stream-only model rejects non-streaming calls like DashScope", async () => {
    const err = await failure(client.chat.completions.create({ ...params, model: "qwq-plus" }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: "invalid_parameter_error" });
    expect(err.message).toContain("only support stream mode");
    const chunks = await collect(await client.chat.completions.create({ ...params, model: "qwq-plus", stream: true }));
    expect(contentOf(chunks)).toBe("Hello from qwq-plus");
  });

  it("hybrid thinking model needs enable_thinking:false when not streaming", async () => {
    const hybrid = { ...params, model: "qwen3-hybrid" };
    const err = await failure(client.chat.completions.create(hybrid));
    expect(err).toMatchObject({ status: 400, code: "invalid_parameter_error" });
    expect(err.message).toContain("parameter.enable_thinking must be set to false");
    const ok = await client.chat.completions.create({ ...hybrid, enable_thinking: false } as any);
    expect(ok.choices[0]!.message.content).toBe("Hello from qwen3-hybrid");
    const streamed = await collect(await client.chat.completions.create({ ...hybrid, stream: true }));
    expect(contentOf(streamed)).toBe("Hello from qwen3-hybrid");
  });

  it("stream-then-error: chunks arrive, then iteration throws APIError", async () => {
    fake.enqueue({ kind: "stream-then-error", chunks: 2, message: "boom mid-stream" });
    const stream = await client.chat.completions.create({ ...params, stream: true });
    const seen: string[] = [];
    const err = await failure(
      (async () => {
        for await (const c of stream) seen.push(c.choices[0]?.delta.content ?? "");
      })(),
    );
    expect(err).toBeInstanceOf(OpenAI.APIError);
    // Mid-stream errors carry no HTTP status (the 200 was already sent).
    expect(err.status).toBeUndefined();
    expect(err.message).toBe("boom mid-stream");
    expect(seen.join("")).toBe(partialChunk(0) + partialChunk(1));
  });

  it("stream-then-reset: iteration throws after the partial chunks", async () => {
    fake.enqueue({ kind: "stream-then-reset", chunks: 2 });
    const stream = await client.chat.completions.create({ ...params, stream: true });
    const seen: string[] = [];
    const err = await failure(
      (async () => {
        for await (const c of stream) seen.push(c.choices[0]?.delta.content ?? "");
      })(),
    );
    expect(err).toBeInstanceOf(Error);
    expect(seen.join("")).toBe(partialChunk(0) + partialChunk(1));
    expect(fake.requests[0]!.aborted).toBe(false); // the server hung up, not the client
  });

  it("malformed: good chunks, then an unparseable data line, and no [DONE]", async () => {
    fake.enqueue({ kind: "malformed", chunks: 1 });
    const res = await fetch(`${fake.baseUrl}/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer sk-fake", "content-type": "application/json" },
      body: JSON.stringify({ ...params, stream: true }),
    });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const events = (await res.text()).split("\n\n").filter(Boolean);
    expect(events).toHaveLength(3);
    expect(JSON.parse(events[1]!.slice("data: ".length)).choices[0].delta.content).toBe(partialChunk(0));
    expect(events[2]).toBe("data: {not json");
  });

  it("aborting during hang marks the recorded request aborted", async () => {
    fake.enqueue({ kind: "hang" });
    const ac = new AbortController();
    const pending = failure(client.chat.completions.create(params, { signal: ac.signal }));
    await fake.waitForRequests(1);
    ac.abort();
    expect(await pending).toBeInstanceOf(OpenAI.APIUserAbortError);
    const rec = await fake.waitForAbort();
    expect(rec.aborted).toBe(true);
    expect(rec.body.model).toBe("qwen-plus");
  });

  it("aborting a stream-then-hang stream mid-way is recorded too", async () => {
    fake.enqueue({ kind: "stream-then-hang", chunks: 1 });
    const ac = new AbortController();
    const stream = await client.chat.completions.create({ ...params, stream: true }, { signal: ac.signal });
    for await (const c of stream) {
      if (c.choices[0]?.delta.content) break; // break aborts the underlying request
    }
    const rec = await fake.waitForAbort();
    expect(rec.aborted).toBe(true);
  });

  it("reset: the connection dies before any response", async () => {
    fake.enqueue({ kind: "reset" });
    const err = await failure(client.chat.completions.create(params));
    expect(err).toBeInstanceOf(OpenAI.APIConnectionError);
    expect(fake.requests[0]!.aborted).toBe(false);
  });

  it("role: false with chunks: 0 sends the SSE headers and no event before failing", async () => {
    fake.enqueue({ kind: "stream-then-end", chunks: 0, role: false });
    const res = await fetch(`${fake.baseUrl}/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer sk-fake", "content-type": "application/json" },
      body: JSON.stringify({ ...params, stream: true }),
    });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    expect(await res.text()).toBe("data: [DONE]\n\n");
  });

  it("numbers requests with one counter shared by every fake", async () => {
    const other = await startFakeUpstream();
    try {
      const c = new OpenAI({ apiKey: "sk-fake", baseURL: other.baseUrl, maxRetries: 0 });
      await client.chat.completions.create(params);
      await c.chat.completions.create(params);
      await client.chat.completions.create(params);
      const [a, b] = fake.requests;
      const [between] = other.requests;
      expect(a!.seq).toBeLessThan(between!.seq);
      expect(between!.seq).toBeLessThan(b!.seq);
    } finally {
      await other.close();
    }
  });

  it("close() does not hang on hung connections", async () => {
    const other = await startFakeUpstream();
    other.enqueue({ kind: "hang" });
    const c = new OpenAI({ apiKey: "sk-fake", baseURL: other.baseUrl, maxRetries: 0 });
    const pending = failure(c.chat.completions.create(params));
    await other.waitForRequests(1);
    await other.close();
    expect(await pending).toBeInstanceOf(OpenAI.APIConnectionError);
  });
});
