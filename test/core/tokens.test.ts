import { countTokens as exactCount } from "gpt-tokenizer/encoding/cl100k_base";
import { describe, expect, it } from "vitest";
import { countTokens } from "../../src/core/tokens.js";

describe("countTokens (used when an upstream reports no usage)", () => {
  it("counts ordinary text exactly as the BPE tokenizer does", async () => {
    const text = "The quick brown fox jumps over the lazy dog. 12345 https://example.com/path?q=1\n".repeat(500);
    expect(await countTokens(text)).toBe(exactCount(text));
  });

  it("bounds its cost on a long run without whitespace, which BPE takes quadratic time over", async () => {
    await countTokens("warm up the tokenizer");
    const started = performance.now();
    const n = await countTokens("x".repeat(256 * 1024));
    // Tokenized whole, 100,000 of these took 12 s on this machine's kind.
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(n).toBeGreaterThan(256 * 1024 / 16);
  });

  it("estimates text past 256 KB from its length instead of tokenizing it", async () => {
    const started = performance.now();
    expect(await countTokens("y".repeat(4_000_000))).toBe(1_000_000);
    expect(performance.now() - started).toBeLessThan(100);
  });
});
