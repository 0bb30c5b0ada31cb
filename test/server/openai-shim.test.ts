/**
 * End to end through the OpenAI-compatible front door: the real `openai` SDK (and raw fetch
 * where the SDK hides the wire) against a real gateway whose Alibaba Cloud upstream is the fake.
 */
import { describe, it, expect, beforeAll, afterAll, beforeEach } from "vitest";
import OpenAI from "openai";
import type { ChatCompletionChunk, ChatCompletionTool } from "openai/resources/chat/completions";
import modelsData from "../../src/data/models.json" with { type: "json" };
import pricingData from "../../src/data/pricing.json" with { type: "json" };
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const USER = [{ role: "user" as const, content: "hi" }];
const CATALOG = modelsData.models;
const PRICES = pricingData.models as Record<string, { prompt: string; completion: string }>;

let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  gw = await startTestGateway();
  client = new OpenAI({ apiKey: gw.key, baseURL: gw.url + "/v1", maxRetries: 0 });
});
afterAll(async () => {
  await gw?.close();
});
beforeEach(() => {
  gw.fake.reset();
});

async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const c of stream) out.push(c);
  return out;
}

const contentOf = (chunks: ChatCompletionChunk[]) => chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
const reasoningOf = (chunks: ChatCompletionChunk[]) =>
  chunks.map((c) => (c.choices[0]?.delta as { reasoning_content?: string } | undefined)?.reasoning_content ?? "").join("");

/** The one upstream request this test caused. */
async function upstreamBody(): Promise<any> {
  const [req] = await gw.fake.waitForRequests(1);
  return req!.body;
}

/** POST /v1/chat/completions as raw JSON, to see the bytes the SDK would hide. */
function rawChat(body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: gw.authorization, ...headers },
    body: JSON.stringify(body),
    signal,
  });
}

/** Splits an SSE body into its events, asserting OpenAI's framing: each event exactly `data: <payload>\n\n`. */
function sseEvents(text: string): string[] {
  expect(text.endsWith("\n\n")).toBe(true);
  const events = text.slice(0, -2).split("\n\n");
  for (const e of events) expect(e).toMatch(/^data: [^\n]+$/);
  return events.map((e) => e.slice("data: ".length));
}

