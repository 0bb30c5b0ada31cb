import type { ChatCompletion } from "openai/resources/chat/completions";
import { describe, expect, it } from "vitest";
import { decode, encode, MAGIC, VERSION, type CachedChat, type CachedEmbeddings } from "../../src/cache/codec.js";
import { base64Of } from "../../src/server/openai-embeddings.js";

const completion: ChatCompletion = {
  id: "chatcmpl-1", object: "chat.completion", created: 1_764_000_000, model: "qwen-plus-2025-09-11",
  choices: [{
    index: 0, finish_reason: "tool_calls", logprobs: null,
    message: {
      role: "assistant", content: "Voilà — ünïcødé 🚀", refusal: null,
      tool_calls: [{ id: "call_1", type: "function", function: { name: "f", arguments: '{"a":1}' } }],
    },
  }],
  usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17, prompt_tokens_details: { cached_tokens: 0 } },
};
const chat: CachedChat = {
  operation: "chat", completion, provider: "alibaba-cloud", upstreamModel: "qwen-plus-2025-09-11", model: "qwen-plus",
  costPico: 123_456_789_012_345_678_901n, createdAt: 1_764_000_000_123,
};
const usage = { promptTokens: 4, completionTokens: 0, totalTokens: 4, cachedTokens: 0, reasoningTokens: 0 };
const embeddings = (vectors: number[][]): CachedEmbeddings => ({
  operation: "embeddings", vectors, usage, provider: "alibaba-cloud", upstreamModel: "text-embedding-v4", model: "text-embedding-v4",
  costPico: 0n, createdAt: 1,
});
const bytesOf = (json: string) => new Uint8Array([MAGIC, VERSION, ...Buffer.from(json, "utf8")]);

describe("cached answer codec", () => {
  it("round-trips a chat answer, bigint cost included", () => {
    const bytes = encode(chat);
    expect(bytes[0]).toBe(MAGIC);
    expect(bytes[1]).toBe(VERSION);
    expect(decode(bytes)).toEqual(chat);
  });

  it("round-trips embeddings, with empty and differently sized vectors", () => {
    const answer = embeddings([[0.5, -1, 0], [], [2, 3]]);
    expect(decode(encode(answer))).toEqual(answer);
  });

  it("replays upstream doubles exactly, so the float door writes the same JSON", () => {
    const vectors = [[0.1, -0.0563424788415432, 1e-310, 0.30000000000000004], [-0, 5e-324, 123456.789]];
    const decoded = decode(encode(embeddings(vectors))) as CachedEmbeddings;
    expect(JSON.stringify(decoded.vectors)).toBe(JSON.stringify(vectors));
    decoded.vectors.forEach((v, i) => expect(base64Of(v)).toBe(base64Of(vectors[i]!)));
  });

  it("stores float32-exact vectors at four bytes a value", () => {
    const f32 = Array.from({ length: 1024 }, (_, i) => Math.fround(Math.sin(i)));
    const f64 = Array.from({ length: 1024 }, (_, i) => Math.sin(i));
    const small = encode(embeddings([f32]));
    const large = encode(embeddings([f64]));
    expect(decode(small)).toEqual(embeddings([f32]));
    expect(decode(large)).toEqual(embeddings([f64]));
    expect(small.length).toBeLessThan(6000); // 4096 bytes as base64, plus the envelope
    expect(large.length).toBeLessThan(12000);
    expect(small.length).toBeLessThan(JSON.stringify(f32).length / 2);
  });

  it("reads every truncation of an entry as undefined, without throwing", () => {
    for (const answer of [chat, embeddings([[0.1, 0.2], [0.3, 0.4]])]) {
      const bytes = encode(answer);
      for (let n = 0; n < bytes.length; n++) expect(decode(bytes.subarray(0, n))).toBeUndefined();
    }
  });

  it("reads another magic, another version or foreign bytes as undefined", () => {
    const bytes = encode(chat);
    expect(decode(new Uint8Array([0x00, ...bytes.subarray(1)]))).toBeUndefined();
    expect(decode(new Uint8Array([MAGIC, VERSION + 1, ...bytes.subarray(2)]))).toBeUndefined();
    expect(decode(new Uint8Array([MAGIC, 0, ...bytes.subarray(2)]))).toBeUndefined();
    expect(decode(Buffer.from(JSON.stringify({ operation: "chat" })))).toBeUndefined();
    expect(decode(new Uint8Array(0))).toBeUndefined();
    expect(decode(new Uint8Array([MAGIC, VERSION, 0xff, 0xfe]))).toBeUndefined();
  });

  it("reads well-formed JSON that is no answer as undefined", () => {
    const valid = JSON.parse(Buffer.from(encode(chat).subarray(2)).toString("utf8"));
    const emb = JSON.parse(Buffer.from(encode(embeddings([[0.1, 0.2]])).subarray(2)).toString("utf8"));
    const broken = [
      "null", "[]", '"chat"', "{}",
      { ...valid, operation: "responses" },
      { ...valid, costPico: "-5" }, { ...valid, costPico: 5 }, { ...valid, costPico: "1.5" },
      { ...valid, createdAt: "yesterday" }, { ...valid, provider: undefined },
      { ...valid, completion: { ...completion, choices: "none" } },
      { ...valid, completion: { ...completion, usage: undefined } },
      { ...emb, usage: { ...usage, promptTokens: -1 } },
      { ...emb, vectors: { ...emb.vectors, width: 2 } },
      { ...emb, vectors: { ...emb.vectors, lengths: [3] } },
      { ...emb, vectors: { ...emb.vectors, lengths: [1.5, 0.5] } },
      { ...emb, vectors: { ...emb.vectors, data: emb.vectors.data.slice(0, -4) } },
      { ...emb, vectors: { ...emb.vectors, data: `*${emb.vectors.data.slice(1)}` } },
    ];
    for (const json of broken) {
      expect(decode(bytesOf(typeof json === "string" ? json : JSON.stringify(json)))).toBeUndefined();
    }
  });

  it("survives random corruption without throwing", () => {
    const bytes = encode(embeddings([[0.1, 0.2, 0.3]]));
    let seed = 1;
    const random = () => (seed = (seed * 48271) % 0x7fffffff) / 0x7fffffff;
    for (let i = 0; i < 500; i++) {
      const copy = new Uint8Array(bytes);
      copy[2 + Math.floor(random() * (copy.length - 2))] = Math.floor(random() * 256);
      expect(() => decode(copy)).not.toThrow();
    }
  });
});
