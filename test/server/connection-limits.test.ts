// Every phase a client controls has a bound: a connection that sends nothing,
// headers sent a byte at a time (slowloris), a body trickled in, an idle
// keep-alive connection, an idle HTTP/2 session, an HTTP/2 body never
// finished, and the number of connections. Each is tried with a real slow
// client on a raw socket or a real HTTP/2 session.

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import http2 from "node:http2";
import net from "node:net";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeUpstream, type FakeUpstream } from "../support/fake-upstream.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { startGatewayChild, type GatewayChild } from "../support/gateway-child.js";

const LIMITS = {
  HEADERS_TIMEOUT_MS: "400",
  REQUEST_TIMEOUT_MS: "800",
  KEEP_ALIVE_TIMEOUT_MS: "400",
  HTTP2_IDLE_TIMEOUT_MS: "500",
};

let gw: TestGateway;
let port: number;

beforeAll(async () => {
  gw = await startTestGateway(LIMITS);
  port = gw.app.address.port;
});
afterAll(() => gw?.close());

function connect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
}

/** Milliseconds until the gateway closes the socket (rejects if it is still open after `maxMs`). */
function closedAfter(socket: net.Socket, maxMs: number): Promise<number> {
  const started = Date.now();
  socket.on("error", () => {});
  socket.on("data", () => {});
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`still open after ${maxMs} ms`)); }, maxMs);
    socket.once("close", () => { clearTimeout(timer); resolve(Date.now() - started); });
  });
}

/** Writes `text` one byte every `everyMs` until the socket closes. */
function trickle(socket: net.Socket, text: string, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(timer);
    socket.write(text[i++]!);
  }, everyMs);
  socket.once("close", () => clearInterval(timer));
}

describe("HTTP/1", () => {
  it("a connection that sends nothing is closed after HEADERS_TIMEOUT_MS", async () => {
    const ms = await closedAfter(await connect(), 3_000);
    expect(ms).toBeGreaterThanOrEqual(350);
    expect(ms).toBeLessThan(1_500);
  });

  it("headers sent a byte at a time (slowloris) are cut after HEADERS_TIMEOUT_MS, though bytes keep coming", async () => {
    const s = await connect();
    s.write("GET /healthz HTTP/1.1\r\n");
    trickle(s, "X-Slow: " + "a".repeat(1000), 50);
    const ms = await closedAfter(s, 4_000);
    expect(ms).toBeLessThan(2_500);
  });

  it("a body trickled in is cut after REQUEST_TIMEOUT_MS", async () => {
    const s = await connect();
    s.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: ${gw.authorization}\r\n` +
      "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{");
    trickle(s, " ".repeat(10_000), 50);
    const ms = await closedAfter(s, 5_000);
    expect(ms).toBeGreaterThanOrEqual(700);
    expect(ms).toBeLessThan(3_000);
  });

  it("an idle keep-alive connection is closed after KEEP_ALIVE_TIMEOUT_MS", async () => {
    const s = await connect();
    const answered = new Promise<string>((resolve) => s.once("data", (d: Buffer) => resolve(d.toString())));
    s.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(await answered).toMatch(/^HTTP\/1\.1 200/);
    const ms = await closedAfter(s, 4_000);
    expect(ms).toBeGreaterThanOrEqual(350);
    // Node's own timer for this runs up to a second late (its check is coarse).
    expect(ms).toBeLessThan(2_500);
  });
});

describe("HTTP/2", () => {
  function session(): Promise<http2.ClientHttp2Session> {
    return new Promise((resolve, reject) => {
      const s = http2.connect(`http://127.0.0.1:${port}`);
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
  }

  function sessionClosedAfter(s: http2.ClientHttp2Session, maxMs: number): Promise<{ ms: number; goaway: boolean }> {
    const started = Date.now();
    let goaway = false;
    s.on("goaway", () => (goaway = true));
    s.on("error", () => {});
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { s.destroy(); reject(new Error(`session still open after ${maxMs} ms`)); }, maxMs);
      s.once("close", () => { clearTimeout(timer); resolve({ ms: Date.now() - started, goaway }); });
    });
  }

  it("a session that opens no stream gets GOAWAY after HEADERS_TIMEOUT_MS", async () => {
    const r = await sessionClosedAfter(await session(), 3_000);
    expect(r.goaway).toBe(true);
    expect(r.ms).toBeLessThan(1_500);
  });

  it("a session idle after its streams gets GOAWAY after HTTP2_IDLE_TIMEOUT_MS", async () => {
    const s = await session();
    const req = s.request({ ":path": "/healthz" });
    req.resume();
    await new Promise((resolve) => req.once("close", resolve));
    const r = await sessionClosedAfter(s, 3_000);
    expect(r.goaway).toBe(true);
    expect(r.ms).toBeGreaterThanOrEqual(450);
    expect(r.ms).toBeLessThan(2_000);
  });

  it("a stream whose body never ends is reset after REQUEST_TIMEOUT_MS", async () => {
    const s = await session();
    const started = Date.now();
    const req = s.request({ ":method": "POST", ":path": "/v1/chat/completions", authorization: gw.authorization, "content-type": "application/json" });
    req.write("{");
    req.on("error", () => {});
    req.resume();
    await new Promise((resolve) => req.once("close", resolve));
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
    expect(Date.now() - started).toBeLessThan(2_500);
    s.destroy();
  });
});

