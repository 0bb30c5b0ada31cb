// A real redis-server for the replicated profile (Debian's redis-server package, as the tests
// use): a free 127.0.0.1 port, persistence off, killed with the benchmark's other children.
import { existsSync } from "node:fs";
import { spawn } from "node:child_process";
import net from "node:net";
import { freePort } from "../test/support/free-port.js";
import { track } from "./processes.js";

export interface BenchRedis {
  readonly url: string;
  stop(): Promise<void>;
}

export async function startBenchRedis(): Promise<BenchRedis> {
  const binary = process.env.REDIS_SERVER_PATH ?? (existsSync("/usr/bin/redis-server") ? "/usr/bin/redis-server" : "redis-server");
  const port = await freePort();
  // No snapshots and no append-only file: a throwaway server whose disk writes would only add noise.
  const child = track(spawn(binary, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"], {
    stdio: ["ignore", "pipe", "pipe"],
  }));
  // Its last words, for the error when it exits at once (a port taken meanwhile, a bad option).
  let tail = "";
  const keep = (b: Buffer) => { tail = (tail + b.toString()).slice(-2000); };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const failed = new Promise<never>((_, reject) => {
    child.once("error", (err) => reject(new Error(`${binary} could not start (${err.message}): the replicated profile needs a redis-server ` +
      "(Debian: apt-get install redis-server; or set REDIS_SERVER_PATH), or run the bench with --no-replicas")));
    child.once("exit", (code, signal) => reject(new Error(`redis-server exited with ${code ?? signal} before listening:\n${tail}`)));
  });
  const deadline = performance.now() + 5000;
  for (;;) {
    const up = await Promise.race([failed, new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => { socket.destroy(); resolve(true); });
      socket.once("error", () => resolve(false));
    })]);
    if (up) break;
    if (performance.now() > deadline) throw new Error("redis-server did not listen within 5 s");
    await new Promise((r) => setTimeout(r, 20));
  }
  failed.catch(() => {});
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    }),
  };
}
