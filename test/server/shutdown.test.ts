// The drain on SIGTERM/SIGINT, end to end: the real gateway as a child process
// (src/main.ts through tsx, alone or as a --workers 2 primary with its
// workers; `npm start` once), its Alibaba Cloud upstream the in-process fake
// answering slowly, real clients (the openai SDK, raw HTTP/1, @grpc/grpc-js,
// raw HTTP/2) with requests in flight when the signal comes. Every chat
// request leaves exactly one usage row, read from the database file once the
// gateway has exited.
//
// What the drain promises (src/app.ts drainAndClose, src/main.ts onStop):
// readiness goes false, the port stops accepting, what is in flight runs to
// its end for up to DRAIN_TIMEOUT_MS and is then ended explicitly
// (server_shutting_down / UNAVAILABLE, the upstream aborted), every row is
// committed, the process exits 0. A second signal skips the wait.

import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.js";
import {
  grpcChat, healthCheck, healthClient, rawPlain, rawStream, sdkPlain, sdkStream, sseData,
  type Outcome, type RawOutcome,
} from "../support/drain-clients.js";
import { startFakeUpstream, type FakeUpstream } from "../support/fake-upstream.js";
import { commandLineOf, startGatewayChild, tryConnect, waitForRefusal, type Exit, type GatewayChild, type GatewayChildOptions } from "../support/gateway-child.js";
import { getInTwoSteps } from "../support/two-step-get.js";

/** Twenty words: the fake streams them one a chunk. */
const CONTENT = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty";
const STREAM_MODEL = "qwen-plus";
const PLAIN_MODEL = "qwen-max";
/** The explicit end of a request cut by the shutdown, as OpenAI clients see it. */
const SHUTTING_DOWN = "server_shutting_down";

// ---------------------------------------------------------------- the gateway processes

let fake: FakeUpstream;
const children: GatewayChild[] = [];

beforeAll(async () => {
  fake = await startFakeUpstream();
});

beforeEach(() => {
  fake.reset();
});

afterEach(() => {
  // Whatever a failed test left running (a worker, an orphaned node) goes with its group.
  for (const c of children.splice(0)) c.dispose();
});

afterAll(async () => {
  await fake?.close();
});

async function start(workers: 1 | 2, env: Record<string, string>, options: GatewayChildOptions = {}): Promise<GatewayChild> {
  const g = await startGatewayChild(fake, { ...options, env: { WORKERS: String(workers), ...env } });
  children.push(g);
  return g;
}

/** Every answer takes about `ms`: a stream's first chunk after 100 ms, then 23 more events; a plain answer after `ms`. */
function slowUpstream(ms: number): void {
  fake.onModel(STREAM_MODEL, { kind: "reply", content: CONTENT, firstByteDelayMs: 100, chunkDelayMs: Math.round((ms - 100) / 23) });
  fake.onModel(PLAIN_MODEL, { kind: "reply", content: CONTENT, firstByteDelayMs: ms });
}

// ---------------------------------------------------------------- the requests in flight

/** 20 streams (15 through the SDK, 5 read raw), 20 plain requests (10 and 10), 4 gRPC Chat streams. */
const LOAD = { sdkStreams: 15, rawStreams: 5, sdkPlain: 10, rawPlain: 10, grpc: 4 };
const REQUESTS = LOAD.sdkStreams + LOAD.rawStreams + LOAD.sdkPlain + LOAD.rawPlain + LOAD.grpc;

interface Load {
  sdkStreams: Promise<Outcome>[];
  rawStreams: Promise<RawOutcome>[];
  sdkPlain: Promise<Outcome>[];
  rawPlain: Promise<RawOutcome>[];
  grpc: Promise<Outcome>[];
  /** Every outcome, once all have ended. */
  settled(): Promise<{ sdkStreams: Outcome[]; rawStreams: RawOutcome[]; sdkPlain: Outcome[]; rawPlain: RawOutcome[]; grpc: Outcome[] }>;
}

/**
 * Sends LOAD at once, each request on a connection of its own; resolves once
 * all are truly in flight: the upstream has every request, and every stream
 * has shown its client some content.
 */
