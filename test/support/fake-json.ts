import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";

/** A JSON answer as the fake upstreams send one: a length, a request id like the real providers', nothing once the socket is gone. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed || res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
    "x-request-id": randomBytes(8).toString("hex"),
    ...headers,
  });
  res.end(text);
}
