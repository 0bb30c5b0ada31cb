import type http from "node:http";
import http2 from "node:http2";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { GatewayError, toOpenAIError } from "../errors.js";
import { exceedsDepth } from "./json-depth.js";

/** HTTP/1 or HTTP/2 request and response, as Connect's Node adapter types them. */
type NodeHandler = NonNullable<Parameters<typeof connectNodeAdapter>[0]["fallback"]>;
export type Req = Parameters<NodeHandler>[0];
export type Res = Parameters<NodeHandler>[1];

export interface BodyLimits {
  readonly maxBodyBytes: number;
  readonly maxJsonDepth: number;
}

/**
 * Reads a JSON request body, refusing before reading on when it is too
 * large (413) or not JSON by content type (415), and before parsing when it
 * nests deeper than the limit or is not valid JSON (400).
 */
export async function readJsonBody(req: Req, limits: BodyLimits): Promise<unknown> {
  const type = req.headers["content-type"];
  if (type !== undefined && !/^application\/json\s*(;|$)/i.test(type)) {
    throw new GatewayError("unsupported_media_type", `Content-Type must be application/json, got ${type.slice(0, 100)}`);
  }
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limits.maxBodyBytes) throw tooLarge(limits.maxBodyBytes);
  const body = await readBody(req, limits.maxBodyBytes);
  // JSON.parse copes with any depth, but whatever walks the value next (the
  // upstream client serialising it) recurses: a deep body would fail there,
  // inside the provider call, and look like the provider's fault.
  if (exceedsDepth(body, limits.maxJsonDepth)) {
    throw new GatewayError("invalid_request", `the request body nests arrays and objects deeper than ${limits.maxJsonDepth} levels (MAX_JSON_DEPTH)`);
  }
  const text = body.toString("utf8");
  if (text.trim() === "") throw new GatewayError("invalid_request", "the request body is empty; send a JSON object");
  try {
    return JSON.parse(text);
  } catch {
    throw new GatewayError("invalid_request", "the request body is not valid JSON");
  }
}

/**
 * The body, or a rejection once it passes `maxBytes`. Not `for await`:
 * leaving that loop early destroys the request, and with it the connection
 * (HTTP/1) or the stream (HTTP/2) the 413 must still go out on; here the
 * request is only paused, and stopUnreadBody decides what happens to the rest.
 */
function readBody(req: Req, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onGone);
      req.off("close", onGone);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) return void chunks.push(chunk);
      done();
      req.pause();
      reject(tooLarge(maxBytes));
    };
    const onEnd = () => {
      done();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    const onGone = () => {
      done();
      reject(new GatewayError("cancelled", "the client closed the connection before sending the whole body"));
    };
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onGone);
    req.once("close", onGone);
  });
}

function tooLarge(maxBytes: number): GatewayError {
  return new GatewayError("payload_too_large", `the request body is larger than ${maxBytes} bytes (MAX_BODY_BYTES)`);
}

export function sendJson(res: Res, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJsonText(res, status, JSON.stringify(body), headers);
}

/** sendJson for a body already serialised (stored as well as sent, say). */
export function sendJsonText(res: Res, status: number, payload: string, headers: Record<string, string> = {}): void {
  (res as http.ServerResponse).writeHead(status, {
    ...headers,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
  });
  res.end(payload);
}

export function sendError(res: Res, err: unknown): void {
  const { status, headers, body } = toOpenAIError(err);
  if (res.headersSent) {
    res.end();
    return;
  }
  sendJson(res, status, body, headers);
}

/** How long an HTTP/1 client refused before its body was read may go on sending it. */
const LINGER_MS = 2_000;

/**
 * After answering a request whose body was not read (refused from its
 * headers, or declared too large), stop the client sending it without
 * cutting the answer off. HTTP/2: reset the stream with NO_ERROR once the
 * answer is out (RFC 9113 §8.1). HTTP/1: Node discards the rest of the body
 * on its own, so the connection stays usable and the client reads its answer
 * instead of an EPIPE; a body still not in LINGER_MS after the answer closes
 * the connection (a lingering close, bounded in time).
 */
export function stopUnreadBody(req: Req, res: Res): void {
  if ("stream" in req) {
    // Node's compatibility response always ends with trailers: once they are
    // sent (its own 'wantTrailers' listener, registered first, has run) our
    // side is complete. The reset waits a turn, so nghttp2 has written the
    // answer's frames to the socket first (it would send a reset ahead of
    // queued DATA, losing the answer).
    const stream = req.stream;
    stream.once("wantTrailers", () => setImmediate(() => {
      if (!stream.closed && !stream.readableEnded) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    }));
    return;
  }
  const socket = req.socket;
  res.once("finish", () => {
    if (req.complete) return;
    // A body read part-way is not discarded by Node (it only dumps bodies
    // nobody touched): flow the rest into the void, so the next request on
    // this connection is parsed from the right byte.
    req.resume();
    const timer = setTimeout(() => { if (!req.complete) socket.destroy(); }, LINGER_MS);
    socket.once("close", () => clearTimeout(timer));
    req.once("end", () => clearTimeout(timer));
  });
}