async function sendLoad(g: GatewayChild): Promise<Load> {
  const streams = LOAD.sdkStreams + LOAD.rawStreams + LOAD.grpc;
  let streaming = 0;
  let allStreaming!: () => void;
  const streamingNow = new Promise<void>((resolve) => (allStreaming = resolve));
  const onContent = () => {
    if (++streaming === streams) allStreaming();
  };
  const times = <T>(n: number, f: () => Promise<T>) => Array.from({ length: n }, f);
  const load = {
    sdkStreams: times(LOAD.sdkStreams, () => sdkStream(g.url, g.key, STREAM_MODEL, onContent)),
    rawStreams: times(LOAD.rawStreams, () => rawStream(g.url, g.key, STREAM_MODEL, onContent)),
    sdkPlain: times(LOAD.sdkPlain, () => sdkPlain(g.url, g.key, PLAIN_MODEL)),
    rawPlain: times(LOAD.rawPlain, () => rawPlain(g.url, g.key, PLAIN_MODEL)),
    grpc: times(LOAD.grpc, () => grpcChat(g.url, g.key, STREAM_MODEL, onContent)),
  };
  const settled = async () => ({
    sdkStreams: await Promise.all(load.sdkStreams), rawStreams: await Promise.all(load.rawStreams),
    sdkPlain: await Promise.all(load.sdkPlain), rawPlain: await Promise.all(load.rawPlain), grpc: await Promise.all(load.grpc),
  });
  const early = settled().then((s) => {
    throw new Error(`the requests ended before they were all in flight: ${JSON.stringify(s).slice(0, 2_000)}`);
  });
  await Promise.race([Promise.all([fake.waitForRequests(REQUESTS, 10_000), streamingNow]), early]);
  void early.catch(() => {});
  return { ...load, settled };
}

const chatRequests = () => fake.requests.filter((r) => r.path.endsWith("/chat/completions"));

const describeOutcome = (o: Outcome) => JSON.stringify({ ...o, raw: undefined });

function expectComplete(outcomes: Outcome[], what: string): void {
  for (const o of outcomes) {
    expect(o.end, `${what}: ${describeOutcome(o)}`).toBe("complete");
    expect(o.content, what).toBe(CONTENT);
  }
}

/** Cut streams: the explicit error after part of the answer, never a clean end. */
function expectStreamsCut(outcomes: Outcome[], what: string): void {
  for (const o of outcomes) {
    expect(o.end, `${what}: ${describeOutcome(o)}`).toBe("error");
    expect(o.content.length, `${what} had shown some content: ${describeOutcome(o)}`).toBeGreaterThan(0);
    expect(CONTENT.startsWith(o.content) && o.content !== CONTENT, `${what} stopped part way: ${describeOutcome(o)}`).toBe(true);
  }
}

/** The raw SSE of a cut stream: content chunks, then `data: {"error": {..., "code": "server_shutting_down"}}` as the last event, and no [DONE]. */
function expectRawStreamsCut(outcomes: RawOutcome[]): void {
  for (const o of outcomes) {
    expect(o.raw, describeOutcome(o)).toBeDefined();
    expect(o.raw!.status).toBe(200);
    const events = sseData(o.raw!.text);
    expect(events, o.raw!.text).not.toContain("[DONE]");
    const last = JSON.parse(events.at(-1)!) as { error?: { code?: string; message?: string; type?: string } };
    expect(last.error, o.raw!.text).toMatchObject({ code: SHUTTING_DOWN, type: "server_error", message: expect.stringMatching(/shutting down/) });
    expect(o.end).toBe("error");
  }
}

/** A client may handle the last bytes of its answer a little after the test has seen the gateway exit. */
const SLACK_MS = 500;

/** Every outcome's end came at or after `from`, and no later than `to`. */
function expectEndedBetween(outcomes: Outcome[], from: number, to: number, what: string): void {
  for (const o of outcomes) {
    expect(o.at, `${what} ended ${o.at - from} ms after ${from}`).toBeGreaterThanOrEqual(from);
    expect(o.at, `${what} ended ${o.at - to} ms after ${to}`).toBeLessThanOrEqual(to);
  }
}

/** The usage rows, grouped: `{ "ok": 44 }`, `{ "error/shutting_down": 44 }`. */
function rowCounts(g: GatewayChild): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of g.usage()) {
    const k = r.error_kind ? `${r.status}/${r.error_kind}` : r.status;
    counts[k] = (counts[k] ?? 0) + 1;
  }
  return counts;
}

