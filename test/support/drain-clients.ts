// The clients of test/server/shutdown.test.ts: each runs one chat request to
// its end and says what its client saw, as data (never a rejection), so a
// test can send dozens at once and then look at every outcome.
//   - OpenAI SDK streams and plain requests (how the SDK reports the end);
//   - raw HTTP/1 streams and plain requests (the bytes: the SSE events, a
//     `data: [DONE]` or not, the status, the headers);
//   - gRPC Chat streams through @grpc/grpc-js (the final status).
// Every request opens a connection of its own (agent: false, a local
// subchannel pool), so with --workers they are spread over the workers.

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import http from "node:http";
import OpenAI, { APIError } from "openai";
import { ROOT } from "./node-child.js";

export const MESSAGES = [{ role: "user" as const, content: "hi" }];

export type Outcome =
  /** The whole answer, ended the normal way (a finish_reason, `[DONE]`, status OK). */
  | { end: "complete"; content: string; at: number }
  /** An error the client was told about: an SDK APIError, an SSE error event, a non-200, a gRPC status. */
  | { end: "error"; content: string; status?: number | string; code?: string; message: string; at: number }
  /** Anything else: a cut connection, a stream that just stopped, a client-side exception. */
  | { end: "broken"; content: string; message: string; at: number };

export interface OutcomeOf<T> {
  outcome: Promise<Outcome & T>;
}

// ---------------------------------------------------------------- OpenAI SDK

function sdk(url: string, key: string): OpenAI {
  // No retries: a retried request would be a second request, with a second row.
  return new OpenAI({ apiKey: key, baseURL: `${url}/v1`, maxRetries: 0, timeout: 60_000 });
}

/** An OpenAI SDK stream; `onContent` is called at its first content delta. */
export async function sdkStream(url: string, key: string, model: string, onContent?: () => void): Promise<Outcome> {
  let content = "";
  let finish: string | null = null;
  try {
    const stream = await sdk(url, key).chat.completions.create({ model, messages: MESSAGES, stream: true });
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta?.content ?? "";
      if (piece && !content) onContent?.();
      content += piece;
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
  } catch (err) {
    if (err instanceof APIError) return { end: "error", content, status: err.status, code: err.code ?? undefined, message: err.message, at: Date.now() };
    return { end: "broken", content, message: String(err), at: Date.now() };
  }
  // The SDK ends quietly when a stream stops without [DONE]: only a finish_reason says it was whole.
  if (finish === "stop") return { end: "complete", content, at: Date.now() };
  return { end: "broken", content, message: `the stream ended with no finish_reason (${finish})`, at: Date.now() };
}

/** An OpenAI SDK non-streamed request. */
export async function sdkPlain(url: string, key: string, model: string): Promise<Outcome> {
  try {
    const r = await sdk(url, key).chat.completions.create({ model, messages: MESSAGES });
    return { end: "complete", content: r.choices[0]?.message.content ?? "", at: Date.now() };
  } catch (err) {
    if (err instanceof APIError) return { end: "error", content: "", status: err.status, code: err.code ?? undefined, message: err.message, at: Date.now() };
    return { end: "broken", content: "", message: String(err), at: Date.now() };
  }
}

// ---------------------------------------------------------------- raw HTTP/1

export interface Raw {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body as received. */
  text: string;
}

/** One POST /v1/chat/completions on a connection of its own; `onData` sees each body chunk. */
function rawChat(url: string, key: string, body: object, onData?: (text: string) => void): Promise<Raw> {
  const payload = JSON.stringify(body);
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: hostname, port, path: "/v1/chat/completions", method: "POST", agent: false,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
    }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        text += c;
        onData?.(text);
      });
      res.on("error", reject);
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, text }));
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** The `data:` payloads of an SSE body, in order. */
export function sseData(text: string): string[] {
  return text.split(/\r?\n\r?\n/).flatMap((event) => event.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()));
}

export type RawOutcome = Outcome & { raw?: Raw };

/**
 * A stream read as bytes: complete when it ends with `data: [DONE]` after a
 * finish_reason; an error when its last event is `data: {"error": ...}` and
 * no [DONE] came.
 */
