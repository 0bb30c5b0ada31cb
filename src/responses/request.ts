import type { CatalogModel } from "../core/catalog.js";
import { MAX_COMPLETION_TOKENS } from "../core/chat-params.js";
import {
  array, boolean, given, invalid, isObject, missing, numberIn, object, oneOf, string, unsupported, type Json,
} from "./invalid.js";
import { mapTools } from "./tools.js";

/**
 * A Responses API request, checked and split into what the chat call needs
 * (`chat`: every parameter except the messages) and what the Response
 * object echoes back (`echo`), as OpenAI echoes it.
 */
export interface ResponsesRequest {
  readonly model: string;
  readonly stream: boolean;
  readonly store: boolean;
  readonly previousResponseId: string | undefined;
  readonly instructions: string | undefined;
  /** `input` as sent: a string or a list of items, checked by input.ts. */
  readonly input: unknown;
  readonly chat: Json;
  readonly echo: Json;
}

/** Fields OpenAI's create takes; anything else is refused, as OpenAI refuses it ("Unknown parameter"). */
const KNOWN = new Set([
  "model", "input", "instructions", "stream", "stream_options", "store", "previous_response_id", "tools", "tool_choice",
  "parallel_tool_calls", "text", "reasoning", "max_output_tokens", "temperature", "top_p", "metadata", "user", "include",
  "truncation", "service_tier", "top_logprobs", "safety_identifier", "prompt_cache_key", "prompt_cache_retention",
  "max_tool_calls", "background", "conversation", "prompt", "context_management",
]);
/** Options that need OpenAI's own machinery (background runs, stored conversations and prompts). */
const UNSUPPORTED: Record<string, string> = {
  conversation: "The Conversations API ('conversation'); chain responses with previous_response_id instead",
  prompt: "A stored prompt template ('prompt')",
  context_management: "Server-side context management ('context_management')",
};

const EFFORTS = ["none", "minimal", "low", "medium", "high", "xhigh"] as const;
type Effort = (typeof EFFORTS)[number];
/**
 * Qwen's thinking_budget for each effort on a hybrid model: the reasoning
 * tokens it may spend before it must answer. xhigh stays under the smallest
 * DashScope cap (38912, Qwen3 open models).
 */
export const THINKING_BUDGETS: Readonly<Record<Exclude<Effort, "none" | "minimal">, number>> = { low: 1024, medium: 4096, high: 16384, xhigh: 32768 };

/** Checks the body of `POST /v1/responses`; `model` is the catalog model it names, when there is one. */
export function parseResponsesRequest(raw: unknown, model: CatalogModel | undefined): ResponsesRequest {
  if (!isObject(raw)) throw invalid("body", "the request body must be a JSON object");
  for (const field of Object.keys(raw)) {
    if (!KNOWN.has(field)) throw invalid(field, `Unknown parameter: '${field.slice(0, 100)}'.`);
  }
  for (const [field, what] of Object.entries(UNSUPPORTED)) if (given(raw, field) !== undefined) throw unsupported(field, what);
  if (given(raw, "background") !== undefined && boolean(raw.background, "background")) throw unsupported("background", "Background mode ('background')");

  const name = given(raw, "model");
  if (name === undefined) throw missing("model");
  if (string(name, "model").trim() === "") throw invalid("model", "model must be a model id such as 'qwen-plus'");
  if (given(raw, "input") === undefined) throw missing("input");
  const chat: Json = {};
  const echo: Json = {};

  const instructions = optional(raw, "instructions", string);
  echo.instructions = instructions ?? null;
  const maxOutput = optional(raw, "max_output_tokens", (v, p) => numberIn(v, p, 16, MAX_COMPLETION_TOKENS, true));
  if (maxOutput !== undefined) chat.max_tokens = maxOutput;
  echo.max_output_tokens = maxOutput ?? null;
  const temperature = optional(raw, "temperature", (v, p) => numberIn(v, p, 0, 2));
  if (temperature !== undefined) chat.temperature = temperature;
  echo.temperature = temperature ?? 1;
  const topP = optional(raw, "top_p", (v, p) => numberIn(v, p, 0, 1));
  if (topP !== undefined) chat.top_p = topP;
  echo.top_p = topP ?? 1;
  const parallel = optional(raw, "parallel_tool_calls", boolean);
  if (parallel !== undefined) chat.parallel_tool_calls = parallel;
  echo.parallel_tool_calls = parallel ?? true;
  const user = optional(raw, "user", string);
  if (user !== undefined) chat.user = user;
  echo.user = user ?? null;

  const tools = mapTools(given(raw, "tools"), given(raw, "tool_choice"));
  if (tools.chatTools) chat.tools = tools.chatTools;
  if (tools.chatChoice !== undefined) chat.tool_choice = tools.chatChoice;
  echo.tools = tools.echoTools;
  echo.tool_choice = tools.echoChoice;

  echo.text = textFormat(given(raw, "text"), chat);
  echo.reasoning = reasoning(given(raw, "reasoning"), model, chat);
  echo.metadata = metadata(given(raw, "metadata"));
  others(raw, echo);

  return {
    model: name as string,
    stream: optional(raw, "stream", boolean) ?? false,
    store: optional(raw, "store", boolean) ?? true,
    previousResponseId: optional(raw, "previous_response_id", string),
    instructions,
    input: raw.input,
    chat,
    echo,
  };
}

function optional<T>(body: Json, field: string, check: (v: unknown, param: string) => T): T | undefined {
  const v = given(body, field);
  return v === undefined ? undefined : check(v, field);
}