/** It exited 0 and left no process behind (no worker outlives its primary). */
async function expectCleanExit(g: GatewayChild, exit: Exit): Promise<void> {
  expect(exit, g.output()).toMatchObject({ code: 0, signal: null });
  // The primary exits once its workers have; give a reaped worker's /proc entry a moment.
  for (let i = 0; i < 50 && g.group().length > 0; i++) await new Promise((r) => setTimeout(r, 20));
  expect(g.group().map(commandLineOf)).toEqual([]);
  expect(g.output()).not.toMatch(/usage record\(s\) lost|shutdown failed/);
}

// ---------------------------------------------------------------- tests

describe.each([1, 2] as const)("SIGTERM with %i worker(s)", (workers) => {
  it("with a drain longer than the answers: every stream and plain request in flight completes in full, new connections are refused, one ok row each, exit 0", async () => {
    slowUpstream(1_500);
    const g = await start(workers, { DRAIN_TIMEOUT_MS: "15000" });
    const load = await sendLoad(g);

    const signalAt = g.signal("SIGTERM");
    const refusal = waitForRefusal(g.port, 3_000);
    const exit = await g.exited;
    const seen = await load.settled();

    // Every client got its whole answer, ended the normal way...
    expectComplete(seen.sdkStreams, "an SDK stream");
    expectComplete(seen.rawStreams, "a raw stream");
    for (const o of seen.rawStreams) expect(sseData(o.raw!.text).at(-1)).toBe("[DONE]");
    expectComplete(seen.sdkPlain, "an SDK plain request");
    expectComplete(seen.rawPlain, "a raw plain request");
    expectComplete(seen.grpc, "a gRPC Chat stream");
    // ...after the signal (they really were in flight), and a plain answer sent during the drain closes its connection.
    expectEndedBetween(Object.values(seen).flat(), signalAt, exit.at + SLACK_MS, "a request");
    for (const o of seen.rawPlain) expect(o.raw!.headers.connection).toBe("close");

    // The port refused new connections promptly, while the gateway was still finishing the answers.
    const refused = await refusal;
    expect(refused, "no connection was refused within 3 s of the signal").toBeDefined();
    expect(refused!.at - signalAt).toBeLessThan(1_000);
    expect(refused!.at).toBeLessThan(exit.at);
    expect(refused!.at).toBeLessThan(Math.max(...Object.values(seen).flat().map((o) => o.at)));

    // The drain ended when the last answer did, not at DRAIN_TIMEOUT_MS.
    expect(exit.at - signalAt).toBeLessThan(6_000);
    await expectCleanExit(g, exit);
    expect(chatRequests().filter((r) => r.aborted)).toEqual([]);
    expect(rowCounts(g)).toEqual({ ok: REQUESTS });
  }, 40_000);

  it("with a drain shorter than the answers (300 ms): every request still running at the deadline ends with the explicit shutting-down error, its upstream aborted, one shutting_down row each, exit 0", async () => {
    const drainMs = 300;
    slowUpstream(2_000);
    const g = await start(workers, { DRAIN_TIMEOUT_MS: String(drainMs) });
    const load = await sendLoad(g);

    const signalAt = g.signal("SIGTERM");
    const exit = await g.exited;
    const seen = await load.settled();

    // Streams: part of the answer, then the explicit error; the SDK raises it as an APIError with the code.
    expectStreamsCut(seen.sdkStreams, "an SDK stream");
    for (const o of seen.sdkStreams) expect(o).toMatchObject({ code: SHUTTING_DOWN, message: expect.stringMatching(/shutting down/) });
    expectStreamsCut(seen.rawStreams, "a raw stream");
    expectRawStreamsCut(seen.rawStreams);
    // Plain requests: 503 server_shutting_down (closing its connection).
    for (const o of [...seen.sdkPlain, ...seen.rawPlain]) {
      expect(o, describeOutcome(o)).toMatchObject({ end: "error", status: 503, code: SHUTTING_DOWN });
    }
    for (const o of seen.rawPlain) expect(o.raw!.headers.connection).toBe("close");
    // gRPC Chat: part of the answer, then UNAVAILABLE.
    expectStreamsCut(seen.grpc, "a gRPC Chat stream");
    for (const o of seen.grpc) expect(o).toMatchObject({ status: "UNAVAILABLE", message: expect.stringMatching(/shutting down/) });

    // Not before the deadline; and the whole shutdown took the drain and a little more.
    expectEndedBetween(Object.values(seen).flat(), signalAt + drainMs, exit.at + SLACK_MS, "a cut request");
    expect(exit.at - signalAt).toBeLessThan(drainMs + 2_500);
    await expectCleanExit(g, exit);

    // The upstream requests were aborted, not left to run on.
    const upstream = chatRequests();
    expect(upstream).toHaveLength(REQUESTS);
    expect(upstream.filter((r) => !r.aborted).map((r) => r.body?.model)).toEqual([]);
    expect(rowCounts(g)).toEqual({ "error/shutting_down": REQUESTS });
    const grpcRows = g.usage().filter((r) => r.protocol === "grpc");
    expect(grpcRows).toHaveLength(LOAD.grpc);
  }, 40_000);
});

