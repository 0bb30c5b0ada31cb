// POST /v1/responses with openai-node (responses.create, .stream, .parse)
// against a real gateway on the fake upstream: text, instructions, the exact
// event stream, tools with a tool-output round trip, parallel calls,
// structured output, reasoning models and reasoning.effort as Qwen's switches.

import OpenAI from "openai";
import { zodTextFormat } from "openai/helpers/zod";
import type { ResponseStreamEvent } from "openai/resources/responses/responses";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  gw = await startTestGateway();
  client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.close();
});
beforeEach(() => gw.fake.reset());

/** The body of the last chat request the upstream received. */
const upstream = () => gw.fake.requests.at(-1)!.body as Record<string, any>;
const CALL = { id: "call_w1", name: "get_weather", arguments: '{"city":"Paris"}' };
const WEATHER_TOOL = { type: "function" as const, name: "get_weather", description: "Weather in a city", parameters: { type: "object", properties: { city: { type: "string" } } }, strict: false };

describe("responses.create", () => {
  it("answers a string input with one assistant message, usage in the Responses shape", async () => {
    gw.fake.enqueue({ kind: "reply", content: "Hi there", usage: { prompt_tokens: 12, completion_tokens: 3, cached_tokens: 4 } });
    const r = await client.responses.create({ model: "qwen-max", input: "Hello" });
    expect(r.id).toMatch(/^resp_/);
    expect(r).toMatchObject({ object: "response", status: "completed", model: "qwen-max", error: null, incomplete_details: null, store: true });
    expect(r.output_text).toBe("Hi there");
    expect(r.output).toEqual([{ id: expect.stringMatching(/^msg_/), type: "message", status: "completed", role: "assistant",
      content: [{ type: "output_text", text: "Hi there", annotations: [], logprobs: [] }] }]);
    expect(r.usage).toEqual({ input_tokens: 12, input_tokens_details: { cached_tokens: 4 }, output_tokens: 3, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 15 });
    expect(Math.abs(r.created_at - Date.now() / 1000)).toBeLessThan(60);
    expect(upstream().messages).toEqual([{ role: "user", content: "Hello" }]);
  });

  it("sends instructions as the system message and maps the sampling options, echoing them back", async () => {
    const r = await client.responses.create({
      model: "qwen-max", instructions: "Be brief.", input: [{ role: "user", content: "Hi" }],
      max_output_tokens: 100, temperature: 0.5, top_p: 0.9, user: "u-1", metadata: { ticket: "42" }, parallel_tool_calls: false,
    });
    const body = upstream();
    expect(body.messages).toEqual([{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }]);
    expect(body).toMatchObject({ max_tokens: 100, temperature: 0.5, top_p: 0.9, user: "u-1", parallel_tool_calls: false });
    expect(body).not.toHaveProperty("metadata");
    expect(r).toMatchObject({
      instructions: "Be brief.", max_output_tokens: 100, temperature: 0.5, top_p: 0.9, user: "u-1", metadata: { ticket: "42" },
      parallel_tool_calls: false, tool_choice: "auto", tools: [], text: { format: { type: "text" } }, previous_response_id: null,
    });
  });

  it("a length cut is status incomplete with reason max_output_tokens", async () => {
    gw.fake.enqueue({ kind: "reply", content: "cut", finishReason: "length" });
    const r = await client.responses.create({ model: "qwen-max", input: "Hello", max_output_tokens: 16 });
    expect(r).toMatchObject({ status: "incomplete", incomplete_details: { reason: "max_output_tokens" } });
  });

  it("takes images as image_url parts", async () => {
    await client.responses.create({
      model: "qwen-vl", input: [{ role: "user", content: [
        { type: "input_text", text: "What is this?" }, { type: "input_image", image_url: "https://example.com/cat.png", detail: "high" },
      ] }],
    });
    expect(upstream().messages).toEqual([{ role: "user", content: [
      { type: "text", text: "What is this?" }, { type: "image_url", image_url: { url: "https://example.com/cat.png", detail: "high" } },
    ] }]);
  });
});

