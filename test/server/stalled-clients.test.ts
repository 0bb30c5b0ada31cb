// A streaming client that stops reading, then disconnects (or just stays
// silent), on every door. The gateway must notice at once (or after
// SEND_TIMEOUT_MS for a silent one), abort the upstream, bill what was
// streamed and free the key's concurrency slot; and while the client is not
// reading it must stop pulling the answer from the upstream, so memory per
// stalled stream stays bounded.
//
// The clients are raw sockets and HTTP/2 sessions speaking each protocol's
// framing, because a client library cannot be told to stop reading.

import { create, toBinary } from "@bufbuild/protobuf";
import http2 from "node:http2";
import net from "node:net";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatRequestSchema } from "../../gen/gatewayz/v1/gateway_pb.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const CHUNKS = 40_000;
const CHUNK_BYTES = 1_000; // 40 MB of answer: far more than every socket buffer on the way holds
const SEND_TIMEOUT_MS = 800;

let gw: TestGateway;
let key: string;

beforeAll(async () => {
  gw = await startTestGateway({ SEND_TIMEOUT_MS: String(SEND_TIMEOUT_MS) });
  key = gw.app.accounts.createKey({ user: "stalled", name: "k", concurrent: 2 }).key;
});
afterAll(() => gw?.close());

type Door = "sse-h1" | "sse-h2" | "connect-h1" | "grpc-web-h1" | "grpc-h2";
const DOORS: Door[] = ["sse-h1", "sse-h2", "connect-h1", "grpc-web-h1", "grpc-h2"];
const CHAT = { model: "qwen-plus", messages: [{ role: "user", content: "a long answer, please" }] };

function envelope(payload: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

const RPC_PATH = "/gatewayz.v1.GatewayService/Chat";
const BODIES: Record<Door, { path: string; type: string; body: Buffer }> = {
  "sse-h1": { path: "/v1/chat/completions", type: "application/json", body: Buffer.from(JSON.stringify({ ...CHAT, stream: true })) },
  "sse-h2": { path: "/v1/chat/completions", type: "application/json", body: Buffer.from(JSON.stringify({ ...CHAT, stream: true })) },
  "connect-h1": { path: RPC_PATH, type: "application/connect+json", body: envelope(Buffer.from(JSON.stringify(CHAT))) },
  "grpc-web-h1": { path: RPC_PATH, type: "application/grpc-web+proto", body: envelope(toBinary(ChatRequestSchema, create(ChatRequestSchema, CHAT))) },
  "grpc-h2": { path: RPC_PATH, type: "application/grpc+proto", body: envelope(toBinary(ChatRequestSchema, create(ChatRequestSchema, CHAT))) },
};

interface Stalled {
  /** Resolves once the first answer bytes have arrived; from then on nothing is read. */
  readonly started: Promise<void>;
  /** Resolves when the connection or the stream has closed (a paused client learns of it once it reads again). */
  readonly cut: Promise<void>;
  disconnect(): void;
  /** Reads again: whatever is buffered, then the end. */
  resume(): void;
}

/** Opens a Chat stream on `door`, reads its first bytes, then stops reading. */
function stalledStream(door: Door): Stalled {
  const { path, type, body } = BODIES[door];
  const port = gw.app.address.port;
  if (door.endsWith("-h2")) {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    const req = session.request({ ":method": "POST", ":path": path, "content-type": type, te: "trailers", authorization: `Bearer ${key}` });
    req.on("error", () => {});
    req.end(body);
    const started = new Promise<void>((resolve) => req.once("data", () => { req.pause(); resolve(); }));
    const cut = new Promise<void>((resolve) => req.once("close", () => resolve()));
    return { started, cut, disconnect: () => session.destroy(), resume: () => req.resume() };
  }
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: ${type}\r\nContent-Length: ${body.length}\r\n\r\n`);
  socket.write(body);
  const started = new Promise<void>((resolve) => socket.once("data", () => { socket.pause(); resolve(); }));
  const cut = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  return { started, cut, disconnect: () => socket.destroy(), resume: () => socket.resume() };
}

const rows = () => gw.app.db.prepare("SELECT status, error_kind, completion_tokens FROM usage WHERE requested_model = 'qwen-plus' ORDER BY id").all() as
  Array<{ status: string; error_kind: string | null; completion_tokens: number }>;

async function until<T>(check: () => T | undefined, what: string, ms = 3_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.each(DOORS)("%s", (door) => {
  it("a client that stops reading and disconnects: upstream aborted, what was streamed billed, the slot freed, at once", async () => {
    gw.fake.reset();
    const before = rows().length;
    const progress = [{ sent: 0 }, { sent: 0 }];
    for (const p of progress) gw.fake.enqueue({ kind: "flood", chunks: CHUNKS, chunkBytes: CHUNK_BYTES, progress: p });
    // Two streams: the key's whole concurrency.
    const clients = [stalledStream(door), stalledStream(door)];
    await Promise.all(clients.map((c) => c.started));
    await new Promise((r) => setTimeout(r, 300));
    // While nobody reads, the gateway stops pulling: a bounded share of the answer has left the upstream.
    for (const p of progress) expect(p.sent).toBeLessThan(CHUNKS / 2);
    for (const c of clients) c.disconnect();
    const billed = await until(() => { const r = rows().slice(before); return r.length >= 2 ? r : undefined; }, "two usage rows", 1_500);
    for (const row of billed) {
      expect(row.status).toBe("cancelled");
      expect(row.completion_tokens).toBeGreaterThan(0);
    }
    expect(gw.fake.requests.filter((r) => r.aborted)).toHaveLength(2);
    // The slots are free again: the same key gets an answer.
    const client = new OpenAI({ apiKey: key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const reply = await client.chat.completions.create(CHAT as never);
    expect(reply.choices[0]!.message.content).toBe("Hello from qwen-plus");
  });

  it(`a client that stops reading and stays: cut after SEND_TIMEOUT_MS, billed, the slot freed`, async () => {
    gw.fake.reset();
    const before = rows().length;
    const progress = { sent: 0 };
    gw.fake.enqueue({ kind: "flood", chunks: CHUNKS, chunkBytes: CHUNK_BYTES, progress });
    const client = stalledStream(door);
    await client.started;
    const since = Date.now();
    const [row] = await until(() => { const r = rows().slice(before); return r.length ? r : undefined; }, "a usage row", SEND_TIMEOUT_MS + 3_000);
    const waited = Date.now() - since;
    expect(waited).toBeGreaterThanOrEqual(SEND_TIMEOUT_MS - 100);
    expect(waited).toBeLessThan(SEND_TIMEOUT_MS + 2_000);
    expect(row).toMatchObject({ status: "cancelled" });
    expect(progress.sent).toBeLessThan(CHUNKS / 2);
    await until(() => gw.fake.requests.find((r) => r.aborted), "the upstream abort");
    // The gateway cut the stream: a client that reads again finds its end, not the rest of the answer.
    client.resume();
    await client.cut;
  }, 10_000);
});
