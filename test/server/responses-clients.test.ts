// POST /v1/responses driven by the third-party clients the issue names, on a
// real gateway whose upstream is the fake chat-completions server: the Vercel
// AI SDK's default openai() provider (which speaks the Responses API in v5)
// with generateText, streamText and multi-step tools (reasoning and upstream
// failures too), and LangChain's ChatOpenAI with useResponsesApi. Each client validates the wire its own way
// (zod schemas, event bookkeeping), so a passing call is the check that the
// door's shapes are what they expect; the upstream requests show what the door
// translated, and every call leaves one usage row with operation "responses".
// What each client sends and needs is listed in .scratch/responses-client-notes.md.

import { createOpenAI } from "@ai-sdk/openai";
import { HumanMessage, ToolMessage, type AIMessage, type AIMessageChunk } from "@langchain/core/messages";
import { tool as lcTool } from "@langchain/core/tools";
import { ChatOpenAI } from "@langchain/openai";
import { generateText, stepCountIs, streamText, tool } from "ai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { newUsageRows } from "../support/new-usage-rows.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const MODEL = "qwen-max";

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw?.close();
});
beforeEach(() => {
  gw.fake.reset();
  usage.mark();
});

interface Row { operation: string; status: string; prompt_tokens: number; completion_tokens: number; requested_model: string }

/** The usage rows this test's requests left, oldest first (committed before each answer was sent). */
const usage = newUsageRows(() => gw.app.db, "operation, status, prompt_tokens, completion_tokens, requested_model");
const newRows = (): Row[] => usage.rows<Row>();

/** The Vercel AI SDK's default provider: `openai(id)` is the Responses model in v5. */
const aiSdk = () => createOpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.key })(MODEL);

const chatOpenAI = () =>
  new ChatOpenAI({ model: MODEL, apiKey: gw.key, useResponsesApi: true, maxRetries: 0, configuration: { baseURL: `${gw.url}/v1` } });

const WEATHER_CALL = { id: "call_weather_1", name: "weather", arguments: '{"city":"Paris"}' };
const FORECAST = { city: "Paris", forecast: "sunny", celsius: 24 };

/** The AI SDK tool: a zod input schema and an execute() that records what it was given. */
function weatherTool(seen: unknown[]) {
  return tool({
    description: "Current weather for a city",
    inputSchema: z.object({ city: z.string() }),
    execute: async (input) => {
      seen.push(input);
      return FORECAST;
    },
  });
}

/** The upstream chat request of a tool round trip's second step must carry the call and its result. */
function expectToolRoundTrip(second: any, result: string): void {
  const messages: any[] = second.messages;
  const assistant = messages.find((m) => m.role === "assistant");
  expect(assistant?.tool_calls).toEqual([
    expect.objectContaining({ id: WEATHER_CALL.id, type: "function", function: expect.objectContaining({ name: "weather" }) }),
  ]);
  expect(JSON.parse(assistant.tool_calls[0].function.arguments)).toEqual({ city: "Paris" });
  const toolMsg = messages.find((m) => m.role === "tool");
  expect(toolMsg).toMatchObject({ tool_call_id: WEATHER_CALL.id });
  const content = typeof toolMsg.content === "string" ? toolMsg.content : toolMsg.content.map((p: any) => p.text).join("");
  expect(JSON.parse(content)).toEqual(JSON.parse(result));
  // The tool turn follows its assistant turn, as chat completions require.
  expect(messages.indexOf(toolMsg)).toBeGreaterThan(messages.indexOf(assistant));
}

