import type { ChatCompletionChunk } from "openai/resources/chat/completions";
import type { CompletionUsage } from "openai/resources/completions";
import type { OpenAIErrorBody } from "../errors.js";
import type { StoredItem } from "../storage/responses.js";
import { newId } from "./ids.js";
import type { Json } from "./invalid.js";
import {
  functionCallItem, messageItem, reasoningItem, responseObject, responsesUsage, statusOf, type ResponseObject, type ResponseShell,
} from "./response.js";

/** One Responses stream event: `type` is also its SSE `event:` name. */
export type ResponseEvent = Json & { type: string; sequence_number: number };

type Delta = ChatCompletionChunk.Choice.Delta & { reasoning_content?: string | null; reasoning?: string | null };

/** The output item being written, and what has been written into it. */
type Open =
  | { kind: "reasoning"; index: number; id: string; text: string }
  | { kind: "message"; index: number; id: string; text: string }
  | { kind: "call"; index: number; id: string; callId: string; name: string; args: string };

/**
 * Turns a chat completion stream into the Responses event stream, framed as
 * OpenAI frames it: response.created and .in_progress; then per output item
 * (reasoning as a summary, the message, each function call, in the order the
 * model produced them) output_item.added, its parts and deltas, their .done
 * events and output_item.done; and last response.completed (or .incomplete)
 * carrying the whole Response with usage. Every event has the next
 * sequence_number. Pure: the door sends what it returns.
 */
export class ResponseEvents {
  private seq = 0;
  private readonly output: StoredItem[] = [];
  private open: Open | undefined;
  /** Function calls by their chat tool-call index. */
  private readonly calls = new Map<number, Extract<Open, { kind: "call" }>>();
  private finishReason: string | null = null;

  constructor(private readonly shell: ResponseShell) {}

  start(): ResponseEvent[] {
    const response = responseObject(this.shell, "in_progress", []);
    return [this.event("response.created", { response }), this.event("response.in_progress", { response })];
  }

  /** The events one chat chunk makes; usage-only chunks make none. */
  push(chunk: ChatCompletionChunk): ResponseEvent[] {
    const out: ResponseEvent[] = [];
    const choice = chunk.choices[0];
    if (!choice) return out;
    const d = choice.delta as Delta | undefined;
    const reasoning = d?.reasoning_content ?? d?.reasoning;
    if (typeof reasoning === "string" && reasoning !== "") this.reasoning(reasoning, out);
    if (d?.content) this.text(d.content, out);
    for (const t of d?.tool_calls ?? []) this.toolCall(t, out);
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
    return out;
  }

  /** Closes what is open and completes the response; returns the events and the final Response (to store). */
  finish(usage: CompletionUsage): { events: ResponseEvent[]; response: ResponseObject } {
    const { status, incomplete } = statusOf(this.finishReason);
    const events: ResponseEvent[] = [];
    // A turn with nothing in it still answers: an empty message, as the non-streaming door gives.
    if (this.output.length === 0 && !this.open) this.openMessage(events);
    this.close(events, status === "completed" ? "completed" : "incomplete");
    const response = responseObject(this.shell, status, this.output, { usage: responsesUsage(usage), incomplete });
    events.push(this.event(status === "completed" ? "response.completed" : "response.incomplete", { response }));
    return { events, response };
  }

  /**
   * The end of a stream that broke after its first byte: response.failed
   * with what was produced so far, then an `error` event. The error is
   * given both flat (OpenAI's documented event) and as `error` (what the
   * SDKs read, and what makes openai-node throw).
   */
  fail(error: OpenAIErrorBody["error"]): ResponseEvent[] {
    const output = [...this.output];
    if (this.open) output.push(this.item(this.open, "incomplete"));
    const response = responseObject(this.shell, "failed", output, { error: { code: "server_error", message: error.message } });
    return [
      this.event("response.failed", { response }),
      this.event("error", { code: error.code, message: error.message, param: error.param, error }),
    ];
  }

  private event(type: string, fields: Json): ResponseEvent {
    return { type, sequence_number: this.seq++, ...fields };
  }

