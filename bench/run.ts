// `npm run bench -- [--quick] [--paths ...] [--concurrency ...] [--seconds S] [--against REF]`: the
// gateway's overhead, throughput, streaming latency, CPU and memory against a fake upstream, each
// load measured straight to the upstream and through the gateway, interleaved; with --against, this
// tree's gateway against another commit's too (bench/against.ts). See bench/RESULTS.md.
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AGAINST_PLAN, compareAgainst, type AgainstRun } from "./against.js";
import { againstMarkdown, againstRows, writeAgainst, writeSection } from "./against-report.js";
import { CACHE_SECTION, cacheMarkdown, compareCache } from "./cache-compare.js";
import { REPLICAS_SECTION, compareReplicas, replicasMarkdown } from "./replicas-compare.js";
import type { Profile } from "./fake-upstream.js";
import { measure as measureRun } from "./measure.js";
import { USAGE, parseOptions } from "./options.js";
import { PATH_TITLES, paths, type Part, type PathId } from "./paths.js";
import { cpuMeter, quiesce, vmMiB } from "./process-stats.js";
import { createKey, ensureBuilt, installCleanup, startFake, startGateway, type Fake, type Gateway, type GatewayEnv } from "./processes.js";
import { AGAINST_SECTION, git, machine, median, render, summarize, write, type ProfileRun, type RunRecord } from "./report.js";
import { section, spliceSection } from "./sections.js";
import { sleep } from "./stats.js";

/** Warm-up per path part, through the gateway, at the largest concurrency: a few llm requests at least. */
const WARMUP_S: Record<Profile, number> = { zero: 0.5, llm: 1, fast: 0.5, slow: 3 };
/** V8 flags for the memory-capped run: a 4 MiB young generation and a 96 MiB old one. */
const MEMORY_CAP = "--max-semi-space-size=4 --max-old-space-size=96";
/** How long the idle gateway's CPU use is measured, after the warm-up. */
const IDLE_MS = 2000;

