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

/**
 * OpenAI's chat framing for cl100k models, as its cookbook counts it
 * (https://github.com/openai/openai-cookbook/blob/main/examples/How_to_count_tokens_with_tiktoken.ipynb):
 * each message costs 3 tokens beyond its role and content (<|im_start|>,
 * <|im_sep|>, <|im_end|>), a `name` 1 beyond its own, and the reply is primed
 * with 3 more (<|im_start|>assistant<|im_sep|>). "hi" from the user is 8.
 */
const TOKENS_PER_MESSAGE = 3;
const TOKENS_PER_NAME = 1;
const REPLY_PRIMING = 3;

/**
 * The prompt's tokens, for when the upstream gave no usage: each message's
 * content, role and name, plus the chat framing. A prompt past the bound of
 * countTokens is estimated from its length as a whole, as one text would be.
 */
export async function countPromptTokens(body: ChatBody): Promise<number> {
  const messages = body.messages as Array<{ role?: unknown; name?: unknown; content?: unknown }>;
  const texts = messages.map((m) => messageText(m.content));
  const chars = texts.reduce((n, t) => n + t.length, 0);
  const whole = chars > MAX_TOKENIZED_CHARS;
  let total = REPLY_PRIMING + (whole ? Math.ceil(chars / CHARS_PER_TOKEN) : 0);
  for (let i = 0; i < messages.length; i++) {
    const { role, name } = messages[i]!;
    if (!whole) total += await countTokens(texts[i]!);
    total += TOKENS_PER_MESSAGE + await countWord(role);
    if (typeof name === "string" && name) total += TOKENS_PER_NAME + await countWord(name);
  }
  return total;
}

/** A role or a name: a word, tokenized unless it is longer than any real one. */
function countWord(word: unknown): Promise<number> {
  if (typeof word !== "string") return Promise.resolve(0);
  return word.length > MAX_RUN ? Promise.resolve(Math.ceil(word.length / CHARS_PER_TOKEN)) : countTokens(word);
}

/** A message's text: its content, or its text parts one per line. */
function messageText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  const out: string[] = [];
  for (const p of content) if (typeof (p as { text?: unknown }).text === "string") out.push((p as { text: string }).text);
  return out.join("\n");
}
