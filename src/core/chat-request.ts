import { GatewayError } from "../errors.js";
import type { CoreCall } from "./call.js";
import { validateParams } from "./chat-params.js";

/**
 * The core speaks OpenAI's chat request body: both front doors produce one
 * (the shim receives it, the Connect service converts the proto into it), so
 * validation and every policy after it exist once. Fields the core does not
 * know pass through to the provider untouched.
 */
export type ChatBody = Record<string, unknown> & { messages: unknown[] };

/** A chat; a Responses API call is served as one (its operation then says "responses"). */
export interface ChatCall extends CoreCall {
  /** The OpenAI body without model, stream and stream_options. */
  readonly body: ChatBody;
}

const ROLES = new Set(["system", "developer", "user", "assistant", "tool", "function"]);

/** Checks what every provider would reject anyway, so the client hears it from us, clearly. */
export function validateChat(model: unknown, body: Record<string, unknown>): void {
  if (typeof model !== "string" || model.trim() === "") {
    throw new GatewayError("invalid_request", "model is required: a model id such as 'qwen-plus'", { param: "model" });
  }
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new GatewayError("invalid_request", "messages must be a non-empty array", { param: "messages" });
  }
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as { role?: unknown; content?: unknown; tool_calls?: unknown } | null;
    if (typeof m !== "object" || m === null || Array.isArray(m)) {
      throw new GatewayError("invalid_request", `messages[${i}] must be an object`, { param: `messages[${i}]` });
    }
    if (typeof m.role !== "string" || !ROLES.has(m.role)) {
      throw new GatewayError("invalid_request", `messages[${i}].role must be one of system, developer, user, assistant, tool`, { param: `messages[${i}].role` });
    }
    const c = m.content;
    const empty = c === undefined || c === null || c === "";
    if (empty && !(m.role === "assistant" && Array.isArray(m.tool_calls))) {
      throw new GatewayError("invalid_request", `messages[${i}].content is required`, { param: `messages[${i}].content` });
    }
    if (!empty && typeof c !== "string" && !Array.isArray(c)) {
      throw new GatewayError("invalid_request", `messages[${i}].content must be a string or an array of content parts`, { param: `messages[${i}].content` });
    }
    if (Array.isArray(c)) validateParts(c, i);
  }
  validateParams(body);
}

/** Every part an object with a string `type`, and a text part's text a string: what token estimates and providers read. */
function validateParts(parts: unknown[], i: number): void {
  for (let j = 0; j < parts.length; j++) {
    const p = parts[j] as { type?: unknown; text?: unknown } | null;
    if (typeof p !== "object" || p === null || Array.isArray(p) || typeof p.type !== "string") {
      const param = `messages[${i}].content[${j}]`;
      throw new GatewayError("invalid_request", `${param} must be a content part: an object with a string "type"`, { param });
    }
    if (p.type === "text" && typeof p.text !== "string") {
      const param = `messages[${i}].content[${j}].text`;
      throw new GatewayError("invalid_request", `${param} must be a string`, { param });
    }
  }
}
