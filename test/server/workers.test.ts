// `--workers 2` end to end: the real gateway as a child process (a node:cluster
// primary and two workers sharing the port), its Alibaba Cloud upstream the
// in-process fake. The gateway runs from src/ through tsx (node:cluster re-runs
// the entry with the same execArgv, so the loader reaches the workers), with
// test/support/cluster-probe.ts preloaded: it only reports, on stderr, the
// workers' pids, which worker was handed which connection, and how each worker
// exited (the test is the primary's parent, not theirs).
//
// Every request that must reach a particular worker opens its own connection:
// the primary hands connections round-robin, so N connections land on both.

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAccounts, type KeyOptions } from "../../src/core/accounts.js";
import { openDb } from "../../src/storage/db.js";
import { createKeyStore } from "../../src/storage/keys.js";
import { createLimitStore } from "../../src/storage/limits.js";
import { createUsageStore } from "../../src/storage/usage.js";
import { startFakeUpstream, type FakeUpstream } from "../support/fake-upstream.js";
import { freePort } from "../support/gateway-child.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const PROBE = "./test/support/cluster-probe.ts";
const WORKERS = 2;
const MODEL = "qwen-plus";
const DURATION = /^(\d+h)?(\d+m)?(\d+(\.\d)?s|\d+ms)$/;

// ---------------------------------------------------------------- the gateway process

type ProbeEvent =
  | { ev: "primary"; pid: number }
  | { ev: "listening"; pid: number }
  | { ev: "exit"; pid: number; code: number | null; signal: string | null }
  | { ev: "conn"; pid: number; port: number };

interface Gateway {
  readonly child: ChildProcess;
  readonly port: number;
  readonly primaryPid: number;
  readonly dbPath: string;
  /** Client keys by the names given to startGateway. */
  readonly keys: Record<string, string>;
  /** Every probe event so far, in arrival order. */
  readonly events: ProbeEvent[];
  /** Every other line the processes wrote (the gateway's log). */
  readonly log: string[];
  /** The primary's exit. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Workers that announced listening and have not exited. */
  workers(): number[];
  /** The pid of the worker that was handed the connection from this client port. */
  workerFor(clientPort: number): Promise<number>;
  /** Kills whatever is left (primary and workers), by pid. */
  kill(): void;
}

/** Polls `check` until it returns a value. */
async function waitFor<T>(check: () => T | undefined, what: string, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Gone, or a zombie nobody has reaped yet: either way it runs no more code. */
function isGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/**
 * Creates the keys in a fresh database (then closes it), and starts the
 * gateway on it with `--workers 2`; resolves once every worker listens.
 */
async function startGateway(
  fake: FakeUpstream,
  env: Record<string, string>,
  keyOptions: Record<string, Partial<KeyOptions>>,
): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), "gatewayz-workers-"));
  const dbPath = join(dir, "gatewayz.db");
  const db = openDb(dbPath);
  const keys: Record<string, string> = {};
  try {
    const accounts = createAccounts(createKeyStore(db), createLimitStore(db), createUsageStore(db));
    for (const [name, options] of Object.entries(keyOptions)) {
      keys[name] = accounts.createKey({ user: `workers-${name}`, name, ...options }).key;
    }
  } finally {
    db.close();
  }

  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", "--import", PROBE, "src/main.ts", "--workers", String(WORKERS)], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? dir,
      ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
      ENV_FILE: join(dir, "missing.env"),
      HOST: "127.0.0.1",
      PORT: String(port),
      DATABASE_PATH: dbPath,
      LOG_LEVEL: "info",
      BREAKER_FAILURES: "1000",
      // The suite counts what reaches the fake (test/support/gateway.ts says why).
      CACHE: "off",
      ALIBABA_CLOUD_API_KEY: fake.apiKey,
      ALIBABA_CLOUD_BASE_URL: fake.baseUrl,
      ...env,
    },
  });
  const events: ProbeEvent[] = [];
  const log: string[] = [];
  const onLines = (stream: NodeJS.ReadableStream) => {
    let rest = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith("CLUSTER-PROBE ")) events.push(JSON.parse(line.slice("CLUSTER-PROBE ".length)) as ProbeEvent);
        else if (line) log.push(line);
      }
    });
  };
  onLines(child.stdout!);
  onLines(child.stderr!);
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve((exit = { code, signal })));
  });

  const listening = () => events.filter((e) => e.ev === "listening").map((e) => e.pid);
  const gone = () => new Set(events.filter((e) => e.ev === "exit").map((e) => e.pid));
  const g: Gateway = {
    child, port, dbPath, keys, events, log, exited,
    primaryPid: child.pid!,
    workers: () => listening().filter((pid) => !gone().has(pid)),
    workerFor: (clientPort) => waitFor(
      () => events.find((e): e is Extract<ProbeEvent, { ev: "conn" }> => e.ev === "conn" && e.port === clientPort)?.pid,
      `the worker that got the connection from port ${clientPort}`,
    ),
    kill() {
      const primaryRuns = child.exitCode === null && child.signalCode === null;
      for (const pid of primaryRuns ? [child.pid!, ...g.workers()] : g.workers()) {
        try {
          if (!isGone(pid)) process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    },
  };
  try {
    await waitFor(() => {
      if (exit) throw new Error(`the gateway exited (${exit.signal ?? exit.code}) while starting:\n${log.join("\n")}`);
      return log.some((l) => l.includes("Gatewayz listening")) && g.workers().length === WORKERS ? true : undefined;
    }, "the gateway and its workers to listen", 20_000);
  } catch (err) {
    g.kill();
    throw err;
  }
  return g;
}

// ---------------------------------------------------------------- HTTP

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
  /** The client's port: which connection carried it (see Gateway.workerFor). */
  clientPort: number;
}

