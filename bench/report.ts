// Turns the runs into per-profile tables, bench/RESULTS.md and bench/out/results-<timestamp>.json.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import type { Profile } from "./fake-upstream.js";
import type { Options } from "./options.js";
import { PATH_TITLES, type PathId } from "./paths.js";
import { findSection, spliceSection } from "./sections.js";
import type { LoadResult } from "./stats.js";

/** The name of the --against comparison's section in RESULTS.md (bench/against-report.ts writes it). */
export const AGAINST_SECTION = "against";

const ROOT = new URL("..", import.meta.url).pathname;

/** One run: one part of one path, one side, one concurrency, one round. */
export interface RunRecord extends LoadResult {
  /** "" for the main runs; "workers=N", "recording on"/"recording off" or "metrics on"/"metrics off" for the comparisons. */
  variant: string;
  profile: Profile;
  round: number;
  path: PathId;
  part: "load" | "ttfb";
  side: "direct" | "gateway";
  /** Gateway CPU over the whole run (ramp-up included). */
  gatewayCpuUs: number;
  gatewayCpuTicks: number;
  /** Gateway CPU over the window (windowFrom..windowTo), interpolated between 100 ms reads. */
  gatewayWindowCpuUs: number;
  gatewayWindowTicks: number;
  /** The CPU rate over the window / rps. */
  gatewayCpuUsPerRequest: number;
  /** Gateway CPU after the run until it was idle again (requests cancelled at the end). */
  gatewayAfterCpuUs: number;
  fakeCpuUs: number;
  loadgenCpuUs: number;
  /** The machine's busy CPU over the run less the gateway's, the fake's and the load generator's (absent in older JSON). */
  otherCpuUs?: number;
  /** Largest VmRSS sampled during the run (gateway side only). */
  gatewayRssMaxMiB?: number;
}

export interface ProfileRun {
  profile: Profile;
  /** The gateway's CPU use while idle (after the warm-up, before the runs), ms per s. */
  idleCpuMsPerS: number;
  /** VmHWM of that profile's gateway process at its end: peak RSS since it started. */
  peakRssMiB: number;
  /** Largest VmRSS sampled during any run, and the run it was in. */
  sampledRssMaxMiB: number;
  sampledRssRun: string;
  /** Usage rows the gateway wrote during the profile, by status. */
  usageRows: Record<string, number>;
}

export interface Meta {
  date: string;
  machine: { cpus: number; cpuModel: string; memGiB: number; node: string };
  commit: string;
  command: string;
  options: Options;
  coldStartsMs: number[];
  /** Peak RSS of a gateway run with V8's heap capped (NODE_OPTIONS), per profile. */
  memoryRuns: Array<{ profile: Profile; options: string; peakRssMiB: number; rps: Record<string, number> }>;
  elapsedS: number;
}

