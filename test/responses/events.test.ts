// The Responses event state machine on its own: chat chunks in, OpenAI's
// event sequence out (names, sequence numbers, output/content indexes, item ids).

import type { ChatCompletionChunk } from "openai/resources/chat/completions";
import { describe, expect, it } from "vitest";
import { ResponseEvents, type ResponseEvent } from "../../src/responses/events.js";
import { shell } from "../../src/responses/response.js";
import { EventText } from "../../src/responses/event-text.js";
import { namedEventText } from "../../src/server/sse.js";

const USAGE = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, prompt_tokens_details: { cached_tokens: 2 }, completion_tokens_details: { reasoning_tokens: 3 } };

function chunk(delta: Record<string, unknown>, finish: string | null = null): ChatCompletionChunk {
  return { id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] } as ChatCompletionChunk;
}

function run(chunks: ChatCompletionChunk[]) {
  const m = new ResponseEvents(shell("qwen-plus", undefined, true, { tools: [], metadata: {} }));
  const events: ResponseEvent[] = [...m.start()];
  for (const c of chunks) events.push(...m.push(c));
  const end = m.finish(USAGE);
  events.push(...end.events);
  return { events, response: end.response, types: events.map((e) => e.type) };
}

const call = (index: number, fields: Record<string, unknown>) => ({ tool_calls: [{ index, ...fields }] });

