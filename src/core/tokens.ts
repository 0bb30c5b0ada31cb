import type { ChatBody } from "./chat-request.js";

/** Completion tokens reserved when a request sets no max_tokens. */
export const DEFAULT_COMPLETION_RESERVE = 1024;

/**
 * A quick upper-bound guess of prompt tokens for reservations, from text
 * length (about 3 characters a token, overestimating for English), so the
 * hot path never runs a tokenizer.
 */
export function estimatePromptTokens(body: ChatBody): number {
  let chars = 0;
  for (const m of body.messages) {
    chars += 16; // role and framing
    const content = (m as { content?: unknown }).content;
    if (typeof content === "string") chars += content.length;
    else if (Array.isArray(content)) {
      for (const part of content) {
        const text = (part as { text?: unknown }).text;
        chars += typeof text === "string" ? text.length : 256; // an image or audio part
      }
    }
  }
  return Math.ceil(chars / 3);
}

/** Completion tokens a request may cost: max_tokens (or the default) for each of its n answers. */
export function completionReserve(body: ChatBody): number {
  const max = body.max_tokens ?? body.max_completion_tokens;
  const each = typeof max === "number" && Number.isInteger(max) && max > 0 ? max : DEFAULT_COMPLETION_RESERVE;
  const n = typeof body.n === "number" && Number.isInteger(body.n) && body.n > 1 ? body.n : 1;
  return each * n;
}

type Count = (text: string) => number;
let loading: Promise<Count> | undefined;

/** Past this many characters, text is not tokenized but estimated from its length. */
const MAX_TOKENIZED_CHARS = 256 * 1024;
/** About four characters a token, cl100k's average on English and code. */
const CHARS_PER_TOKEN = 4;
/** A run without whitespace longer than this is counted in pieces of this length. */
const MAX_RUN = 64;
const LONG_RUN = new RegExp(`\\S{${MAX_RUN + 1},}`, "g");

/**
 * Counts tokens with a BPE tokenizer (cl100k, close to Qwen's for English
 * and code; an estimate either way). Only used when an upstream reports no
 * usage (a stream the client left, an upstream that sends none), so it is
 * loaded on first need: it costs ~140 ms to import.
 *
 * Its cost is bounded, because it runs on the event loop and the text is
 * the client's (the prompt) or the model's: BPE is quadratic in the length
 * of a run without whitespace (100,000 "x" took 12 s), so such runs are
 * counted in 64-character pieces, and text past 256 KB is estimated from its
 * length instead.
 */
export async function countTokens(text: string): Promise<number> {
  if (!text) return 0;
  if (text.length > MAX_TOKENIZED_CHARS) return Math.ceil(text.length / CHARS_PER_TOKEN);
  loading ??= import("gpt-tokenizer/encoding/cl100k_base").then((m) => m.countTokens as Count);
  const count = await loading;
  let total = 0;
  let from = 0;
  for (const run of text.matchAll(LONG_RUN)) {
    total += count(text.slice(from, run.index));
    for (let i = 0; i < run[0].length; i += MAX_RUN) total += count(run[0].slice(i, i + MAX_RUN));
    from = run.index + run[0].length;
  }
  return total + count(text.slice(from));
}

/** The prompt's text, for counting when the upstream gave no usage. */
export function promptText(body: ChatBody): string {
  const out: string[] = [];
  for (const m of body.messages) {
    const content = (m as { content?: unknown }).content;
    if (typeof content === "string") out.push(content);
    else if (Array.isArray(content)) for (const p of content) if (typeof (p as { text?: unknown }).text === "string") out.push((p as { text: string }).text);
  }
  return out.join("\n");
}