interface SideSummary { rps: number; p50: number; p99: number; ttfbP50?: number; ttfbP99?: number; requests: number; errors: number }
export interface Row {
  variant: string;
  profile: Profile;
  path: PathId;
  concurrency: number;
  direct: SideSummary;
  gateway: SideSummary;
  ratio: number;
  addedP50: number;
  addedP99: number;
  cpuUsPerRequest: number;
  cpuTicks: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function side(recs: RunRecord[]): SideSummary {
  const load = recs.filter((r) => r.part === "load");
  const probe = recs.some((r) => r.part === "ttfb") ? recs.filter((r) => r.part === "ttfb") : load;
  const ttfb = probe.filter((r) => r.ttfbP50 !== undefined);
  return {
    rps: mean(load.map((r) => r.rps)),
    p50: mean(load.map((r) => r.p50)),
    p99: mean(load.map((r) => r.p99)),
    ...(ttfb.length ? { ttfbP50: mean(ttfb.map((r) => r.ttfbP50!)), ttfbP99: mean(ttfb.map((r) => r.ttfbP99!)) } : {}),
    requests: sum(recs.map((r) => r.requests)),
    errors: sum(recs.map((r) => r.errors)),
  };
}

/** Rounds averaged: rates and percentiles are the mean of the rounds' values. */
export function summarize(records: RunRecord[]): Row[] {
  const rows: Row[] = [];
  const key = (r: RunRecord) => `${r.variant}|${r.profile}|${r.path}|${r.concurrency}`;
  const keys = new Set(records.map(key));
  for (const k of keys) {
    const recs = records.filter((r) => key(r) === k);
    const d = side(recs.filter((r) => r.side === "direct"));
    const gwRecs = recs.filter((r) => r.side === "gateway");
    const g = side(gwRecs);
    rows.push({
      variant: recs[0]!.variant,
      profile: recs[0]!.profile, path: recs[0]!.path, concurrency: recs[0]!.concurrency,
      direct: d, gateway: g, ratio: g.rps / d.rps, addedP50: g.p50 - d.p50, addedP99: g.p99 - d.p99,
      // Σ CPU / Σ (requests/s × window): the CPU rate per request/s, weighted by window length.
      cpuUsPerRequest: sum(gwRecs.map((r) => r.gatewayWindowCpuUs)) / sum(gwRecs.map((r) => (r.rps * (r.windowTo - r.windowFrom)) / 1000)),
      cpuTicks: sum(gwRecs.map((r) => r.gatewayWindowTicks)),
    });
  }
  return rows;
}

// ---- formatting

const ms = (x: number | undefined) => x === undefined || Number.isNaN(x) ? "—" : x < 1 ? x.toFixed(3) : x < 100 ? x.toFixed(2) : x.toFixed(1);
const signed = (x: number) => Number.isNaN(x) ? "—" : (x >= 0 ? "+" : "−") + ms(Math.abs(x));
const int = (x: number) => Number.isNaN(x) ? "—" : Math.round(x).toLocaleString("en-US");
const ttfb = (d?: number, g?: number) => d === undefined || g === undefined ? "—" : `${ms(d)} / ${ms(g)} (${signed(g - d)})`;

export function table(rows: Row[]): string {
  const head = [
    "| path | conc | req/s direct | req/s gateway | gw/direct | p50 direct | p50 gateway | added p50 | p99 direct | p99 gateway | added p99 | TTFB p50 direct / gw (added) | TTFB p99 direct / gw (added) | gateway CPU µs/req | errors d/gw |",
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
  ];
  const lines = rows.map((r) => [
    PATH_TITLES[r.path], r.concurrency, int(r.direct.rps), int(r.gateway.rps), r.ratio.toFixed(3),
    ms(r.direct.p50), ms(r.gateway.p50), signed(r.addedP50), ms(r.direct.p99), ms(r.gateway.p99), signed(r.addedP99),
    ttfb(r.direct.ttfbP50, r.gateway.ttfbP50), ttfb(r.direct.ttfbP99, r.gateway.ttfbP99),
    // Fewer than 20 ticks of CPU: the 10 ms tick makes the figure rough.
    (r.cpuTicks < 20 ? "~" : "") + int(r.cpuUsPerRequest), `${r.direct.errors}/${r.gateway.errors}`,
  ].join(" | "));
  return [...head, ...lines.map((l) => `| ${l} |`)].join("\n");
}

const verdict = (ok: boolean) => (ok ? "✅" : "❌");

/** The issue's targets, against what this run measured (only those it has data for). */
/** A feature on vs off (usage recording, metrics): the same load through two gateways, interleaved. */
export interface RecordingRow { concurrency: number; rpsOn: number; rpsOff: number; cpuOn: number; cpuOff: number }

export function recordingRows(records: RunRecord[]): RecordingRow[] {
  return onOffRows(records, "recording");
}

/** The runs of variants "`what` on" and "`what` off", by concurrency. */
export function onOffRows(records: RunRecord[], what: string): RecordingRow[] {
  const recs = records.filter((r) => r.variant.startsWith(`${what} `));
  const cs = [...new Set(recs.map((r) => r.concurrency))];
  const of = (c: number, v: string) => recs.filter((r) => r.concurrency === c && r.variant === v);
  const cpu = (rs: RunRecord[]) => sum(rs.map((r) => r.gatewayWindowCpuUs)) / sum(rs.map((r) => (r.rps * (r.windowTo - r.windowFrom)) / 1000));
  return cs.map((c) => ({
    concurrency: c,
    rpsOn: mean(of(c, `${what} on`).map((r) => r.rps)), rpsOff: mean(of(c, `${what} off`).map((r) => r.rps)),
    cpuOn: cpu(of(c, `${what} on`)), cpuOff: cpu(of(c, `${what} off`)),
  }));
}

function targets(allRows: Row[], profiles: ProfileRun[], meta: Meta, recording: RecordingRow[], metrics: RecordingRow[]): string[] {
  const out: string[] = [];
  const rows = allRows.filter((r) => r.variant === "");
  const find = (p: Profile, path: PathId, c: number) => rows.find((r) => r.profile === p && r.path === path && r.concurrency === c);
  const cpu = (path: PathId, limit: number) => {
    const rs = rows.filter((r) => r.profile === "zero" && r.path === path);
    if (!rs.length) return;
    const m = median(rs.map((r) => r.cpuUsPerRequest));
    out.push(`| CPU per request, ${PATH_TITLES[path]} (zero; median over concurrencies: ${rs.map((r) => `c=${r.concurrency} ${int(r.cpuUsPerRequest)}`).join(", ")}) | ≤ ${limit} µs | ${int(m)} µs | ${verdict(m <= limit)} |`);
  };
  cpu("shim", 150);
  cpu("grpc", 250);
  const c1 = find("zero", "shim", 1);
  if (c1) {
    out.push(`| zero, c=1, shim non-streaming: added p50 | ≤ 0.25 ms | ${signed(c1.addedP50)} ms | ${verdict(c1.addedP50 <= 0.25)} |`);
    out.push(`| zero, c=1, shim non-streaming: added p99 | ≤ 1.5 ms | ${signed(c1.addedP99)} ms | ${verdict(c1.addedP99 <= 1.5)} |`);
  }
  for (const path of ["shim", "shim-stream", "grpc", "connect"] as const) {
    const r = find("llm", path, 256);
    if (!r) continue;
    out.push(`| llm, c=256, ${PATH_TITLES[path]}: throughput gateway/direct | ≥ 0.95 | ${r.ratio.toFixed(3)} | ${verdict(r.ratio >= 0.95)} |`);
    if (r.direct.ttfbP50 !== undefined && r.gateway.ttfbP50 !== undefined) {
      const a50 = r.gateway.ttfbP50 - r.direct.ttfbP50;
      const a99 = r.gateway.ttfbP99! - r.direct.ttfbP99!;
      out.push(`| llm, c=256, ${PATH_TITLES[path]}: TTFB added p50 / p99 | ≤ 1 / 10 ms | ${signed(a50)} / ${signed(a99)} ms | ${verdict(a50 <= 1 && a99 <= 10)} |`);
    }
  }
  if (profiles.length) {
    const peak = Math.max(...profiles.map((p) => p.peakRssMiB));
    out.push(`| Peak RSS (VmHWM, worst profile), V8 defaults | ≤ 150 MiB | ${peak.toFixed(1)} MiB | ${verdict(peak <= 150)} |`);
  }
  if (meta.memoryRuns.length) {
    const peak = Math.max(...meta.memoryRuns.map((p) => p.peakRssMiB));
    out.push(`| Peak RSS (VmHWM, worst profile), \`node ${meta.memoryRuns[0]!.options}\` | ≤ 150 MiB | ${peak.toFixed(1)} MiB | ${verdict(peak <= 150)} |`);
  }
  if (meta.coldStartsMs.length) {
    const m = median(meta.coldStartsMs);
    out.push(`| Cold start (median of ${meta.coldStartsMs.length}) | ≤ 300 ms | ${m.toFixed(0)} ms | ${verdict(m <= 300)} |`);
  }
  for (const r of allRows.filter((x) => x.variant.startsWith("workers") && x.profile === "llm")) {
    out.push(`| llm, c=${r.concurrency}, ${PATH_TITLES[r.path]}, ${r.variant.replace("=", " ")}: throughput gateway/direct | ≥ 0.95 | ${r.ratio.toFixed(3)} | ${verdict(r.ratio >= 0.95)} |`);
    if (r.direct.ttfbP50 !== undefined && r.gateway.ttfbP50 !== undefined) {
      const a50 = r.gateway.ttfbP50 - r.direct.ttfbP50;
      const a99 = r.gateway.ttfbP99! - r.direct.ttfbP99!;
      out.push(`| llm, c=${r.concurrency}, ${PATH_TITLES[r.path]}, ${r.variant.replace("=", " ")}: TTFB added p50 / p99 | ≤ 1 / 10 ms | ${signed(a50)} / ${signed(a99)} ms | ${verdict(a50 <= 1 && a99 <= 10)} |`);
    }
  }
  for (const r of recording) {
    const cost = 1 - r.rpsOn / r.rpsOff;
    out.push(`| Usage recording on vs off, zero, shim non-streaming, c=${r.concurrency}: throughput cost | ≤ 10% | ${(cost * 100).toFixed(1)}% (${int(r.rpsOn)} vs ${int(r.rpsOff)} req/s) | ${verdict(cost <= 0.1)} |`);
  }
  if (!recording.length) out.push("| Usage recording on vs off: throughput cost | ≤ 10% | not measured in this run (--no-recording) | — |");
  for (const r of metrics) {
    const cost = 1 - r.rpsOn / r.rpsOff;
    out.push(`| Metrics on vs off (METRICS=off), zero, shim non-streaming, c=${r.concurrency}: throughput cost | ≤ 3% | ${(cost * 100).toFixed(1)}% (on/off ${(r.rpsOn / r.rpsOff).toFixed(3)}: ${int(r.rpsOn)} vs ${int(r.rpsOff)} req/s) | ${verdict(cost <= 0.03)} |`);
  }
  if (!metrics.length) out.push("| Metrics on vs off: throughput cost | ≤ 3% | not measured in this run (--no-metrics) | — |");
  return ["| target | limit | measured | |", "|---|---|---|---|", ...out];
}

const METHOD = `## Method

- **Processes.** The fake upstream (\`bench/fake-upstream.ts\`, bare \`node:http\`, keep-alive, response bytes
  precomputed, the request body only searched for \`"stream":true\`) and the gateway
  each run in their own process (the gateway: \`node dist/gatewayz.mjs\`, the \`npm start\` bundle); the load generators (autocannon, the undici TTFB probe, the grpc-js client)
  run in the benchmark's process. All three share the machine's cores, over loopback.
- **Gateway setup.** \`DATABASE_PATH\` in a temporary directory (usage recording on, as in production),
  \`LOG_LEVEL=info\` (the default), \`RATE_LIMITS_KEY="rpm=0,concurrent=0"\` (no limit is hit, but the limiter runs), one
  client key created with the CLI before the start, \`ALIBABA_CLOUD_BASE_URL\` pointing at the fake. A fresh
  gateway process per profile, warmed up through every path at the largest concurrency (0.5 s each for
  \`zero\`, 1 s for \`llm\`) before measuring.
- **Direct vs gateway.** Every measurement sends the same load straight to the fake upstream (the body the
  gateway itself would send) and then through the gateway, alternating, for each round. Rates and
  percentiles in the tables are the mean of the rounds. "Added" is gateway minus direct.
- **Comparisons.** \`WORKERS=N\`: a gateway started with N workers (node:cluster), measured at the
  largest concurrency exactly like the main runs; its CPU and RSS are summed over the primary and the
  workers. Memory: a gateway started with V8's heap capped (\`--max-semi-space-size=4
  --max-old-space-size=96\`), every path once at the largest concurrency, for its peak RSS. Usage
  recording: two gateways on the same database, one with \`USAGE_RECORDING=off\`, the same shim load
  through each, alternating, for each round (which goes first alternates too). Metrics: the same with \`METRICS=off\`
  on the second gateway (the main runs have them on, the default).
- **What "overhead" includes:** everything the gateway does per request on the full path: parsing the
  request (JSON, Connect envelope or protobuf), authentication (SHA-256 of the key and a lookup in SQLite,
  cached until the database changes),
  the rate limiter, the budget check, model resolution, the upstream call through the openai SDK
  (connection pool, request, parsing the response or the SSE stream), re-encoding the answer for the
  client's protocol, and one usage row written to SQLite per request (group-committed per event-loop turn).
- **What it excludes:** the network (everything is on loopback). The fake upstream's own time is in both
  the direct and the gateway numbers, so it cancels out of "added"; the load generator's cost is in both as well.
- **Paths.** shim non-streaming: autocannon \`POST /v1/chat/completions\` (\`qwen-max\`, so no DashScope
  quirk rewriting); shim streaming: the same with \`stream: true\` and \`include_usage\`, autocannon timing the
  whole stream, plus a closed-loop probe (undici \`Pool\`, keep-alive, same concurrency) timing the first
  body byte and the last, because autocannon only times whole responses; gRPC \`Chat\` over h2c: a grpc-js
  closed loop on one channel (one HTTP/2 connection) with \`authorization\` metadata, timing the first
  message and the end, whose direct baseline is the undici closed loop over HTTP against the fake's
  streaming endpoint (the upstream speaks HTTP/SSE, not gRPC), timing there the first SSE event with text,
  since the gateway sends no gRPC message for OpenAI's opening role-only chunk (in \`llm\` that chunk comes
  10 ms before the first text); Connect \`Chat\`: autocannon \`POST /gatewayz.v1.GatewayService/Chat\` with
  \`application/connect+json\` and an enveloped request over HTTP/1.1, direct baseline the fake's SSE stream
  (no TTFB column: autocannon only times whole responses).
  Latencies are exact (autocannon's per-response times, not its whole-millisecond histogram); a stream
  counts as a success only if complete (\`data: [DONE]\`; for Connect an end-stream without error).
- **Profiles.** \`zero\`: the fake answers at once (the JSON, or the whole SSE stream in one write), so
  the gateway's own cost dominates. \`llm\`: 100 ms to the first byte, then 20 chunks 10 ms apart
  (non-streaming: the JSON after 300 ms), the realistic streaming case.
- **Requests/s.** Every load is a closed loop: N connections or callers, each sending its next request as
  soon as the previous one ended. Requests/s is the sum over the callers of each caller's rate between its
  first and its last completion (n − 1 whole request cycles over that time). That leaves out the ramp-up
  (new connections, first requests) and the request in flight when the run ends (autocannon cancels
  those), and stays exact when every request takes the same 300 ms and the callers complete in step,
  where counting completions in a few-second window is off by whole "waves". (The JSON also has
  \`rpsCounted\`, requests over the whole run, and \`rpsLittle\`, N / mean latency.)
- **CPU per request** is the gateway process's CPU rate divided by its requests/s. The rate is its
  utime+stime from \`/proc/<pid>/stat\` (clock ticks, 10 ms each), read every 100 ms during the run and
  interpolated, over the steady part of the run: from the end of the first wave of requests (and at least
  a fifth of the run) until new requests stop. Rows add up all rounds and both parts; "~" marks a figure
  from fewer than 20 ticks (rough). The clean-up of the requests cancelled at the end of a run is waited
  out before the next run starts (\`gatewayAfterCpuUs\` in the JSON); the idle gateway's CPU use is
  measured for 2 s before the runs.
- **Memory.** Peak RSS is VmHWM of the gateway process at the end of the profile (peak since it started);
  VmRSS is also sampled every 100 ms during every gateway run. autocannon cancels the requests in flight
  when its time is up; a cancelled stream has no upstream usage, so the gateway counts its tokens with
  gpt-tokenizer, which it loads on first need (about 100 ms of CPU and 30 MiB of RSS, once): that is in
  the peak, as it would be in production once a client cancels a stream.
- **Cold start** is the time from \`spawn\` to the first successful chat completion (polled every 5 ms, new
  connection each time), median of fresh processes on the same database.`;

/** The commit, "(dirty)" when the tree differs from it (this file's own output, RESULTS.md, aside). */
export function git(): string {
  const run = (args: string[]) => execFileSync("git", args, { cwd: ROOT, encoding: "utf8" }).trim();
  try {
    return run(["rev-parse", "--short", "HEAD"]) + (run(["status", "--porcelain", "--", ".", ":!bench/RESULTS.md"]) ? " (dirty)" : "");
  } catch {
    return "unknown";
  }
}

export function machine(): Meta["machine"] {
  const model = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? os.cpus()[0]?.model ?? "unknown";
  let cpus = os.availableParallelism();
  try {
    cpus = Number(execFileSync("nproc", { encoding: "utf8" }).trim()) || cpus;
  } catch {
    // keep Node's count
  }
  return { cpus, cpuModel: model.trim(), memGiB: os.totalmem() / 2 ** 30, node: process.version };
}

/** The whole RESULTS.md, and the same without the Method section for the terminal. */
export function render(meta: Meta, rows: Row[], profiles: ProfileRun[], records: RunRecord[]): { summary: string; doc: string } {
  const recording = recordingRows(records);
  const metrics = onOffRows(records, "metrics");
  const workerRows = rows.filter((r) => r.variant.startsWith("workers"));
  const memory = meta.memoryRuns.length ? `### Memory with V8's heap capped (\`node ${meta.memoryRuns[0]!.options}\`, c=${Math.max(...meta.options.concurrency)}, each path once)\n\n` +
    `| profile | peak RSS (VmHWM) | ${meta.options.paths.map((p) => `req/s ${PATH_TITLES[p]}`).join(" | ")} |\n|---|--:|${meta.options.paths.map(() => "--:").join("|")}|\n` +
    meta.memoryRuns.map((m) => `| ${m.profile} | ${m.peakRssMiB.toFixed(1)} MiB | ${meta.options.paths.map((p) => int(m.rps[p] ?? NaN)).join(" | ")} |`).join("\n") : "";
  const extra = [memory,
    workerRows.length ? `### ${workerRows[0]!.variant.replace("workers=", "WORKERS=")} (node:cluster; CPU and RSS summed over the primary and its workers)\n\n` +
      [...new Set(workerRows.map((r) => r.profile))].map((p) => `Profile \`${p}\`:\n\n${table(workerRows.filter((r) => r.profile === p))}`).join("\n\n") : "",
    recording.length ? `### Usage recording on vs off (zero profile, shim non-streaming; two gateways, interleaved)\n\n` +
      `| conc | req/s recording on | req/s recording off | throughput cost | CPU µs/req on | CPU µs/req off |\n|--:|--:|--:|--:|--:|--:|\n` +
      recording.map((r) => `| ${r.concurrency} | ${int(r.rpsOn)} | ${int(r.rpsOff)} | ${((1 - r.rpsOn / r.rpsOff) * 100).toFixed(1)}% | ${int(r.cpuOn)} | ${int(r.cpuOff)} |`).join("\n") : "",
    metrics.length ? `### Prometheus metrics on vs off (METRICS=off; zero profile, shim non-streaming; two gateways, interleaved)\n\n` +
      `| conc | req/s metrics on | req/s metrics off | on/off | throughput cost | CPU µs/req on | CPU µs/req off |\n|--:|--:|--:|--:|--:|--:|--:|\n` +
      metrics.map((r) => `| ${r.concurrency} | ${int(r.rpsOn)} | ${int(r.rpsOff)} | ${(r.rpsOn / r.rpsOff).toFixed(3)} | ${((1 - r.rpsOn / r.rpsOff) * 100).toFixed(1)}% | ${int(r.cpuOn)} | ${int(r.cpuOff)} |`).join("\n") : "",
  ].filter(Boolean).join("\n\n");
  const tables = profiles.map((p) => {
    const rs = rows.filter((r) => r.variant === "" && r.profile === p.profile);
    const rows$ = table(rs);
    const usage = Object.entries(p.usageRows).map(([k, v]) => `${k} ${v.toLocaleString("en-US")}`).join(", ") || "none";
    return `### Profile \`${p.profile}\`\n\n${rows$}\n\nGateway peak RSS (VmHWM) ${p.peakRssMiB.toFixed(1)} MiB; idle CPU ${p.idleCpuMsPerS.toFixed(1)} ms/s; ` +
      `largest sampled VmRSS ${p.sampledRssMaxMiB.toFixed(1)} MiB (${p.sampledRssRun}). Usage rows written: ${usage}.`;
  }).join("\n\n");
  const m = meta.machine;
  const o = meta.options;
  const doc = `# Gatewayz benchmark results

Generated by \`bench/run.ts\`; rerun with the command below (it overwrites this file). Where the time
goes and what stands in the way of the targets still missed: [ANALYSIS.md](ANALYSIS.md).

- Date: ${meta.date}
- Machine: ${m.cpus} CPUs (\`nproc\`), ${m.cpuModel}, ${m.memGiB.toFixed(1)} GiB RAM, Node ${m.node}
- Commit: ${meta.commit}
- Command: \`${meta.command}\`
- Runs: profiles ${o.profiles.join(", ")}; paths ${o.paths.join(", ")}; concurrency ${o.concurrency.join(", ")}; ${o.seconds} s per run; ${o.rounds} rounds; total ${meta.elapsedS.toFixed(0)} s
- Cold start (spawn to first successful chat completion): median ${median(meta.coldStartsMs).toFixed(0)} ms of ${meta.coldStartsMs.map((x) => x.toFixed(0)).join(", ")} ms

## Targets (issue 5)

${targets(rows, profiles, meta, recording, metrics).join("\n")}

## Results

Latencies in ms. "added" = gateway − direct. TTFB: time to the first body byte (HTTP) or first message (gRPC),
for streams. gw/direct: throughput ratio.

${tables}

${extra}
`;
  return { summary: doc, doc: `${doc}\n${METHOD}\n` };
}

/** Writes RESULTS.md (keeping the --against section of the file it replaces, unless `doc` has one) and the JSON. */
/** The sections other kinds of run write (--against, --only-cache): carried over when this run did not measure them. */
const KEPT_SECTIONS = [AGAINST_SECTION, "cache", "replicas"];

export function write(doc: string, json: unknown): { md: string; json: string } {
  const md = join(ROOT, "bench/RESULTS.md");
  let old = "";
  try {
    old = readFileSync(md, "utf8");
  } catch {
    // no RESULTS.md yet
  }
  for (const name of KEPT_SECTIONS) {
    const kept = findSection(old, name);
    if (kept && !findSection(doc, name)) doc = spliceSection(doc, name, kept);
  }
  writeFileSync(md, doc);
  const dir = join(ROOT, "bench/out");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `results-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify(json, null, 2) + "\n");
  return { md, json: file };
}
