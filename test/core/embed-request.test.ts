import { describe, expect, it } from "vitest";
import { createCatalog, type CatalogRow } from "../../src/core/catalog.js";
import { checkEmbedFor, estimateEmbedTokens, parseEmbed } from "../../src/core/embed-request.js";
import { GatewayError } from "../../src/errors.js";

const row = (id: string, tokenInput?: boolean): CatalogRow => ({
  id, provider: "alibaba-cloud", upstream_id: id, context_window: 8192, capabilities: ["embedding"], aliases: [],
  streaming_only: false, thinking: "none", kind: "embedding",
  embedding: { dimensions: [1024, 256], default_dimensions: 1024, max_batch: 10, max_input_tokens: 4, ...(tokenInput === undefined ? {} : { token_input: tokenInput }) },
});
const catalog = createCatalog([row("text-only"), row("takes-tokens", true)]);
const textOnly = catalog.resolve("text-only").model;
const takesTokens = catalog.resolve("takes-tokens").model;

function refusal(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error("expected a GatewayError");
}

describe("embeddings request validation", () => {
  it("reads OpenAI's four input forms", () => {
    expect(parseEmbed("m", { input: "one" })).toMatchObject({ inputs: ["one"], tokens: false, encodingFormat: "float" });
    expect(parseEmbed("m", { input: ["a", "b"] })).toMatchObject({ inputs: ["a", "b"], tokens: false });
    expect(parseEmbed("m", { input: [1, 2, 3] })).toMatchObject({ inputs: [[1, 2, 3]], tokens: true });
    expect(parseEmbed("m", { input: [[1], [2, 3]] })).toMatchObject({ inputs: [[1], [2, 3]], tokens: true });
  });

  it("keeps fields it does not read for the upstream, and not the ones it does", () => {
    const req = parseEmbed("m", { input: "a", dimensions: 256, encoding_format: "base64", user: "u1", text_type: "query" });
    expect(req).toMatchObject({ dimensions: 256, encodingFormat: "base64", passThrough: { user: "u1", text_type: "query" } });
  });

  it("refuses token ids that are not integers from 0 to 2^32-1", () => {
    for (const bad of [[1.5], [-1], [2 ** 32], [[1], []], [[1], "a"]]) {
      expect(refusal(() => parseEmbed("m", { input: bad })).param).toBe("input");
    }
  });

  it("takes token ids only where the model does, each within its token limit", () => {
    expect(() => checkEmbedFor(parseEmbed("m", { input: [[1, 2, 3, 4]] }), takesTokens)).not.toThrow();
    expect(refusal(() => checkEmbedFor(parseEmbed("m", { input: [[1, 2, 3, 4]] }), textOnly)).message).toMatch(/takes text only/);
    const long = refusal(() => checkEmbedFor(parseEmbed("m", { input: [[1], [1, 2, 3, 4, 5]] }), takesTokens));
    expect(long.message).toMatch(/input\[1\] has 5 tokens; 'takes-tokens' takes at most 4/);
  });

  it("checks dimensions against the model's sizes", () => {
    expect(() => checkEmbedFor(parseEmbed("m", { input: "a", dimensions: 256 }), textOnly)).not.toThrow();
    const err = refusal(() => checkEmbedFor(parseEmbed("m", { input: "a", dimensions: 512 }), textOnly));
    expect(err.param).toBe("dimensions");
    expect(err.message).toMatch(/1024, 256 dimensions \(default 1024\)/);
  });

  it("estimates text at 3 characters a token, and counts token ids", () => {
    expect(estimateEmbedTokens(parseEmbed("m", { input: ["abcdef", "a"] }))).toBe(3);
    expect(estimateEmbedTokens(parseEmbed("m", { input: [[1, 2], [3]] }))).toBe(3);
  });
});