describe("non-streaming chat completions", () => {
  it("returns the upstream's content, usage, finish_reason and upstream model id, with provider headers", async () => {
    gw.fake.enqueue({ kind: "reply", content: "Hello there", usage: { prompt_tokens: 12, completion_tokens: 3 } });
    const { data, response } = await client.chat.completions.create({ model: "qwen-coder", messages: USER }).withResponse();

    expect(data.object).toBe("chat.completion");
    expect(data.choices).toHaveLength(1);
    expect(data.choices[0]!.message.role).toBe("assistant");
    expect(data.choices[0]!.message.content).toBe("Hello there");
    expect(data.choices[0]!.finish_reason).toBe("stop");
    expect(data.model).toBe("qwen3-coder-plus");
    expect(data.usage).toMatchObject({ prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-gatewayz-provider")).toBe("alibaba-cloud");
    expect(response.headers.get("x-gatewayz-model")).toBe("qwen3-coder-plus");
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);

    const body = await upstreamBody();
    expect(body.model).toBe("qwen3-coder-plus");
    expect(body.messages).toEqual(USER);
  });

  it("sends the DashScope upstream id for a provider-prefixed name", async () => {
    const res = await client.chat.completions.create({ model: "alibaba-cloud/qwen-coder", messages: USER });
    expect(res.model).toBe("qwen3-coder-plus");
    expect((await upstreamBody()).model).toBe("qwen3-coder-plus");
  });

  it.each([
    ["qwen-plus", "qwen-plus", "qwen-plus"],
    ["qwen/qwen-max", "qwen-max", "qwen-max"],
    ["alibaba-cloud/qwen-coder", "qwen-coder", "qwen3-coder-plus"],
    ["qwen-3-30b", "qwen-3-30b-a3b-instruct", "qwen3-30b-a3b-instruct-2507"],
  ])("resolves %s to catalog model %s (upstream %s)", async (name, catalogId, upstreamId) => {
    const { data, response } = await client.chat.completions.create({ model: name, messages: USER }).withResponse();
    expect((await upstreamBody()).model).toBe(upstreamId);
    expect(data.model).toBe(upstreamId);
    expect(data.choices[0]!.message.content).toBe(`Hello from ${upstreamId}`);
    expect(response.headers.get("x-gatewayz-provider")).toBe("alibaba-cloud");
    expect(gw.logs.some((l) => l.includes(`Transformed model ID from '${name}' to '${catalogId}' for provider alibaba-cloud`))).toBe(true);
  });

  it("logs the alias transformation and the provider client loading", async () => {
    await client.chat.completions.create({ model: "qwen-3-30b", messages: USER });
    expect(gw.logs.some((l) => l.includes("Transformed model ID from 'qwen-3-30b' to 'qwen-3-30b-a3b-instruct' for provider alibaba-cloud"))).toBe(true);
    expect(gw.logs.some((l) => l.includes("✓ Loaded alibaba-cloud provider client"))).toBe(true);
    expect(gw.logs.some((l) => l.includes("Failed to load"))).toBe(false);
    // The nine others have no key here: one line names them all.
    expect(gw.logs.filter((l) => /provider client/.test(l))).toHaveLength(1);
    expect(gw.logs.filter((l) => / info +Not configured \(no API key\): /.test(l))).toHaveLength(1);
  });

  it("logs a model mapping at info the first time it is seen, then at debug (no info line per request)", async () => {
    const lines = (level: string) => gw.logs.filter((l) => l.includes(` ${level.padEnd(5)} Transformed model ID from 'QWEN-Turbo' to 'qwen-turbo'`));
    for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: "QWEN-Turbo", messages: USER });
    expect(lines("info")).toHaveLength(1);
    expect(lines("debug")).toHaveLength(2);
  });

  it("relays a finish_reason other than stop", async () => {
    gw.fake.enqueue({ kind: "reply", content: "cut", finishReason: "length" });
    const res = await client.chat.completions.create({ model: "qwen-max", messages: USER, max_tokens: 1 });
    expect(res.choices[0]!.finish_reason).toBe("length");
    expect((await upstreamBody()).max_tokens).toBe(1);
  });
});

describe("concurrency and privacy", () => {
  it("parallel requests, streaming and not, each get their own answer", async () => {
    const models = ["qwen-max", "qwen-coder", "qwen-long", "qwq-plus", "qwen-3-30b"];
    const upstream = ["qwen-max", "qwen3-coder-plus", "qwen-long", "qwq-plus", "qwen3-30b-a3b-instruct-2507"];
    for (const m of upstream) gw.fake.onModel(m, { kind: "reply", content: `answer for ${m}`, chunkDelayMs: 5 });
    const results = await Promise.all(models.flatMap((model) => [
      client.chat.completions.create({ model, messages: USER }).then((r) => r.choices[0]!.message.content),
      client.chat.completions.create({ model, messages: USER, stream: true }).then(collect).then(contentOf),
    ]));
    expect(results).toEqual(upstream.flatMap((m) => [`answer for ${m}`, `answer for ${m}`]));
    expect(gw.fake.requests).toHaveLength(models.length * 2);
  });

  it("never logs the prompt or the answer", async () => {
    gw.fake.enqueue({ kind: "reply", content: "answer-9d8c7b" });
    await client.chat.completions.create({ model: "qwen-3-30b", messages: [{ role: "user", content: "prompt-1a2b3c" }] });
    gw.fake.enqueue({ kind: "error", status: 500 });
    await client.chat.completions.create({ model: "qwen-max", messages: [{ role: "user", content: "prompt-4d5e6f" }] }).catch(() => undefined);
    const all = gw.logs.join("\n");
    expect(all).toContain("Transformed model ID from 'qwen-3-30b'");
    expect(all).not.toContain("prompt-1a2b3c");
    expect(all).not.toContain("answer-9d8c7b");
    expect(all).not.toContain("prompt-4d5e6f");
    expect(all).not.toContain("sk-fake");
  });
});

