// A real PostgreSQL server per test (Debian's postgresql package, which `npm
// test` installs when missing: test/support/ensure-test-tools.sh): a fresh
// cluster made by initdb in a temporary directory, on a free 127.0.0.1 port,
// fsync off (a test's data need not survive a power loss), torn down after
// the test. PostgreSQL refuses to run as root, so as root the cluster belongs
// to, and the server runs as, the `postgres` user. Tests fail, never skip,
// when it is not there.

import { execFile } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach } from "vitest";
import { freePort } from "./free-port.js";

const run = promisify(execFile);

/** Where Debian puts a version's programs; the newest version found wins. */
const DEBIAN_ROOT = "/usr/lib/postgresql";

/** The directory holding initdb and pg_ctl: PG_BIN_DIR, else Debian's newest /usr/lib/postgresql/<version>/bin. */
export function postgresBinDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.PG_BIN_DIR;
  if (override) {
    if (!existsSync(join(override, "initdb")) || !existsSync(join(override, "pg_ctl"))) {
      throw new Error(`PG_BIN_DIR=${override} holds no initdb and pg_ctl`);
    }
    return override;
  }
  const versions = existsSync(DEBIAN_ROOT)
    ? readdirSync(DEBIAN_ROOT).filter((v) => existsSync(join(DEBIAN_ROOT, v, "bin", "initdb"))).sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error("PostgreSQL was not found (PG_BIN_DIR, /usr/lib/postgresql/<version>/bin): install Debian's postgresql package " +
      "('apt-get install -y --no-install-recommends postgresql'; `npm test` does it when run as root), or set PG_BIN_DIR");
  }
  return join(DEBIAN_ROOT, versions[0]!, "bin");
}

export interface TestPostgres {
  /** postgres://postgres@127.0.0.1:port/postgres (trust authentication: the server listens on loopback only). */
  readonly url: string;
  readonly port: number;
  /** A fast shutdown (the server's own), then the cluster's directory is removed. */
  stop(): Promise<void>;
  /** An immediate shutdown, as a crash would leave it; the directory is removed. */
  kill(): Promise<void>;
  /** A fast shutdown (every connection is dropped), then a start on the same port with the same data. */
  restart(): Promise<void>;
  /** SIGSTOP to the server and all its backends: connections stay open, nothing answers. */
  pause(): void;
  /** SIGCONT to what pause() stopped. */
  resume(): void;
}

const running = new Set<TestPostgres>();

afterEach(async () => {
  await Promise.all([...running].map((p) => p.kill()));
});

/** Runs a PostgreSQL program, as the postgres user when this process is root. */
function asOwner(program: string, args: string[]): Promise<unknown> {
  const root = userInfo().uid === 0;
  return root ? run("runuser", ["-u", "postgres", "--", program, ...args]) : run(program, args);
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = postgresBinDir();
  const dir = mkdtempSync(join(tmpdir(), "gatewayz-pg-"));
  if (userInfo().uid === 0) {
    const { uid, gid } = await ownerOf("postgres");
    chownSync(dir, uid, gid);
  }
  const data = join(dir, "data");
  const port = await freePort();
  let stopped = false;
  let paused: number[] = [];
  // The socket goes in the cluster's own directory, not /var/run/postgresql, which may not exist.
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  const pgCtl = (args: string[]) => asOwner(join(bin, "pg_ctl"), ["-D", data, ...args]);
  const start = () => pgCtl(["-l", join(dir, "log"), "-o", options, "-w", "-t", "30", "start"]);
  const resume = () => {
    for (const pid of paused) process.kill(pid, "SIGCONT");
    paused = [];
  };
  const shut = async (mode: "fast" | "immediate") => {
    if (stopped) return;
    stopped = true;
    running.delete(server);
    resume();
    await pgCtl(["-m", mode, "-w", "stop"]).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
  const server: TestPostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    stop: () => shut("fast"),
    kill: () => shut("immediate"),
    async restart() {
      resume();
      await pgCtl(["-m", "fast", "-w", "stop"]);
      await start();
    },
    pause() {
      // The first line of postmaster.pid is the server's pid; backends are its
      // children, listed once it is stopped so that it forks no more.
      const main = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
      process.kill(main, "SIGSTOP");
      paused = [main, ...childrenOf(main)];
      for (const pid of paused.slice(1)) process.kill(pid, "SIGSTOP");
    },
    resume,
  };
  try {
    await asOwner(join(bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]);
    await start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`PostgreSQL did not start: ${(err as { stderr?: string }).stderr || (err as Error).message}`);
  }
  running.add(server);
  return server;
}

async function ownerOf(user: string): Promise<{ uid: number; gid: number }> {
  const [{ stdout: uid }, { stdout: gid }] = await Promise.all([run("id", ["-u", user]), run("id", ["-g", user])]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/** The pids whose parent is `pid`, from /proc (field 4 of stat, after the parenthesised name). */
function childrenOf(pid: number): number[] {
  return readdirSync("/proc").filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid;
    } catch {
      return false; // ended while we looked
    }
  }).map(Number);
}