/** text.format: json_schema and json_object become chat's response_format; text is chat's default. */
function textFormat(text: unknown, chat: Json): Json {
  const t = text === undefined ? {} : object(text, "text");
  const verbosity = t.verbosity == null ? "medium" : oneOf(t.verbosity, "text.verbosity", ["low", "medium", "high"] as const);
  if (t.format == null) return { format: { type: "text" }, verbosity };
  const f = object(t.format, "text.format");
  const type = oneOf(f.type, "text.format.type", ["text", "json_schema", "json_object"] as const);
  if (type === "json_object") chat.response_format = { type: "json_object" };
  if (type !== "json_schema") return { format: { type }, verbosity };
  if (f.name == null) throw missing("text.format.name");
  const name = string(f.name, "text.format.name");
  if (!/^[a-zA-Z0-9_-]{1,64}$/.test(name)) throw invalid("text.format.name", `Invalid 'text.format.name': '${name.slice(0, 100)}' does not match '^[a-zA-Z0-9_-]{1,64}$'.`);
  if (f.schema == null) throw missing("text.format.schema");
  const schema = object(f.schema, "text.format.schema");
  const strict = f.strict == null ? undefined : boolean(f.strict, "text.format.strict");
  const description = f.description == null ? undefined : string(f.description, "text.format.description");
  const jsonSchema: Json = { name, schema };
  if (strict !== undefined) jsonSchema.strict = strict;
  if (description !== undefined) jsonSchema.description = description;
  chat.response_format = { type: "json_schema", json_schema: jsonSchema };
  return { format: { type, name, schema, strict: strict ?? false, ...(description === undefined ? {} : { description }) }, verbosity };
}

/**
 * reasoning.effort onto Qwen's switches: on a hybrid model, none/minimal
 * turn thinking off and low..xhigh turn it on with a growing budget; a model
 * that always thinks takes any effort as it is; asking a model that cannot
 * reason to reason is a 400, as OpenAI answers it for its non-reasoning models.
 */
function reasoning(raw: unknown, model: CatalogModel | undefined, chat: Json): Json {
  if (raw === undefined) return { effort: null, summary: null };
  const r = object(raw, "reasoning");
  const summaryField = r.summary ?? r.generate_summary;
  const summary = summaryField == null ? null : oneOf(summaryField, "reasoning.summary", ["auto", "concise", "detailed"] as const);
  if (r.effort == null) return { effort: null, summary };
  const effort = oneOf(r.effort, "reasoning.effort", EFFORTS);
  if (model?.thinking === "none" && effort !== "none") {
    throw invalid("reasoning.effort", `Unsupported parameter: 'reasoning.effort' is not supported with this model (${model.id} does not reason).`);
  }
  if (model?.thinking === "hybrid") {
    if (effort === "none" || effort === "minimal") {
      chat.enable_thinking = false;
    } else {
      chat.enable_thinking = true;
      chat.thinking_budget = THINKING_BUDGETS[effort];
    }
  }
  return { effort, summary };
}

/** OpenAI's metadata: at most 16 string pairs, keys up to 64 characters, values up to 512. */
function metadata(raw: unknown): Json {
  if (raw === undefined) return {};
  const m = object(raw, "metadata");
  const entries = Object.entries(m);
  if (entries.length > 16) {
    throw invalid("metadata", `Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got ${entries.length} instead.`);
  }
  for (const [key, value] of entries) {
    if (key.length > 64) throw invalid("metadata", `Invalid 'metadata': key '${key.slice(0, 64)}...' is too long. Expected a key of at most 64 characters, but got ${key.length} instead.`);
    if (typeof value !== "string") throw invalid(`metadata.${key}`, `Invalid type for 'metadata.${key}': expected a string, but got ${value === null ? "null" : typeof value} instead.`);
    if (value.length > 512) throw invalid(`metadata.${key}`, `Invalid 'metadata.${key}': string too long. Expected a string with maximum length 512, but got a string with length ${value.length} instead.`);
  }
  return { ...m };
}

/** The options accepted and echoed that change nothing here (no logprobs, no tiers, no built-in tool calls). */
function others(raw: Json, echo: Json): void {
  const include = given(raw, "include");
  if (include !== undefined) array(include, "include").forEach((v, i) => string(v, `include[${i}]`));
  const streamOptions = given(raw, "stream_options");
  if (streamOptions !== undefined) object(streamOptions, "stream_options");
  echo.truncation = optional(raw, "truncation", (v, p) => oneOf(v, p, ["auto", "disabled"] as const)) ?? "disabled";
  optional(raw, "service_tier", (v, p) => oneOf(v, p, ["auto", "default", "flex", "scale", "priority"] as const));
  echo.service_tier = "default";
  const topLogprobs = optional(raw, "top_logprobs", (v, p) => numberIn(v, p, 0, 20, true)) ?? 0;
  if (topLogprobs > 0) throw unsupported("top_logprobs", "Log probabilities ('top_logprobs')");
  echo.top_logprobs = 0;
  echo.max_tool_calls = optional(raw, "max_tool_calls", (v, p) => numberIn(v, p, 1, Number.MAX_SAFE_INTEGER, true)) ?? null;
  echo.safety_identifier = optional(raw, "safety_identifier", string) ?? null;
  echo.prompt_cache_key = optional(raw, "prompt_cache_key", string) ?? null;
  const retention = optional(raw, "prompt_cache_retention", (v, p) => oneOf(v, p, ["in_memory", "24h"] as const));
  if (retention !== undefined) echo.prompt_cache_retention = retention;
}