installCleanup();
const argv = process.argv.slice(2);
const opts = (() => {
  try {
    return parseOptions(argv);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
})();
const began = performance.now();

// Each run is followed by a short settle; the whole thing is bounded by a watchdog.
const runsPerProfile = opts.rounds * (opts.concurrency.length + (opts.workers > 1 ? 1 : 0)) *
  opts.paths.reduce((n, p) => n + (p === "shim-stream" ? 4 : 2), 0) + (opts.recording ? opts.rounds * 2 : 0) + (opts.metrics ? opts.rounds * 2 : 0) + (opts.cache ? opts.rounds * 4 : 0);
// --against: two runs per path and round of its plan, a warm-up per path and gateway, and the ref's build.
const againstRuns = opts.against ? opts.rounds * 2 * AGAINST_PLAN.filter((s) => opts.profiles.includes(s.profile))
  .reduce((n, s) => n + s.paths.filter((p) => opts.paths.includes(p)).length, 0) : 0;
const againstS = opts.against ? againstRuns * (opts.seconds + 0.5) + (againstRuns / opts.rounds) * 1.5 + 15 : 0;
// The replicated profile: four single-gateway runs, one pair run and a run's length of Redis round trips a round,
// two warm-ups (the local gateway, then the pair), and starting three gateways and Redis.
const withReplicas = opts.onlyReplicas || (opts.replicas && !opts.onlyCache && !opts.onlyAgainst);
const replicasRuns = withReplicas ? opts.rounds * 5 : 0;
const replicasS = withReplicas ? opts.rounds * (5 * (opts.seconds + 0.5) + opts.seconds) + 2 * Math.max(1, WARMUP_S.zero) + 10 : 0;
const mainRuns = opts.onlyCache ? opts.rounds * 4 : opts.onlyAgainst || opts.onlyReplicas ? 0 : opts.profiles.length * runsPerProfile;
const estimateS = opts.onlyReplicas ? replicasS : (opts.onlyCache ? mainRuns * (opts.seconds + 0.5) + 10 : opts.onlyAgainst ? 5 : opts.profiles.length * (runsPerProfile * (opts.seconds + 0.3) + opts.paths.length * 1.5 * 1 + 2 + IDLE_MS / 1000) + opts.coldStarts + 5) + againstS + replicasS;
process.stderr.write(`bench: ${mainRuns + againstRuns + replicasRuns} runs of ${opts.seconds} s, about ${(estimateS / 60).toFixed(1)} min\n`);
setTimeout(() => {
  process.stderr.write(`bench: watchdog: still running after ${Math.round(estimateS * 2 + 120)} s, giving up\n`);
  process.exit(1); // the exit handler kills the children
}, (estimateS * 2 + 120) * 1000).unref();

ensureBuilt();
const commit = git(); // what is measured: the tree as it is when the run starts
const tmp = mkdtempSync(join(tmpdir(), "gatewayz-bench-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
const env: GatewayEnv = { dbPath: join(tmp, "gatewayz.db"), fakePort: 0, envFile: join(tmp, "none.env") };
const key = createKey(env.dbPath);
const fake = await startFake();
env.fakePort = fake.port;
const npm = process.env.npm_lifecycle_event === "bench";
// Arguments with spaces quoted, so that the command can be pasted back (--against-label "Hardening cost").
const command = ((npm ? "npm run bench" + (argv.length ? " -- " : "") : "tsx bench/run.ts ") + argv.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" ")).trim();

/** The --against comparison and its section of RESULTS.md. */
async function against(ref: string): Promise<{ run: AgainstRun; markdown: string }> {
  const start = performance.now();
  const run = await compareAgainst({ ref, fake, tmp, rounds: opts.rounds, seconds: opts.seconds, paths: opts.paths, profiles: opts.profiles, warmupS: WARMUP_S });
  const markdown = againstMarkdown({
    date: new Date().toISOString(), machine: machine(), commit, command, label: opts.againstLabel,
    rounds: opts.rounds, seconds: opts.seconds, elapsedS: (performance.now() - start) / 1000,
  }, run, againstRows(run.records));
  return { run, markdown };
}

/** The cache profile at c=64 (or the largest concurrency below it), and its section of RESULTS.md. */
const cacheConcurrency = Math.max(...opts.concurrency.filter((c) => c <= 64), Math.min(...opts.concurrency));
async function cacheProfile(): Promise<{ records: RunRecord[]; markdown: string }> {
  const records = await compareCache({ fake, env, key, rounds: opts.rounds, seconds: opts.seconds, concurrency: cacheConcurrency, warmupS: WARMUP_S });
  const markdown = cacheMarkdown(records, { date: new Date().toISOString(), commit, command, concurrency: cacheConcurrency, rounds: opts.rounds, seconds: opts.seconds });
  return { records, markdown };
}

/** The replicated profile, and its section of RESULTS.md. */
async function replicasProfile(): Promise<{ run: Awaited<ReturnType<typeof compareReplicas>>; markdown: string }> {
  const run = await compareReplicas({ fake, env, key, rounds: opts.rounds, seconds: opts.seconds, warmupS: Math.max(1, WARMUP_S.zero) });
  return { run, markdown: replicasMarkdown(run, { date: new Date().toISOString(), commit, command, rounds: opts.rounds, seconds: opts.seconds }) };
}

/** A profile run alone (--only-replicas, --only-cache): its own section of RESULTS.md, then exit. */
async function alone(name: string, prefix: string, profile: { markdown: string; json: unknown }): Promise<never> {
  await fake.stop();
  const files = writeSection(name, prefix, profile.markdown, { command, commit, ...(profile.json as object) });
  process.stdout.write(`\n${profile.markdown}\nWrote its section of ${files.md}, and ${files.json}\n`);
  process.exit(0);
}
if (opts.onlyReplicas) {
  const { run, markdown } = await replicasProfile();
  await alone(REPLICAS_SECTION, "replicas", { markdown, json: { run } });
}
if (opts.onlyCache) {
  const { records, markdown } = await cacheProfile();
  await alone(CACHE_SECTION, "cache", { markdown, json: { records } });
}

if (opts.onlyAgainst) {
  const { run, markdown } = await against(opts.against!);
  await fake.stop();
  const files = writeAgainst(markdown, { command, commit, run });
  process.stdout.write(`\n${markdown}\nWrote its section of ${files.md}, and ${files.json}\n`);
  process.exit(0);
}

// Cold starts: fresh processes on the same database, zero profile.
await fake.setProfile("zero");
const coldStartsMs: number[] = [];
for (let i = 0; i < opts.coldStarts; i++) {
  const g = await startGateway(env, key);
  coldStartsMs.push(g.coldStartMs);
  await g.stop();
}
process.stderr.write(`bench: cold start ${coldStartsMs.map((x) => x.toFixed(0)).join(", ")} ms (median ${median(coldStartsMs).toFixed(0)})\n`);

function usageRows(): Record<string, number> {
  const db = new Database(env.dbPath, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare("SELECT protocol || ' ' || status AS k, COUNT(*) AS n FROM usage GROUP BY k ORDER BY k").all() as { k: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.k, r.n]));
  } finally {
    db.close();
  }
}