describe("streaming", () => {
  it("frames the Responses events as OpenAI does: named events, increasing sequence numbers, consistent ids, no [DONE]", async () => {
    gw.fake.enqueue({ kind: "reply", content: "Hello from the stream" });
    const res = await fetch(`${gw.url}/v1/responses`, {
      method: "POST", headers: { authorization: gw.authorization, "content-type": "application/json" },
      body: JSON.stringify({ model: "qwen-max", input: "Hi", stream: true }),
    });
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const text = await res.text();
    expect(text).not.toContain("[DONE]");
    const frames = text.trim().split("\n\n").map((f) => {
      const [event, data] = f.split("\n");
      expect(event).toMatch(/^event: /);
      const parsed = JSON.parse(data!.slice("data: ".length)) as ResponseStreamEvent;
      expect(parsed.type).toBe(event!.slice("event: ".length));
      return parsed;
    });
    expect(frames.map((e) => e.type)).toEqual([
      "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
      "response.output_text.delta", "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
      "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
    ]);
    expect(frames.map((e) => e.sequence_number)).toEqual(frames.map((_, i) => i));
    const id = (frames[0] as { response: { id: string } }).response.id;
    const itemId = (frames[2] as { item: { id: string } }).item.id;
    for (const e of frames.slice(3, 10)) expect(e).toMatchObject({ item_id: itemId, output_index: 0 });
    const completed = frames.at(-1) as { response: OpenAI.Responses.Response };
    expect(completed.response).toMatchObject({ id, status: "completed", usage: { input_tokens: 10, output_tokens: 5, total_tokens: 15 } });
    expect(completed.response.output[0]).toMatchObject({ id: itemId, content: [{ text: "Hello from the stream" }] });
  });

  it("responses.stream gives the deltas and the final response", async () => {
    gw.fake.enqueue({ kind: "reply", content: "one two three" });
    const stream = client.responses.stream({ model: "qwen-max", input: "count" });
    const deltas: string[] = [];
    stream.on("response.output_text.delta", (e) => deltas.push(e.delta));
    const final = await stream.finalResponse();
    expect(deltas.join("")).toBe("one two three");
    expect(final.output_text).toBe("one two three");
    expect(final.status).toBe("completed");
    expect(upstream()).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });
});

