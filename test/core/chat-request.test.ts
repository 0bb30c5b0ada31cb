import { describe, expect, it } from "vitest";
import { validateChat } from "../../src/core/chat-request.js";
import { completionReserve, DEFAULT_COMPLETION_RESERVE } from "../../src/core/tokens.js";
import { GatewayError } from "../../src/errors.js";

const messages = [{ role: "user", content: "hi" }];

/** The invalid_request a body is refused with, or undefined when it passes. */
function refusal(body: Record<string, unknown>): { param: string | undefined; message: string } | undefined {
  try {
    validateChat("qwen-plus", body);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).kind).toBe("invalid_request");
    return { param: (err as GatewayError).param, message: (err as GatewayError).rawMessage };
  }
}

describe("content parts", () => {
  it.each([
    ["null", null],
    ["a string", "hello"],
    ["a number", 7],
    ["an array", [{ type: "text", text: "hi" }]],
    ["an object without a type", { text: "hi" }],
    ["an object whose type is not a string", { type: 3, text: "hi" }],
  ])("a part that is %s is refused, naming it", (_, part) => {
    const r = refusal({ messages: [{ role: "user", content: [{ type: "text", text: "ok" }, part] }] });
    expect(r).toEqual({ param: "messages[0].content[1]", message: expect.stringMatching(/^messages\[0\]\.content\[1\] must be a content part/) });
  });

  it("a text part's text must be a string", () => {
    expect(refusal({ messages: [messages[0], { role: "user", content: [{ type: "text", text: null }] }] }))
      .toMatchObject({ param: "messages[1].content[0].text" });
  });

  it("image, audio and unknown part types pass as they are", () => {
    expect(refusal({ messages: [{ role: "user", content: [
      { type: "text", text: "what is this?" },
      { type: "image_url", image_url: { url: "https://example.com/a.png" } },
      { type: "input_audio", input_audio: { data: "AAAA", format: "wav" } },
      { type: "video", video: ["a.jpg"] },
    ] }] })).toBeUndefined();
  });
});

// [field, accepted values, refused values]
const PARAMS: Array<[string, unknown[], unknown[]]> = [
  ["temperature", [0, 0.7, 2], ["x", -0.1, 2.01, Number.NaN, true]],
  ["top_p", [0, 0.5, 1], [1.5, -1, "1"]],
  ["max_tokens", [1, 4096, 10_000_000], [0, -5, 1.5, "100", 10_000_001, 4294967291]],
  ["max_completion_tokens", [1, 100], [0, -1, 2.5]],
  ["n", [1, 128], [0, 129, 1_000_000, 1.5, "2"]],
  ["presence_penalty", [-2, 0, 2], [-2.5, 3, "0"]],
  ["frequency_penalty", [-2, 1.5, 2], [2.1, {}]],
  ["seed", [0, -3, 42], [1.5, "42"]],
  ["stop", ["\n", [], ["a", "b", "c", "d"]], [["a", "b", "c", "d", "e"], [1], 5]],
  ["logprobs", [true, false], ["true", 1]],
  ["top_logprobs", [0, 20], [21, -1, 1.5]],
  ["parallel_tool_calls", [false], ["no"]],
  ["tools", [[], [{ type: "function", function: { name: "get_weather", parameters: {} } }]],
    [{}, [null], [{ type: "function" }], [{ type: "function", function: { name: 3 } }], [{ type: "code", function: { name: "x" } }]]],
  ["tool_choice", ["auto", "none", { type: "function", function: { name: "f" } }], [1, ["auto"]]],
  ["response_format", [{ type: "json_object" }], ["json", {}, { type: 1 }]],
  ["user", ["alice"], [42]],
  ["logit_bias", [{ "50256": -100 }], [[1], "x"]],
  ["enable_thinking", [true], ["yes"]],
  ["enable_search", [false], [0]],
  ["thinking_budget", [1, 4000], [0, -1, 1.5]],
];

describe("generation parameters", () => {
  for (const [field, good, bad] of PARAMS) {
    it(`${field}: accepts ${JSON.stringify(good)}; refuses the rest, naming it`, () => {
      for (const v of good) expect(refusal({ messages, [field]: v }), `${field}: ${JSON.stringify(v)}`).toBeUndefined();
      for (const v of bad) {
        const r = refusal({ messages, [field]: v });
        expect(r, `${field}: ${String(v)}`).toMatchObject({ param: field, message: expect.stringMatching(new RegExp(`^${field} must be `)) });
      }
    });
  }

  it("null leaves a parameter unset, as OpenAI reads it", () => {
    expect(refusal({ messages, temperature: null, max_tokens: null, n: null, stop: null })).toBeUndefined();
  });

  it("unknown fields pass through untouched", () => {
    expect(refusal({ messages, top_k: "anything", repetition_penalty: -9, vendor: { x: [1] } })).toBeUndefined();
  });

  it("says what it got", () => {
    expect(refusal({ messages, n: 1_000_000 })!.message).toBe("n must be an integer from 1 to 128, got 1000000");
    expect(refusal({ messages, temperature: "x" })!.message).toBe("temperature must be a number from 0 to 2, got a string");
  });
});

describe("the completion reservation", () => {
  it("is max_tokens, or the default, for each of the n answers", () => {
    expect(completionReserve({ messages })).toBe(DEFAULT_COMPLETION_RESERVE);
    expect(completionReserve({ messages, n: 3 })).toBe(3 * DEFAULT_COMPLETION_RESERVE);
    expect(completionReserve({ messages, max_tokens: 100, n: 4 })).toBe(400);
    expect(completionReserve({ messages, max_completion_tokens: 50, n: 2 })).toBe(100);
    expect(completionReserve({ messages, max_tokens: 100, n: null })).toBe(100);
  });
});