const records: RunRecord[] = [];

const measure = (profile: Profile, round: number, path: PathId, part: Part, side: "direct" | "gateway",
  concurrency: number, gw: Gateway, f: Fake, variant = "") =>
  measureRun({ profile, round, path, part, side, concurrency, seconds: opts.seconds, gw, fake: f, variant });

const profileRuns: ProfileRun[] = [];
for (const profile of opts.profiles) {
  await fake.setProfile(profile);
  const gw = await startGateway(env, key);
  const rowsBefore = usageRows();
  const all = paths({ fake: `http://127.0.0.1:${fake.port}`, gateway: `http://127.0.0.1:${gw.port}`, gatewayPort: gw.port, key });
  process.stderr.write(`bench: profile ${profile}: gateway pid ${gw.pid} on port ${gw.port}, warming up\n`);
  // JIT, and the gateway's upstream connection pool grown to the largest concurrency.
  for (const path of opts.paths) for (const part of all[path]) await part.gateway(Math.max(...opts.concurrency), WARMUP_S[profile]);
  await quiesce(gw.pid);
  const idle = cpuMeter(gw.pid);
  await sleep(IDLE_MS);
  const idleCpuMsPerS = idle().us / IDLE_MS;

  let sampled = { mib: 0, run: "" };
  for (let round = 1; round <= opts.rounds; round++) {
    for (const c of opts.concurrency) {
      for (const path of opts.paths) {
        for (const part of all[path]) {
          for (const side of ["direct", "gateway"] as const) {
            const rec = await measure(profile, round, path, part, side, c, gw, fake);
            records.push(rec);
            if ((rec.gatewayRssMaxMiB ?? 0) > sampled.mib) sampled = { mib: rec.gatewayRssMaxMiB!, run: `${PATH_TITLES[path]}, c=${c}, round ${round}` };
          }
        }
      }
    }
  }
  const after = usageRows();
  const written = Object.fromEntries(Object.entries(after).map(([k, n]) => [k, n - (rowsBefore[k] ?? 0)]).filter(([, n]) => (n as number) > 0));
  profileRuns.push({ profile, idleCpuMsPerS, peakRssMiB: vmMiB(gw.pid, "VmHWM"), sampledRssMaxMiB: sampled.mib, sampledRssRun: sampled.run, usageRows: written });
  await gw.stop();
}

// WORKERS=N: the llm profile (and zero) at the largest concurrency, direct vs gateway as above.
const top = Math.max(...opts.concurrency);
if (opts.workers > 1) {
  const variant = `workers=${opts.workers}`;
  for (const profile of opts.profiles) {
    await fake.setProfile(profile);
    const gw = await startGateway(env, key, { env: { WORKERS: String(opts.workers) } });
    const all = paths({ fake: `http://127.0.0.1:${fake.port}`, gateway: `http://127.0.0.1:${gw.port}`, gatewayPort: gw.port, key });
    process.stderr.write(`bench: ${variant}, profile ${profile}: gateway pid ${gw.pid}, warming up\n`);
    for (const path of opts.paths) for (const part of all[path]) await part.gateway(top, WARMUP_S[profile]);
    await quiesce(gw.pid);
    for (let round = 1; round <= opts.rounds; round++) {
      for (const path of opts.paths) {
        for (const part of all[path]) {
          for (const side of ["direct", "gateway"] as const) records.push(await measure(profile, round, path, part, side, top, gw, fake, variant));
        }
      }
    }
    await gw.stop();
  }
}

