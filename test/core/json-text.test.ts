// One serialisation of a completion for the cache's entry and the shim's answer (src/core/json-text.ts).
import { describe, expect, it } from "vitest";
import { decode, encode } from "../../src/cache/codec.js";
import { jsonText, keptJsonText } from "../../src/core/json-text.js";

const completion = () => ({
  id: "chatcmpl-1", object: "chat.completion", created: 1, model: "qwen-max",
  choices: [{ index: 0, message: { role: "assistant", content: "hi \u2603" }, finish_reason: "stop", logprobs: null }],
  usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
});

describe("json text", () => {
  it("keeps the text it made on the object, for jsonText to return instead of serialising again", () => {
    const c = completion();
    expect(jsonText(c)).toBe(JSON.stringify(c));
    const text = keptJsonText(c);
    expect(text).toBe(JSON.stringify(completion()));
    c.model = "changed"; // nothing changes a completion once kept; if it did, the kept text would be sent
    expect(jsonText(c)).toBe(text);
    expect(JSON.stringify(c)).not.toContain("gatewayz"); // the symbol is not serialised
  });

  it("the codec stores the completion through it: the shim then sends the entry's own text", () => {
    const c = completion();
    const bytes = encode({ operation: "chat", completion: c as never, provider: "alibaba", upstreamModel: "qwen-max", model: "qwen-max", costPico: 12n, createdAt: 5 });
    expect(jsonText(c)).toBe(JSON.stringify(completion()));
    expect(decode(bytes)).toEqual({ operation: "chat", completion: completion(), provider: "alibaba", upstreamModel: "qwen-max", model: "qwen-max", costPico: 12n, createdAt: 5 });
    expect(Buffer.from(bytes).toString("utf8", 2)).toBe(
      `{"operation":"chat","provider":"alibaba","upstreamModel":"qwen-max","model":"qwen-max","costPico":"12","createdAt":5,"completion":${JSON.stringify(completion())}}`);
  });
});
