import type { ChatCompletion } from "openai/resources/chat/completions";
import type { CompletionUsage } from "openai/resources/completions";
import type { StoredItem } from "../storage/responses.js";
import { itemIds, newId, type IdPrefix } from "./ids.js";
import type { Json } from "./invalid.js";

/** A Response object as OpenAI sends it (`object: "response"`). */
export type ResponseObject = Json & { id: string; status: string; output: StoredItem[] };

/** What a response is before it has output: the id, the model, and the request's settings echoed. */
export interface ResponseShell {
  readonly id: string;
  /** Seconds since the epoch, as OpenAI gives it. */
  readonly createdAt: number;
  readonly model: string;
  readonly previousResponseId: string | undefined;
  readonly store: boolean;
  readonly echo: Json;
  /** The next id for an item of this response (responses/ids.ts). */
  readonly itemId: (prefix: IdPrefix) => string;
}

export function shell(model: string, previousResponseId: string | undefined, store: boolean, echo: Json): ResponseShell {
  const id = newId("resp");
  return { id, createdAt: Math.floor(Date.now() / 1000), model, previousResponseId, store, echo, itemId: itemIds(id) };
}

/** The Response at a given status; `usage` null until it is known, as in OpenAI's response.created. */
export function responseObject(s: ResponseShell, status: string, output: StoredItem[], extra: { usage?: Json | null; incomplete?: Json | null; error?: Json | null } = {}): ResponseObject {
  return {
    id: s.id,
    object: "response",
    created_at: s.createdAt,
    status,
    background: false,
    error: extra.error ?? null,
    incomplete_details: extra.incomplete ?? null,
    model: s.model,
    output,
    previous_response_id: s.previousResponseId ?? null,
    store: s.store,
    ...s.echo,
    usage: extra.usage ?? null,
  };
}

/** finish_reason onto the Response's status: cut by max_output_tokens or a filter is "incomplete", as OpenAI reports it. */
export function statusOf(finishReason: string | null | undefined): { status: "completed" | "incomplete"; incomplete: Json | null } {
  if (finishReason === "length") return { status: "incomplete", incomplete: { reason: "max_output_tokens" } };
  if (finishReason === "content_filter") return { status: "incomplete", incomplete: { reason: "content_filter" } };
  return { status: "completed", incomplete: null };
}

/** Chat usage in the Responses shape. */
export function responsesUsage(u: CompletionUsage): Json {
  return {
    input_tokens: u.prompt_tokens,
    input_tokens_details: { cached_tokens: u.prompt_tokens_details?.cached_tokens ?? 0 },
    output_tokens: u.completion_tokens,
    output_tokens_details: { reasoning_tokens: u.completion_tokens_details?.reasoning_tokens ?? 0 },
    total_tokens: u.total_tokens,
  };
}

export const reasoningItem = (id: string, text: string): StoredItem => ({ id, type: "reasoning", summary: [{ type: "summary_text", text }] });

export const messageItem = (id: string, text: string, status: string): StoredItem => ({
  id, type: "message", status, role: "assistant", content: [{ type: "output_text", text, annotations: [], logprobs: [] }],
});

export const functionCallItem = (id: string, callId: string, name: string, args: string, status: string): StoredItem => ({
  id, type: "function_call", status, arguments: args, call_id: callId, name,
});

/**
 * A chat completion's output as Responses items, in OpenAI's order:
 * reasoning, the message, then each function call. A turn of calls alone
 * has no message; a turn with nothing at all has an empty one.
 */
export function outputOf(completion: ChatCompletion, newItemId: (prefix: IdPrefix) => string): { output: StoredItem[]; finishReason: string | null } {
  const choice = completion.choices[0];
  const message = choice?.message as (ChatCompletion.Choice["message"] & { reasoning_content?: string | null; reasoning?: string | null }) | undefined;
  const { status } = statusOf(choice?.finish_reason);
  const itemStatus = status === "completed" ? "completed" : "incomplete";
  const output: StoredItem[] = [];
  const reasoning = message?.reasoning_content ?? message?.reasoning;
  if (typeof reasoning === "string" && reasoning !== "") output.push(reasoningItem(newItemId("rs"), reasoning));
  const calls = (message?.tool_calls ?? []).filter((c) => c.type === "function");
  const text = message?.content ?? "";
  if (text !== "" || calls.length === 0) output.push(messageItem(newItemId("msg"), text, itemStatus));
  for (const c of calls) {
    if (c.type !== "function") continue;
    output.push(functionCallItem(newItemId("fc"), c.id || newId("call"), c.function.name, c.function.arguments, itemStatus));
  }
  return { output, finishReason: choice?.finish_reason ?? null };
}

/** The Response for a whole chat completion (the non-streaming door). */
export function completedResponse(s: ResponseShell, completion: ChatCompletion, usage: CompletionUsage): ResponseObject {
  const { output, finishReason } = outputOf(completion, s.itemId);
  const { status, incomplete } = statusOf(finishReason);
  return responseObject(s, status, output, { usage: responsesUsage(usage), incomplete });
}