// Memory: the same gateway with V8's heap capped (NODE_OPTIONS), every path at the largest concurrency.
const memoryRuns: Array<{ profile: Profile; options: string; peakRssMiB: number; rps: Record<string, number> }> = [];
if (opts.memoryCap) {
  for (const profile of opts.profiles) {
    await fake.setProfile(profile);
    const gw = await startGateway(env, key, { nodeArgs: MEMORY_CAP.split(" ") });
    const all = paths({ fake: `http://127.0.0.1:${fake.port}`, gateway: `http://127.0.0.1:${gw.port}`, gatewayPort: gw.port, key });
    const rps: Record<string, number> = {};
    for (const path of opts.paths) {
      const r = await all[path][0]!.gateway(top, opts.seconds);
      rps[path] = r.rps;
      await quiesce(gw.pid);
    }
    memoryRuns.push({ profile, options: MEMORY_CAP, peakRssMiB: vmMiB(gw.pid, "VmHWM"), rps });
    process.stderr.write(`bench: ${MEMORY_CAP}, profile ${profile}: peak RSS ${vmMiB(gw.pid, "VmHWM").toFixed(1)} MiB\n`);
    await gw.stop();
  }
}

/**
 * A feature on vs off (`what` on / `what` off): two gateways on the same
 * database, the second started with `offEnv`, the same shim load through
 * each, interleaved, at 16 and the largest concurrency.
 */
async function compareOnOff(what: string, offEnv: Record<string, string>): Promise<void> {
  await fake.setProfile("zero");
  const on = await startGateway(env, key);
  const off = await startGateway(env, key, { env: offEnv });
  const part = (gw: Gateway) => paths({ fake: `http://127.0.0.1:${fake.port}`, gateway: `http://127.0.0.1:${gw.port}`, gatewayPort: gw.port, key }).shim[0]!;
  const levels = [...new Set([Math.min(16, top), top])];
  for (const gw of [on, off]) await part(gw).gateway(top, WARMUP_S.zero);
  for (let round = 1; round <= opts.rounds; round++) {
    for (const c of levels) {
      // Alternating which goes first, so a drift in the machine's load favours neither.
      const pair = [[`${what} on`, on], [`${what} off`, off]] as const;
      for (const [variant, gw] of round % 2 ? pair : [...pair].reverse()) {
        records.push(await measure("zero", round, "shim", part(gw), "gateway", c, gw, fake, variant));
      }
    }
  }
  await on.stop();
  await off.stop();
}
// Usage recording, then the Prometheus metrics (issue 10: at most 3% of throughput).
if (opts.recording) await compareOnOff("recording", { USAGE_RECORDING: "off" });
if (opts.metrics) await compareOnOff("metrics", { METRICS: "off" });
const cached = opts.cache ? await cacheProfile() : undefined;
if (cached) records.push(...cached.records);
const replicated = opts.replicas ? await replicasProfile() : undefined;
const compared = opts.against ? await against(opts.against) : undefined;
await fake.stop();

const meta = {
  date: new Date().toISOString(),
  machine: machine(),
  commit,
  command,
  options: opts,
  coldStartsMs,
  memoryRuns,
  elapsedS: (performance.now() - began) / 1000,
};
const rows = summarize(records.filter((r) => !/^(recording|metrics|cache) /.test(r.variant)));
const rendered = render(meta, rows, profileRuns, records);
let doc = compared ? spliceSection(rendered.doc, AGAINST_SECTION, section(AGAINST_SECTION, compared.markdown)) : rendered.doc;
if (cached) doc = spliceSection(doc, CACHE_SECTION, section(CACHE_SECTION, cached.markdown));
if (replicated) doc = spliceSection(doc, REPLICAS_SECTION, section(REPLICAS_SECTION, replicated.markdown));
const files = write(doc, { meta, profiles: profileRuns, rows, records, ...(compared ? { against: compared.run } : {}) });
process.stdout.write(`\n${rendered.summary}${cached ? `\n${cached.markdown}\n` : ""}${replicated ? `\n${replicated.markdown}\n` : ""}${compared ? `\n${compared.markdown}` : ""}\nWrote ${files.md} and ${files.json}\n`);
const failed = rows.filter((r) => r.direct.errors || r.gateway.errors);
for (const r of failed) process.stderr.write(`bench: errors in ${r.profile} ${PATH_TITLES[r.path]} c=${r.concurrency}: direct ${r.direct.errors}, gateway ${r.gateway.errors}\n`);
process.exit(0);