/**
 * One OpenAI-style chat completion; without an agent, on a connection of its
 * own (agent: false), so consecutive calls are handed to alternate workers.
 */
function chat(g: Gateway, key: string, agent: http.Agent | false = false, onConnected?: (clientPort: number) => void): Promise<Reply> {
  const payload = JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }] });
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1", port: g.port, path: "/v1/chat/completions", method: "POST", agent,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
    }, (res) => {
      const clientPort = res.socket.localPort!;
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(parts).toString("utf8");
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: kept as text for the failure message
        }
        resolve({ status: res.statusCode!, headers: res.headers, body, clientPort });
      });
    });
    req.on("error", reject);
    if (onConnected) {
      req.once("socket", (socket) => {
        if (socket.localPort) onConnected(socket.localPort);
        else socket.once("connect", () => onConnected(socket.localPort!));
      });
    }
    req.end(payload);
  });
}

/** Sends `count` chats at once, each on its own connection. */
function burst(g: Gateway, key: string, count: number): Promise<Reply[]> {
  return Promise.all(Array.from({ length: count }, () => chat(g, key)));
}

const statuses = (replies: Reply[]) => replies.map((r) => r.status).sort();

/** Waits out the last seconds of a UTC minute, so an rpm test never straddles two windows. */
async function inFreshMinute(): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 3_000) await sleep(left + 50);
}

function expectRateLimited(r: Reply, message: RegExp) {
  expect(r.status, JSON.stringify(r.body)).toBe(429);
  expect(r.body.error.code).toBe("rate_limit_exceeded");
  expect(r.body.error.message).toMatch(message);
  const retryAfter = Number(r.headers["retry-after"]);
  expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `retry-after ${r.headers["retry-after"]}`).toBe(true);
}

// ---------------------------------------------------------------- gRPC

const LOADER_OPTIONS: protoLoader.Options = { includeDirs: ["proto"], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const gatewayPkg = grpc.loadPackageDefinition(protoLoader.loadSync("gatewayz/v1/gateway.proto", LOADER_OPTIONS));
type ClientCtor = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => grpc.Client;
const GatewayServiceClient = ((gatewayPkg.gatewayz as grpc.GrpcObject).v1 as grpc.GrpcObject).GatewayService as unknown as ClientCtor;
interface ChatResponse { event: "delta" | "done"; delta: { content: string } | null; done: { finish_reason: string; provider: string } | null }
interface GrpcChatClient extends grpc.Client {
  chat(req: object, metadata: grpc.Metadata): grpc.ClientReadableStream<ChatResponse>;
}

/** A client with a connection of its own (grpc-js would otherwise share one between clients). */
function grpcClient(g: Gateway): GrpcChatClient {
  return new GatewayServiceClient(`127.0.0.1:${g.port}`, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
  }) as GrpcChatClient;
}

