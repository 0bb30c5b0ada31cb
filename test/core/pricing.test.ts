import { describe, expect, it } from "vitest";
import { createCatalog, type CatalogRow } from "../../src/core/catalog.js";
import { formatPricePerMillion, formatUsd, parsePricePerMillion } from "../../src/core/money.js";
import { createPriceBook, type CachePriceRule, type PriceRow } from "../../src/core/pricing.js";
import modelsData from "../../src/data/models.json" with { type: "json" };
import pricingData from "../../src/data/pricing.json" with { type: "json" };

const catalog = createCatalog(modelsData.models as CatalogRow[]);
const priceRows = pricingData.models as Record<string, PriceRow>;
const book = createPriceBook(priceRows, catalog.models, pricingData.cache as CachePriceRule);
const model = (id: string) => catalog.resolve(id).model;

describe("pricing table", () => {
  it("has the seed guide's six rows exactly", () => {
    const seed: Array<[string, string, string, number]> = [
      ["qwen-flash", "0.001", "0.003", 1_000_000],
      ["qwen-plus", "0.005", "0.015", 1_000_000],
      ["qwen-max", "0.012", "0.036", 262_144],
      ["qwen-coder", "0.008", "0.024", 262_144],
      ["qwq-plus", "0.020", "0.060", 262_144],
      ["qwen-long", "0.001", "0.003", 10_000_000],
    ];
    for (const [id, prompt, completion, context] of seed) {
      expect(priceRows[id]).toMatchObject({ prompt, completion, context_window: context });
      const p = book.priceOf(model(id));
      expect(p.promptPico).toBe(parsePricePerMillion(prompt));
      expect(p.completionPico).toBe(parsePricePerMillion(completion));
    }
  });

  it("prices every catalog model and nothing else", () => {
    expect(Object.keys(priceRows).sort()).toEqual(catalog.models.map((m) => m.id).sort());
    for (const m of catalog.models) expect(book.priceOf(m).promptPico).toBeGreaterThan(0n);
  });

  it("refuses to start when a catalog model has no price", () => {
    const { ["qwen-plus"]: _, ...missing } = priceRows;
    expect(() => createPriceBook(missing, catalog.models)).toThrow(/no price for qwen-plus/);
  });
});

describe("cost arithmetic", () => {
  it("charges the table price per million tokens", () => {
    const cost = book.costOf(model("qwen-plus"), { promptTokens: 1_000_000, completionTokens: 1_000_000 });
    expect(cost.promptUsd).toBe("0.005");
    expect(cost.completionUsd).toBe("0.015");
    expect(cost.totalUsd).toBe("0.02");
  });

  it("is exact where floating point drifts", () => {
    // 0.001 USD/1M × 1 token is 1e-9 USD; in floats, summing it 3 times gives 3.0000000000000004e-9.
    const one = book.costOf(model("qwen-flash"), { promptTokens: 1, completionTokens: 0 });
    expect(one.totalUsd).toBe("0.000000001");
    const three = book.costOf(model("qwen-flash"), { promptTokens: 3, completionTokens: 0 });
    expect(three.totalPico).toBe(one.totalPico * 3n);
    expect(three.totalUsd).toBe("0.000000003");
    const odd = book.costOf(model("qwq-plus"), { promptTokens: 123_457, completionTokens: 98_765 });
    // 123457 × 0.020/1e6 = 0.00246914; 98765 × 0.060/1e6 = 0.0059259
    expect(odd.promptUsd).toBe("0.00246914");
    expect(odd.completionUsd).toBe("0.0059259");
    expect(odd.totalUsd).toBe("0.00839504");
  });

  it("prices by the resolved model, so an alias costs what its model costs", () => {
    const viaAlias = book.costOf(catalog.resolve("qwen-3-30b").model, { promptTokens: 1000, completionTokens: 1000 });
    const direct = book.costOf(model("qwen-3-30b-a3b-instruct"), { promptTokens: 1000, completionTokens: 1000 });
    expect(viaAlias).toEqual(direct);
  });

  it("costs nothing for no tokens", () => {
    expect(book.costOf(model("qwen-max"), { promptTokens: 0, completionTokens: 0 }).totalUsd).toBe("0");
  });
});

describe("money", () => {
  it("parses and prints prices without losing digits", () => {
    expect(parsePricePerMillion("0.001")).toBe(1000n);
    expect(parsePricePerMillion("12")).toBe(12_000_000n);
    expect(parsePricePerMillion("0.000001")).toBe(1n);
    expect(formatPricePerMillion(parsePricePerMillion("0.020"))).toBe("0.02");
    expect(formatPricePerMillion(parsePricePerMillion("1.5"))).toBe("1.5");
    expect(formatUsd(1n)).toBe("0.000000000001");
    expect(formatUsd(1_234_000_000_000_000n)).toBe("1234");
  });

  it("rejects prices that are not plain decimals", () => {
    for (const bad of ["", "-1", "1e-3", "0.0000001", "abc", "1."]) {
      expect(() => parsePricePerMillion(bad)).toThrow(/decimal string/);
    }
  });
});

describe("cached prompt tokens", () => {
  it("cost the book's cached-prompt share (DashScope's implicit cache: 20%) unless a row has its own price", () => {
    expect(pricingData.cache).toMatchObject({ cached_prompt_share: "0.2" });
    expect(pricingData.cache.source).toMatch(/^https:\/\/www\.alibabacloud\.com\/help\/en\/model-studio\/context-cache/);
    const plus = book.priceOf(model("qwen-plus"));
    expect(plus.cachedPromptPico).toBe(1000n); // 0.005 USD per 1M → 0.001
    // 1,000 prompt tokens of which 400 cached, 100 completion: 600 × 5,000 + 400 × 1,000 + 100 × 15,000 pico.
    const c = book.costOf(model("qwen-plus"), { promptTokens: 1000, completionTokens: 100, cachedTokens: 400 });
    expect(c).toMatchObject({ cachedPromptPico: 400_000n, promptPico: 3_400_000n, completionPico: 1_500_000n, totalPico: 4_900_000n });
    expect(c.totalUsd).toBe("0.0000049");
    // A cached count above the prompt's is not believed past the prompt.
    expect(book.costOf(model("qwen-plus"), { promptTokens: 10, completionTokens: 0, cachedTokens: 50 }).promptPico).toBe(10_000n);
    const own = createPriceBook({ ...priceRows, "qwen-plus": { ...priceRows["qwen-plus"]!, cached_prompt: "0.0005" } }, catalog.models, pricingData.cache as CachePriceRule);
    expect(own.priceOf(model("qwen-plus")).cachedPromptPico).toBe(500n);
    // No rule: full price, as before the rule existed.
    expect(createPriceBook(priceRows, catalog.models).priceOf(model("qwen-plus")).cachedPromptPico).toBe(5000n);
  });

  it("are reserved at the full prompt price (the worst case), and a share over 1 is refused", () => {
    expect(book.picoOf(model("qwen-plus"), { promptTokens: 1000, completionTokens: 0 })).toBe(5_000_000n);
    expect(() => createPriceBook(priceRows, catalog.models, { cached_prompt_share: "1.5" })).toThrow(/over 1/);
  });
});