describe("Vercel AI SDK openai() (Responses API)", () => {
  it("generateText returns the upstream's text and usage, and leaves one responses row", async () => {
    gw.fake.enqueue({ kind: "reply", content: "Hello there", usage: { prompt_tokens: 12, completion_tokens: 3, cached_tokens: 2 } });
    const result = await generateText({ model: aiSdk(), prompt: "hi", maxRetries: 0 });
    expect(result.text).toBe("Hello there");
    expect(result.finishReason).toBe("stop");
    expect(result.usage).toMatchObject({ inputTokens: 12, outputTokens: 3, totalTokens: 15, cachedInputTokens: 2 });
    expect(result.response.id).toMatch(/^resp_/);
    expect(result.response.modelId).toEqual(expect.any(String));
    expect(Number.isNaN(result.response.timestamp.getTime())).toBe(false);
    const [up] = gw.fake.requests;
    expect(up!.body.messages).toEqual([expect.objectContaining({ role: "user" })]);
    expect(newRows()).toEqual([expect.objectContaining({ operation: "responses", status: "ok", prompt_tokens: 12, completion_tokens: 3 })]);
  });

  it("generateText passes a system prompt through as the system turn", async () => {
    gw.fake.enqueue({ kind: "reply", content: "Bonjour" });
    const result = await generateText({ model: aiSdk(), system: "Answer in French.", prompt: "hi", maxRetries: 0 });
    expect(result.text).toBe("Bonjour");
    const messages: any[] = gw.fake.requests[0]!.body.messages;
    expect(messages[0]).toMatchObject({ role: "system" });
    expect(JSON.stringify(messages[0].content)).toContain("Answer in French.");
    expect(newRows()).toHaveLength(1);
  });

  it("streamText yields the text deltas in order and finishes with the usage", async () => {
    gw.fake.enqueue({ kind: "reply", content: "Streaming words arrive one by one", usage: { prompt_tokens: 9, completion_tokens: 6 } });
    const errors: unknown[] = [];
    const result = streamText({ model: aiSdk(), prompt: "hi", maxRetries: 0, onError: ({ error }) => void errors.push(error) });
    const deltas: string[] = [];
    for await (const d of result.textStream) deltas.push(d);
    expect(errors).toEqual([]);
    expect(deltas.length).toBeGreaterThan(1); // streamed, not one lump
    expect(deltas.join("")).toBe("Streaming words arrive one by one");
    expect(await result.finishReason).toBe("stop");
    expect(await result.usage).toMatchObject({ inputTokens: 9, outputTokens: 6, totalTokens: 15 });
    expect((await result.response).id).toMatch(/^resp_/);
    expect(newRows()).toEqual([expect.objectContaining({ operation: "responses", status: "ok", prompt_tokens: 9, completion_tokens: 6 })]);
  });

  it("generateText runs a tool and sends its result back in the next step (stopWhen: stepCountIs(3))", async () => {
    gw.fake.enqueue(
      { kind: "reply", toolCalls: [WEATHER_CALL], usage: { prompt_tokens: 20, completion_tokens: 7 } },
      { kind: "reply", content: "It is sunny in Paris.", usage: { prompt_tokens: 40, completion_tokens: 6 } },
    );
    const seen: unknown[] = [];
    const result = await generateText({
      model: aiSdk(), prompt: "What is the weather in Paris?", tools: { weather: weatherTool(seen) }, stopWhen: stepCountIs(3), maxRetries: 0,
    });
    expect(seen).toEqual([{ city: "Paris" }]);
    expect(result.steps).toHaveLength(2);
    expect(result.steps[0]!.finishReason).toBe("tool-calls");
    expect(result.steps[0]!.toolCalls).toEqual([expect.objectContaining({ toolCallId: WEATHER_CALL.id, toolName: "weather", input: { city: "Paris" } })]);
    expect(result.text).toBe("It is sunny in Paris.");
    expect(result.totalUsage).toMatchObject({ inputTokens: 60, outputTokens: 13 });
    expect(gw.fake.requests).toHaveLength(2);
    expect(gw.fake.requests[0]!.body.tools).toEqual([expect.objectContaining({ type: "function", function: expect.objectContaining({ name: "weather" }) })]);
    expectToolRoundTrip(gw.fake.requests[1]!.body, JSON.stringify(FORECAST));
    expect(newRows()).toEqual([
      expect.objectContaining({ operation: "responses", status: "ok", prompt_tokens: 20, completion_tokens: 7 }),
      expect.objectContaining({ operation: "responses", status: "ok", prompt_tokens: 40, completion_tokens: 6 }),
    ]);
  });

  it("streamText runs a streamed tool call and answers in a second streamed step", async () => {
    gw.fake.enqueue({ kind: "reply", toolCalls: [WEATHER_CALL] }, { kind: "reply", content: "Sunny, 24 degrees." });
    const seen: unknown[] = [];
    const errors: unknown[] = [];
    const result = streamText({
      model: aiSdk(), prompt: "Weather in Paris?", tools: { weather: weatherTool(seen) }, stopWhen: stepCountIs(3), maxRetries: 0,
      onError: ({ error }) => void errors.push(error),
    });
    let text = "";
    for await (const d of result.textStream) text += d;
    expect(errors).toEqual([]);
    const steps = await result.steps;
    expect(seen).toEqual([{ city: "Paris" }]);
    expect(steps).toHaveLength(2);
    expect(text).toBe("Sunny, 24 degrees.");
    expect(gw.fake.requests).toHaveLength(2);
    expectToolRoundTrip(gw.fake.requests[1]!.body, JSON.stringify(FORECAST));
    expect(newRows().map((r) => r.operation)).toEqual(["responses", "responses"]);
  });
});

