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

  done(): void {
    endIfOpen(this.res, "data: [DONE]\n\n");
  }

  /** Ends the stream without [DONE], so the client cannot mistake it for complete. */
  fail(errorBody: unknown): void {
    endIfOpen(this.res, `data: ${JSON.stringify(errorBody)}\n\n`);
  }
}
