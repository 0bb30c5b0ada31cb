// `npx tsx bench/floor.ts [zero|llm]`: CPU per request of bench/floor-proxy.ts (a bare Node.js
// proxy) under the shim's non-streaming and streaming loads. What the
// gateway's CPU per request should be read against (see bench/RESULTS.md).
import { fork } from "node:child_process";
import { join } from "node:path";
import { autocannonRun } from "./load-http.js";
import { MESSAGES } from "./paths.js";
import { cpuMeter } from "./process-stats.js";
import { installCleanup, startFake } from "./processes.js";
import { sleep } from "./stats.js";

installCleanup();
const ROOT = new URL("..", import.meta.url).pathname;
const profile = (process.argv[2] ?? "zero") as "zero" | "llm";
const levels = profile === "llm" ? [256] : [1, 16, 256];
const fake = await startFake();
await fake.setProfile(profile);
const child = fork(join(ROOT, "bench/floor-proxy.ts"), [], {
  cwd: ROOT, execArgv: ["--import", "tsx"], env: { ...process.env, UPSTREAM: `http://127.0.0.1:${fake.port}` },
});
const port = await new Promise<number>((resolve) => child.once("message", (m: { port: number }) => resolve(m.port)));
const bodies = {
  "non-streaming": JSON.stringify({ model: "qwen-max", messages: MESSAGES }),
  streaming: JSON.stringify({ model: "qwen-max", messages: MESSAGES, stream: true, stream_options: { include_usage: true } }),
};
for (const [name, body] of Object.entries(bodies)) {
  for (const c of levels) {
    const t = { origin: `http://127.0.0.1:${port}`, path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body };
    await autocannonRun(t, c, 1); // warm-up
    const cpu = cpuMeter(child.pid!);
    const r = await autocannonRun(t, c, 2.5);
    const us = cpu().us;
    process.stdout.write(`floor proxy, ${profile}, ${name}, c=${c}: ${Math.round(r.rps)} req/s, p50 ${r.p50.toFixed(3)} ms, CPU ${Math.round(us / (r.rps * r.seconds))} µs/req\n`);
    await sleep(100);
  }
}
child.kill();
await fake.stop();