describe("Vercel AI SDK: reasoning and failures", () => {
  it("reasoning comes back as reasoning, and a reasoning step replays (item_reference to the rs_ item) in a tool loop", async () => {
    gw.fake.enqueue(
      { kind: "reply", reasoning: "Need the weather tool.", toolCalls: [WEATHER_CALL] },
      { kind: "reply", reasoning: "Now answer.", content: "Sunny." },
    );
    const seen: unknown[] = [];
    const result = await generateText({
      model: aiSdk(), prompt: "Weather in Paris?", tools: { weather: weatherTool(seen) }, stopWhen: stepCountIs(3), maxRetries: 0,
    });
    expect(result.steps[0]!.reasoningText).toBe("Need the weather tool.");
    expect(result.reasoningText).toBe("Now answer.");
    expect(result.text).toBe("Sunny.");
    expectToolRoundTrip(gw.fake.requests[1]!.body, JSON.stringify(FORECAST));
  });

  it("streamText streams the reasoning before the text", async () => {
    gw.fake.enqueue({ kind: "reply", reasoning: "Let me think about it.", content: "Forty two." });
    const errors: unknown[] = [];
    const result = streamText({ model: aiSdk(), prompt: "hi", maxRetries: 0, onError: ({ error }) => void errors.push(error) });
    const kinds: string[] = [];
    for await (const part of result.fullStream) if (part.type === "reasoning-delta" || part.type === "text-delta") kinds.push(part.type);
    expect(errors).toEqual([]);
    expect(await result.reasoningText).toBe("Let me think about it.");
    expect(await result.text).toBe("Forty two.");
    expect(kinds.indexOf("text-delta")).toBeGreaterThan(kinds.lastIndexOf("reasoning-delta"));
  });

  it("an upstream error before the answer is an APICallError with the gateway's status, and one error row", async () => {
    gw.fake.enqueue({ kind: "error", status: 500 });
    const err: any = await generateText({ model: aiSdk(), prompt: "hi", maxRetries: 0 }).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ name: "AI_APICallError", statusCode: 502 });
    expect(err.data?.error?.message).toEqual(expect.any(String));
    expect(newRows()).toEqual([expect.objectContaining({ operation: "responses", status: "error" })]);
  });

  it("a stream that breaks mid-answer reaches streamText as an error, not as a quiet end", async () => {
    gw.fake.enqueue({ kind: "stream-then-error", chunks: 2, message: "upstream fell over" });
    const errors: unknown[] = [];
    const result = streamText({ model: aiSdk(), prompt: "hi", maxRetries: 0, onError: ({ error }) => void errors.push(error) });
    for await (const _ of result.textStream) { /* drain */ }
    expect(errors.length).toBeGreaterThan(0);
    expect(await result.finishReason).not.toBe("stop");
    expect(newRows()).toEqual([expect.objectContaining({ operation: "responses", status: "error" })]);
  });
});