describe("ResponseEvents", () => {
  it("frames a text answer as OpenAI does, with increasing sequence numbers", () => {
    const { events, types, response } = run([chunk({ role: "assistant", content: "" }), chunk({ content: "Hel" }), chunk({ content: "lo" }), chunk({}, "stop")]);
    expect(types).toEqual([
      "response.created", "response.in_progress",
      "response.output_item.added", "response.content_part.added",
      "response.output_text.delta", "response.output_text.delta",
      "response.output_text.done", "response.content_part.done", "response.output_item.done",
      "response.completed",
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const created = events[0]!.response as Record<string, unknown>;
    expect(created).toMatchObject({ object: "response", status: "in_progress", output: [], usage: null, model: "qwen-plus" });
    expect(String(created.id)).toMatch(/^resp_[0-9a-f]{48}$/);
    const added = events[2]!;
    const itemId = (added.item as { id: string }).id;
    expect(itemId).toMatch(/^msg_/);
    for (const e of events.slice(3, 8)) expect(e).toMatchObject({ item_id: itemId, output_index: 0 });
    expect(events[8]).toMatchObject({ output_index: 0, item: { id: itemId, status: "completed" } });
    expect(events[6]).toMatchObject({ text: "Hello", content_index: 0 });
    expect(response).toMatchObject({
      id: created.id, status: "completed",
      output: [{ type: "message", id: itemId, status: "completed", role: "assistant", content: [{ type: "output_text", text: "Hello", annotations: [] }] }],
      usage: { input_tokens: 10, input_tokens_details: { cached_tokens: 2 }, output_tokens: 5, output_tokens_details: { reasoning_tokens: 3 }, total_tokens: 15 },
    });
    expect(events.at(-1)!.response).toEqual(response);
  });

  it("puts reasoning first, as a summary item, then the message", () => {
    const { types, response, events } = run([chunk({ reasoning_content: "think " }), chunk({ reasoning_content: "hard" }), chunk({ content: "42" }), chunk({}, "stop")]);
    expect(types.slice(2, 9)).toEqual([
      "response.output_item.added", "response.reasoning_summary_part.added",
      "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
      "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
    ]);
    expect(events[6]).toMatchObject({ text: "think hard", output_index: 0, summary_index: 0 });
    expect(events[9]).toMatchObject({ type: "response.output_item.added", output_index: 1 });
    expect(response.output.map((o) => o.type)).toEqual(["reasoning", "message"]);
    expect(response.output[0]).toMatchObject({ summary: [{ type: "summary_text", text: "think hard" }] });
  });

  it("gives each parallel function call its own item, closed before the next opens", () => {
    const { types, events, response } = run([
      chunk(call(0, { id: "call_a", type: "function", function: { name: "f", arguments: "" } })),
      chunk(call(0, { function: { arguments: '{"x"' } })),
      chunk(call(0, { function: { arguments: ":1}" } })),
      chunk(call(1, { id: "call_b", type: "function", function: { name: "g", arguments: "" } })),
      chunk(call(1, { function: { arguments: "{}" } })),
      chunk({}, "tool_calls"),
    ]);
    expect(types.slice(2, -1)).toEqual([
      "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.delta",
      "response.function_call_arguments.done", "response.output_item.done",
      "response.output_item.added", "response.function_call_arguments.delta",
      "response.function_call_arguments.done", "response.output_item.done",
    ]);
    expect(events[2]!.item).toMatchObject({ type: "function_call", call_id: "call_a", name: "f", arguments: "", status: "in_progress" });
    expect(events[5]).toMatchObject({ arguments: '{"x":1}', name: "f", output_index: 0 });
    expect(events[7]).toMatchObject({ output_index: 1 });
    expect(response.output).toMatchObject([
      { type: "function_call", call_id: "call_a", name: "f", arguments: '{"x":1}', status: "completed" },
      { type: "function_call", call_id: "call_b", name: "g", arguments: "{}", status: "completed" },
    ]);
    expect(response.output.some((o) => o.type === "message")).toBe(false);
  });

  it("a length cut is response.incomplete with the reason, and the message incomplete", () => {
    const { types, response } = run([chunk({ content: "a" }), chunk({}, "length")]);
    expect(types.at(-1)).toBe("response.incomplete");
    expect(response).toMatchObject({ status: "incomplete", incomplete_details: { reason: "max_output_tokens" }, output: [{ status: "incomplete" }] });
  });

  it("an empty answer is one empty message", () => {
    const { response } = run([chunk({ role: "assistant", content: "" }), chunk({}, "stop")]);
    expect(response.output).toMatchObject([{ type: "message", content: [{ text: "" }] }]);
  });

  it("a failure ends with response.failed and an error event, never response.completed", () => {
    const m = new ResponseEvents(shell("qwen-plus", undefined, true, {}));
    const events = [...m.start(), ...m.push(chunk({ content: "par" }))];
    events.push(...m.fail({ message: "upstream broke", type: "server_error", param: null, code: "upstream_error" }));
    const types = events.map((e) => e.type);
    expect(types.slice(-2)).toEqual(["response.failed", "error"]);
    expect(types).not.toContain("response.completed");
    expect(events.at(-2)!.response).toMatchObject({ status: "failed", error: { code: "server_error", message: "upstream broke" }, output: [{ status: "incomplete" }] });
    expect(events.at(-1)).toMatchObject({ code: "upstream_error", message: "upstream broke", error: { type: "server_error", code: "upstream_error" } });
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
  });

  it("serialises each event as plain JSON would, each Response object once", () => {
    const { events, response } = run([chunk({ content: "Hi" }), chunk({ reasoning_content: "r" }), chunk(call(0, { id: "t", function: { name: "f", arguments: "{}" } }), "tool_calls")]);
    const text = new EventText();
    const stringify = JSON.stringify;
    let serialised = 0;
    JSON.stringify = ((v: unknown, ...rest: never[]) => {
      if (v === response || (v as { object?: string } | null)?.object === "response") serialised++;
      return stringify(v, ...rest);
    }) as typeof JSON.stringify;
    try {
      for (const e of events) expect(text.event(e)).toBe(namedEventText(e, stringify(e)));
    } finally {
      JSON.stringify = stringify;
    }
    // created and in_progress share one Response object; completed carries the final one.
    expect(serialised).toBe(2);
    expect(text.response(response)).toBe(stringify(response));
  });
});