  private reasoning(delta: string, out: ResponseEvent[]): void {
    let open = this.open;
    if (open?.kind !== "reasoning") {
      this.close(out, "completed");
      open = this.open = { kind: "reasoning", index: this.output.length, id: this.shell.itemId("rs"), text: "" };
      out.push(this.event("response.output_item.added", { output_index: open.index, item: { id: open.id, type: "reasoning", summary: [] } }));
      out.push(this.event("response.reasoning_summary_part.added", {
        item_id: open.id, output_index: open.index, summary_index: 0, part: { type: "summary_text", text: "" },
      }));
    }
    open.text += delta;
    out.push(this.event("response.reasoning_summary_text.delta", { item_id: open.id, output_index: open.index, summary_index: 0, delta }));
  }

  private text(delta: string, out: ResponseEvent[]): void {
    const open = this.open?.kind === "message" ? this.open : this.openMessage(out);
    open.text += delta;
    out.push(this.event("response.output_text.delta", { item_id: open.id, output_index: open.index, content_index: 0, delta, logprobs: [] }));
  }

  private openMessage(out: ResponseEvent[]): Extract<Open, { kind: "message" }> {
    this.close(out, "completed");
    const open = (this.open = { kind: "message", index: this.output.length, id: this.shell.itemId("msg"), text: "" });
    out.push(this.event("response.output_item.added", {
      output_index: open.index, item: { id: open.id, type: "message", status: "in_progress", role: "assistant", content: [] },
    }));
    out.push(this.event("response.content_part.added", {
      item_id: open.id, output_index: open.index, content_index: 0, part: { type: "output_text", text: "", annotations: [], logprobs: [] },
    }));
    return open;
  }

  private toolCall(t: ChatCompletionChunk.Choice.Delta.ToolCall, out: ResponseEvent[]): void {
    let call = this.calls.get(t.index);
    if (!call) {
      this.close(out, "completed");
      call = { kind: "call", index: this.output.length, id: this.shell.itemId("fc"), callId: t.id || newId("call"), name: t.function?.name ?? "", args: "" };
      this.calls.set(t.index, call);
      this.open = call;
      // Arguments always start empty here: clients append every delta to what output_item.added gave.
      out.push(this.event("response.output_item.added", { output_index: call.index, item: functionCallItem(call.id, call.callId, call.name, "", "in_progress") }));
    } else if (t.function?.name && this.open === call) {
      call.name += t.function.name;
    }
    const delta = t.function?.arguments;
    if (!delta) return;
    call.args += delta;
    out.push(this.event("response.function_call_arguments.delta", { item_id: call.id, output_index: call.index, delta }));
  }

  /** Ends the open item: its .done events, then output_item.done with the item as it stands. */
  private close(out: ResponseEvent[], status: "completed" | "incomplete"): void {
    const open = this.open;
    if (!open) return;
    this.open = undefined;
    const at = { item_id: open.id, output_index: open.index };
    if (open.kind === "reasoning") {
      out.push(this.event("response.reasoning_summary_text.done", { ...at, summary_index: 0, text: open.text }));
      out.push(this.event("response.reasoning_summary_part.done", { ...at, summary_index: 0, part: { type: "summary_text", text: open.text } }));
    } else if (open.kind === "message") {
      out.push(this.event("response.output_text.done", { ...at, content_index: 0, text: open.text, logprobs: [] }));
      out.push(this.event("response.content_part.done", {
        ...at, content_index: 0, part: { type: "output_text", text: open.text, annotations: [], logprobs: [] },
      }));
    } else {
      out.push(this.event("response.function_call_arguments.done", { ...at, name: open.name, arguments: open.args }));
    }
    const item = this.item(open, open.kind === "reasoning" ? "completed" : status);
    this.output.push(item);
    out.push(this.event("response.output_item.done", { output_index: open.index, item }));
  }

  private item(open: Open, status: string): StoredItem {
    if (open.kind === "reasoning") return reasoningItem(open.id, open.text);
    if (open.kind === "message") return messageItem(open.id, open.text, status);
    return functionCallItem(open.id, open.callId, open.name, open.args, status);
  }
}