describe("streaming chat completions", () => {
  it("streams content deltas that concatenate to the answer, with provider headers", async () => {
    gw.fake.enqueue({ kind: "reply", content: "one two three four" });
    const { data: stream, response } = await client.chat.completions
      .create({ model: "qwen-max", messages: USER, stream: true })
      .withResponse();
    expect(response.headers.get("x-gatewayz-provider")).toBe("alibaba-cloud");
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const chunks = await collect(stream);
    expect(contentOf(chunks)).toBe("one two three four");
    // The fake splits into words; the gateway must not merge or drop deltas.
    expect(chunks.filter((c) => c.choices[0]?.delta.content).length).toBe(4);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("stop");
    expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.model === "qwen-max")).toBe(true);
  });

  it("frames every event as `data: <json>\\n\\n` and ends with `data: [DONE]\\n\\n`", async () => {
    gw.fake.enqueue({ kind: "reply", content: "alpha beta" });
    const res = await rawChat({ model: "qwen-max", messages: USER, stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(res.headers.get("x-gatewayz-provider")).toBe("alibaba-cloud");
    const text = await res.text();
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
    expect(text.indexOf("[DONE]")).toBe(text.lastIndexOf("[DONE]"));
    const events = sseEvents(text);
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as ChatCompletionChunk);
    expect(chunks.length).toBeGreaterThanOrEqual(3);
    expect(contentOf(chunks)).toBe("alpha beta");
  });

  it("always asks upstream for stream + usage, but shows no usage to a client that did not ask", async () => {
    const res = await rawChat({ model: "qwen-max", messages: USER, stream: true });
    const events = sseEvents(await res.text());
    const body = await upstreamBody();
    expect(body.stream).toBe(true);
    expect(body.stream_options).toEqual({ include_usage: true });

    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks.length).toBeGreaterThan(0);
    for (const c of chunks) {
      expect(c).not.toHaveProperty("usage");
      expect(c.choices.length).toBeGreaterThan(0);
    }
    expect(contentOf(chunks)).toBe("Hello from qwen-max");
  });

  it("with stream_options.include_usage the last chunk has choices: [] and the usage", async () => {
    gw.fake.enqueue({ kind: "reply", content: "counted", usage: { prompt_tokens: 7, completion_tokens: 2, reasoning_tokens: 1 } });
    const chunks = await collect(
      await client.chat.completions.create({ model: "qwen-max", messages: USER, stream: true, stream_options: { include_usage: true } }),
    );
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 });
    expect(last.usage?.completion_tokens_details?.reasoning_tokens).toBe(1);
    // Only the final chunk carries usage; content chunks have none.
    expect(chunks.slice(0, -1).every((c) => c.usage == null && c.choices.length === 1)).toBe(true);
    expect(contentOf(chunks)).toBe("counted");
    expect((await upstreamBody()).stream_options).toEqual({ include_usage: true });
  });

  it("with include_usage: false the client sees no usage either", async () => {
    const chunks = await collect(
      await client.chat.completions.create({ model: "qwen-max", messages: USER, stream: true, stream_options: { include_usage: false } }),
    );
    expect(chunks.some((c) => c.usage != null || c.choices.length === 0)).toBe(false);
    expect((await upstreamBody()).stream_options).toEqual({ include_usage: true });
  });
});

describe("reasoning", () => {
  it("streams reasoning as delta.reasoning_content, never inside content", async () => {
    gw.fake.enqueue({ kind: "reply", reasoning: "Think first, then answer.", content: "The answer." });
    const chunks = await collect(await client.chat.completions.create({ model: "qwq-plus", messages: USER, stream: true }));
    expect(reasoningOf(chunks)).toBe("Think first, then answer.");
    expect(contentOf(chunks)).toBe("The answer.");
    for (const c of chunks) expect(c.choices[0]?.delta.content ?? "").not.toMatch(/Think|first/);
  });

  it("returns reasoning as message.reasoning_content on a non-streaming answer", async () => {
    gw.fake.enqueue({ kind: "reply", reasoning: "Because.", content: "Yes." });
    const res = await client.chat.completions.create({ model: "qwen-max", messages: USER });
    const message = res.choices[0]!.message as typeof res.choices[0]["message"] & { reasoning_content?: string };
    expect(message.content).toBe("Yes.");
    expect(message.reasoning_content).toBe("Because.");
  });
});

