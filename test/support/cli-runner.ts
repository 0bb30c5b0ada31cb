// The gatewayz CLI as a child process, for tests that drive it on a gateway's database: a clean
// environment (no .env file, no DATABASE_PATH or DATABASE_URL), the exit code and both streams.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { ROOT } from "./node-child.js";

const run = promisify(execFile);

export interface CliResult { code: number; stdout: string; stderr: string }

/** `entry`: the CLI's script (a bundle from gateway-bundle.ts, so each run skips the TypeScript loader). */
export function cliRunner(entry: () => string) {
  const gatewayz = async (args: readonly string[]): Promise<CliResult> => {
    const { DATABASE_PATH: _db, DATABASE_URL: _url, ...inherited } = process.env;
    const options = { cwd: ROOT, env: { ...inherited, ENV_FILE: "/nonexistent/.env" } };
    try {
      const { stdout, stderr } = await run(process.execPath, [entry(), ...args], options);
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: unknown; stdout?: string; stderr?: string };
      if (typeof e.code !== "number") throw err;
      return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
    }
  };
  /** The CLI on database `db` (a SQLite file). */
  const onDb = (db: string) => (...args: string[]) => gatewayz(["--db", db, ...args]);
  /** `--json` runs parse stdout as one document, and must succeed. */
  const json = async (db: string, ...args: string[]): Promise<any> => {
    const r = await onDb(db)(...args, "--json");
    if (r.code !== 0) throw new Error(`gatewayz ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  return { gatewayz, onDb, json };
}
