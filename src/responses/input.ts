import { GatewayError } from "../errors.js";
import type { StoredItem } from "../storage/responses.js";
import type { IdPrefix } from "./ids.js";
import { array, invalid, missing, object, oneOf, string, unsupported, wrongType, type Json } from "./invalid.js";

/** Finds a stored item by id for an `item_reference`; undefined when it is not this user's or has expired. */
export type ItemLookup = (id: string) => StoredItem | undefined;

const ROLES = ["user", "assistant", "system", "developer"] as const;

/**
 * `input` as the items it stands for, each with an id, as they are stored
 * and listed (GET /v1/responses/{id}/input_items): a string is one user
 * message; an item_reference is replaced by the item it names. Items a
 * response produced (messages, function calls, reasoning) are accepted back
 * as they were sent, as the SDKs replay them.
 */
/** The ids of the input's item_reference items: what the caller looks up (asynchronously) before inputItems. */
export function referencedIds(input: unknown): string[] {
  if (!Array.isArray(input)) return [];
  return input.flatMap((raw: unknown) => {
    const item = raw as { type?: unknown; id?: unknown } | null;
    return item !== null && typeof item === "object" && item.type === "item_reference" && typeof item.id === "string" ? [item.id] : [];
  });
}

export function inputItems(input: unknown, lookup: ItemLookup, newId: (prefix: IdPrefix) => string): StoredItem[] {
  if (typeof input === "string") {
    return [{ id: newId("msg"), type: "message", status: "completed", role: "user", content: [{ type: "input_text", text: input }] }];
  }
  if (!Array.isArray(input)) throw wrongType("input", "a string or an array of input items", input);
  return input.map((raw, i) => inputItem(raw, `input[${i}]`, lookup, newId));
}

function inputItem(raw: unknown, at: string, lookup: ItemLookup, newId: (prefix: IdPrefix) => string): StoredItem {
  const item = object(raw, at);
  // EasyInputMessage: a role and content without a type.
  if (item.type == null && item.role === undefined) throw missing(`${at}.type`);
  const type = item.type == null ? "message" : string(item.type, `${at}.type`);
  const id = item.id == null ? undefined : string(item.id, `${at}.id`);
  switch (type) {
    case "message": {
      const role = oneOf(item.role, `${at}.role`, ROLES);
      return { id: id ?? newId("msg"), type, status: "completed", role, content: messageContent(item.content, role, `${at}.content`) };
    }
    case "function_call":
      return {
        id: id ?? newId("fc"), type, status: "completed",
        call_id: string(item.call_id, `${at}.call_id`), name: string(item.name, `${at}.name`), arguments: string(item.arguments, `${at}.arguments`),
      };
    case "function_call_output": {
      const output = typeof item.output === "string" ? item.output : toolOutput(item.output, `${at}.output`);
      return { id: id ?? newId("fco"), type, status: "completed", call_id: string(item.call_id, `${at}.call_id`), output };
    }
    case "reasoning":
      // Kept for the record; chat completions take no reasoning back, so it is not sent upstream.
      return { ...item, id: id ?? newId("rs"), type, summary: Array.isArray(item.summary) ? item.summary : [] };
    case "item_reference": {
      const ref = string(item.id, `${at}.id`);
      const found = lookup(ref);
      if (!found) throw new GatewayError("not_found", `Item with id '${ref.slice(0, 100)}' not found.`, { param: `${at}.id` });
      return found;
    }
    default:
      throw unsupported(`${at}.type`, `An input item of type '${type.slice(0, 64)}'`);
  }
}