describe("tool calls", () => {
  const tools: ChatCompletionTool[] = [
    {
      type: "function",
      function: {
        name: "get_weather",
        description: "Weather for a city",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
      },
    },
    { type: "function", function: { name: "get_time", parameters: { type: "object", properties: {} } } },
  ];
  const calls = [
    { id: "call_weather", name: "get_weather", arguments: '{"city":"Hangzhou","unit":"celsius","days":3}' },
    { id: "call_time", name: "get_time", arguments: '{"tz":"Asia/Shanghai"}' },
  ];

  it("streamed tool-call fragments arrive intact", async () => {
    gw.fake.enqueue({ kind: "reply", toolCalls: calls });
    const final = await client.chat.completions
      .stream({ model: "qwen-max", messages: USER, tools, tool_choice: "auto" })
      .finalChatCompletion();
    const choice = final.choices[0]!;
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.tool_calls).toHaveLength(2);
    expect(choice.message.tool_calls).toMatchObject([
      { id: "call_weather", type: "function", function: { name: "get_weather", arguments: calls[0]!.arguments } },
      { id: "call_time", type: "function", function: { name: "get_time", arguments: calls[1]!.arguments } },
    ]);
  });

  it("raw streamed tool-call deltas keep OpenAI's index/id/name/arguments layout", async () => {
    gw.fake.enqueue({ kind: "reply", toolCalls: calls.slice(0, 1) });
    const chunks = await collect(await client.chat.completions.create({ model: "qwen-max", messages: USER, tools, stream: true }));
    const deltas = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(deltas.length).toBeGreaterThanOrEqual(3); // the header plus several argument fragments
    expect(deltas[0]).toMatchObject({ index: 0, id: "call_weather", type: "function", function: { name: "get_weather" } });
    expect(deltas.map((d) => d.function?.arguments ?? "").join("")).toBe(calls[0]!.arguments);
  });

  it("returns message.tool_calls on a non-streaming answer", async () => {
    gw.fake.enqueue({ kind: "reply", toolCalls: calls });
    const res = await client.chat.completions.create({ model: "qwen-max", messages: USER, tools });
    const choice = res.choices[0]!;
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toEqual([
      { id: "call_weather", type: "function", function: { name: "get_weather", arguments: calls[0]!.arguments } },
      { id: "call_time", type: "function", function: { name: "get_time", arguments: calls[1]!.arguments } },
    ]);
  });

  it("passes tools, tool_choice, parallel_tool_calls and response_format upstream unchanged", async () => {
    const toolChoice = { type: "function" as const, function: { name: "get_weather" } };
    const responseFormat = {
      type: "json_schema" as const,
      json_schema: { name: "weather", schema: { type: "object", properties: { t: { type: "number" } } }, strict: false },
    };
    await client.chat.completions.create({
      model: "qwen-max", messages: USER, tools, tool_choice: toolChoice, parallel_tool_calls: false, response_format: responseFormat,
    });
    const body = await upstreamBody();
    expect(body.tools).toEqual(tools);
    expect(body.tool_choice).toEqual(toolChoice);
    expect(body.parallel_tool_calls).toBe(false);
    expect(body.response_format).toEqual(responseFormat);
  });

  it("passes a tool-result conversation upstream unchanged", async () => {
    const messages = [
      { role: "user" as const, content: "weather?" },
      { role: "assistant" as const, content: null, tool_calls: [{ id: "call_1", type: "function" as const, function: { name: "get_weather", arguments: '{"city":"Hangzhou"}' } }] },
      { role: "tool" as const, tool_call_id: "call_1", content: '{"temp":21}' },
    ];
    const res = await client.chat.completions.create({ model: "qwen-max", messages, tools });
    expect(res.choices[0]!.message.content).toBe("Hello from qwen-max");
    expect((await upstreamBody()).messages).toEqual(messages);
  });
});

