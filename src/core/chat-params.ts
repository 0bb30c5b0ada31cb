import { GatewayError } from "../errors.js";

/**
 * OpenAI's chat parameters (and DashScope's), as one frozen table of field,
 * check and what the check wants. A wrongly typed or out-of-range field is a
 * 400 from us naming it, not a round trip to a provider that may answer it
 * in its own words (or not at all). Fields not in the table pass through
 * untouched, as the README promises. A null is "unset", as OpenAI reads it.
 * The checks are plain functions made once: validating costs a loop over
 * the table and nothing allocated per request.
 */
interface Rule {
  readonly field: string;
  readonly ok: (v: unknown) => boolean;
  readonly wants: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isInteger = (v: unknown): v is number => Number.isSafeInteger(v);
const inRange = (min: number, max: number) => (v: unknown) => typeof v === "number" && v >= min && v <= max;
const integerIn = (min: number, max: number) => (v: unknown) => isInteger(v) && v >= min && v <= max;
const isBoolean = (v: unknown) => typeof v === "boolean";
const isString = (v: unknown) => typeof v === "string";
const positiveInteger = (v: unknown) => isInteger(v) && v > 0;

function isStop(v: unknown): boolean {
  if (typeof v === "string") return true;
  if (!Array.isArray(v) || v.length > 4) return false;
  for (const s of v) if (typeof s !== "string") return false;
  return true;
}

function isTools(v: unknown): boolean {
  if (!Array.isArray(v)) return false;
  for (const t of v) {
    if (!isObject(t) || t.type !== "function" || !isObject(t.function) || typeof t.function.name !== "string") return false;
  }
  return true;
}

const isToolChoice = (v: unknown) => typeof v === "string" || isObject(v);
const isResponseFormat = (v: unknown) => isObject(v) && typeof v.type === "string";

/** The largest n OpenAI accepts. */
export const MAX_N = 128;
/**
 * No model's context window is larger (qwen-long's 10M), so no answer can be:
 * a bound that also catches a gRPC client's -5 arriving as uint32 4294967291.
 */
export const MAX_COMPLETION_TOKENS = 10_000_000;

const RULES: readonly Rule[] = Object.freeze([
  { field: "temperature", ok: inRange(0, 2), wants: "a number from 0 to 2" },
  { field: "top_p", ok: inRange(0, 1), wants: "a number from 0 to 1" },
  { field: "max_tokens", ok: integerIn(1, MAX_COMPLETION_TOKENS), wants: `an integer from 1 to ${MAX_COMPLETION_TOKENS}` },
  { field: "max_completion_tokens", ok: integerIn(1, MAX_COMPLETION_TOKENS), wants: `an integer from 1 to ${MAX_COMPLETION_TOKENS}` },
  { field: "n", ok: integerIn(1, MAX_N), wants: `an integer from 1 to ${MAX_N}` },
  { field: "presence_penalty", ok: inRange(-2, 2), wants: "a number from -2 to 2" },
  { field: "frequency_penalty", ok: inRange(-2, 2), wants: "a number from -2 to 2" },
  { field: "seed", ok: isInteger, wants: "an integer" },
  { field: "stop", ok: isStop, wants: "a string or an array of at most 4 strings" },
  { field: "logprobs", ok: isBoolean, wants: "a boolean" },
  { field: "top_logprobs", ok: integerIn(0, 20), wants: "an integer from 0 to 20" },
  { field: "parallel_tool_calls", ok: isBoolean, wants: "a boolean" },
  { field: "tools", ok: isTools, wants: 'an array of {"type": "function", "function": {"name": ...}} objects' },
  { field: "tool_choice", ok: isToolChoice, wants: 'a string ("none", "auto", "required") or an object' },
  { field: "response_format", ok: isResponseFormat, wants: 'an object with a string "type"' },
  { field: "user", ok: isString, wants: "a string" },
  { field: "logit_bias", ok: isObject, wants: "an object" },
  // DashScope's own.
  { field: "enable_thinking", ok: isBoolean, wants: "a boolean" },
  { field: "enable_search", ok: isBoolean, wants: "a boolean" },
  { field: "thinking_budget", ok: positiveInteger, wants: "a positive integer" },
].map((r) => Object.freeze(r)));

/** Throws invalid_request naming the first known field that is not what OpenAI accepts. */
export function validateParams(body: Record<string, unknown>): void {
  for (const rule of RULES) {
    const v = body[rule.field];
    if (v === undefined || v === null || rule.ok(v)) continue;
    throw new GatewayError("invalid_request", `${rule.field} must be ${rule.wants}, got ${shown(v)}`, { param: rule.field });
  }
}

function shown(v: unknown): string {
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (typeof v === "string") return "a string";
  return Array.isArray(v) ? `an array of ${v.length}` : `an ${typeof v}`;
}
