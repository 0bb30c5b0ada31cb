// Edges of the RPC doors and of request bodies that used to answer wrongly:
// deadlines too long for a timer, gRPC-Web's text mode, unknown methods,
// bodies over the size limit (HTTP/2 without a length, HTTP/1 with a large
// declared one), the true kind of a framework refusal, and JSON nested deeper
// than the limit, which must never count against a provider.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import http from "node:http";
import http2 from "node:http2";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatRequestSchema, ChatResponseSchema } from "../../gen/gatewayz/v1/gateway_pb.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

let gw: TestGateway;
let port: number;
beforeAll(async () => {
  gw = await startTestGateway({ MAX_BODY_BYTES: "4096", BREAKER_FAILURES: "5" });
  port = gw.app.address.port;
});
afterAll(() => gw?.close());

const HI = [{ role: "user", content: "hi" }];
type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => void;

function grpcClient(): grpc.Client & Record<string, Unary> {
  const def = protoLoader.loadSync("gatewayz/v1/gateway.proto", { includeDirs: ["proto"], oneofs: true, longs: String });
  const { GatewayService } = (grpc.loadPackageDefinition(def) as unknown as { gatewayz: { v1: { GatewayService: grpc.ServiceClientConstructor } } }).gatewayz.v1;
  return new GatewayService(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Unary>;
}

function keyed(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", gw.authorization);
  return md;
}

function frame(flags: number, payload: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** Splits gRPC-Web frames: [flags, payload][]. */
function frames(body: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  for (let at = 0; at + 5 <= body.length;) {
    const len = body.readUInt32BE(at + 1);
    out.push([body[at]!, body.subarray(at + 5, at + 5 + len)]);
    at += 5 + len;
  }
  return out;
}

/** Base64 text of concatenated, separately padded chunks, decoded group by group as Google's client does. */
function decodeText(text: string): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < text.length; i += 4) parts.push(Buffer.from(text.slice(i, i + 4), "base64"));
  return Buffer.concat(parts);
}

describe("deadlines beyond what a timer holds mean no deadline", () => {
  it("a grpc-js call with a deadline 597 hours away succeeds (it used to fail at once)", async () => {
    const client = grpcClient();
    const deadline = new Date(Date.now() + 597 * 3_600_000);
    const err = await new Promise<grpc.ServiceError | null>((resolve) => client.ListModels!({}, keyed(), { deadline }, (e) => resolve(e)));
    client.close();
    expect(err).toBeNull();
  });

  it("grpc-timeout: 597H on a Chat stream, and connect-timeout-ms: 9999999999 on Connect", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const req = session.request({ ":method": "POST", ":path": "/gatewayz.v1.GatewayService/Chat", "content-type": "application/grpc",
      te: "trailers", "grpc-timeout": "597H", authorization: gw.authorization });
    req.end(frame(0, toBinary(ChatRequestSchema, create(ChatRequestSchema, { model: "qwen-plus", messages: HI }))));
    req.resume();
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => req.once("trailers", resolve));
    session.close();
    expect(trailers["grpc-status"]).toBe("0");
    const res = await fetch(`${gw.url}/gatewayz.v1.GatewayService/ListModels`, {
      method: "POST", body: "{}", headers: { "content-type": "application/json", authorization: gw.authorization, "connect-timeout-ms": "9999999999" },
    });
    expect(res.status).toBe(200);
  });
});

describe("gRPC-Web text mode (application/grpc-web-text, the default of Google's grpc-web client)", () => {
  it("streams Chat base64-encoded both ways, a request sent as separately padded chunks included", async () => {
    const message = frame(0, toBinary(ChatRequestSchema, create(ChatRequestSchema, { model: "qwen-plus", messages: HI })));
    // Two chunks, each base64 with its own padding, as some clients send them.
    const body = message.subarray(0, 7).toString("base64") + message.subarray(7).toString("base64");
    expect(body.slice(0, 12)).toContain("=");
    const res = await fetch(`${gw.url}/gatewayz.v1.GatewayService/Chat`, {
      method: "POST", body, headers: { "content-type": "application/grpc-web-text", "x-grpc-web": "1", authorization: gw.authorization },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/grpc-web-text+proto");
    const decoded = frames(decodeText(await res.text()));
    const messages = decoded.filter(([flags]) => flags === 0).map(([, p]) => fromBinary(ChatResponseSchema, p));
    const text = messages.map((m) => (m.event.case === "delta" ? m.event.value.content : "")).join("");
    expect(text).toBe("Hello from qwen-plus");
    expect(messages.at(-1)!.event.case).toBe("done");
    const trailer = decoded.find(([flags]) => flags === 0x80)![1].toString();
    expect(trailer).toContain("grpc-status: 0");
  });

  it("an error comes back as a base64 trailer frame too", async () => {
    const res = await fetch(`${gw.url}/gatewayz.v1.GatewayService/Chat`, {
      method: "POST", body: "", headers: { "content-type": "application/grpc-web-text", authorization: "Bearer nope" },
    });
    expect(res.headers.get("content-type")).toBe("application/grpc-web-text+proto");
    const trailer = frames(decodeText(await res.text())).find(([flags]) => flags === 0x80)![1].toString();
    expect(trailer).toContain(`grpc-status: ${grpc.status.UNAUTHENTICATED}`);
  });
});

describe("unknown methods are UNIMPLEMENTED in the caller's framing, not an HTTP 404 with JSON", () => {
  it("over grpc-js", async () => {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      client.makeUnaryRequest("/gatewayz.v1.GatewayService/NoSuchMethod", (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), keyed(), (e) => resolve(e!));
    });
    client.close();
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(err.details).toContain("NoSuchMethod");
  });

  it("over gRPC-Web", async () => {
    const res = await fetch(`${gw.url}/no.such.Service/Method`, { method: "POST", body: new Uint8Array(frame(0, new Uint8Array())), headers: { "content-type": "application/grpc-web+proto" } });
    expect(res.status).toBe(200);
    const trailer = frames(Buffer.from(await res.arrayBuffer())).find(([flags]) => flags === 0x80)![1].toString();
    expect(trailer).toContain(`grpc-status: ${grpc.status.UNIMPLEMENTED}`);
  });
});

