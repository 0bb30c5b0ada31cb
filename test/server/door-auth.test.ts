// The key is checked from the headers before a byte of the body is read, on
// every door; a request refused for its key leaves no usage row (it is
// counted instead), and an address that keeps failing is refused unread.

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import http2 from "node:http2";
import net from "node:net";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createAuthenticator } from "../../src/core/auth.js";
import { createLogger } from "../../src/log.js";
import { createAuthGate } from "../../src/server/auth-gate.js";
import { openDb } from "../../src/storage/db.js";
import { createKeyStore } from "../../src/storage/keys.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const BAD_KEY = `gw_live_${"Q".repeat(32)}`;
const NINE_MB = 9 * 1024 * 1024;

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(() => gw?.close());

const usageRows = () => (gw.app.db.prepare("SELECT COUNT(*) AS n FROM usage").get() as { n: number }).n;

/** Sends a request's headers and the first 64 KB of a body it declares as `declared` bytes; resolves with the answer's first bytes. */
function answeredBeforeBody(head: string, declared: number): Promise<{ answer: string; sent: number }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(gw.app.address.port, "127.0.0.1", () => {
      s.write(`${head}Content-Length: ${declared}\r\n\r\n`);
      s.write(Buffer.alloc(64 * 1024, 0x20));
    });
    s.once("data", (d: Buffer) => {
      resolve({ answer: d.toString("latin1"), sent: 64 * 1024 });
      s.destroy();
    });
    s.once("error", reject);
    setTimeout(() => { s.destroy(); reject(new Error("no answer before the body was sent")); }, 3_000);
  });
}

describe("a request without a valid key is refused from its headers", () => {
  it("on the OpenAI door: the 401 comes while 9 MB of body are still unsent, and leaves no row", async () => {
    const rows = usageRows();
    const refusals = gw.app.gate.refusals;
    const { answer } = await answeredBeforeBody(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${BAD_KEY}\r\nContent-Type: application/json\r\n`, NINE_MB);
    expect(answer).toMatch(/^HTTP\/1\.1 401/);
    expect(answer).toContain("invalid_api_key");
    await new Promise((r) => setTimeout(r, 20));
    expect(usageRows()).toBe(rows);
    expect(gw.app.gate.refusals).toBe(refusals + 1);
  });

  it("on Connect: UNAUTHENTICATED in Connect's error shape, before the body", async () => {
    const { answer } = await answeredBeforeBody(
      `POST /gatewayz.v1.GatewayService/ListModels HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n`, NINE_MB);
    expect(answer).toMatch(/^HTTP\/1\.1 401/);
    expect(answer).toContain(`"code":"unauthenticated"`);
  });

  it("on gRPC over HTTP/2: status UNAUTHENTICATED in the trailers, before the body, and the stream is reset so the client stops sending", async () => {
    const session = http2.connect(`http://127.0.0.1:${gw.app.address.port}`);
    session.on("error", () => {});
    const req = session.request({ ":method": "POST", ":path": "/gatewayz.v1.GatewayService/Chat", "content-type": "application/grpc", te: "trailers" });
    req.on("error", () => {});
    req.write(Buffer.alloc(16 * 1024)); // a first piece of a body that never ends
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => req.once("trailers", resolve));
    expect(trailers["grpc-status"]).toBe(String(grpc.status.UNAUTHENTICATED));
    await new Promise((resolve) => req.once("close", resolve));
    session.destroy();
  });

  it("over grpc-js, a wrong key is UNAUTHENTICATED and an admin call with a client key PERMISSION_DENIED", async () => {
    const services = grpc.loadPackageDefinition(protoLoader.loadSync(["gatewayz/v1/gateway.proto", "gatewayz/v1/admin.proto"],
      { includeDirs: ["proto"], oneofs: true, longs: String })) as unknown as { gatewayz: { v1: Record<string, grpc.ServiceClientConstructor> } };
    const { GatewayService, AdminService } = services.gatewayz.v1;
    const target = `127.0.0.1:${gw.app.address.port}`;
    const call = (Client: grpc.ServiceClientConstructor, method: string, key: string) => new Promise<grpc.ServiceError>((resolve) => {
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${key}`);
      const c = new Client(target, grpc.credentials.createInsecure()) as unknown as Record<string, (r: object, m: grpc.Metadata, cb: (e: grpc.ServiceError) => void) => void>;
      c[method]!({}, md, (e) => { (c as unknown as grpc.Client).close(); resolve(e); });
    });
    expect((await call(GatewayService!, "ListModels", BAD_KEY)).code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await call(AdminService!, "ListKeys", gw.key)).code).toBe(grpc.status.PERMISSION_DENIED);
  });
});

describe("AUTH_FAILURES_PER_MINUTE", () => {
  let strict: TestGateway;
  beforeAll(async () => {
    strict = await startTestGateway({ AUTH_FAILURES_PER_MINUTE: "3" });
  });
  afterAll(() => strict?.close());

  it("after 3 failed authentications this minute, the address is refused unread with 429 and Retry-After", async () => {
    const bad = new OpenAI({ apiKey: BAD_KEY, baseURL: `${strict.url}/v1`, maxRetries: 0 });
    for (let i = 0; i < 3; i++) {
      await expect(bad.models.list()).rejects.toMatchObject({ status: 401 });
    }
    const refused = await bad.chat.completions.create({ model: "qwen-plus", messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    expect((refused as InstanceType<typeof OpenAI.APIError>).message).toContain("too many failed authentications");
    expect(Number((refused as InstanceType<typeof OpenAI.APIError>).headers?.get("retry-after"))).toBeGreaterThan(0);
    expect(strict.fake.requests).toHaveLength(0);
  });
});

describe("the refusal count and its log line", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("reports refusals in one line per 10 s, never the key", () => {
    vi.useFakeTimers();
    const db = openDb(":memory:");
    const lines: string[] = [];
    const gate = createAuthGate(createAuthenticator(createKeyStore(db)), 0, createLogger("info", (l) => lines.push(l)));
    const req = { headers: { authorization: `Bearer ${BAD_KEY}` }, socket: { remoteAddress: "203.0.113.9" } } as never;
    for (let i = 0; i < 5; i++) expect(() => gate.check(req, "client")).toThrow(/not valid/);
    expect(lines).toEqual([]);
    vi.advanceTimersByTime(10_000);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("refused 5 request(s) without a valid key");
    expect(lines.join("\n")).not.toContain(BAD_KEY);
    expect(gate.refusals).toBe(5);
    db.close();
  });
});