describe.each([
  { workers: 1 as const, signal: "SIGINT" as const },
  { workers: 2 as const, signal: "SIGTERM" as const },
])("a second $signal with $workers worker(s)", ({ workers, signal }) => {
  it("skips the rest of a long drain: what is in flight ends at once with the explicit error, every row is committed, exit 0", async () => {
    slowUpstream(5_000);
    const g = await start(workers, { DRAIN_TIMEOUT_MS: "20000" });
    const load = await sendLoad(g);

    g.signal(signal);
    // The first signal has been taken (the port refuses), and the drain is under way.
    expect(await waitForRefusal(g.port, 3_000), "no connection refused after the first signal").toBeDefined();
    await new Promise((r) => setTimeout(r, 300));
    const againAt = g.signal(signal);
    const exit = await g.exited;
    const seen = await load.settled();

    // Promptly: well before the answers (5 s) or the drain (20 s) would have ended.
    expect(exit.at - againAt).toBeLessThan(2_500);
    // The first signal cut nothing: every request ended after the second one, explicitly.
    expectEndedBetween(Object.values(seen).flat(), againAt, exit.at + SLACK_MS, "a request");
    expectStreamsCut(seen.sdkStreams, "an SDK stream");
    for (const o of seen.sdkStreams) expect(o).toMatchObject({ code: SHUTTING_DOWN });
    expectStreamsCut(seen.rawStreams, "a raw stream");
    expectRawStreamsCut(seen.rawStreams);
    for (const o of [...seen.sdkPlain, ...seen.rawPlain]) {
      expect(o, describeOutcome(o)).toMatchObject({ end: "error", status: 503, code: SHUTTING_DOWN });
    }
    expectStreamsCut(seen.grpc, "a gRPC Chat stream");
    for (const o of seen.grpc) expect(o).toMatchObject({ status: "UNAVAILABLE" });

    await expectCleanExit(g, exit);
    expect(chatRequests().filter((r) => !r.aborted)).toEqual([]);
    expect(rowCounts(g)).toEqual({ "error/shutting_down": REQUESTS });
  }, 40_000);
});

// ---------------------------------------------------------------- readiness

/** A gRPC frame: the flag byte, the length, the message. */
function grpcFrame(message: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/**
 * A Health/Check on an HTTP/2 session of its own, in two steps: `open()`
 * sends the request's headers now (the stream exists before any GOAWAY), and
 * the returned `finish()` sends the request message and reads the answer.
 */
async function checkInTwoSteps(url: string, service: string) {
  const session = http2.connect(url);
  session.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    session.once("connect", () => resolve());
    session.once("error", reject);
  });
  const stream = session.request({
    ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers",
  }, { endStream: false });
  const goaway = new Promise<number>((resolve) => session.once("goaway", (code: number) => resolve(code)));
  const parts: Buffer[] = [];
  stream.on("data", (c: Buffer) => parts.push(c));
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once("trailers", resolve));
  const ended = new Promise<void>((resolve) => stream.once("close", () => resolve()));
  // The gateway has the stream once its headers were sent.
  await new Promise<void>((resolve) => (stream.pending ? stream.once("ready", () => resolve()) : resolve()));
  return {
    /** The GOAWAY's error code, once the session has one. */
    goaway,
    async finish(): Promise<{ grpcStatus?: string; status?: ServingStatus }> {
      stream.end(grpcFrame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service }))));
      const t = await Promise.race([trailers, ended.then(() => ({} as http2.IncomingHttpHeaders))]);
      await ended;
      session.close();
      const body = Buffer.concat(parts);
      return {
        grpcStatus: t["grpc-status"] as string | undefined,
        status: body.length >= 5 ? fromBinary(HealthCheckResponseSchema, body.subarray(5, 5 + body.readUInt32BE(1))).status : undefined,
      };
    },
  };
}

