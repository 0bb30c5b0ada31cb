// A real redis-server per test (Debian's redis-server package, which `npm
// test` installs when missing: test/support/ensure-test-tools.sh), on a free
// 127.0.0.1 port with persistence off, so a test never touches a shared Redis
// and leaves nothing on disk. Tests fail, never skip, when it is not there.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterEach } from "vitest";
import { freePort } from "./free-port.js";
import { findTool, type ToolSearch } from "./prometheus.js";

/** The redis-server binary: REDIS_SERVER_PATH, else `redis-server` on the PATH, else /usr/bin/redis-server. */
export function redisServerPath(search?: ToolSearch): string {
  try {
    return findTool("redis-server", "REDIS_SERVER_PATH", search);
  } catch (err) {
    const message = (err as Error).message;
    if (message.startsWith("REDIS_SERVER_PATH=")) throw err;
    throw new Error("redis-server was not found (REDIS_SERVER_PATH, PATH, /usr/bin): install Debian's redis-server package " +
      "('apt-get install -y --no-install-recommends redis-server'; `npm test` does it when run as root), or set REDIS_SERVER_PATH");
  }
}

/**
 * A self-signed certificate for 127.0.0.1, made by openssl (which `npm test`
 * installs when missing) on first use into a temporary directory: no private
 * key lives in the repository, even a test one.
 */
let tlsDir: string | undefined;
function testTlsDir(): string {
  if (tlsDir) return tlsDir;
  const dir = mkdtempSync(join(tmpdir(), "gatewayz-redis-tls-"));
  execFileSync(findTool("openssl", "OPENSSL_PATH"), [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", "/CN=gatewayz test redis", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
  ], { stdio: "ignore" });
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  return (tlsDir = dir);
}
export const TEST_REDIS_CA = (): string => readFileSync(join(testTlsDir(), "cert.pem"), "utf8");

export interface TestRedis {
  /** redis://[:password@]127.0.0.1:port, or rediss:// with `tls` (trust TEST_REDIS_CA). */
  readonly url: string;
  readonly port: number;
  readonly pid: number | undefined;
  /** SIGTERM, then waits for the process to be gone. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would, then waits for the process to be gone. */
  kill(): Promise<void>;
  /** SIGSTOP: the socket stays open and accepts, but nothing answers (a hung Redis). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** A fresh, empty server on the same port (after stop or kill). */
  restart(): Promise<void>;
}

const running = new Set<TestRedis>();

afterEach(async () => {
  await Promise.all([...running].map((r) => r.kill()));
});

export async function startRedis(options: { requirepass?: string; tls?: boolean } = {}): Promise<TestRedis> {
  const port = await freePort();
  const binary = redisServerPath();
  const listen = options.tls
    ? ["--port", "0", "--tls-port", String(port), "--tls-cert-file", join(testTlsDir(), "cert.pem"), "--tls-key-file", join(testTlsDir(), "key.pem"),
      "--tls-auth-clients", "no"]
    : ["--port", String(port)];
  const args = [...listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
    // DEBUG SLEEP (a busy Redis) is refused unless enabled at start; "local" allows it from 127.0.0.1 only.
    "--loglevel", "warning", "--enable-debug-command", "local", ...(options.requirepass ? ["--requirepass", options.requirepass] : [])];
  let child: ChildProcess | undefined;
  let stderr = "";

  const launch = async (): Promise<void> => {
    stderr = "";
    const c = spawn(binary, args, { stdio: ["ignore", "ignore", "pipe"] });
    child = c;
    c.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    await waitForPong(port, options, c, () => stderr);
  };
  const end = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => c.once("exit", () => resolve()));
    if (signal === "SIGTERM") c.kill("SIGCONT"); // a paused server cannot act on SIGTERM
    c.kill(signal);
    await gone;
  };

  const redis: TestRedis = {
    url: `${options.tls ? "rediss" : "redis"}://${options.requirepass ? `:${encodeURIComponent(options.requirepass)}@` : ""}127.0.0.1:${port}`,
    port,
    get pid() { return child?.pid; },
    stop: () => end("SIGTERM"),
    kill: async () => { await end("SIGKILL"); running.delete(redis); },
    pause: () => { child?.kill("SIGSTOP"); },
    resume: () => { child?.kill("SIGCONT"); },
    restart: async () => { await end("SIGKILL"); running.add(redis); await launch(); },
  };
  running.add(redis);
  await launch();
  return redis;
}

/** Polls PING (with AUTH when there is a password) over a raw socket until +PONG, or fails with the server's stderr. */
type PingOptions = { requirepass?: string; tls?: boolean };

async function waitForPong(port: number, options: PingOptions, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: ${stderr()}`);
    if (await ping(port, options)) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not answer PING on port ${port} within 10 s: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function ping(port: number, { requirepass: password, tls: secure }: PingOptions): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = secure
      ? tls.connect({ port, host: "127.0.0.1", ca: TEST_REDIS_CA() })
      : net.connect(port, "127.0.0.1");
    let reply = "";
    const done = (ok: boolean) => { socket.destroy(); resolve(ok); };
    socket.setTimeout(500, () => done(false));
    socket.on("error", () => done(false));
    socket.on(secure ? "secureConnect" : "connect", () => socket.write((password ? `AUTH ${password}\r\n` : "") + "PING\r\n"));
    socket.on("data", (d) => {
      reply += d.toString();
      if (reply.includes("+PONG")) done(true);
      else if (reply.includes("-")) done(false);
    });
  });
}
