import type { CompletionUsage } from "openai/resources/completions";

/** Token counts, each counter separate so cached and reasoning tokens are never added twice. */
export interface TokenUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly totalTokens: number;
  /** Part of promptTokens. */
  readonly cachedTokens: number;
  /** Part of completionTokens. */
  readonly reasoningTokens: number;
  /** A reported count was unusable (not a number, negative) or above MAX_REPORTED_TOKENS, and was replaced. */
  readonly clamped?: boolean;
}

export const NO_USAGE: TokenUsage = Object.freeze({
  promptTokens: 0, completionTokens: 0, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0,
});

/**
 * The most tokens one counter of one request is believed: 100 million, ten
 * times the largest context window in the catalog (10M) and far beyond any
 * real answer. An upstream reporting more is wrong, and what is kept must
 * stay storable: at the dearest catalog price ($8.40 per 1M tokens), a row at
 * this ceiling on both counters costs 1.7e15 pico-USD, so its cost fits
 * SQLite's int64 (9.2e18) with room for SUM() over thousands of such rows and
 * millions of ordinary ones; and every count fits the proto's uint32 fields
 * (4.29e9). Without it, one `prompt_tokens: 1e30` made a row unwritable.
 */
export const MAX_REPORTED_TOKENS = 100_000_000;

/**
 * The one place upstream usage is trusted: each count must be a non-negative
 * number (else 0), fractions are floored, and counts above
 * MAX_REPORTED_TOKENS are clamped to it. Any such correction flags the
 * usage as `clamped`, and the row records it (usage_clamped).
 */
export function fromOpenAIUsage(u: CompletionUsage | null | undefined): TokenUsage {
  if (!u) return NO_USAGE;
  let clamped = false;
  const count = (n: unknown): number => {
    if (n === undefined || n === null) return 0;
    if (typeof n !== "number" || !Number.isFinite(n) || n < 0) {
      clamped = true;
      return 0;
    }
    if (n > MAX_REPORTED_TOKENS) {
      clamped = true;
      return MAX_REPORTED_TOKENS;
    }
    return Math.floor(n);
  };
  const prompt = count(u.prompt_tokens);
  const completion = count(u.completion_tokens);
  const usage = {
    promptTokens: prompt,
    completionTokens: completion,
    totalTokens: count(u.total_tokens) || prompt + completion,
    cachedTokens: count(u.prompt_tokens_details?.cached_tokens),
    reasoningTokens: count(u.completion_tokens_details?.reasoning_tokens),
  };
  return clamped ? { ...usage, clamped } : usage;
}

/** Usage in OpenAI's shape, for a client whose upstream sent none (the counts are then our estimate). */
export function toOpenAIUsage(u: TokenUsage): CompletionUsage {
  return { prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.totalTokens };
}