/** Content as parts: a string becomes one text part (output_text for the assistant, as OpenAI stores it). */
function messageContent(content: unknown, role: (typeof ROLES)[number], at: string): Json[] {
  if (typeof content === "string") {
    return [role === "assistant" ? { type: "output_text", text: content, annotations: [] } : { type: "input_text", text: content }];
  }
  return array(content, at).map((raw, j) => {
    const part = object(raw, `${at}[${j}]`);
    const type = string(part.type, `${at}[${j}].type`);
    if (role === "assistant") {
      if (type === "output_text") return { type, text: string(part.text, `${at}[${j}].text`), annotations: Array.isArray(part.annotations) ? part.annotations : [] };
      if (type === "refusal") return { type, refusal: string(part.refusal, `${at}[${j}].refusal`) };
      throw invalid(`${at}[${j}].type`, `Invalid value: '${type.slice(0, 64)}'. Assistant content parts are 'output_text' or 'refusal'.`);
    }
    if (type === "input_text") return { type, text: string(part.text, `${at}[${j}].text`) };
    if (type === "input_image" && role === "user") return image(part, `${at}[${j}]`);
    if (type === "input_image" || type === "input_file") throw unsupported(`${at}[${j}].type`, `A content part of type '${type}' in a ${role} message`);
    throw invalid(`${at}[${j}].type`, `Invalid value: '${type.slice(0, 64)}'. Supported values are: 'input_text', 'input_image'.`);
  });
}

function image(part: Json, at: string): Json {
  if (part.file_id != null) throw unsupported(`${at}.file_id`, "An image by file id (there is no Files API here; send image_url)");
  const url = string(part.image_url, `${at}.image_url`);
  const detail = part.detail == null ? "auto" : oneOf(part.detail, `${at}.detail`, ["low", "high", "auto"] as const);
  return { type: "input_image", image_url: url, detail };
}

/** A function call's output as text parts: chat's tool messages take text only. */
function toolOutput(output: unknown, at: string): string {
  return array(output, at).map((raw, j) => {
    const part = object(raw, `${at}[${j}]`);
    if (part.type !== "input_text") throw unsupported(`${at}[${j}].type`, `A function call output part of type '${String(part.type).slice(0, 64)}'`);
    return string(part.text, `${at}[${j}].text`);
  }).join("");
}

type ChatMessage = Json & { role: string };

/**
 * The conversation as chat messages: instructions first as the system
 * message, then the items in order. Function calls join the assistant
 * message before them (or start one), so each tool message follows the
 * assistant turn that called it, as chat completions require.
 */
export function chatMessages(instructions: string | undefined, items: readonly StoredItem[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  if (instructions) out.push({ role: "system", content: instructions });
  for (const item of items) {
    const last = out[out.length - 1];
    switch (item.type) {
      case "message": {
        const parts = item.content as Json[];
        if (item.role === "assistant") out.push({ role: "assistant", content: parts.map((p) => (p.text ?? p.refusal) as string).join("") });
        else if (item.role === "user") out.push({ role: "user", content: userContent(parts) });
        // DashScope does not know OpenAI's "developer" role; for these models it is the system prompt.
        else out.push({ role: "system", content: parts.map((p) => p.text as string).join("\n") });
        break;
      }
      case "function_call": {
        const call = { id: item.call_id, type: "function", function: { name: item.name, arguments: item.arguments } };
        if (last?.role === "assistant") ((last.tool_calls ??= []) as unknown[]).push(call);
        else out.push({ role: "assistant", content: null, tool_calls: [call] });
        break;
      }
      case "function_call_output":
        out.push({ role: "tool", tool_call_id: item.call_id, content: item.output });
        break;
      default:
        break; // reasoning
    }
  }
  for (const m of out) if (m.role === "assistant" && m.tool_calls && m.content === "") m.content = null;
  // An assistant turn with no text and no call (an empty answer) says nothing, and chat refuses it.
  return out.filter((m) => !(m.role === "assistant" && !m.tool_calls && !m.content));
}

function userContent(parts: Json[]): string | Json[] {
  if (parts.every((p) => p.type === "input_text")) return parts.map((p) => p.text as string).join("\n");
  return parts.map((p) => p.type === "input_text"
    ? { type: "text", text: p.text }
    : { type: "image_url", image_url: p.detail && p.detail !== "auto" ? { url: p.image_url, detail: p.detail } : { url: p.image_url } });
}