describe("bodies over MAX_BODY_BYTES", () => {
  it("HTTP/2 without content-length: the 413 arrives and the stream is reset, so the client stops writing", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const req = session.request({ ":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json", authorization: gw.authorization });
    req.on("error", () => {});
    let written = 0;
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    const pump = () => {
      while (!req.destroyed && written < 8 * 1024 * 1024) {
        written += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
    };
    pump();
    const status = await new Promise<number>((resolve) => req.once("response", (h) => resolve(Number(h[":status"]))));
    req.resume();
    await new Promise((resolve) => req.once("close", resolve));
    session.destroy();
    expect(status).toBe(413);
    expect(written).toBeLessThan(8 * 1024 * 1024);
  });

  it("HTTP/1 with a declared 25 MB: every one of 20 uploads reads its 413, none an EPIPE or reset", async () => {
    const body = Buffer.alloc(25 * 1024 * 1024, 0x20);
    const upload = () => new Promise<string>((resolve) => {
      const req = http.request({ host: "127.0.0.1", port, method: "POST", path: "/v1/chat/completions", agent: false,
        headers: { "content-type": "application/json", authorization: gw.authorization, "content-length": body.length } }, (res) => {
        res.resume();
        resolve(String(res.statusCode));
      });
      req.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      req.end(body);
    });
    const results = await Promise.all(Array.from({ length: 20 }, upload));
    expect(results).toEqual(Array(20).fill("413"));
  }, 20_000);
});

describe("a refusal by the RPC framework is recorded with its true kind", () => {
  const lastRow = () => gw.app.db.prepare("SELECT status, error_kind FROM usage ORDER BY id DESC LIMIT 1").get();

  it("an oversized message: RESOURCE_EXHAUSTED, recorded payload_too_large (not rate_limited)", async () => {
    const client = grpcClient();
    const call = (client as unknown as { Chat: (r: object, md: grpc.Metadata) => grpc.ClientReadableStream<unknown> })
      .Chat({ model: "qwen-plus", messages: [{ role: "user", content: "x".repeat(8192) }] }, keyed());
    const err = await new Promise<grpc.ServiceError>((resolve) => { call.on("error", resolve); call.on("data", () => {}); });
    client.close();
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    await new Promise((r) => setTimeout(r, 20));
    expect(lastRow()).toEqual({ status: "rejected", error_kind: "payload_too_large" });
  });

  it("an undecodable message: INVALID_ARGUMENT, recorded invalid_request (not internal)", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const req = session.request({ ":method": "POST", ":path": "/gatewayz.v1.GatewayService/Chat", "content-type": "application/grpc", te: "trailers", authorization: gw.authorization });
    req.end(frame(0, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])));
    req.resume();
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => req.once("trailers", resolve));
    session.close();
    expect(trailers["grpc-status"]).toBe(String(grpc.status.INVALID_ARGUMENT));
    await new Promise((r) => setTimeout(r, 20));
    expect(lastRow()).toEqual({ status: "rejected", error_kind: "invalid_request" });
  });
});

describe("JSON nested deeper than MAX_JSON_DEPTH", () => {
  it("is a 400 naming the limit, and five of them do not switch the provider off for everyone", async () => {
    gw.fake.reset();
    const deep = gw.app.accounts.createKey({ user: "deep", name: "k" }).key;
    const attacker = new OpenAI({ apiKey: deep, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    let nested: unknown = 1;
    for (let i = 0; i < 1_000; i++) nested = [nested]; // ~2 KB, under MAX_BODY_BYTES
    for (let i = 0; i < 6; i++) {
      const err = await attacker.chat.completions.create({ model: "qwen-plus", messages: HI, extra: nested } as never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as Error).message).toContain("MAX_JSON_DEPTH");
    }
    expect(gw.fake.requests).toHaveLength(0);
    const victim = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const reply = await victim.chat.completions.create({ model: "qwen-plus", messages: HI as never });
    expect(reply.choices[0]!.message.content).toBe("Hello from qwen-plus");
    expect(gw.app.breakers.state("alibaba-cloud")).toBe("closed");
  });
});
