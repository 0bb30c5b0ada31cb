// `npm run bench:profile -- [--path shim] [--concurrency 16] [--seconds 5] [--profile zero] [--top 30]`:
// runs one load through a gateway started with `node --cpu-prof`, then prints where its CPU
// time went: self time by package / module, and the hottest functions. The .cpuprofile file
// is kept under bench/out/ for Chrome DevTools or speedscope.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Profile } from "./fake-upstream.js";
import { PATH_IDS, paths, type PathId } from "./paths.js";
import { createKey, ensureBuilt, installCleanup, startFake, startGateway, type GatewayEnv } from "./processes.js";

interface CpuNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }
interface CpuProfile { nodes: CpuNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

const { values } = parseArgs({
  options: {
    path: { type: "string", default: "shim" },
    concurrency: { type: "string", default: "16" },
    seconds: { type: "string", default: "5" },
    profile: { type: "string", default: "zero" },
    top: { type: "string", default: "30" },
    env: { type: "string", multiple: true, default: [] },
    // Every shim request different from the others (with CACHE=on, every one a miss).
    distinct: { type: "boolean", default: false },
  },
});
const path = values.path as PathId;
if (!PATH_IDS.includes(path)) throw new Error(`--path: one of ${PATH_IDS.join(", ")}`);

/** Where a frame's code lives: an npm package, a node: module, our own file, or V8 itself. */
function owner(url: string, fn: string): string {
  if (!url) return fn.startsWith("(") ? fn : "(native)";
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + 13).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith("node:")) return url.replace(/^node:(internal\/)?/, "node:").split("/").slice(0, 2).join("/");
  const i = url.indexOf("/dist/");
  return i >= 0 ? url.slice(i + 6) : url;
}

installCleanup();
ensureBuilt();
const tmp = mkdtempSync(join(tmpdir(), "gatewayz-prof-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
const outDir = new URL("out/", import.meta.url).pathname;
mkdirSync(outDir, { recursive: true });
const env: GatewayEnv = { dbPath: join(tmp, "gatewayz.db"), fakePort: 0, envFile: join(tmp, "none.env") };
const key = createKey(env.dbPath);
const fake = await startFake();
env.fakePort = fake.port;
await fake.setProfile(values.profile as Profile);
const profDir = join(tmp, "prof");
const extraEnv = Object.fromEntries(values.env.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
const gw = await startGateway(env, key, {
  nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${profDir}`], env: extraEnv,
  // Unbundled, so that every frame keeps the file (and npm package) it came from.
  entry: "dist/src/main.js",
});
const part = paths({ fake: `http://127.0.0.1:${fake.port}`, gateway: `http://127.0.0.1:${gw.port}`, gatewayPort: gw.port, key }, { distinct: values.distinct })[path][0]!;
const c = Number(values.concurrency);
await part.gateway(c, 1); // warm-up
const r = await part.gateway(c, Number(values.seconds));
await gw.stop();
await fake.stop();
const file = readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
if (!file) throw new Error(`no profile written:\n${gw.logTail()}`);
const raw = readFileSync(join(profDir, file), "utf8");
const kept = join(outDir, `${path}-c${c}-${values.profile}${values.distinct ? "-distinct" : ""}.cpuprofile`);
writeFileSync(kept, raw);
const prof = JSON.parse(raw) as CpuProfile;

// Self time per node from the sample stream (each sample's delta is charged to its node).
const selfUs = new Map<number, number>();
for (let i = 0; i < prof.samples.length; i++) selfUs.set(prof.samples[i]!, (selfUs.get(prof.samples[i]!) ?? 0) + (prof.timeDeltas[i] ?? 0));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const byOwner = new Map<string, number>();
const byFn = new Map<string, number>();
let busy = 0;
for (const [id, us] of selfUs) {
  const n = byId.get(id)!;
  const { functionName, url, lineNumber } = n.callFrame;
  if (functionName === "(idle)") continue;
  busy += us;
  const o = owner(url, functionName);
  byOwner.set(o, (byOwner.get(o) ?? 0) + us);
  const fk = `${functionName || "(anonymous)"}  ${o}:${lineNumber + 1}`;
  byFn.set(fk, (byFn.get(fk) ?? 0) + us);
}
const requests = r.rps * r.seconds;
const line = (label: string, us: number) =>
  `${(us / busy * 100).toFixed(1).padStart(5)}%  ${(us / requests).toFixed(1).padStart(7)} µs/req  ${label}`;
const top = Number(values.top);
process.stdout.write(`${path} c=${c} ${values.profile}: ${Math.round(r.rps)} req/s over the profiled run; busy ${(busy / 1000).toFixed(0)} ms of ${((prof.endTime - prof.startTime) / 1000).toFixed(0)} ms profiled\n`);
process.stdout.write(`(µs/req divides the whole profile, warm-up included, by the measured run's requests: compare rows, not absolutes)\n\nby owner:\n`);
for (const [o, us] of [...byOwner].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(line(o, us) + "\n");
process.stdout.write(`\nhottest functions (self time):\n`);
for (const [f, us] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(line(f, us) + "\n");
process.stdout.write(`\nprofile: ${kept}\n`);
