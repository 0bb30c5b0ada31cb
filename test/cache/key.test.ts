import { describe, expect, it } from "vitest";
import { cacheKey, canonical, canonicalRequest, type CacheKeyInput, type ChatKeyInput, type EmbeddingsKeyInput } from "../../src/cache/key.js";

const alice = { userId: "u_alice", keyId: "k_alice_1" };
const body = {
  messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }],
  temperature: 0.2,
  max_tokens: 64,
};
const chat = (over: Partial<ChatKeyInput> = {}): ChatKeyInput => ({
  operation: "chat", model: "qwen-plus", scope: "user", principal: alice, body, ...over,
});
const embeddings = (over: Partial<EmbeddingsKeyInput> = {}): EmbeddingsKeyInput => ({
  operation: "embeddings", model: "text-embedding-v4", scope: "user", principal: alice, inputs: ["a", "b"], dimensions: 1024, ...over,
});
const withBody = (extra: Record<string, unknown>) => cacheKey(chat({ body: { ...body, ...extra } }));

describe("canonical serialisation", () => {
  it("sorts object keys recursively and keeps array order", () => {
    expect(canonical({ b: 1, a: { d: [3, 1], c: null } })).toBe('{"a":{"c":null,"d":[3,1]},"b":1}');
    expect(canonical({ a: { c: null, d: [3, 1] }, b: 1 })).toBe(canonical({ b: 1, a: { d: [3, 1], c: null } }));
    expect(canonical([2, 1])).not.toBe(canonical([1, 2]));
  });

  it("follows JSON's rules for what it drops and how it writes numbers", () => {
    const value = { a: undefined, f: () => 1, n: [undefined, NaN, Infinity, 1.0, 1e21, -0], s: "é\n\"", t: true, d: new Date(0) };
    expect(canonical(value)).toBe('{"d":"1970-01-01T00:00:00.000Z","n":[null,null,null,1,1e+21,0],"s":"é\\n\\"","t":true}');
    expect(JSON.parse(canonical(value)!)).toEqual(JSON.parse(JSON.stringify(value)));
    expect(canonical(undefined)).toBeUndefined();
  });

  it("keys a parsed body the same as the object it came from", () => {
    const original = { messages: [{ role: "user", content: "x", name: undefined }], temperature: undefined };
    expect(cacheKey(chat({ body: JSON.parse(JSON.stringify(original)) }))).toBe(cacheKey(chat({ body: original })));
  });
});

