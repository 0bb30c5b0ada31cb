import type http from "node:http";
import type { Res } from "./http-io.js";
import type { RequestScope } from "./requests.js";
import { endIfOpen, sendChunk } from "./send.js";

/**
 * Server-sent events as OpenAI frames them: `data: <json>\n\n` per event,
 * `data: [DONE]\n\n` at a clean end. JSON.stringify never emits a raw
 * newline, so one `data:` line per event is always well-formed.
 */
export class SseWriter {
  // HTTP/1 and HTTP/2 responses share these methods; their typings don't unify.
  private readonly res: http.ServerResponse;
  constructor(res: Res, private readonly scope: RequestScope, private readonly sendTimeoutMs: number) {
    this.res = res as http.ServerResponse;
  }

  open(headers: Record<string, string>): void {
    this.res.writeHead(200, {
      ...headers,
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no", // proxies such as nginx must not buffer the stream
    });
  }

  /** Writes one event; waits while the client reads slower than we write, and throws once it has gone. */
  send(data: unknown): Promise<void> | void {
    return sendChunk(this.res, `data: ${JSON.stringify(data)}\n\n`, this.scope, this.sendTimeoutMs);
  }

  /**
   * Writes named events in one write, as the Responses API frames them: per
   * event an `event:` line with its `type`, then its data. Waits like send().
   */
  events<E extends { readonly type: string }>(events: readonly E[], text: (e: E) => string = namedEventText): Promise<void> | void {
    if (events.length === 0) return;
    return sendChunk(this.res, events.map(text).join(""), this.scope, this.sendTimeoutMs);
  }

  /** Ends the stream with these named events (none: just ends it), without [DONE], whether or not the client still reads. */
  endWith<E extends { readonly type: string }>(events: readonly E[] = [], text: (e: E) => string = namedEventText): void {
    endIfOpen(this.res, events.map(text).join(""));
  }

  done(): void {
    endIfOpen(this.res, "data: [DONE]\n\n");
  }

  /** Ends the stream without [DONE], so the client cannot mistake it for complete. */
  fail(errorBody: unknown): void {
    endIfOpen(this.res, `data: ${JSON.stringify(errorBody)}\n\n`);
  }
}

/** An event named by its `type`, with `data` (by default the event itself) serialised. */
export function namedEventText(e: { readonly type: string }, data: string = JSON.stringify(e)): string {
  if (/[\r\n]/.test(e.type)) throw new Error("an SSE event name cannot hold a line break");
  return `event: ${e.type}\ndata: ${data}\n\n`;
}