describe("fields the gateway does not know", () => {
  it("pass through to the upstream body untouched (non-streaming)", async () => {
    await client.chat.completions.create({
      model: "qwen-max",
      messages: USER,
      top_k: 20,
      enable_search: true,
      repetition_penalty: 1.05,
      search_options: { forced_search: true, search_strategy: "pro" },
      temperature: 0.3,
      seed: 42,
    } as any);
    const body = await upstreamBody();
    expect(body).toMatchObject({
      model: "qwen-max",
      top_k: 20,
      enable_search: true,
      repetition_penalty: 1.05,
      search_options: { forced_search: true, search_strategy: "pro" },
      temperature: 0.3,
      seed: 42,
    });
  });

  it("pass through to the upstream body untouched (streaming)", async () => {
    await collect(await client.chat.completions.create({
      model: "qwen-max", messages: USER, stream: true, top_k: 5, enable_search: false, repetition_penalty: 1.1,
    } as any) as unknown as AsyncIterable<ChatCompletionChunk>);
    expect(await upstreamBody()).toMatchObject({ top_k: 5, enable_search: false, repetition_penalty: 1.1, stream: true });
  });
});

describe("Qwen quirks are hidden", () => {
  it("a non-streaming call to a streaming-only model (qwq-plus) is streamed upstream and aggregated", async () => {
    gw.fake.enqueue({ kind: "reply", reasoning: "Hmm, let me see.", content: "Forty two.", usage: { prompt_tokens: 20, completion_tokens: 8 } });
    const { data, response } = await client.chat.completions.create({ model: "qwq", messages: USER }).withResponse();
    const message = data.choices[0]!.message as typeof data.choices[0]["message"] & { reasoning_content?: string };
    expect(data.object).toBe("chat.completion");
    expect(message.content).toBe("Forty two.");
    expect(message.reasoning_content).toBe("Hmm, let me see.");
    expect(data.choices[0]!.finish_reason).toBe("stop");
    expect(data.usage).toMatchObject({ prompt_tokens: 20, completion_tokens: 8, total_tokens: 28 });
    expect(data.model).toBe("qwq-plus");
    expect(response.headers.get("x-gatewayz-provider")).toBe("alibaba-cloud");
    const body = await upstreamBody();
    expect(body.model).toBe("qwq-plus");
    expect(body.stream).toBe(true);
    expect(body.stream_options).toEqual({ include_usage: true });
  });

  it("a non-streaming call to a streaming-only model aggregates tool calls too", async () => {
    gw.fake.enqueue({ kind: "reply", toolCalls: [{ id: "call_x", name: "lookup", arguments: '{"q":"qwen","limit":10}' }] });
    const res = await client.chat.completions.create({ model: "qwq-plus", messages: USER });
    expect(res.choices[0]!.finish_reason).toBe("tool_calls");
    expect(res.choices[0]!.message.tool_calls).toEqual([
      { id: "call_x", type: "function", function: { name: "lookup", arguments: '{"q":"qwen","limit":10}' } },
    ]);
  });

  it("a non-streaming call to a hybrid model (qwen-plus) turns thinking off upstream", async () => {
    const res = await client.chat.completions.create({ model: "qwen-plus", messages: USER });
    expect(res.choices[0]!.message.content).toBe("Hello from qwen-plus");
    const body = await upstreamBody();
    expect(body.enable_thinking).toBe(false);
    expect(body.stream).not.toBe(true);
  });

  it("a non-streaming qwen-plus call with enable_thinking: true is streamed upstream and aggregated", async () => {
    gw.fake.enqueue({ kind: "reply", reasoning: "Thinking hard.", content: "Done.", usage: { prompt_tokens: 4, completion_tokens: 6 } });
    const res = await client.chat.completions.create({ model: "qwen-plus", messages: USER, enable_thinking: true } as any);
    const message = res.choices[0]!.message as { content: string | null; reasoning_content?: string };
    expect(message.content).toBe("Done.");
    expect(message.reasoning_content).toBe("Thinking hard.");
    expect(res.usage).toMatchObject({ prompt_tokens: 4, completion_tokens: 6, total_tokens: 10 });
    const body = await upstreamBody();
    expect(body.stream).toBe(true);
    expect(body.enable_thinking).toBe(true);
  });

  it.each([
    [true, true],
    [false, false],
    [undefined, undefined],
  ])("a streaming qwen-plus call passes enable_thinking=%s as the client set it", async (sent, expected) => {
    const params = { model: "qwen-plus", messages: USER, stream: true, ...(sent === undefined ? {} : { enable_thinking: sent }) };
    const chunks = await collect((await client.chat.completions.create(params as any)) as unknown as AsyncIterable<ChatCompletionChunk>);
    expect(contentOf(chunks)).toBe("Hello from qwen-plus");
    const body = await upstreamBody();
    expect(body.stream).toBe(true);
    if (expected === undefined) expect(body).not.toHaveProperty("enable_thinking");
    else expect(body.enable_thinking).toBe(expected);
  });
});