function grpcChat(client: GrpcChatClient, key: string): Promise<{ messages: ChatResponse[]; status: grpc.StatusObject }> {
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${key}`);
    const call = client.chat({ model: MODEL, messages: [{ role: "user", content: "hi" }] }, md);
    const messages: ChatResponse[] = [];
    call.on("data", (m: ChatResponse) => messages.push(m));
    call.on("error", () => {}); // the status says it
    call.on("status", (status: grpc.StatusObject) => setImmediate(() => resolve({ messages, status })));
  });
}

// ---------------------------------------------------------------- tests

let fake: FakeUpstream;
const started: Gateway[] = [];

beforeAll(async () => {
  fake = await startFakeUpstream();
});

afterAll(async () => {
  for (const g of started) {
    // In case a test stopped it and failed before resuming it.
    if (g.child.exitCode === null && g.child.signalCode === null) g.child.kill("SIGCONT");
    g.kill();
  }
  await fake?.close();
  for (const g of started) rmSync(join(g.dbPath, ".."), { recursive: true, force: true });
});

beforeEach(() => {
  fake.reset();
});

describe("--workers 2: limits in the primary, requests in the workers", () => {
  let gw: Gateway;

  beforeAll(async () => {
    gw = await startGateway(fake, { RATE_LIMITS_KEY: "rpm=5" }, {
      rpm5: {}, // the RATE_LIMITS_KEY default: 5 requests per minute
      conc2: { rpm: 0, concurrent: 2 },
      held: { rpm: 0, concurrent: 1 },
      rpm1: { rpm: 1 },
      spare: { rpm: 0 }, // still the default concurrency limit (64): every request asks the primary
    });
    started.push(gw);
  }, 30_000);

  it("forks two workers, children of the primary, and connections are served by both", async () => {
    const workers = gw.workers();
    expect(workers).toHaveLength(WORKERS);
    expect(new Set(workers).size).toBe(WORKERS);
    for (const pid of workers) {
      expect(pid).not.toBe(gw.primaryPid);
      expect(parentOf(pid)).toBe(gw.primaryPid);
    }
    expect(gw.events.find((e) => e.ev === "primary")?.pid).toBe(gw.primaryPid);

    const replies: Reply[] = [];
    for (let i = 0; i < 6; i++) replies.push(await chat(gw, gw.keys.spare!));
    expect(statuses(replies)).toEqual(Array(6).fill(200));
    expect(replies[0]!.body.choices[0].message.content).toBe(`Hello from ${MODEL}`);
    const servedBy = await Promise.all(replies.map((r) => gw.workerFor(r.clientPort)));
    expect(new Set(servedBy)).toEqual(new Set(workers));
    // The primary serves nothing itself.
    expect(servedBy).not.toContain(gw.primaryPid);
  });

  it("a requests-per-minute limit of 5 admits exactly 5 of 12 simultaneous requests across the workers", async () => {
    await inFreshMinute();
    const replies = await burst(gw, gw.keys.rpm5!, 12);
    // Both workers got some of them: per-worker counters would have let up to 10 through.
    const servedBy = await Promise.all(replies.map((r) => gw.workerFor(r.clientPort)));
    expect(new Set(servedBy).size).toBe(WORKERS);

    const ok = replies.filter((r) => r.status === 200);
    const limited = replies.filter((r) => r.status !== 200);
    expect(ok).toHaveLength(5);
    expect(limited).toHaveLength(7);
    for (const r of limited) {
      expectRateLimited(r, /5 requests per minute for this key/);
      expect(r.headers["x-ratelimit-limit-requests"]).toBe("5");
      expect(r.headers["x-ratelimit-remaining-requests"]).toBe("0");
      expect(r.headers["x-ratelimit-reset-requests"]).toMatch(DURATION);
    }
    // Each admitted request counted itself on the one shared counter.
    expect(ok.map((r) => r.headers["x-ratelimit-remaining-requests"]).sort()).toEqual(["0", "1", "2", "3", "4"]);
    for (const r of ok) expect(r.headers["x-ratelimit-limit-requests"]).toBe("5");
    expect(fake.requests).toHaveLength(5);
  });

  it("a concurrency limit of 2 admits exactly 2 at a time across the workers, and frees the slots when they finish", async () => {
    fake.onModel(MODEL, { kind: "reply", firstByteDelayMs: 1_000 });
    const first = await burst(gw, gw.keys.conc2!, 6);
    const servedBy = await Promise.all(first.map((r) => gw.workerFor(r.clientPort)));
    expect(new Set(servedBy).size).toBe(WORKERS);
    expect(statuses(first)).toEqual([200, 200, 429, 429, 429, 429]);
    for (const r of first.filter((x) => x.status === 429)) {
      expectRateLimited(r, /2 concurrent requests for this key/);
    }
    expect(fake.requests).toHaveLength(2);

    // Both finished: their slots are free again, whichever worker held them.
    const second = await burst(gw, gw.keys.conc2!, 6);
    expect(statuses(second)).toEqual([200, 200, 429, 429, 429, 429]);
    expect(fake.requests).toHaveLength(4);
  }, 15_000);

  it("gRPC over h2c through the workers: a Chat stream completes, and a limit holds across two connections", async () => {
    await inFreshMinute();
    const a = grpcClient(gw);
    const b = grpcClient(gw);
    try {
      const before = gw.events.length;
      const first = await grpcChat(a, gw.keys.rpm1!);
      expect(first.status.code, first.status.details).toBe(grpc.status.OK);
      expect(first.messages.filter((m) => m.event === "delta").map((m) => m.delta!.content).join("")).toBe(`Hello from ${MODEL}`);
      expect(first.messages.at(-1)).toMatchObject({ event: "done", done: { finish_reason: "stop", provider: "alibaba-cloud" } });

      // A second connection, so the other worker: the primary has counted the first.
      const second = await grpcChat(b, gw.keys.rpm1!);
      expect(second.status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(second.status.details).toMatch(/1 requests per minute for this key/);
      expect(second.status.metadata.get("retry-after")).toHaveLength(1);
      expect(second.status.metadata.get("x-ratelimit-remaining-requests")).toEqual(["0"]);
      expect(second.status.metadata.get("grpc-status-details-bin")).toHaveLength(1);
      const conns = gw.events.slice(before).filter((e) => e.ev === "conn").map((e) => e.pid);
      expect(new Set(conns).size).toBe(WORKERS);

      // Unaffected keys still stream on the connection that was refused.
      const other = await grpcChat(b, gw.keys.spare!);
      expect(other.status.code).toBe(grpc.status.OK);
      expect(other.messages.at(-1)?.event).toBe("done");
    } finally {
      a.close();
      b.close();
    }
  });

  it("a worker killed with SIGKILL is replaced, what it held is given back, and the gateway keeps answering", async () => {
    const [w1, w2] = gw.workers();
    fake.enqueue({ kind: "hang" });
    // The key's one concurrent slot, held by a request in flight on some worker.
    let clientPort = 0;
    const inFlight = chat(gw, gw.keys.held!, false, (p) => { clientPort = p; }).catch((err: Error) => err);
    await fake.waitForRequests(1);
    const victim = await gw.workerFor(clientPort);
    expect([w1, w2]).toContain(victim);
    // Held, whichever worker the next request lands on.
    expectRateLimited(await chat(gw, gw.keys.held!), /1 concurrent requests for this key/);

    process.kill(victim, "SIGKILL");
    const exit = await waitFor(() => gw.events.find((e) => e.ev === "exit" && e.pid === victim), "the killed worker's exit");
    expect(exit).toMatchObject({ code: null, signal: "SIGKILL" });
    expect(await inFlight).toBeInstanceOf(Error); // its connection died with it
    const replacement = await waitFor(() => {
      const now = gw.workers();
      return now.length === WORKERS ? now.find((pid) => pid !== w1 && pid !== w2) : undefined;
    }, "a replacement worker", 15_000);
    expect(parentOf(replacement)).toBe(gw.primaryPid);
    expect(new Set(gw.workers())).toEqual(new Set([replacement, victim === w1 ? w2 : w1]));
    expect(gw.log.some((l) => l.includes(`worker ${victim} exited (SIGKILL); starting another`))).toBe(true);

    // The dead worker's slot was released by the primary.
    const after = await chat(gw, gw.keys.held!);
    expect(after.status, JSON.stringify(after.body)).toBe(200);

    // Both the survivor and the replacement answer, limits included.
    const replies: Reply[] = [];
    for (let i = 0; i < 4; i++) replies.push(await chat(gw, gw.keys.spare!));
    expect(statuses(replies)).toEqual([200, 200, 200, 200]);
    const servedBy = await Promise.all(replies.map((r) => gw.workerFor(r.clientPort)));
    expect(new Set(servedBy)).toEqual(new Set(gw.workers()));
  }, 20_000);

  it("workers exit when the primary is killed (the IPC channel disconnects)", async () => {
    const workers = gw.workers();
    expect(workers).toHaveLength(WORKERS);
    process.kill(gw.primaryPid, "SIGKILL");
    expect(await gw.exited).toEqual({ code: null, signal: "SIGKILL" });
    // Orphans: nobody the test can ask for their exit codes; they just have to be gone.
    await waitFor(() => (workers.every(isGone) ? true : undefined), "the workers to exit", 10_000);
  }, 15_000);
});

describe("--workers 2: keys without limits, usage rows and shutdown", () => {
  let gw: Gateway;
  /** Chat requests sent to this gateway, each of which must leave one usage row. */
  let sent = 0;

  beforeAll(async () => {
    // A short drain: the requests left hanging at SIGTERM are ended (shutting_down) rather than waited for.
    gw = await startGateway(fake, { RATE_LIMITS_KEY: "rpm=0,concurrent=0", DRAIN_TIMEOUT_MS: "300" }, {
      free: {}, // no limit and no budget at any scope
      counted: { rpm: 1000 }, // limited: asks the primary
    });
    started.push(gw);
  }, 30_000);

  it("a key with no limits is served normally: 20 simultaneous requests, all 200", async () => {
    const replies = await burst(gw, gw.keys.free!, 20);
    sent += 20;
    expect(statuses(replies)).toEqual(Array(20).fill(200));
    // No limits: no x-ratelimit-* headers to report.
    expect(replies[0]!.headers["x-ratelimit-limit-requests"]).toBeUndefined();
    const servedBy = await Promise.all(replies.map((r) => gw.workerFor(r.clientPort)));
    expect(new Set(servedBy).size).toBe(WORKERS);
  });

  it("a key with no limits never asks the primary: it is served while the primary is stopped, a limited key waits", async () => {
    // Connections made now, kept open: while the primary is stopped it can hand out no new ones.
    const agents = Array.from({ length: 3 }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    try {
      const warm = await Promise.all(agents.map((a) => chat(gw, gw.keys.free!, a)));
      sent += warm.length;
      expect(statuses(warm)).toEqual([200, 200, 200]);
      const [freeA, freeB, limitedAgent] = agents as [http.Agent, http.Agent, http.Agent];

      process.kill(gw.primaryPid, "SIGSTOP");
      let limited: Promise<Reply>;
      let limitedDone = false;
      try {
        limited = chat(gw, gw.keys.counted!, limitedAgent);
        sent += 1;
        void limited.then(() => { limitedDone = true; }, () => { limitedDone = true; });
        const free = await Promise.all(Array.from({ length: 20 }, (_, i) => chat(gw, gw.keys.free!, i % 2 ? freeA : freeB)));
        sent += 20;
        expect(statuses(free)).toEqual(Array(20).fill(200));
        await sleep(200);
        expect(limitedDone, "a limited key's request was answered without the primary").toBe(false);
      } finally {
        process.kill(gw.primaryPid, "SIGCONT");
      }
      const answered = await limited;
      expect(answered.status, JSON.stringify(answered.body)).toBe(200);
      expect(answered.headers["x-ratelimit-limit-requests"]).toBe("1000");
    } finally {
      for (const a of agents) a.destroy();
    }
  }, 15_000);

  it("SIGTERM to the primary drains every worker (exit 0), and each committed its usage rows: one per request", async () => {
    // Requests in flight on both workers when the signal comes.
    fake.onModel(MODEL, { kind: "hang" });
    const inFlight = Array.from({ length: 4 }, (_, i) => chat(gw, i % 2 ? gw.keys.free! : gw.keys.counted!).catch((err: Error) => err));
    sent += 4;
    await fake.waitForRequests(4);
    const conns = gw.events.filter((e) => e.ev === "conn").slice(-4).map((e) => e.pid);
    expect(new Set(conns).size).toBe(WORKERS);

    const workers = gw.workers();
    expect(workers).toHaveLength(WORKERS);
    process.kill(gw.primaryPid, "SIGTERM");
    expect(await gw.exited).toEqual({ code: 0, signal: null });
    for (const pid of workers) {
      expect(gw.events.find((e) => e.ev === "exit" && e.pid === pid)).toMatchObject({ code: 0, signal: null });
      expect(isGone(pid)).toBe(true);
    }
    expect(gw.log.filter((l) => l.includes("SIGTERM: draining"))).toHaveLength(1);
    expect(gw.log.filter((l) => l.includes("the primary is stopping: draining"))).toHaveLength(WORKERS);
    await Promise.all(inFlight);

    const db = openDb(gw.dbPath);
    try {
      const rows = db.prepare("SELECT status, COUNT(*) AS n FROM usage GROUP BY status ORDER BY status").all() as Array<{ status: string; n: number }>;
      const total = rows.reduce((n, r) => n + r.n, 0);
      expect(total, JSON.stringify(rows)).toBe(sent);
      expect(rows.find((r) => r.status === "ok")?.n).toBe(sent - 4);
      // The four left hanging were ended by the drain's deadline, each with its row.
      expect(rows.find((r) => r.status === "error")?.n).toBe(4);
    } finally {
      db.close();
    }
    expect(gw.log.filter((l) => l.includes("usage record(s) lost"))).toEqual([]);
  }, 20_000);
});

describe("--workers 2: shutdown when every process is signalled, or the primary dies", () => {
  it("SIGTERM to every process (systemd's KillMode=control-group, kill -- -PGID) stops every worker cleanly", async () => {
    // Each worker gets its own SIGTERM and then the primary's. main.ts's onStop
    // uses process.once("SIGTERM"): the first one removes the listener, so the
    // second kills the worker by signal, mid-shutdown (queued rows lost). A
    // real group signal reaches a worker's handler before the primary's
    // SIGTERM about half the time; sending the workers theirs first makes it
    // the usual order every time.
    const gw = await startGateway(fake, { RATE_LIMITS_KEY: "rpm=0,concurrent=0" }, { free: {} });
    started.push(gw);
    expect(statuses(await burst(gw, gw.keys.free!, 4))).toEqual([200, 200, 200, 200]);
    const workers = gw.workers();
    for (const pid of workers) process.kill(pid, "SIGTERM");
    await sleep(20);
    process.kill(gw.primaryPid, "SIGTERM");
    expect(await gw.exited).toEqual({ code: 0, signal: null });
    for (const pid of workers) {
      expect(gw.events.find((e) => e.ev === "exit" && e.pid === pid)).toMatchObject({ code: 0, signal: null });
    }
  }, 30_000);

  it("a worker whose primary is killed shuts down gracefully: in-flight requests still leave their usage rows", async () => {
    // node:cluster's own 'disconnect' listener in a worker calls process.exit(0)
    // at once, before main.ts's process.once("disconnect") can stop the app:
    // "the primary process exited: shutting down" is never logged, and the
    // requests in flight are dropped without a usage row.
    const gw = await startGateway(fake, { RATE_LIMITS_KEY: "rpm=0,concurrent=0", DRAIN_TIMEOUT_MS: "300" }, { free: {} });
    started.push(gw);
    const workers = gw.workers();
    fake.onModel(MODEL, { kind: "hang" });
    const inFlight = Array.from({ length: 4 }, () => chat(gw, gw.keys.free!).catch((err: Error) => err));
    await fake.waitForRequests(4);
    process.kill(gw.primaryPid, "SIGKILL");
    await gw.exited;
    await waitFor(() => (workers.every(isGone) ? true : undefined), "the workers to exit", 10_000);
    await Promise.all(inFlight);
    expect(gw.log.filter((l) => l.includes("the primary process exited: draining"))).toHaveLength(WORKERS);
    const db = openDb(gw.dbPath);
    try {
      expect(db.prepare("SELECT COUNT(*) AS n FROM usage").get()).toEqual({ n: 4 });
    } finally {
      db.close();
    }
  }, 30_000);
});