export async function rawStream(url: string, key: string, model: string, onContent?: () => void): Promise<RawOutcome> {
  let seen = false;
  let raw: Raw;
  try {
    raw = await rawChat(url, key, { model, messages: MESSAGES, stream: true }, (text) => {
      if (!seen && /"content":"[^"]/.test(text)) {
        seen = true;
        onContent?.();
      }
    });
  } catch (err) {
    return { end: "broken", content: "", message: String(err), at: Date.now() };
  }
  const at = Date.now();
  const events = sseData(raw.text);
  const chunks = events.filter((d) => d !== "[DONE]").map((d) => JSON.parse(d) as any);
  const content = chunks.map((c) => c.choices?.[0]?.delta?.content ?? "").join("");
  const last = chunks.at(-1);
  if (raw.status !== 200) return { end: "error", content, status: raw.status, message: raw.text, at, raw };
  if (events.at(-1) === "[DONE]" && chunks.some((c) => c.choices?.[0]?.finish_reason === "stop")) return { end: "complete", content, at, raw };
  if (!events.includes("[DONE]") && last?.error) return { end: "error", content, code: last.error.code, message: last.error.message, at, raw };
  return { end: "broken", content, message: `the stream ended with ${JSON.stringify(events.at(-1))}`, at, raw };
}

/** A non-streamed request read raw: its status, body and headers. */
export async function rawPlain(url: string, key: string, model: string): Promise<RawOutcome> {
  let raw: Raw;
  try {
    raw = await rawChat(url, key, { model, messages: MESSAGES });
  } catch (err) {
    return { end: "broken", content: "", message: String(err), at: Date.now() };
  }
  const at = Date.now();
  let body: any;
  try {
    body = JSON.parse(raw.text);
  } catch {
    return { end: "broken", content: "", message: `not JSON: ${raw.text}`, at, raw };
  }
  if (raw.status === 200) return { end: "complete", content: body.choices?.[0]?.message?.content ?? "", at, raw };
  return { end: "error", content: "", status: raw.status, code: body.error?.code, message: body.error?.message ?? raw.text, at, raw };
}

// ---------------------------------------------------------------- gRPC

const LOADER_OPTIONS: protoLoader.Options = { includeDirs: [`${ROOT}/proto`], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
type ClientCtor = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => grpc.Client;
const gatewayPkg = grpc.loadPackageDefinition(protoLoader.loadSync("gatewayz/v1/gateway.proto", LOADER_OPTIONS));
const healthPkg = grpc.loadPackageDefinition(protoLoader.loadSync("grpc/health/v1/health.proto", LOADER_OPTIONS));
const GatewayServiceClient = ((gatewayPkg.gatewayz as grpc.GrpcObject).v1 as grpc.GrpcObject).GatewayService as unknown as ClientCtor;
const HealthClient = (((healthPkg.grpc as grpc.GrpcObject).health as grpc.GrpcObject).v1 as grpc.GrpcObject).Health as unknown as ClientCtor;

interface ChatResponse { event: "delta" | "done"; delta: { content: string } | null; done: { finish_reason: string } | null }
interface GatewayClient extends grpc.Client {
  chat(req: object, metadata: grpc.Metadata): grpc.ClientReadableStream<ChatResponse>;
}
export interface HealthClient extends grpc.Client {
  check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): grpc.ClientUnaryCall;
  watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
}

/** A client on a connection of its own (grpc-js would otherwise share one between clients). */
const OWN_CONNECTION: grpc.ClientOptions = { "grpc.use_local_subchannel_pool": 1 };

export function healthClient(url: string): HealthClient {
  return new HealthClient(new URL(url).host, grpc.credentials.createInsecure(), OWN_CONNECTION) as HealthClient;
}

/** One Health/Check: the status name ("SERVING", "NOT_SERVING"), or the error's status code. */
export function healthCheck(c: HealthClient, service: string): Promise<{ status?: string; code?: grpc.status; details?: string }> {
  return new Promise((resolve) => {
    c.check({ service }, (err, res) => resolve(err ? { code: err.code, details: err.details } : { status: res!.status }));
  });
}

/** A gRPC Chat stream on a connection of its own: complete on status OK after a done event. */
export function grpcChat(url: string, key: string, model: string, onContent?: () => void): Promise<Outcome> {
  const client = new GatewayServiceClient(new URL(url).host, grpc.credentials.createInsecure(), OWN_CONNECTION) as GatewayClient;
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${key}`);
    const call = client.chat({ model, messages: MESSAGES }, md);
    let content = "";
    let done = false;
    call.on("data", (m: ChatResponse) => {
      const piece = m.delta?.content ?? "";
      if (piece && !content) onContent?.();
      content += piece;
      if (m.event === "done") done = true;
    });
    call.on("error", () => {}); // the status says it
    call.on("status", (s: grpc.StatusObject) => setImmediate(() => {
      client.close();
      const at = Date.now();
      if (s.code === grpc.status.OK && done) resolve({ end: "complete", content, at });
      else if (s.code === grpc.status.OK) resolve({ end: "broken", content, message: "status OK with no done event", at });
      else resolve({ end: "error", content, status: grpc.status[s.code], message: s.details, at });
    }));
  });
}
