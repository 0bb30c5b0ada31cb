import { costOf, formatUsd, parsePricePerMillion } from "./money.js";
import type { CatalogModel } from "./catalog.js";

/** A row of src/data/pricing.json: USD per 1M tokens, as decimal strings. */
export interface PriceRow {
  prompt: string;
  completion: string;
  /** A prompt token read from the provider's context cache; unset: the book's cached-prompt share of `prompt`. */
  cached_prompt?: string;
  context_window: number;
  source?: string;
}

/** pricing.json's rule for cached prompt tokens, where a row gives no price of its own. */
export interface CachePriceRule {
  /** The share of the prompt price a cached prompt token costs, a decimal ("0.2"). */
  readonly cached_prompt_share: string;
  readonly source?: string;
}

export interface Price {
  readonly modelId: string;
  /** pico-USD per token, which equals micro-USD per 1M tokens. */
  readonly promptPico: bigint;
  readonly completionPico: bigint;
  /** A cached prompt token (prompt_tokens_details.cached_tokens), pico-USD. */
  readonly cachedPromptPico: bigint;
  readonly contextWindow: number;
}

export interface TokenCounts {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Part of promptTokens, priced at the cached-prompt price. */
  readonly cachedTokens?: number;
}

export interface CostBreakdown {
  /** Every prompt token's cost, cached ones (cachedPromptPico) included. */
  readonly promptPico: bigint;
  readonly cachedPromptPico: bigint;
  readonly completionPico: bigint;
  readonly totalPico: bigint;
  readonly promptUsd: string;
  readonly completionUsd: string;
  readonly totalUsd: string;
}

export interface PriceBook {
  /** The price of a catalog model; every catalog model has one. */
  priceOf(model: CatalogModel): Price;
  /** What these tokens cost at this model's prices: cached prompt tokens at the cached-prompt price. */
  costOf(model: CatalogModel, tokens: TokenCounts): CostBreakdown;
  /** The same total in pico-USD, without formatting: for reservations on the hot path. */
  picoOf(model: CatalogModel, tokens: TokenCounts): bigint;
}

/** Without a rule, a cached prompt token costs what any prompt token does. */
const FULL_PRICE: CachePriceRule = { cached_prompt_share: "1" };

/** Builds the price book and checks that every catalog model is priced. */
export function createPriceBook(rows: Readonly<Record<string, PriceRow>>, models: readonly CatalogModel[],
  cache: CachePriceRule = FULL_PRICE): PriceBook {
  // The share in millionths: "0.2" is 200000.
  const share = parsePricePerMillion(cache.cached_prompt_share);
  if (share > 1_000_000n) throw new Error(`pricing: cached_prompt_share ${cache.cached_prompt_share} is over 1`);
  const prices = new Map<string, Price>();
  for (const [modelId, row] of Object.entries(rows)) {
    const promptPico = parsePricePerMillion(row.prompt);
    prices.set(modelId, Object.freeze({
      modelId,
      promptPico,
      completionPico: parsePricePerMillion(row.completion),
      // Rounded to the nearest pico-USD per token; DashScope's rates give whole ones.
      cachedPromptPico: row.cached_prompt !== undefined ? parsePricePerMillion(row.cached_prompt) : (promptPico * share + 500_000n) / 1_000_000n,
      contextWindow: row.context_window,
    }));
  }
  const unpriced = models.filter((m) => !prices.has(m.id)).map((m) => m.id);
  if (unpriced.length) throw new Error(`pricing: no price for ${unpriced.join(", ")}`);

  const priceOf = (model: CatalogModel) => prices.get(model.id)!;
  return {
    priceOf,
    picoOf(model, tokens) {
      const price = priceOf(model);
      return costOf(tokens.promptTokens, price.promptPico) + costOf(tokens.completionTokens, price.completionPico);
    },
    costOf(model, tokens) {
      const price = priceOf(model);
      const cached = Math.min(tokens.cachedTokens ?? 0, tokens.promptTokens);
      const cachedPromptPico = costOf(cached, price.cachedPromptPico);
      const promptPico = costOf(tokens.promptTokens - cached, price.promptPico) + cachedPromptPico;
      const completionPico = costOf(tokens.completionTokens, price.completionPico);
      const totalPico = promptPico + completionPico;
      return {
        promptPico, cachedPromptPico, completionPico, totalPico,
        promptUsd: formatUsd(promptPico),
        completionUsd: formatUsd(completionPico),
        totalUsd: formatUsd(totalPico),
      };
    },
  };
}
