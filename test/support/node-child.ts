import { spawn } from "node:child_process";
import { join } from "node:path";

export const ROOT = join(import.meta.dirname, "../..");

export interface ChildExit { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/**
 * Runs a TypeScript entry point in its own Node process (through tsx), with no
 * .env leaking in, and resolves when it has ended. Asynchronous, so a gateway
 * in the test's own process keeps serving meanwhile.
 */
export function runTsx(args: string[]): Promise<ChildExit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", ...args], {
      cwd: ROOT,
      env: { ...process.env, ENV_FILE: "/nonexistent/.env" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