describe("models", () => {
  it("lists every catalog model with OpenAI's fields and the gateway's extras", async () => {
    const page = await client.models.list();
    const data = page.data as Array<Record<string, any>>;
    expect(data.map((m) => m.id).sort()).toEqual(CATALOG.map((m) => m.id).sort());
    expect(data).toHaveLength(CATALOG.length);
    for (const m of data) {
      const row = CATALOG.find((r) => r.id === m.id)!;
      expect(m.object).toBe("model");
      expect(typeof m.created).toBe("number");
      expect(m.owned_by).toBe("alibaba-cloud");
      expect(m.context_window).toBe(row.context_window);
      expect(m.capabilities).toEqual(row.capabilities);
      expect(m.aliases).toEqual(row.aliases);
      // Decimal strings in canonical form ("0.020" in pricing.json is served as "0.02").
      expect(m.pricing.prompt_usd_per_million).toMatch(/^\d+(\.\d*[1-9])?$/);
      expect(m.pricing.completion_usd_per_million).toMatch(/^\d+(\.\d*[1-9])?$/);
      expect(Number(m.pricing.prompt_usd_per_million)).toBe(Number(PRICES[m.id]!.prompt));
      expect(Number(m.pricing.completion_usd_per_million)).toBe(Number(PRICES[m.id]!.completion));
    }
    // The fake upstream was never asked: the list is the gateway's own catalog.
    expect(gw.fake.requests).toHaveLength(0);
  });

  it("retrieves one model", async () => {
    const m = (await client.models.retrieve("qwen-plus")) as unknown as Record<string, any>;
    expect(m).toMatchObject({
      id: "qwen-plus",
      object: "model",
      owned_by: "alibaba-cloud",
      context_window: 1000000,
      upstream_id: "qwen-plus",
      streaming_only: false,
      pricing: { prompt_usd_per_million: "0.005", completion_usd_per_million: "0.015", cached_prompt_usd_per_million: "0.001" },
    });
    expect(m.capabilities).toContain("thinking_toggle");
  });

  it("retrieves a model by alias, answering with the catalog id", async () => {
    const m = (await client.models.retrieve("qwen-3-30b")) as unknown as Record<string, any>;
    expect(m.id).toBe("qwen-3-30b-a3b-instruct");
    expect(m.upstream_id).toBe("qwen3-30b-a3b-instruct-2507");
    expect(m.aliases).toContain("qwen-3-30b");
  });

  it("retrieves a provider-prefixed id through a raw path with a slash", async () => {
    const res = await fetch(`${gw.url}/v1/models/qwen/qwen-max`, { headers: { authorization: gw.authorization } });
    expect(res.status).toBe(200);
    const m = (await res.json()) as Record<string, unknown>;
    expect(m.id).toBe("qwen-max");
    expect(m.owned_by).toBe("alibaba-cloud");
  });

  it("answers an unknown model with 404 model_not_found", async () => {
    const err = await client.models.retrieve("gpt-9-ultra").then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    const e = err as InstanceType<typeof OpenAI.NotFoundError>;
    expect(e.status).toBe(404);
    expect(e.code).toBe("model_not_found");
    expect(e.type).toBe("invalid_request_error");
    expect(e.message).toContain("gpt-9-ultra");
  });
});