function get(port: number, path: string, agent: http.Agent): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path, agent }, (res) => {
      let t = "";
      res.on("data", (c: Buffer) => (t += c));
      res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(t) }));
    }).on("error", reject);
  });
}

describe("readiness during a drain", () => {
  it("goes false at once for clients already connected: a health Watch is told NOT_SERVING, a Check and a GET /healthz begun before the signal answer NOT_SERVING and 503 draining; new connections are refused", async () => {
    slowUpstream(2_000);
    const g = await start(1, { DRAIN_TIMEOUT_MS: "15000" });
    const health = healthClient(g.url);
    try {
      // Ready before the signal, on the connections used after it.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      expect(await get(g.port, "/healthz", agent)).toMatchObject({ status: 200, body: { status: "ok" } });
      // That keep-alive connection is idle now; the drain closes it.
      const idle = Object.values(agent.freeSockets).flat()[0]!;
      const idleClosed = new Promise<void>((resolve) => (idle.destroyed ? resolve() : idle.once("close", () => resolve())));
      expect(await healthCheck(health, "")).toEqual({ status: "SERVING" });
      const watched: string[] = [];
      const watch = health.watch({ service: "gatewayz.v1.GatewayService" });
      watch.on("data", (m: { status: string }) => watched.push(m.status));
      watch.on("error", () => {});
      const checks = { "": await checkInTwoSteps(g.url, ""), "gatewayz.v1.GatewayService": await checkInTwoSteps(g.url, "gatewayz.v1.GatewayService") };
      const healthz = await getInTwoSteps(g.port, "/healthz");
      // A chat in flight, so that the drain lasts.
      const chat = grpcChat(g.url, g.key, STREAM_MODEL);
      await fake.waitForRequests(1);
      await expect.poll(() => watched).toEqual(["SERVING"]);

      g.signal("SIGTERM");
      // A new connection, for a probe or anything else, is refused...
      expect(await waitForRefusal(g.port, 3_000), "no connection refused after the signal").toBeDefined();
      expect(g.running()).toBe(true);
      // ...while those already open see the gateway not ready.

      await expect.poll(() => watched, { timeout: 2_000 }).toEqual(["SERVING", "NOT_SERVING"]);
      await idleClosed;
      agent.destroy();
      watch.cancel(); // (an open Watch would hold the drain: see the next test)
      // Each HTTP/2 session got a graceful GOAWAY; the stream it had already opened still runs.
      for (const check of Object.values(checks)) expect(await check.goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
      for (const [service, check] of Object.entries(checks)) {
        expect(await check.finish(), `Check "${service}"`).toEqual({ grpcStatus: "0", status: ServingStatus.NOT_SERVING });
      }
      const h = await healthz.finish();
      expect(h.statusLine).toBe("HTTP/1.1 503 Service Unavailable");
      expect(h.headers).toContain("connection: close");
      expect(h.body).toMatchObject({ status: "draining" });
      expect(await tryConnect(g.port)).toBe("refused");

      expect(await chat).toMatchObject({ end: "complete", content: CONTENT });
      await expectCleanExit(g, await g.exited);
      expect(rowCounts(g)).toEqual({ ok: 1 });
    } finally {
      health.close();
    }
  }, 30_000);

  it("an open health Watch does not hold the drain: with no chat in flight the gateway exits at once, not at DRAIN_TIMEOUT_MS", async () => {
    const g = await start(1, { DRAIN_TIMEOUT_MS: "5000" });
    const health = healthClient(g.url);
    try {
      const watched: string[] = [];
      const watch = health.watch({ service: "" });
      watch.on("data", (m: { status: string }) => watched.push(m.status));
      watch.on("error", () => {});
      await expect.poll(() => watched).toEqual(["SERVING"]);

      const signalAt = g.signal("SIGTERM");
      const exit = await g.exited;
      expect(watched).toEqual(["SERVING", "NOT_SERVING"]);
      // A Watch never ends by itself (load balancers and grpc-js health checking keep one open):
      // if it counted as a request in flight, every drain would last the whole DRAIN_TIMEOUT_MS.
      expect(exit.at - signalAt, g.output()).toBeLessThan(2_000);
      await expectCleanExit(g, exit);
    } finally {
      health.close();
    }
  }, 30_000);
});

describe("keep-alive connections during a drain", () => {
  it("a request sent on an idle keep-alive connection just after the signal is answered (with connection: close), not met with a reset", async () => {
    const g = await start(1, { DRAIN_TIMEOUT_MS: "5000" });
    const socket = net.connect(g.port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    let received = "";
    socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
    const closed = new Promise<string>((resolve) => { socket.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error")); socket.once("close", () => resolve("closed")); });
    const request = "GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + g.key + "\r\n\r\n";
    socket.write(request);
    await expect.poll(() => received.includes("\r\n\r\n") && received.includes('"object":"list"')).toBe(true);
    const first = received;
    expect(first).not.toMatch(/connection: close/i);
    // A pooled connection, idle at the signal, that the client picks for its next request at once.
    g.signal("SIGTERM");
    await new Promise((r) => setTimeout(r, 50));
    socket.write(request);
    expect(await closed).toBe("closed");
    const second = received.slice(first.length);
    expect(second).toMatch(/^HTTP\/1\.1 200/);
    expect(second).toMatch(/connection: close/i);
    await expectCleanExit(g, await g.exited);
  }, 30_000);
  it("an answer begun before the signal and ending after the first grace: a request sent on its connection right after is answered too", async () => {
    const g = await start(1, { DRAIN_TIMEOUT_MS: "10000" });
    fake.onModel(STREAM_MODEL, { kind: "reply", content: CONTENT, firstByteDelayMs: 100, chunkDelayMs: 60 }); // about 1.5 s
    const socket = net.connect(g.port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    let received = "";
    socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
    const closed = new Promise<string>((resolve) => { socket.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error")); socket.once("close", () => resolve("closed")); });
    const body = JSON.stringify({ model: STREAM_MODEL, messages: [{ role: "user", content: "hi" }], stream: true });
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${g.key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await expect.poll(() => received.includes("data: ")).toBe(true);
    g.signal("SIGTERM");
    // The stream ends well after the drain's first grace; the client reuses the connection at once.
    await expect.poll(() => received.includes("data: [DONE]") && received.endsWith("0\r\n\r\n"), { timeout: 5_000 }).toBe(true);
    const first = received.length;
    socket.write(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${g.key}\r\n\r\n`);
    expect(await closed).toBe("closed");
    expect(received.slice(first)).toMatch(/^HTTP\/1\.1 200[\s\S]*connection: close/i);
    await expectCleanExit(g, await g.exited);
  }, 30_000);
});

// ---------------------------------------------------------------- npm start

describe("npm start", () => {
  it("a supervisor's SIGTERM to npm drains and stops the gateway: the answer in flight completes, the port closes, npm exits, no node is left", async () => {
    fake.onModel(PLAIN_MODEL, { kind: "reply", content: CONTENT, firstByteDelayMs: 1_500 });
    // PORT=0 in a single process: the port is the one it logs. The build runs first (10-20 s).
    const g = await start(1, { PORT: "0", DRAIN_TIMEOUT_MS: "15000" }, { command: ["npm", "start"], startTimeoutMs: 90_000 });
    const gatewayPids = g.group().filter((pid) => /^(\S*\/)?node dist\/gatewayz\.mjs$/.test(commandLineOf(pid)));
    expect(gatewayPids, g.group().map(commandLineOf).join("\n")).toHaveLength(1);

    const answer = rawPlain(g.url, g.key, PLAIN_MODEL);
    await fake.waitForRequests(1, 5_000);
    const signalAt = g.signal("SIGTERM"); // npm's pid, as `kill -TERM` by a supervisor
    const refusal = waitForRefusal(g.port, 3_000);

    expect(await answer).toMatchObject({ end: "complete", content: CONTENT });
    const refused = await refusal;
    expect(refused, "the port still accepts connections 3 s after the signal").toBeDefined();
    expect(refused!.at - signalAt).toBeLessThan(1_000);
    const exit = await g.exited;
    expect(g.output()).toMatch(/SIGTERM: draining/);
    // npm passes on the gateway's exit code.
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.at - signalAt).toBeLessThan(6_000);
    // Nothing of the group is left: not npm, not the gateway's node.
    for (let i = 0; i < 50 && g.group().length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(g.group().map(commandLineOf)).toEqual([]);
    expect(gatewayPids.map(commandLineOf)).toEqual([""]);
    expect(rowCounts(g)).toEqual({ ok: 1 });
  }, 120_000);
});
