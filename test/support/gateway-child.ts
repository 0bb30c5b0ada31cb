// The gateway as a child process that a test can signal: src/main.ts through
// tsx (or any other command line that ends up running it, `npm start` say), on
// a database file of its own, its Alibaba Cloud upstream an in-process fake.
// The child leads a process group of its own (detached), so whatever it
// starts (node:cluster workers, the node that `npm start` runs) can be found
// by its group and killed with it, even when the leader is gone.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createAccounts } from "../../src/core/accounts.js";
import { openDb } from "../../src/storage/db.js";
import { createKeyStore } from "../../src/storage/keys.js";
import { createLimitStore } from "../../src/storage/limits.js";
import { createUsageStore } from "../../src/storage/usage.js";
import type { FakeUpstream } from "./fake-upstream.js";
import { ROOT } from "./node-child.js";
import { freePort } from "./free-port.js";
export { freePort };

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when the leader exited. */
  at: number;
}

export interface UsageRow {
  status: string;
  error_kind: string | null;
  protocol: string;
}

export interface GatewayChild {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly dbPath: string;
  /** A client key created in the database before the gateway started. */
  readonly key: string;
  /** Everything the processes wrote on stdout and stderr, in arrival order. */
  output(): string;
  /** The leader's exit. */
  readonly exited: Promise<Exit>;
  /** Whether the leader is still running. */
  running(): boolean;
  /** Sends `signal` to the leader only (as a supervisor would); returns Date.now() at sending. */
  signal(signal?: NodeJS.Signals): number;
  /** Resolves once the output matches `re` (rejects after `timeoutMs`, or if the leader exits first). */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Pids of the group's processes that are still alive (zombies do not count), leader included. */
  group(): number[];
  /** Every usage row, in insertion order (open the file only once the gateway has exited). */
  usage(): UsageRow[];
  /** SIGKILLs the whole group (cleanup; harmless once it is gone). */
  kill(): void;
  /** kill(), then removes the database directory. */
  dispose(): void;
}

export interface GatewayChildOptions {
  /** The command line; default `node --import tsx src/main.ts`. */
  command?: string[];
  /** Extra variables (PORT, WORKERS, DRAIN_TIMEOUT_MS...). PORT defaults to a free port picked here. */
  env?: Record<string, string>;
  /** How long starting may take (a build in `npm start`). */
  startTimeoutMs?: number;
}

/** The fields of /proc/<pid>/stat after "(comm)": [state, ppid, pgrp, ...]; undefined once gone. */
function statOf(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** Live (non-zombie) processes whose process group is `pgid`. */
export function liveGroupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const f = statOf(Number(name));
    if (f && Number(f[2]) === pgid && f[0] !== "Z") out.push(Number(name));
  }
  return out;
}

/** The command line of a process ("" once gone). */
export function commandLineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    return "";
  }
}

/**
 * Creates a client key in a fresh database, starts the gateway on it and
 * resolves once it logs "Gatewayz listening" (with --workers, the primary logs
 * it once every worker listens).
 */
