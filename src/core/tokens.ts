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

/**
 * Counts tokens with a BPE tokenizer (cl100k, close to Qwen's for English
 * and code; an estimate either way). Only used when an upstream reports no
 * usage, so it is loaded on first need: it costs ~140 ms to import.
 */
export async function countTokens(text: string): Promise<number> {
  loading ??= import("gpt-tokenizer/encoding/cl100k_base").then((m) => m.countTokens as Count);
  return text ? (await loading)(text) : 0;
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