describe("the cache key", () => {
  it("is 64 hex characters of sha256", () => {
    expect(cacheKey(chat())).toMatch(/^[0-9a-f]{64}$/);
    expect(cacheKey(chat())).toBe(cacheKey(chat()));
  });

  it("does not depend on JSON key order, at any depth", () => {
    const reordered = {
      max_tokens: 64,
      temperature: 0.2,
      messages: [{ content: "Be brief.", role: "system" }, { content: "Hi", role: "user" }],
    };
    expect(cacheKey(chat({ body: reordered }))).toBe(cacheKey(chat()));
    const tools = (fn: object) => withBody({ tools: [{ type: "function", function: fn }] });
    expect(tools({ name: "f", parameters: { type: "object", properties: { a: { type: "string" }, b: { type: "number" } } } }))
      .toBe(tools({ parameters: { properties: { b: { type: "number" }, a: { type: "string" } }, type: "object" }, name: "f" }));
  });

  it.each([
    ["stream", true],
    ["stream_options", { include_usage: true }],
    ["user", "end-user-42"],
    ["metadata", { trace: "abc" }],
    ["store", true],
    ["model", "some-alias"],
  ])("ignores %s", (field, value) => {
    expect(withBody({ [field]: value })).toBe(cacheKey(chat()));
  });

  it.each([
    ["temperature", { temperature: 0.9 }],
    ["top_p", { top_p: 0.5 }],
    ["max_tokens", { max_tokens: 65 }],
    ["seed", { seed: 7 }],
    ["n", { n: 2 }],
    ["stop", { stop: ["\n"] }],
    ["tools", { tools: [{ type: "function", function: { name: "f", parameters: {} } }] }],
    ["tool_choice", { tool_choice: "required" }],
    ["response_format", { response_format: { type: "json_object" } }],
    ["an unknown provider extra", { enable_thinking: true }],
    ["a null where the field was absent", { presence_penalty: null }],
    ["message content", { messages: [body.messages[0], { role: "user", content: "Hi!" }] }],
    ["message role", { messages: [{ role: "developer", content: "Be brief." }, body.messages[1]] }],
    ["message order", { messages: [body.messages[1], body.messages[0]] }],
    ["content as parts", { messages: [body.messages[0], { role: "user", content: [{ type: "text", text: "Hi" }] }] }],
  ])("changes with %s", (_name, extra) => {
    expect(withBody(extra)).not.toBe(cacheKey(chat()));
  });

  it("reads stop as a string and as a one-item list alike (the RPC doors send only lists)", () => {
    expect(withBody({ stop: "END" })).toBe(withBody({ stop: ["END"] }));
    expect(withBody({ stop: "END" })).not.toBe(withBody({ stop: ["END", "FIN"] }));
    expect(withBody({ stop: "END" })).not.toBe(cacheKey(chat()));
  });

  it("changes with the resolved model", () => {
    expect(cacheKey(chat({ model: "qwen-max" }))).not.toBe(cacheKey(chat()));
  });

  it("separates users under scope user, and shares between one user's keys", () => {
    const bob = { userId: "u_bob", keyId: "k_bob" };
    expect(cacheKey(chat({ principal: bob }))).not.toBe(cacheKey(chat()));
    expect(cacheKey(chat({ principal: { ...alice, keyId: "k_alice_2" } }))).toBe(cacheKey(chat()));
  });

  it("separates keys, even of one user, under scope key", () => {
    const other = { ...alice, keyId: "k_alice_2" };
    expect(cacheKey(chat({ scope: "key", principal: other }))).not.toBe(cacheKey(chat({ scope: "key" })));
    expect(cacheKey(chat({ scope: "key", principal: { ...alice, userId: "u_x" } }))).toBe(cacheKey(chat({ scope: "key" })));
  });

  it("shares between everyone under scope global, and never with a scoped entry", () => {
    const bob = { userId: "u_bob", keyId: "k_bob" };
    expect(cacheKey(chat({ scope: "global", principal: bob }))).toBe(cacheKey(chat({ scope: "global" })));
    expect(cacheKey(chat({ scope: "global" }))).not.toBe(cacheKey(chat()));
  });

  it("does not confuse a user id with a key id of the same text", () => {
    const same = { userId: "x", keyId: "x" };
    expect(cacheKey(chat({ scope: "user", principal: same }))).not.toBe(cacheKey(chat({ scope: "key", principal: same })));
  });

  it("refuses a scope it does not know rather than share", () => {
    expect(() => cacheKey(chat({ scope: "everyone" as never }))).toThrow(/unknown cache scope/);
  });
});

describe("the embeddings key", () => {
  it("covers the inputs, their order and the resolved dimensions", () => {
    expect(cacheKey(embeddings({ inputs: ["a", "c"] }))).not.toBe(cacheKey(embeddings()));
    expect(cacheKey(embeddings({ inputs: ["b", "a"] }))).not.toBe(cacheKey(embeddings()));
    expect(cacheKey(embeddings({ dimensions: 256 }))).not.toBe(cacheKey(embeddings()));
    expect(cacheKey(embeddings({ inputs: [[1, 2]] }))).not.toBe(cacheKey(embeddings({ inputs: ["[1,2]"] })));
  });

  it("ignores encoding_format and user, keeps a provider's extras", () => {
    expect(cacheKey(embeddings({ passThrough: { encoding_format: "base64", user: "u" } }))).toBe(cacheKey(embeddings()));
    expect(cacheKey(embeddings({ passThrough: { text_type: "query" } }))).not.toBe(cacheKey(embeddings()));
  });

  it("is scoped like chat", () => {
    expect(cacheKey(embeddings({ principal: { userId: "u_bob", keyId: "k" } }))).not.toBe(cacheKey(embeddings()));
  });

  it("never collides with a chat key", () => {
    // A chat body shaped exactly like the embeddings request, under the same model.
    const e = embeddings({ model: "m" });
    const c: CacheKeyInput = { operation: "chat", model: "m", scope: "user", principal: alice, body: { input: ["a", "b"], dimensions: 1024 } as never };
    expect(canonicalRequest(c).replace('"chat"', '"embeddings"')).toBe(canonicalRequest(e));
    expect(cacheKey(c)).not.toBe(cacheKey(e));
  });
});