export async function startGatewayChild(fake: FakeUpstream, options: GatewayChildOptions = {}): Promise<GatewayChild> {
  const dir = mkdtempSync(join(tmpdir(), "gatewayz-shutdown-"));
  const dbPath = join(dir, "gatewayz.db");
  const db = openDb(dbPath);
  let key: string;
  try {
    key = createAccounts(createKeyStore(db), createLimitStore(db), createUsageStore(db)).createKey({ user: "shutdown", name: "shutdown" }).key;
  } finally {
    db.close();
  }
  const env = { PORT: String(await freePort()), ...options.env };
  const [cmd, ...args] = options.command ?? [process.execPath, "--import", "tsx", "src/main.ts"];
  const child = spawn(cmd!, args, {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      // This node first, for `npm` and for the node that `npm start` runs.
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      HOME: process.env.HOME ?? dir,
      ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
      ENV_FILE: join(dir, "missing.env"),
      HOST: "127.0.0.1",
      DATABASE_PATH: dbPath,
      LOG_LEVEL: "info",
      RATE_LIMITS_KEY: "rpm=0,concurrent=0",
      BREAKER_FAILURES: "1000",
      // As in test/support/gateway.ts: suites count what reaches the fake.
      CACHE: "off",
      ALIBABA_CLOUD_API_KEY: fake.apiKey,
      ALIBABA_CLOUD_BASE_URL: fake.baseUrl,
      ...env,
    },
  });
  const pid = child.pid!;
  let output = "";
  const waiters = new Set<() => void>();
  const onData = (c: Buffer) => {
    output += c.toString();
    for (const w of [...waiters]) w();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    child.once("exit", (code, signal) => {
      resolve((exit = { code, signal, at: Date.now() }));
      for (const w of [...waiters]) w();
    });
  });

  const kill = () => {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // the group is gone
    }
  };
  const waitForOutput = (re: RegExp, timeoutMs = 10_000) => new Promise<RegExpMatchArray>((resolve, reject) => {
    const done = (fn: () => void) => {
      clearTimeout(timer);
      waiters.delete(check);
      fn();
    };
    const check = () => {
      const m = re.exec(output);
      if (m) done(() => resolve(m));
      else if (exit) done(() => reject(new Error(`the gateway exited (${exit!.signal ?? exit!.code}) before printing ${re}:\n${output}`)));
    };
    const timer = setTimeout(() => done(() => reject(new Error(`no ${re} within ${timeoutMs} ms:\n${output}`))), timeoutMs);
    waiters.add(check);
    check();
  });

  let port: number;
  try {
    const m = await waitForOutput(/Gatewayz listening on http:\/\/127\.0\.0\.1:(\d+)/, options.startTimeoutMs ?? 20_000);
    port = Number(m[1]);
    if (port === 0) throw new Error(`the gateway logged port 0:\n${output}`);
  } catch (err) {
    kill();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    child, pid, port, url: `http://127.0.0.1:${port}`, dbPath, key, exited, waitForOutput, kill,
    output: () => output,
    running: () => exit === undefined,
    signal(signal = "SIGTERM") {
      const at = Date.now();
      process.kill(pid, signal);
      return at;
    },
    group: () => liveGroupMembers(pid),
    usage() {
      const db = openDb(dbPath);
      try {
        return db.prepare("SELECT status, error_kind, protocol FROM usage ORDER BY id").all() as UsageRow[];
      } finally {
        db.close();
      }
    },
    dispose() {
      kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** How a TCP connection attempt went: accepted (and not cut within a moment), refused, or cut at once. */
export type ConnectOutcome = "accepted" | "refused" | "reset";

/** Opens a TCP connection and closes it again; "reset" for a connection accepted and closed by the server straight away. */
export function tryConnect(port: number, host = "127.0.0.1"): Promise<ConnectOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    let settled = false;
    const settle = (o: ConnectOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(o);
    };
    let timer: NodeJS.Timeout | undefined;
    socket.once("connect", () => {
      // A draining listener may accept and destroy at once: give it a moment to show that.
      timer = setTimeout(() => settle("accepted"), 100);
    });
    socket.once("close", () => settle("reset"));
    socket.once("error", (err: NodeJS.ErrnoException) => settle(err.code === "ECONNREFUSED" ? "refused" : "reset"));
  });
}

/**
 * Tries to connect every `everyMs` until a connection is refused; resolves
 * with Date.now() at the refusal and the outcomes seen before it, or
 * undefined after `timeoutMs`.
 */
export async function waitForRefusal(port: number, timeoutMs: number, everyMs = 20): Promise<{ at: number; before: ConnectOutcome[] } | undefined> {
  const deadline = Date.now() + timeoutMs;
  const before: ConnectOutcome[] = [];
  while (Date.now() < deadline) {
    const o = await tryConnect(port);
    if (o === "refused") return { at: Date.now(), before };
    before.push(o);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return undefined;
}
