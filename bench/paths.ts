// The paths, each as the same load sent straight to the fake upstream ("direct")
// and through the gateway. A path has one or two parts: shim streaming adds a TTFB
// probe to the autocannon run.
import { randomBytes } from "node:crypto";
import { EMBED_INPUTS } from "./fake-upstream.js";
import { autocannonRun, ttfbProbe, type HttpTarget } from "./load-http.js";
import { grpcChatRun } from "./load-grpc.js";
import type { LoadResult } from "./stats.js";

export const PATH_IDS = ["shim", "shim-stream", "grpc", "connect", "responses", "responses-stream", "embeddings"] as const;
export type PathId = (typeof PATH_IDS)[number];

export const PATH_TITLES: Record<PathId, string> = {
  shim: "shim non-streaming",
  "shim-stream": "shim streaming",
  grpc: "gRPC Chat (h2c)",
  connect: "Connect Chat",
  responses: "Responses non-streaming",
  "responses-stream": "Responses streaming",
  embeddings: `Embeddings (${EMBED_INPUTS} inputs)`,
};

type Runner = (concurrency: number, seconds: number) => Promise<LoadResult>;

export interface Part {
  /** "load": throughput and whole-request latency; "ttfb": the first-byte probe. */
  kind: "load" | "ttfb";
  direct: Runner;
  gateway: Runner;
}

export interface Endpoints {
  fake: string;
  gateway: string;
  gatewayPort: number;
  key: string;
}

export const MESSAGES = [{ role: "user", content: "Hello, benchmark" }];
const JSON_HEADERS = { "content-type": "application/json" };
const sseComplete = (body: string) => body.endsWith("data: [DONE]\n\n");

/** Connect's 5-byte envelope: flags, then the big-endian length of the message. */
export function envelope(json: string, flags = 0): Buffer {
  const msg = Buffer.from(json);
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(msg.length, 1);
  return Buffer.concat([head, msg]);
}

/** A Connect stream that ended well: its last envelope (end-stream, flag 2) carries no error. */
function connectComplete(body: string): boolean {
  const end = body.lastIndexOf("\u0002");
  return end >= 0 && body.includes('"done"') && !body.slice(end).includes('"error"');
}

/**
 * The shim's request with a counter in its text, so that every request differs from every
 * other: with the cache on, each is a miss (bench --distinct, the cache comparison).
 */
export function distinctBodies(): () => string {
  // A nonce per generator, so two generators (or runs on one cache file) never send the same text.
  const nonce = randomBytes(6).toString("hex");
  let n = 0;
  return () => JSON.stringify({ model: "qwen-max", messages: [{ role: "user", content: `Hello, benchmark ${nonce} ${n++}` }] });
}

export function paths(e: Endpoints, options: { distinct?: boolean } = {}): Record<PathId, Part[]> {
  const auth = { authorization: `Bearer ${e.key}` };
  // What the gateway sends upstream: the same body, model resolved, and (streams) usage asked for.
  const upstreamJson = JSON.stringify({ messages: MESSAGES, model: "qwen-max" });
  const upstreamStream = JSON.stringify({ messages: MESSAGES, model: "qwen-max", stream: true, stream_options: { include_usage: true } });

  const direct = (body: string, verify?: (b: string) => boolean): HttpTarget =>
    ({ origin: e.fake, path: "/v1/chat/completions", headers: JSON_HEADERS, body, ...(verify ? { verify } : {}) });
  const viaShim = (body: string, verify?: (b: string) => boolean): HttpTarget =>
    ({ origin: e.gateway, path: "/v1/chat/completions", headers: { ...JSON_HEADERS, ...auth }, body, ...(verify ? { verify } : {}) });

  const shimStream = viaShim(JSON.stringify({ model: "qwen-max", messages: MESSAGES, stream: true, stream_options: { include_usage: true } }), sseComplete);
  const directStream = direct(upstreamStream, sseComplete);
  // The Responses door on the same load, stored as by default (one more SQLite row a request): its
  // baseline is the chat request it becomes upstream.
  const viaResponses = (stream: boolean): HttpTarget => ({
    origin: e.gateway, path: "/v1/responses", headers: { ...JSON_HEADERS, ...auth },
    body: JSON.stringify({ model: "qwen-max", input: MESSAGES[0]!.content, ...(stream ? { stream } : {}) }),
    verify: stream ? (b) => b.includes("event: response.completed\n") : (b) => b.includes('"status":"completed"'),
  });
  // Embeddings: the gateway's answer is the upstream's, re-indexed and re-serialised (1024 floats an input).
  const embedInput = Array.from({ length: EMBED_INPUTS }, (_, i) => `benchmark text number ${i}`);
  const embedTarget = (origin: string, headers: Record<string, string>): HttpTarget => ({
    origin, path: "/v1/embeddings", headers, body: JSON.stringify({ model: "text-embedding-v4", input: embedInput, encoding_format: "float" }),
    verify: (b) => b.startsWith('{"object":"list"') && !b.includes('"error"'),
  });
  const connect: HttpTarget = {
    origin: e.gateway,
    path: "/gatewayz.v1.GatewayService/Chat",
    headers: { "content-type": "application/connect+json", "connect-protocol-version": "1", ...auth },
    body: envelope(JSON.stringify({ model: "qwen-max", messages: MESSAGES })),
    verify: connectComplete,
  };

  // One generator for every run of the path (warm-up and rounds): a fresh one per run would
  // send the warm-up's texts again, and with the cache on those are hits, not misses.
  const bodies = options.distinct ? { bodies: distinctBodies() } : {};
  return {
    shim: [{
      kind: "load",
      direct: (c, s) => autocannonRun(direct(upstreamJson), c, s),
      gateway: (c, s) => autocannonRun({
        ...viaShim(JSON.stringify({ model: "qwen-max", messages: MESSAGES })),
        ...bodies,
      }, c, s),
    }],
    "shim-stream": [
      { kind: "load", direct: (c, s) => autocannonRun(directStream, c, s), gateway: (c, s) => autocannonRun(shimStream, c, s) },
      { kind: "ttfb", direct: (c, s) => ttfbProbe(directStream, c, s), gateway: (c, s) => ttfbProbe(shimStream, c, s) },
    ],
    // The upstream speaks HTTP/SSE, not gRPC: the direct baseline is the same closed loop
    // against the fake's streaming endpoint over HTTP/1.1. The gateway sends no gRPC message
    // for OpenAI's opening role-only chunk, so its first message is the first text: the
    // baseline times the first SSE event with text, not the first byte.
    grpc: [{ kind: "load", direct: (c, s) => ttfbProbe(directStream, c, s, "content"), gateway: (c, s) => grpcChatRun(e.gatewayPort, e.key, c, s) }],
    connect: [{ kind: "load", direct: (c, s) => autocannonRun(directStream, c, s), gateway: (c, s) => autocannonRun(connect, c, s) }],
    responses: [{ kind: "load", direct: (c, s) => autocannonRun(direct(upstreamJson), c, s), gateway: (c, s) => autocannonRun(viaResponses(false), c, s) }],
    embeddings: [{
      kind: "load",
      direct: (c, s) => autocannonRun(embedTarget(e.fake, JSON_HEADERS), c, s),
      gateway: (c, s) => autocannonRun(embedTarget(e.gateway, { ...JSON_HEADERS, ...auth }), c, s),
    }],
    "responses-stream": [{ kind: "load", direct: (c, s) => autocannonRun(directStream, c, s), gateway: (c, s) => autocannonRun(viaResponses(true), c, s) }],
  };
}
