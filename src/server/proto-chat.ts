import { create } from "@bufbuild/protobuf";
import type { ChatCompletionChunk } from "openai/resources/chat/completions";
import {
  ChatResponseSchema,
  type ChatRequest,
  type ChatResponse,
  type ContentPart,
  type Message,
} from "../../gen/gatewayz/v1/gateway_pb.js";
import type { ChatBody } from "../core/chat-request.js";
import type { ChatOutcome } from "../core/gateway.js";
import { GatewayError } from "../errors.js";

/**
 * Translation between the proto API and the OpenAI body the core speaks.
 * Only set fields are copied, so provider defaults stay in force, and the
 * body is the one the OpenAI door would receive for the same request: a
 * field the proto leaves unset (proto3's "" or 0 for a plain field, an empty
 * list, an absent message) is absent from it, not written as its default
 * (only what OpenAI requires of a replayed tool call or of a content part,
 * such as a call's arguments, is always written, as OpenAI's clients do).
 * That keeps the response cache's key (a hash of this body) the same for a
 * chat whichever door it came through.
 */
export function chatBodyFromProto(req: ChatRequest): ChatBody {
  const body: ChatBody = { ...(req.extraBody ?? {}), messages: req.messages.map(messageFromProto) };
  const set = (key: string, value: unknown) => { if (value !== undefined) body[key] = value; };
  set("temperature", req.temperature);
  set("top_p", req.topP);
  set("max_tokens", req.maxTokens);
  if (req.stop.length) body.stop = req.stop;
  set("seed", req.seed === undefined ? undefined : Number(req.seed));
  set("presence_penalty", req.presencePenalty);
  set("frequency_penalty", req.frequencyPenalty);
  if (req.tools.length) {
    body.tools = req.tools.map((t) => ({
      type: t.type || "function",
      function: {
        // An unset name stays absent, so the core refuses the tool as it would a JSON one without a name.
        ...(t.function?.name ? { name: t.function.name } : {}),
        ...(t.function?.description ? { description: t.function.description } : {}),
        ...(t.function?.parameters ? { parameters: t.function.parameters } : {}),
        ...(t.function?.strict !== undefined ? { strict: t.function.strict } : {}),
      },
    }));
  }
  const choice = req.toolChoice?.choice;
  if (choice?.case === "mode") body.tool_choice = choice.value;
  if (choice?.case === "functionName") body.tool_choice = { type: "function", function: { name: choice.value } };
  const rf = req.responseFormat;
  if (rf?.type) {
    body.response_format = rf.type === "json_schema" && rf.jsonSchema
      ? { type: "json_schema", json_schema: {
          ...(rf.jsonSchema.name ? { name: rf.jsonSchema.name } : {}),
          ...(rf.jsonSchema.description ? { description: rf.jsonSchema.description } : {}),
          ...(rf.jsonSchema.schema ? { schema: rf.jsonSchema.schema } : {}),
          ...(rf.jsonSchema.strict !== undefined ? { strict: rf.jsonSchema.strict } : {}),
        } }
      : { type: rf.type };
  }
  if (req.user) body.user = req.user;
  set("parallel_tool_calls", req.parallelToolCalls);
  set("enable_thinking", req.enableThinking);
  set("thinking_budget", req.thinkingBudget);
  set("enable_search", req.enableSearch);
  return body;
}

function messageFromProto(m: Message, i: number): Record<string, unknown> {
  if (m.content && m.parts.length) {
    throw new GatewayError("invalid_request", `messages[${i}]: set content or parts, not both`, { param: `messages[${i}]` });
  }
  const out: Record<string, unknown> = { role: m.role };
  if (m.parts.length) out.content = m.parts.map(partFromProto);
  else if (m.content || !m.toolCalls.length) out.content = m.content;
  if (m.name) out.name = m.name;
  if (m.toolCalls.length) {
    out.tool_calls = m.toolCalls.map((t) => ({
      id: t.id, type: t.type || "function",
      function: { name: t.function?.name ?? "", arguments: t.function?.arguments ?? "" },
    }));
  }
  if (m.toolCallId) out.tool_call_id = m.toolCallId;
  return out;
}

function partFromProto(p: ContentPart): Record<string, unknown> {
  switch (p.part.case) {
    case "text": return { type: "text", text: p.part.value };
    case "imageUrl": return { type: "image_url", image_url: { url: p.part.value.url, ...(p.part.value.detail ? { detail: p.part.value.detail } : {}) } };
    case "inputAudio": return { type: "input_audio", input_audio: { data: p.part.value.data, format: p.part.value.format } };
    default: throw new GatewayError("invalid_request", "a content part must set text, image_url or input_audio");
  }
}

type Delta = ChatCompletionChunk.Choice.Delta & { reasoning_content?: string | null };

/**
 * The delta message for one upstream chunk, or undefined when it carries
 * nothing. Every field is coerced to what the proto can carry: the chunk is
 * the upstream's, and one field that failed to encode (a tool call `index`
 * of -1) would end an answer already under way with INTERNAL.
 */
export function deltaFromChunk(chunk: ChatCompletionChunk): ChatResponse | undefined {
  const delta = chunk.choices[0]?.delta as Delta | undefined;
  if (!delta) return undefined;
  const content = text(delta.content);
  const reasoningContent = text(delta.reasoning_content);
  const toolCalls = (delta.tool_calls ?? []).map((t) => ({
    index: uint32(t.index), id: text(t.id), type: text(t.type), name: text(t.function?.name), arguments: text(t.function?.arguments),
  }));
  if (!content && !reasoningContent && !toolCalls.length) return undefined;
  return create(ChatResponseSchema, { event: { case: "delta", value: { content, reasoningContent, toolCalls } } });
}

const UINT32_MAX = 0xffff_ffff;

/**
 * A number as the proto's uint32 can carry it. Core usage is already clamped
 * far below this (core/usage.ts); this keeps `delta` and `done` messages
 * encodable whatever an upstream sent, since one that failed to encode would
 * end an already billed stream with INTERNAL.
 */
function uint32(n: unknown): number {
  return typeof n === "number" && Number.isFinite(n) && n > 0 ? Math.min(Math.floor(n), UINT32_MAX) : 0;
}

/** A string field from upstream data: anything else (a number, an object, null) is "". */
function text(v: unknown): string {
  return typeof v === "string" ? v : "";
}

export function doneFromOutcome(o: ChatOutcome): ChatResponse {
  const u = o.usage;
  return create(ChatResponseSchema, {
    event: {
      case: "done",
      value: {
        id: text(o.id),
        finishReason: text(o.finishReason),
        usage: {
          promptTokens: uint32(u.promptTokens), completionTokens: uint32(u.completionTokens), totalTokens: uint32(u.totalTokens),
          cachedTokens: uint32(u.cachedTokens), reasoningTokens: uint32(u.reasoningTokens),
        },
        cost: { promptUsd: o.cost.promptUsd, completionUsd: o.cost.completionUsd, totalUsd: o.cost.totalUsd },
        model: text(o.upstreamModel),
        provider: o.provider,
        catalogModel: o.catalogModel.id,
        attempts: o.attempts,
        // Served without an upstream call of its own: from the cache, or shared with an identical request in flight.
        cached: o.cache === "hit" || o.cache === "coalesced",
      },
    },
  });
}