describe("cancellation", () => {
  it("aborting a streaming request before the first chunk aborts the upstream request", async () => {
    gw.fake.enqueue({ kind: "hang" });
    const ac = new AbortController();
    const pending = client.chat.completions.create({ model: "qwen-max", messages: USER, stream: true }, { signal: ac.signal });
    await gw.fake.waitForRequests(1);
    ac.abort();
    await expect(pending).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
    const aborted = await gw.fake.waitForAbort(1000);
    expect(aborted.body.model).toBe("qwen-max");
  });

  it("aborting a stream mid-way aborts the upstream request", async () => {
    gw.fake.enqueue({ kind: "stream-then-hang", chunks: 2 });
    const ac = new AbortController();
    const stream = await client.chat.completions.create({ model: "qwen-max", messages: USER, stream: true }, { signal: ac.signal });
    const seen: string[] = [];
    const reading = (async () => {
      for await (const c of stream) {
        seen.push(c.choices[0]?.delta.content ?? "");
        if (seen.join("") === "chunk0 chunk1 ") ac.abort();
      }
    })();
    // The SDK ends iteration quietly when its own signal aborts mid-stream.
    await reading.catch((e: unknown) => expect(e).toBeInstanceOf(OpenAI.APIUserAbortError));
    expect(seen.join("")).toBe("chunk0 chunk1 ");
    const aborted = await gw.fake.waitForAbort(1000);
    expect(aborted.body.stream).toBe(true);
  });

  it("aborting a non-streaming request aborts the upstream request", async () => {
    gw.fake.enqueue({ kind: "hang" });
    const ac = new AbortController();
    const pending = client.chat.completions.create({ model: "qwen-max", messages: USER }, { signal: ac.signal });
    await gw.fake.waitForRequests(1);
    ac.abort();
    await expect(pending).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
    const aborted = await gw.fake.waitForAbort(1000);
    expect(aborted.body.stream).not.toBe(true);
  });

  it("aborting a non-streaming call that the gateway streams upstream (qwq-plus) aborts the upstream", async () => {
    gw.fake.enqueue({ kind: "stream-then-hang", chunks: 1 });
    const ac = new AbortController();
    const pending = client.chat.completions.create({ model: "qwq-plus", messages: USER }, { signal: ac.signal });
    await gw.fake.waitForRequests(1);
    ac.abort();
    await expect(pending).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
    const aborted = await gw.fake.waitForAbort(1000);
    expect(aborted.body.stream).toBe(true);
  });
});

describe("authentication", () => {
  /** A client for the same gateway with another Authorization (null: none at all). */
  const clientWith = (apiKey: string | null) =>
    new OpenAI(apiKey === null
      ? { apiKey: "unused", defaultHeaders: { authorization: null }, baseURL: gw.url + "/v1", maxRetries: 0 }
      : { apiKey, baseURL: gw.url + "/v1", maxRetries: 0 });

  const UNKNOWN = "gw_live_" + "0123456789abcdefghijABCDEFGHIJxy";

  type ErrorClass = new (...args: any[]) => InstanceType<typeof OpenAI.APIError>;

  /** Both a non-streaming and a streaming chat fail with this error, and nothing reaches upstream. */
  async function expectRefused(c: OpenAI, errorClass: ErrorClass, status: number, code: string, type: string) {
    for (const stream of [false, true]) {
      const err = await c.chat.completions.create({ model: "qwen-max", messages: USER, stream }).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(errorClass);
      const e = err as InstanceType<typeof OpenAI.APIError>;
      expect(e.status).toBe(status);
      expect(e.code).toBe(code);
      expect(e.type).toBe(type);
    }
    // Refused at the door: the fake upstream never heard of it.
    expect(gw.fake.requests).toHaveLength(0);
  }

  it.each([
    ["no key", null],
    ["a malformed key", "sk-123"],
    ["an unknown well-formed key", UNKNOWN],
  ])("refuses a chat with %s: 401 invalid_api_key, nothing upstream", async (_what, key) => {
    await expectRefused(clientWith(key), OpenAI.AuthenticationError, 401, "invalid_api_key", "authentication_error");
  });

  it("refuses a revoked key with 401 invalid_api_key, nothing upstream", async () => {
    const { key, record } = gw.app.accounts.createKey({ user: "u", name: "n" });
    // Valid until revoked.
    expect((await clientWith(key).chat.completions.create({ model: "qwen-max", messages: USER })).choices[0]!.message.content).toBe("Hello from qwen-max");
    gw.app.accounts.revokeKey(record.id);
    gw.fake.reset();
    await expectRefused(clientWith(key), OpenAI.AuthenticationError, 401, "invalid_api_key", "authentication_error");
  });

  it("refuses an admin key for chat with 403 permission_denied, nothing upstream", async () => {
    const { key } = gw.app.accounts.createKey({ user: "root", name: "admin", kind: "admin" });
    await expectRefused(clientWith(key), OpenAI.PermissionDeniedError, 403, "permission_denied", "permission_error");
  });

  it("GET /v1/models without a key is 401 invalid_api_key", async () => {
    const err = await clientWith(null).models.list().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe("invalid_api_key");
    const res = await fetch(`${gw.url}/v1/models`);
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: { type: string; code: string } };
    expect(body.error).toMatchObject({ type: "authentication_error", code: "invalid_api_key" });
  });
});

