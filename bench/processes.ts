// The benchmark's child processes: the fake upstream and the gateway. Every child is
// registered here and killed when the benchmark exits, however it exits.
import { execFileSync, fork, spawn, type ChildProcess } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import type { Profile } from "./fake-upstream.js";
import { freePort } from "../test/support/free-port.js";

const ROOT = new URL("..", import.meta.url).pathname;
const children = new Set<ChildProcess>();

function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.clear();
}

/** Kill every child on exit, on SIGINT/SIGTERM, and on an uncaught error. */
export function installCleanup(): void {
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping\n`);
      killAll();
      process.exit(130);
    });
  }
  const die = (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
    killAll();
    process.exit(1);
  };
  process.on("uncaughtException", die);
  process.on("unhandledRejection", die);
}

/** Registers a child to be killed when the benchmark exits, however it exits. */
export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** Stops a child and waits for it to be gone (SIGKILL after `graceMs`). */
async function stopChild(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await gone;
  clearTimeout(timer);
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** Runs `npm run build` when dist/ is missing or older than src/. */
export function ensureBuilt(): void {
  let built = 0;
  try {
    built = Math.min(statSync(join(ROOT, "dist/gatewayz.mjs")).mtimeMs, statSync(join(ROOT, "dist/src/cli.js")).mtimeMs);
  } catch {
    // not built
  }
  if (built >= newestMtime(join(ROOT, "src"))) return;
  process.stderr.write("bench: dist/ is stale, running npm run build\n");
  execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
}

export interface Fake {
  pid: number;
  port: number;
  setProfile(p: Profile): Promise<void>;
  stop(): Promise<void>;
}

/** Forks bench/fake-upstream.ts (through tsx) and waits for its port. */
export async function startFake(): Promise<Fake> {
  const child = track(fork(join(ROOT, "bench/fake-upstream.ts"), [], {
    cwd: ROOT, execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"],
  }));
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (m: { port: number }) => resolve(m.port));
    child.once("exit", (code) => reject(new Error(`fake upstream exited with ${code}`)));
  });
  return {
    pid: child.pid!,
    port,
    setProfile: (profile) => new Promise((resolve) => {
      child.once("message", () => resolve());
      child.send({ profile });
    }),
    stop: () => stopChild(child),
  };
}

/**
 * Creates a client key with the CLI, against the gateway's database, before it starts.
 * `root`: the tree whose CLI runs (another commit's build must create its own database:
 * an older gateway refuses a newer schema).
 */
export function createKey(dbPath: string, root = ROOT, extra: readonly string[] = []): string {
  const out = execFileSync(process.execPath, [join(root, "dist/src/cli.js"), "--db", dbPath, "keys", "create", "--user", "bench", "--name", "bench", "--json", ...extra], {
    cwd: root, encoding: "utf8",
  });
  return (JSON.parse(out) as { key: string }).key;
}

export interface GatewayEnv {
  dbPath: string;
  fakePort: number;
  /** A file that does not exist, so that no ./.env leaks into the run. */
  envFile: string;
}

export interface Gateway {
  pid: number;
  port: number;
  /** Spawn to first successful chat completion, in ms. */
  coldStartMs: number;
  /** The last lines the gateway wrote to stdout/stderr. */
  logTail(): string;
  /** Sends a signal to the gateway process (the primary, with WORKERS). */
  kill(signal: NodeJS.Signals): void;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

export interface GatewayOptions {
  nodeArgs?: string[];
  env?: Record<string, string>;
  /** The script, relative to `root` (default dist/gatewayz.mjs). */
  entry?: string;
  /** The tree the gateway runs from (default this one; bench --against builds another commit's). */
  root?: string;
  /** Everything the gateway writes to stdout and stderr, as it comes (e.g. --trace-gc lines). */
  onOutput?: (text: string) => void;
}

/** One POST, no pooling; resolves with the status code (0 when the connection failed). */
function postOnce(port: number, path: string, headers: Record<string, string>, body: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: "127.0.0.1", port, path, method: "POST", headers, agent: false }, (res) => {
      res.resume();
      res.once("end", () => resolve(res.statusCode ?? 0));
      res.once("error", () => resolve(0));
    });
    req.once("error", () => resolve(0));
    req.end(body);
  });
}

/**
 * Spawns `node dist/gatewayz.mjs` and polls a chat completion every 5 ms until one
 * succeeds: that time is the cold start.
 */
export async function startGateway(env: GatewayEnv, key: string, extra: GatewayOptions = {}, timeoutMs = 20_000): Promise<Gateway> {
  const port = await freePort();
  const started = performance.now();
  const root = extra.root ?? ROOT;
  const child = track(spawn(process.execPath, [...(extra.nodeArgs ?? []), join(root, extra.entry ?? "dist/gatewayz.mjs")], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? "/tmp",
      ENV_FILE: env.envFile,
      PORT: String(port),
      HOST: "127.0.0.1",
      DATABASE_PATH: env.dbPath,
      LOG_LEVEL: "info", // the default: the full path, logging included
      ALIBABA_CLOUD_API_KEY: "sk-bench",
      ALIBABA_CLOUD_BASE_URL: `http://127.0.0.1:${env.fakePort}/v1`,
      RATE_LIMITS_KEY: "rpm=0,concurrent=0",
      // The load repeats one request: with the cache on every request after the first would be a hit.
      CACHE: "off",
      ...extra.env,
    },
  }));
  let tail = "";
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const keep = (b: Buffer) => {
    const text = b.toString();
    tail = (tail + text).slice(-4000);
    extra.onOutput?.(text);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
  const body = JSON.stringify({ model: "qwen-max", messages: [{ role: "user", content: "cold start" }] });
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode}:\n${tail}`);
    const status = await postOnce(port, "/v1/chat/completions", headers, body);
    if (status === 200) break;
    if (status !== 0) throw new Error(`gateway answered ${status} to the first chat completion:\n${tail}`);
    if (performance.now() - started > timeoutMs) throw new Error(`gateway not ready after ${timeoutMs} ms:\n${tail}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return {
    pid: child.pid!,
    port,
    coldStartMs: performance.now() - started,
    logTail: () => tail,
    kill: (signal) => { child.kill(signal); },
    exited,
    stop: () => stopChild(child),
  };
}
