import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net, { type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAccounts } from "../../src/core/accounts.js";
import { openDb } from "../../src/storage/db.js";
import { createKeyStore } from "../../src/storage/keys.js";
import { createLimitStore } from "../../src/storage/limits.js";
import { createUsageStore } from "../../src/storage/usage.js";
import type { FakeUpstream } from "./fake-upstream.js";
import { ROOT } from "./node-child.js";

/** `src/main.ts` running in a child process (through tsx), on a database file of its own. */
export interface GatewayProcess {
  readonly url: string;
  readonly dbPath: string;
  /** A client key created in the database before the gateway started. */
  readonly key: string;
  /** Everything the gateway wrote on stdout and stderr. */
  readonly output: () => string;
  /** SIGKILLs the gateway's whole process group (the primary and its workers) and waits for the primary's exit. */
  kill9(): Promise<void>;
  /** Removes the database directory (after kill9). */
  remove(): void;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface GatewayProcessOptions {
  /** Command-line arguments, say `["--workers", "2"]`. */
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** A bundled entry point (test/support/gateway-bundle.ts) to run instead of src/main.ts through tsx. */
  readonly entry?: string;
}

/**
 * Starts the gateway, its Alibaba Cloud upstream `fake`, on a fresh database
 * file holding one client key, and resolves once it logs that it listens. The
 * child leads a process group of its own (detached), so one signal reaches
 * its workers too.
 */
export async function startGatewayProcess(fake: FakeUpstream, options: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const { args = [], env = {}, entry } = options;
  const dir = mkdtempSync(join(tmpdir(), "gatewayz-process-"));
  const dbPath = join(dir, "gatewayz.db");
  const db = openDb(dbPath);
  let key: string;
  try {
    key = createAccounts(createKeyStore(db), createLimitStore(db), createUsageStore(db)).createKey({ user: "process", name: "process" }).key;
  } finally {
    db.close();
  }
  const port = await freePort();
  const child = spawn(process.execPath, [...(entry ? [entry] : ["--import", "tsx", "src/main.ts"]), ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? dir,
      ENV_FILE: join(dir, "missing.env"),
      HOST: "127.0.0.1",
      PORT: String(port),
      DATABASE_PATH: dbPath,
      LOG_LEVEL: "info",
      RATE_LIMITS_KEY: "rpm=0,concurrent=0",
      BREAKER_FAILURES: "1000",
      ALIBABA_CLOUD_API_KEY: fake.apiKey,
      ALIBABA_CLOUD_BASE_URL: fake.baseUrl,
      ...env,
    },
  });
  let output = "";
  child.stdout!.on("data", (c: Buffer) => (output += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const kill9 = async () => {
    killGroup(child);
    await exited;
  };
  try {
    await listening(child, () => output);
  } catch (err) {
    await kill9();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `http://127.0.0.1:${port}`, dbPath, key, output: () => output, kill9,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, "SIGKILL");
  } catch {
    // already gone
  }
}

async function listening(child: ChildProcess, output: () => string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!output().includes("Gatewayz listening")) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the gateway exited while starting:\n${output()}`);
    if (Date.now() > deadline) throw new Error(`the gateway did not listen within ${timeoutMs} ms:\n${output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
