// A real PostgreSQL server for the replicated profile (Debian's postgresql package, as the tests
// use; test/support/postgres.ts, which bench/ does not import: it registers vitest hooks). A fresh
// cluster made by initdb in a temporary directory, on a free 127.0.0.1 port, its socket in that
// directory; as root the cluster belongs to, and the server runs as, the `postgres` user
// (PostgreSQL refuses to run as root). Durability is PostgreSQL's default (fsync, synchronous_commit
// and full_page_writes on), unlike the tests' cluster: the profile compares the usage writes with
// SQLite's, and a commit's flush is part of their cost. BENCH_PG_SETTINGS ("name=value,...") adds
// settings for a run that wants to see what they change; the section of RESULTS.md names the ones
// in force either way. Stopped (and its directory removed) by stop(), or killed with the
// benchmark's other children when it exits early.
import { execFile } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { freePort } from "../test/support/free-port.js";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Where Debian puts a version's programs; the newest version found wins. */
const DEBIAN_ROOT = "/usr/lib/postgresql";

/** The settings the profile reads back from the server and reports. */
export const REPORTED_SETTINGS = ["server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers", "commit_delay"] as const;

export interface BenchPostgres {
  /** postgres://postgres@127.0.0.1:port/postgres (trust authentication: the server listens on loopback only). */
  readonly url: string;
  /** The postmaster's pid: the server's CPU is its tree's (the backends are its children). */
  readonly pid: number;
  /** The `-c` settings given on the command line, beyond PostgreSQL's defaults. */
  readonly settings: readonly string[];
  stop(): Promise<void>;
}

/** The directory holding initdb and pg_ctl: PG_BIN_DIR, else Debian's newest /usr/lib/postgresql/<version>/bin. */
export function postgresBinDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.PG_BIN_DIR;
  if (override) {
    if (!existsSync(join(override, "initdb")) || !existsSync(join(override, "pg_ctl"))) throw new Error(`PG_BIN_DIR=${override} holds no initdb and pg_ctl`);
    return override;
  }
  const versions = existsSync(DEBIAN_ROOT)
    ? readdirSync(DEBIAN_ROOT).filter((v) => existsSync(join(DEBIAN_ROOT, v, "bin", "initdb"))).sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error("PostgreSQL was not found (PG_BIN_DIR, /usr/lib/postgresql/<version>/bin): the replicated profile needs it " +
      "(Debian: apt-get install -y --no-install-recommends postgresql; or set PG_BIN_DIR), or run the bench with --no-replicas");
  }
  return join(DEBIAN_ROOT, versions[0]!, "bin");
}

const root = () => userInfo().uid === 0;

/** Runs a PostgreSQL program, as the postgres user when this process is root. */
function asOwner(program: string, args: string[]): Promise<unknown> {
  return root() ? run("runuser", ["-u", "postgres", "--", program, ...args]) : run(program, args);
}

async function ownerOf(user: string): Promise<{ uid: number; gid: number }> {
  const [{ stdout: uid }, { stdout: gid }] = await Promise.all([run("id", ["-u", user]), run("id", ["-g", user])]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/** Extra settings from BENCH_PG_SETTINGS, "name=value,name=value". */
function extraSettings(): string[] {
  const raw = process.env.BENCH_PG_SETTINGS ?? "";
  const items = raw.split(",").map((s) => s.trim()).filter(Boolean);
  for (const s of items) if (!/^[a-z_.]+=[\w.-]+$/i.test(s)) throw new Error(`BENCH_PG_SETTINGS: "${s}" is not name=value`);
  return items;
}

export async function startBenchPostgres(): Promise<BenchPostgres> {
  const bin = postgresBinDir();
  const dir = mkdtempSync(join(tmpdir(), "gatewayz-bench-pg-"));
  const data = join(dir, "data");
  const remove = () => rmSync(dir, { recursive: true, force: true });
  // However the benchmark ends: the server killed (it is not our child: pg_ctl daemonises it), the directory removed.
  let pid = 0;
  const onExit = () => {
    if (pid) try { process.kill(pid, "SIGQUIT"); } catch { /* gone */ }
    remove();
  };
  process.on("exit", onExit);
  const settings = ["listen_addresses=127.0.0.1", ...extraSettings()];
  const port = await freePort();
  const options = [`-p ${port}`, `-k ${dir}`, ...settings.map((s) => `-c ${s}`)].join(" ");
  const pgCtl = (args: string[]) => asOwner(join(bin, "pg_ctl"), ["-D", data, ...args]);
  try {
    if (root()) {
      const { uid, gid } = await ownerOf("postgres");
      chownSync(dir, uid, gid);
    }
    // --no-sync: initdb's own files are not flushed (a throwaway cluster); the server's writes are.
    await asOwner(join(bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]);
    await pgCtl(["-l", join(dir, "log"), "-o", options, "-w", "-t", "30", "start"]);
    // The first line of postmaster.pid is the server's pid.
    pid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
  } catch (err) {
    const log = (() => { try { return readFileSync(join(dir, "log"), "utf8").slice(-2000); } catch { return ""; } })();
    process.off("exit", onExit);
    remove();
    throw new Error(`PostgreSQL did not start: ${(err as { stderr?: string }).stderr || (err as Error).message}${log ? `\n${log}` : ""}\n` +
      "(the replicated profile needs it: apt-get install -y --no-install-recommends postgresql, or run the bench with --no-replicas)");
  }
  let stopped = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    pid,
    settings,
    async stop() {
      if (stopped) return;
      stopped = true;
      await pgCtl(["-m", "fast", "-w", "-t", "30", "stop"]).catch(() => {});
      process.off("exit", onExit);
      remove();
    },
  };
}