describe("tools", () => {
  it("a function call, then its output through previous_response_id, reaches the upstream as a tool turn", async () => {
    gw.fake.enqueue({ kind: "reply", toolCalls: [CALL] }, { kind: "reply", content: "It is sunny in Paris" });
    const first = await client.responses.create({ model: "qwen-max", input: "Weather in Paris?", tools: [WEATHER_TOOL], tool_choice: "auto" });
    expect(gw.fake.requests[0]!.body.tools).toEqual([{ type: "function", function: {
      name: "get_weather", description: "Weather in a city", parameters: WEATHER_TOOL.parameters, strict: false } }]);
    expect(gw.fake.requests[0]!.body.tool_choice).toBe("auto");
    expect(first.output).toEqual([{ id: expect.stringMatching(/^fc_/), type: "function_call", status: "completed", call_id: "call_w1", name: "get_weather", arguments: '{"city":"Paris"}' }]);
    expect(first.tools).toEqual([{ ...WEATHER_TOOL }]);

    const second = await client.responses.create({
      model: "qwen-max", previous_response_id: first.id, tools: [WEATHER_TOOL],
      input: [{ type: "function_call_output", call_id: "call_w1", output: '{"sky":"sunny"}' }],
    });
    expect(second.output_text).toBe("It is sunny in Paris");
    expect(second.previous_response_id).toBe(first.id);
    expect(upstream().messages).toEqual([
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_w1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
      { role: "tool", tool_call_id: "call_w1", content: '{"sky":"sunny"}' },
    ]);
  });

  it("the same round trip with the items passed explicitly (store: false)", async () => {
    gw.fake.enqueue({ kind: "reply", toolCalls: [CALL] });
    const first = await client.responses.create({ model: "qwen-max", input: "Weather?", tools: [WEATHER_TOOL], store: false });
    const call = first.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
    await client.responses.create({
      model: "qwen-max", store: false, tools: [WEATHER_TOOL],
      input: [{ role: "user", content: "Weather?" }, call, { type: "function_call_output", call_id: call.call_id, output: "sunny" }],
    });
    expect(upstream().messages).toEqual([
      { role: "user", content: "Weather?" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_w1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
      { role: "tool", tool_call_id: "call_w1", content: "sunny" },
    ]);
  });

  it("parallel calls are separate function_call items, streamed and not, and go back as one assistant turn", async () => {
    const calls = [CALL, { id: "call_w2", name: "get_weather", arguments: '{"city":"Rome"}' }];
    gw.fake.enqueue({ kind: "reply", toolCalls: calls }, { kind: "reply", toolCalls: calls });
    const r = await client.responses.create({ model: "qwen-max", input: "Paris and Rome?", tools: [WEATHER_TOOL] });
    expect(r.output.map((o) => (o as { call_id: string }).call_id)).toEqual(["call_w1", "call_w2"]);

    const stream = client.responses.stream({ model: "qwen-max", input: "Paris and Rome?", tools: [WEATHER_TOOL] });
    const done: Array<{ output_index: number; arguments: string }> = [];
    stream.on("response.function_call_arguments.done", (e) => done.push(e));
    const final = await stream.finalResponse();
    expect(done.map((d) => [d.output_index, d.arguments])).toEqual([[0, '{"city":"Paris"}'], [1, '{"city":"Rome"}']]);
    expect(final.output.map((o) => (o as { arguments: string }).arguments)).toEqual(['{"city":"Paris"}', '{"city":"Rome"}']);

    await client.responses.create({
      model: "qwen-max", previous_response_id: final.id,
      input: calls.map((c) => ({ type: "function_call_output" as const, call_id: c.id, output: "sunny" })),
    });
    const messages = upstream().messages;
    expect(messages[1].tool_calls.map((t: { id: string }) => t.id)).toEqual(["call_w1", "call_w2"]);
    expect(messages.slice(2).map((m: { role: string }) => m.role)).toEqual(["tool", "tool"]);
  });

  it("a named tool_choice becomes chat's nested one", async () => {
    await client.responses.create({ model: "qwen-max", input: "x", tools: [WEATHER_TOOL], tool_choice: { type: "function", name: "get_weather" } });
    expect(upstream().tool_choice).toEqual({ type: "function", function: { name: "get_weather" } });
  });
});

describe("structured output", () => {
  it("text.format json_schema is chat's response_format, and responses.parse reads it with zod", async () => {
    gw.fake.enqueue({ kind: "reply", content: '{"city":"Paris","celsius":24}' });
    const Weather = z.object({ city: z.string(), celsius: z.number() });
    const r = await client.responses.parse({ model: "qwen-max", input: "Weather?", text: { format: zodTextFormat(Weather, "weather") } });
    expect(r.output_parsed).toEqual({ city: "Paris", celsius: 24 });
    const format = upstream().response_format;
    expect(format).toMatchObject({ type: "json_schema", json_schema: { name: "weather", strict: true, schema: { type: "object" } } });
    expect(r.text?.format).toMatchObject({ type: "json_schema", name: "weather", strict: true });
  });

  it("text.format json_object is chat's json_object", async () => {
    gw.fake.enqueue({ kind: "reply", content: "{}" });
    const r = await client.responses.create({ model: "qwen-max", input: "JSON please", text: { format: { type: "json_object" } } });
    expect(upstream().response_format).toEqual({ type: "json_object" });
    expect(r.text?.format).toEqual({ type: "json_object" });
  });
});

describe("reasoning", () => {
  const THOUGHT = { kind: "reply" as const, reasoning: "Let me think about it.", content: "42" };

  it("a thinking model's reasoning is a reasoning item with a summary, before the message", async () => {
    gw.fake.enqueue(THOUGHT);
    const r = await client.responses.create({ model: "qwq-plus", input: "The answer?" });
    expect(r.output.map((o) => o.type)).toEqual(["reasoning", "message"]);
    expect(r.output[0]).toMatchObject({ id: expect.stringMatching(/^rs_/), summary: [{ type: "summary_text", text: "Let me think about it." }] });
    expect(r.output_text).toBe("42");
  });

  it("streamed, the reasoning comes as reasoning_summary_text deltas, then the text", async () => {
    gw.fake.enqueue(THOUGHT);
    const stream = client.responses.stream({ model: "qwq-plus", input: "The answer?" });
    const seen: string[] = [];
    stream.on("event", (e) => seen.push(e.type));
    const final = await stream.finalResponse();
    expect(seen.indexOf("response.reasoning_summary_text.delta")).toBeLessThan(seen.indexOf("response.output_text.delta"));
    expect(seen).toContain("response.reasoning_summary_text.done");
    expect(final.output[0]).toMatchObject({ type: "reasoning", summary: [{ text: "Let me think about it." }] });
  });

  it("reasoning.effort turns a hybrid model's thinking on with a budget, or off", async () => {
    gw.fake.enqueue(THOUGHT);
    const r = await client.responses.create({ model: "qwen-plus", input: "x", reasoning: { effort: "high", summary: "auto" } });
    expect(upstream()).toMatchObject({ enable_thinking: true, thinking_budget: 16384, stream: true });
    expect(r.reasoning).toEqual({ effort: "high", summary: "auto" });
    expect(r.output[0]!.type).toBe("reasoning");
    await client.responses.create({ model: "qwen-plus", input: "x", reasoning: { effort: "low" } });
    expect(upstream()).toMatchObject({ enable_thinking: true, thinking_budget: 1024 });
    await client.responses.create({ model: "qwen-plus", input: "x", reasoning: { effort: "minimal" } });
    expect(upstream().enable_thinking).toBe(false);
    expect(upstream()).not.toHaveProperty("thinking_budget");
  });

  it("a model that always thinks takes any effort as is; one that cannot reason refuses it", async () => {
    await client.responses.create({ model: "qwq-plus", input: "x", reasoning: { effort: "low" } });
    expect(upstream()).not.toHaveProperty("enable_thinking");
    const err = await client.responses.create({ model: "qwen-max", input: "x", reasoning: { effort: "high" } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.APIError>).param).toBe("reasoning.effort");
  });
});