describe("MAX_CONNECTIONS", () => {
  let capped: TestGateway;
  const holders: net.Socket[] = [];

  beforeAll(async () => {
    capped = await startTestGateway({ MAX_CONNECTIONS: "3", HEADERS_TIMEOUT_MS: "5000" });
    // Three connections hold every slot, each mid-request.
    for (let i = 0; i < 3; i++) {
      const s = await new Promise<net.Socket>((resolve) => {
        const c = net.connect(capped.app.address.port, "127.0.0.1", () => resolve(c));
      });
      s.on("error", () => {});
      s.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
      holders.push(s);
    }
    await new Promise((r) => setTimeout(r, 50));
  });
  afterAll(async () => {
    for (const s of holders) s.destroy();
    await capped?.close();
  });

  it("refuses the next OpenAI client with 503 too_many_connections, in OpenAI's error shape", async () => {
    const client = new OpenAI({ apiKey: capped.key, baseURL: `${capped.url}/v1`, maxRetries: 0 });
    const err = await client.chat.completions.create({ model: "qwen-plus", messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe("too_many_connections");
    expect((err as Error).message).toContain("MAX_CONNECTIONS");
    expect(capped.fake.requests).toHaveLength(0);
  });

  it("refuses the next gRPC client with UNAVAILABLE naming the cap", async () => {
    const def = protoLoader.loadSync("gatewayz/v1/gateway.proto", { includeDirs: ["proto"], oneofs: true, longs: String });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { gatewayz: { v1: { GatewayService: grpc.ServiceClientConstructor } } };
    const client = new pkg.gatewayz.v1.GatewayService(`127.0.0.1:${capped.app.address.port}`, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    md.set("authorization", capped.authorization);
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      (client as unknown as { ListModels: (r: object, m: grpc.Metadata, cb: (e: grpc.ServiceError) => void) => void })
        .ListModels({}, md, (e) => resolve(e));
    });
    client.close();
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toContain("MAX_CONNECTIONS");
  });

  it("serves again once connections are freed", async () => {
    for (const s of holders.splice(0)) s.destroy();
    await new Promise((r) => setTimeout(r, 50));
    const client = new OpenAI({ apiKey: capped.key, baseURL: `${capped.url}/v1`, maxRetries: 0 });
    const reply = await client.chat.completions.create({ model: "qwen-plus", messages: [{ role: "user", content: "hi" }] });
    expect(reply.choices[0]!.message.content).toBe("Hello from qwen-plus");
  });
});

describe("with a 512-descriptor limit and 490 silent sockets (the flood that once made the gateway unreachable)", () => {
  let fake: FakeUpstream;
  let child: GatewayChild;
  beforeAll(async () => {
    fake = await startFakeUpstream();
    // The default cap is half the descriptor limit less 32: 224 here.
    child = await startGatewayChild(fake, {
      command: ["bash", "-c", `ulimit -n 512 && exec "${process.execPath}" --import tsx src/main.ts`],
      env: { HEADERS_TIMEOUT_MS: "3000", RATE_LIMITS_KEY: "rpm=0,concurrent=0" },
    });
  }, 30_000);
  afterAll(async () => {
    child?.dispose();
    await fake?.close();
  });

  it("stays up, refuses talking clients clearly while the flood holds its connections, and serves again once the flood is cut", async () => {
    const flood = await Promise.all(Array.from({ length: 490 }, () => new Promise<net.Socket>((resolve) => {
      const s = net.connect(child.port, "127.0.0.1", () => resolve(s));
      s.on("error", () => resolve(s));
    })));
    // Connections past the cap's refusal slots are cut at once; silent ones in the slots after 2 s.
    await new Promise((r) => setTimeout(r, 2_500));
    const client = new OpenAI({ apiKey: child.key, baseURL: `${child.url}/v1`, maxRetries: 0 });
    const chat = () => client.chat.completions.create({ model: "qwen-plus", messages: [{ role: "user", content: "hi" }] });
    const refused = await chat().catch((e: unknown) => e);
    expect((refused as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((refused as InstanceType<typeof OpenAI.APIError>).code).toBe("too_many_connections");
    // HEADERS_TIMEOUT_MS cuts the silent ones that held the cap; then the gateway answers.
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await chat()).choices[0]!.message.content).toBe("Hello from qwen-plus");
    expect(child.running()).toBe(true);
    expect(child.output()).not.toMatch(/EMFILE|uncaught|RangeError/i);
    for (const s of flood) s.destroy();
  }, 20_000);
});