describe("LangChain ChatOpenAI({ useResponsesApi: true })", () => {
  const weather = lcTool(async ({ city }: { city: string }) => JSON.stringify({ ...FORECAST, city }), {
    name: "weather", description: "Current weather for a city", schema: z.object({ city: z.string() }),
  });

  it("invoke returns the text as an AIMessage with usage_metadata", async () => {
    gw.fake.enqueue({ kind: "reply", content: "Hello there", usage: { prompt_tokens: 12, completion_tokens: 3 } });
    const msg = (await chatOpenAI().invoke("hi")) as AIMessage;
    expect(msg.text).toBe("Hello there");
    expect(msg.usage_metadata).toMatchObject({ input_tokens: 12, output_tokens: 3, total_tokens: 15 });
    expect(msg.response_metadata).toMatchObject({ id: expect.stringMatching(/^resp_/), status: "completed" });
    expect(newRows()).toEqual([expect.objectContaining({ operation: "responses", status: "ok", prompt_tokens: 12, completion_tokens: 3 })]);
  });

  it("stream yields text chunks that concatenate to the answer, the last with the usage", async () => {
    gw.fake.enqueue({ kind: "reply", content: "Streaming words arrive one by one", usage: { prompt_tokens: 9, completion_tokens: 6 } });
    let full: AIMessageChunk | undefined;
    let textChunks = 0;
    for await (const chunk of await chatOpenAI().stream("hi")) {
      if (chunk.text !== "") textChunks++;
      full = full ? full.concat(chunk) : chunk;
    }
    expect(textChunks).toBeGreaterThan(1);
    expect(full!.text).toBe("Streaming words arrive one by one");
    expect(full!.usage_metadata).toMatchObject({ input_tokens: 9, output_tokens: 6, total_tokens: 15 });
    expect(newRows()).toEqual([expect.objectContaining({ operation: "responses", status: "ok", prompt_tokens: 9, completion_tokens: 6 })]);
  });

  it("an upstream failure, before or during the stream, is thrown to the caller", async () => {
    gw.fake.enqueue({ kind: "error", status: 500 });
    await expect(chatOpenAI().invoke("hi")).rejects.toMatchObject({ status: 502 });
    gw.fake.enqueue({ kind: "stream-then-error", chunks: 2, message: "upstream fell over" });
    const drain = async () => {
      for await (const _ of await chatOpenAI().stream("hi")) { /* drain */ }
    };
    await expect(drain()).rejects.toThrow(/upstream fell over/);
    expect(newRows()).toEqual([
      expect.objectContaining({ operation: "responses", status: "error" }),
      expect.objectContaining({ operation: "responses", status: "error" }),
    ]);
  });

  it("bindTools: the tool call comes back, and its ToolMessage reaches the upstream on the next turn", async () => {
    gw.fake.enqueue({ kind: "reply", toolCalls: [WEATHER_CALL] }, { kind: "reply", content: "It is sunny in Paris." });
    const llm = chatOpenAI().bindTools([weather]);
    const question = new HumanMessage("What is the weather in Paris?");
    const ai = (await llm.invoke([question])) as AIMessage;
    expect(ai.tool_calls).toEqual([expect.objectContaining({ id: WEATHER_CALL.id, name: "weather", args: { city: "Paris" } })]);
    expect(gw.fake.requests[0]!.body.tools).toEqual([expect.objectContaining({ type: "function", function: expect.objectContaining({ name: "weather" }) })]);

    const output = (await weather.invoke(ai.tool_calls![0]!.args as { city: string })) as string;
    const answer = (await llm.invoke([question, ai, new ToolMessage({ content: output, tool_call_id: WEATHER_CALL.id })])) as AIMessage;
    expect(answer.text).toBe("It is sunny in Paris.");
    expectToolRoundTrip(gw.fake.requests[1]!.body, output);
    expect(newRows().map((r) => r.operation)).toEqual(["responses", "responses"]);
  });

  it("bindTools + stream: the streamed tool call's arguments arrive once, whole", async () => {
    gw.fake.enqueue({ kind: "reply", toolCalls: [WEATHER_CALL] }, { kind: "reply", content: "Sunny." });
    const llm = chatOpenAI().bindTools([weather]);
    const question = new HumanMessage("What is the weather in Paris?");
    let full: AIMessageChunk | undefined;
    for await (const chunk of await llm.stream([question])) full = full ? full.concat(chunk) : chunk;
    expect(full!.tool_calls).toEqual([expect.objectContaining({ id: WEATHER_CALL.id, name: "weather", args: { city: "Paris" } })]);

    // A streamed AIMessage goes back as the response's own output items: the door must take them as input.
    const output = (await weather.invoke({ city: "Paris" })) as string;
    const answer = (await llm.invoke([question, full!, new ToolMessage({ content: output, tool_call_id: WEATHER_CALL.id })])) as AIMessage;
    expect(answer.text).toBe("Sunny.");
    expectToolRoundTrip(gw.fake.requests[1]!.body, output);
    expect(newRows().map((r) => r.operation)).toEqual(["responses", "responses"]);
  });
});