describe("health and CORS", () => {
  it("GET /healthz answers 200 JSON with status ok", async () => {
    const res = await fetch(`${gw.url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await res.json()) as { status: string; providers: Record<string, string> };
    expect(body.status).toBe("ok");
    expect(body.providers["alibaba-cloud"]).toBe("ok"); // configured, circuit closed
    expect(body.providers.together).toBe("not_configured");
  });

  it("GET /healthz with a query string (as some probes send) is still the health check", async () => {
    const res = await fetch(`${gw.url}/healthz?probe=liveness`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { status: string }).status).toBe("ok");
  });

  describe("with CORS_ORIGINS set", () => {
    const ORIGIN = "https://app.example";
    let corsGw: TestGateway;
    beforeAll(async () => {
      corsGw = await startTestGateway({ CORS_ORIGINS: ORIGIN });
    });
    afterAll(async () => {
      await corsGw?.close();
    });

    const preflight = (origin: string) =>
      fetch(`${corsGw.url}/v1/chat/completions`, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization,content-type,connect-protocol-version",
        },
      });

    it("answers a preflight from an allowed origin with 204 and the allowed method and headers", async () => {
      const res = await preflight(ORIGIN);
      expect(res.status).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(res.headers.get("access-control-allow-methods")).toMatch(/\bPOST\b/);
      const allowed = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase().split(/\s*,\s*/);
      expect(allowed).toEqual(expect.arrayContaining(["authorization", "content-type", "connect-protocol-version"]));
      expect(res.headers.get("vary")).toMatch(/origin/i);
      expect(corsGw.fake.requests).toHaveLength(0);
    });

    it("gives a disallowed origin no Access-Control-Allow-Origin", async () => {
      const res = await preflight("https://evil.example");
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
      expect(res.headers.get("access-control-allow-headers")).toBeNull();
      const post = await fetch(`${corsGw.url}/v1/models`, { headers: { origin: "https://evil.example", authorization: corsGw.authorization } });
      expect(post.status).toBe(200);
      expect(post.headers.get("access-control-allow-origin")).toBeNull();
    });

    it("marks an actual request from the allowed origin with Allow-Origin and Expose-Headers", async () => {
      const res = await fetch(`${corsGw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { origin: ORIGIN, "content-type": "application/json", authorization: corsGw.authorization },
        body: JSON.stringify({ model: "qwen-max", messages: USER }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      const exposed = (res.headers.get("access-control-expose-headers") ?? "").toLowerCase();
      expect(exposed).toContain("x-gatewayz-provider");
      expect(exposed).toContain("x-request-id");
      expect(res.headers.get("x-gatewayz-provider")).toBe("alibaba-cloud");
      const body = (await res.json()) as { choices: Array<{ message: { content: string } }> };
      expect(body.choices[0]!.message.content).toBe("Hello from qwen-max");
    });
  });
});
