// bench/SOAK.md: one section per soak part, each rewritten on its own (bench/sections.ts), so a
// run of one part keeps the others' last results.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Meta } from "./report.js";
import { section, spliceSection } from "./sections.js";
import { tally, type Finished } from "./soak-load.js";
import type { AfterSignal, KillResult, MemorySample, SoakResult, TermResult } from "./soak-trials.js";
import { percentile } from "./stats.js";

const ROOT = new URL("..", import.meta.url).pathname;
const FILE = join(ROOT, "bench/SOAK.md");

export interface SoakMeta {
  date: string;
  machine: Meta["machine"];
  commit: string;
  command: string;
  concurrency: number;
}

const HEADER = `# Gatewayz soak: a long mixed load, kill -9 and SIGTERM under load

Written by \`npx tsx bench/soak.ts\` (\`npm run soak\`); each part rewrites its own section below.
The gateway is the bundle \`node dist/gatewayz.mjs\`, set up as in the benchmark (usage recording on,
\`LOG_LEVEL=info\`, the rate limiter running with no limit hit, default drain of 30 s), each run on a fresh
database, against the benchmark's fake upstream (\`bench/fake-upstream.ts\`, its own process) in the
\`fast\` profile: llm's shape, quicker, so that minutes make many requests: 5 ms to the first byte, then
10 content chunks 2 ms apart and the usage chunk (non-streaming: the JSON after 25 ms). The load is an
undici closed loop on the OpenAI door, every other request streamed with \`stream_options.include_usage\`.
Every request carries its number (\`#tag<N>\` in its message; the fake reports N prompt tokens), so every
usage row names the request it is for: "lost" counts answers the client saw complete that have no row,
"duplicated" tags with more than one row. An answer is complete when a stream ends with its usage chunk
and \`data: [DONE]\`, or a JSON body has its content and the request's own usage.
`;

const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "—");
const mib = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "—");
const check = (ok: boolean) => (ok ? "✅" : "❌");
const counts = (r: Record<string, number>) => Object.entries(r).map(([k, n]) => `${k} ${int(n)}`).join(", ") || "none";
const metaLines = (m: SoakMeta) => `- Date: ${m.date}
- Machine: ${m.machine.cpus} CPUs (\`nproc\`), ${m.machine.cpuModel}, ${m.machine.memGiB.toFixed(1)} GiB RAM, Node ${m.machine.node}
- Commit: ${m.commit}
- Command: \`${m.command}\`
- Concurrency: ${m.concurrency}`;

const okOf = (fs: readonly Finished[]) => fs.filter((f) => f.outcome === "ok").length;
const answeredOf = (fs: readonly Finished[]) => fs.filter((f) => f.outcome === "ok" || f.outcome === "error").length;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Least-squares slope of y over t (per minute). */
function slopePerMin(pts: Array<{ t: number; y: number }>): number {
  if (pts.length < 2) return NaN;
  const mt = mean(pts.map((p) => p.t));
  const my = mean(pts.map((p) => p.y));
  const num = pts.reduce((a, p) => a + (p.t - mt) * (p.y - my), 0);
  const den = pts.reduce((a, p) => a + (p.t - mt) ** 2, 0);
  return (num / den) * 60;
}

/**
 * Minute `m` (1-based) of a run of `minutes` planned minutes, for a time `t` s into it: the
 * last sample, taken once the load has stopped, a little past the planned end, counts in the last.
 */
const minuteOf = (t: number, minutes: number) => Math.min(minutes, Math.floor(t / 60) + 1);
const wholeMinutes = (minutes: number) => Math.max(1, Math.ceil(minutes - 1e-9));

/** Whether memory is flat: from the second minute (the first is warm-up: JIT, pools) to the last, mean RSS grew by at most 5 MiB or 5%. */
export function memoryVerdict(samples: MemorySample[], planned: number): { base: number; last: number; first: number; from: number; to: number; flat: boolean; slope: number } {
  const minutes = wholeMinutes(planned);
  const inMinute = (m: number) => samples.filter((s) => minuteOf(s.t, minutes) === m);
  const base = minutes >= 3 ? 2 : 1;
  const from = mean(inMinute(base).map((s) => s.rssMiB));
  const to = mean(inMinute(minutes).map((s) => s.rssMiB));
  const slope = slopePerMin(samples.filter((s) => minuteOf(s.t, minutes) >= base).map((s) => ({ t: s.t, y: s.rssMiB })));
  return { base, last: minutes, first: mean(inMinute(1).map((s) => s.rssMiB)), from, to, flat: to - from <= Math.max(5, 0.05 * from), slope };
}

export function soakMarkdown(meta: SoakMeta, minutes: number, r: SoakResult): string {
  const fs = r.finished;
  const ok = okOf(fs);
  const notOk = fs.length - ok;
  const mins = wholeMinutes(minutes);
  const perMinute = Array.from({ length: mins }, (_, i) => {
    const lo = i * 60_000;
    const t0 = r.loadStartedAt;
    const done = fs.filter((f) => minuteOf((f.endedAt - t0) / 1000, mins) === i + 1);
    const lat = done.filter((f) => f.outcome === "ok").map((f) => f.endedAt - f.startedAt).sort((a, b) => a - b);
    const ss = r.samples.filter((s) => minuteOf(s.t, mins) === i + 1);
    const span = (i + 1 === mins ? r.seconds * 1000 : (i + 1) * 60_000) - lo;
    return `| ${i + 1} | ${int(done.length / (span / 1000))} | ${int(done.length - done.filter((f) => f.outcome === "ok").length)} | ` +
      `${lat.length ? percentile(lat, 50).toFixed(1) : "—"} | ${lat.length ? percentile(lat, 99).toFixed(1) : "—"} | ` +
      `${mib(Math.min(...ss.map((s) => s.rssMiB)))}–${mib(Math.max(...ss.map((s) => s.rssMiB)))} | ${mib(mean(ss.map((s) => s.anonMiB)))} | ` +
      `${mib(mean(ss.map((s) => s.heapTotalMiB)))} | ${mib(ss.at(-1)?.liveHeapMiB ?? NaN)} | ${ss.at(-1)?.fullGcs ?? "—"} |`;
  });
  const v = memoryVerdict(r.samples, minutes);
  const heaps = r.samples.filter((s) => Number.isFinite(s.liveHeapMiB));
  const firstHeap = heaps[0]?.liveHeapMiB ?? NaN;
  const lastHeap = heaps.at(-1)?.liveHeapMiB ?? NaN;
  const streamed = fs.filter((f) => f.stream && f.outcome === "ok").length;
  const rowsOk = r.rows.total === ok && r.match.lost.length === 0 && r.match.duplicated.length === 0 && r.match.unanswered === 0;
  const exitOk = r.exit?.code === 0;
  return `## a. ${minutes}-minute mixed load, then SIGTERM

${metaLines(meta)}

| check | result | |
|---|---|---|
| no errors | ${int(fs.length)} requests, ${int(notOk)} not answered complete${notOk ? ` (${counts(tally(fs.filter((f) => f.outcome !== "ok")))})` : ""} | ${check(notOk === 0)} |
| rows == answered requests | ${int(r.rows.total)} rows (${counts(r.rows.byStatus)}) for ${int(ok)} answered; lost ${r.match.lost.length}, duplicated ${r.match.duplicated.length}, rows of requests not answered ${r.match.unanswered} | ${check(rowsOk)} |
| SIGTERM after the load: exit code 0 | ${r.exit ? `code ${r.exit.code}${r.exit.signal ? `, signal ${r.exit.signal}` : ""}` : "still running after 45 s"}, in ${int(r.stopMs)} ms | ${check(exitOk)} |
| no leak in the JS heap (V8 heap after full collections, first vs last: at most +2 MiB or +10%) | ${heaps.length ? `${mib(firstHeap)} → ${mib(lastHeap)} MiB over ${heaps.at(-1)!.fullGcs} full collections` : "no full collection"} | ${check(heaps.length > 1 && lastHeap - firstHeap <= Math.max(2, 0.1 * firstHeap))} |
| flat memory (mean RSS, minute ${v.base} to minute ${v.last}: at most +5 MiB or +5%) | ${mib(v.from)} → ${mib(v.to)} MiB (${v.to - v.from >= 0 ? "+" : "−"}${mib(Math.abs(v.to - v.from))}; minute 1, the warm-up: ${mib(v.first)}); slope ${v.slope >= 0 ? "+" : "−"}${Math.abs(v.slope).toFixed(2)} MiB/min | ${check(v.flat)} |

${int(fs.length)} requests in ${r.seconds.toFixed(0)} s (${int(fs.length / r.seconds)} req/s), ${int(streamed)} streamed and ${int(ok - streamed)} not.
V8 heap after full collections (\`--trace-gc\`, Mark-Compact): ${heaps.length ? `${mib(firstHeap)} MiB after the first (${heaps[0]!.t.toFixed(0)} s), ${mib(lastHeap)} MiB after the last (${heaps.at(-1)!.t.toFixed(0)} s), ${heaps.at(-1)!.fullGcs} full collections` : "no full collection during the run"}.
RSS sampled every 5 s: ${r.samples.map((s) => mib(s.rssMiB)).join(", ")} MiB.

| minute | req/s | not ok | p50 ms | p99 ms | VmRSS MiB (min–max) | RssAnon MiB (mean) | V8 heap reserved MiB (mean) | V8 heap after the last full GC, MiB | full GCs so far |
|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|
${perMinute.join("\n")}
`;
}

const afterCell = (a: AfterSignal) => `answered ${a.answered}, refused ${a.refused}${Object.keys(a.failed).length ? `, **failed before any answer: ${counts(a.failed)}**` : ""}`;

export function killMarkdown(meta: SoakMeta, trials: KillResult[]): string {
  const lines = trials.map((k) => {
    const ok = okOf(k.finished);
    return `| ${k.workers} | ${k.target} | ${k.loadS} | ${int(ok)} | ${k.inFlightAtKill}: ${counts(k.inFlightOutcomes)} | ${afterCell(k.after).replace(/\*\*/g, "")} | ` +
      `${int(k.rows.total)} (${counts(k.rows.byStatus)}) | ${k.rows.total - ok >= 0 ? "+" : "−"}${Math.abs(k.rows.total - ok)} | **${k.match.lost.length}** | ${k.match.duplicated.length} | ${k.match.unanswered} | ${k.gone ? "yes" : "NO"} |`;
  });
  const pass = trials.every((k) => k.match.lost.length === 0 && k.match.duplicated.length === 0 && k.rows.total >= okOf(k.finished));
  return `## b. kill -9 under load

${metaLines(meta)}

The mixed load for the time shown, then SIGKILL: to the primary alone, or to every process of the
gateway at once (with \`WORKERS=2\`, the primary and its workers: a container killed whole). The rows
must include every answer the client saw complete ("lost" must be 0); rows may exceed the answered
requests by those in flight, whose rows were committed but whose answers had not reached the client
("rows of requests not answered"). Requests in flight at a kill of every process are cut off (the
client sees the connection close); workers left without their primary drain and exit on their own.

| workers | SIGKILL to | load s | answered complete | in flight at the kill: how they ended | started after the kill | rows | rows − answered | lost | duplicated | rows of requests not answered | all processes gone |
|--:|---|--:|--:|---|---|--:|--:|--:|--:|--:|---|
${lines.join("\n")}

Every trial: no row lost, none duplicated, rows ≥ answered: ${check(pass)}
`;
}

export function termMarkdown(meta: SoakMeta, trials: TermResult[]): string {
  const lines = trials.map((t) => {
    const ok = okOf(t.finished);
    const accepted = answeredOf(t.finished);
    const errs = tally(t.finished.filter((f) => f.outcome === "error"));
    return `| ${t.profile} | ${t.workers} | ${t.loadS} | ${int(ok)} | ${t.inFlightAtSignal}: ${counts(t.inFlightOutcomes)} | ${afterCell(t.after)} | ${counts(errs)} | ` +
      `${int(t.rows.total)} (${counts(t.rows.byStatus)}) | ${int(accepted)} ${check(t.rows.total === accepted)} | **${t.match.lost.length}** | ${t.match.unanswered} | ` +
      `${t.exit ? `${t.exit.code}${t.exit.signal ? ` (${t.exit.signal})` : ""}` : "still running"} ${check(t.exit?.code === 0)} | ${int(t.drainMs)} |`;
  });
  const inFlightOk = trials.every((t) => Object.keys(t.inFlightOutcomes).every((k) => k === "ok" || k === "error (server_shutting_down)"));
  const afterOk = trials.every((t) => Object.keys(t.after.failed).length === 0);
  const explicit = trials.every((t) => t.finished.every((f) => f.outcome !== "error" || f.detail === "server_shutting_down"));
  const rowsOk = trials.every((t) => t.rows.total === answeredOf(t.finished) && t.match.lost.length === 0 && t.match.unanswered === 0);
  const exitOk = trials.every((t) => t.exit?.code === 0);
  return `## c. SIGTERM under load

${metaLines(meta)}

The mixed load for the time shown, then SIGTERM to the gateway (the primary, with \`WORKERS=2\`), with
the default drain (30 s, far longer than an answer here); the callers keep going until their connection
is refused (the port is closed: those requests never reached the gateway). Every request must end in a
complete answer, an explicit error (\`server_shutting_down\`), or a refused connection; the rows must
equal the requests the gateway answered ("accepted": complete answers and explicit errors), none lost;
the process must exit 0. A request is "started after the signal" when the client sent it after the
signal was sent. Upstream \`fast\`: answers of about 25 ms, all over within the drain's first moments;
\`slow\` (the fake's \`slow\` profile, 100 ms to the first byte then 20 chunks 100 ms apart; the JSON after
2.1 s): answers still running seconds into the drain, as long generations are.

| upstream | workers | load s | answered complete | in flight at the signal: how they ended | started after the signal | explicit errors | rows | accepted (== rows) | lost | rows of requests not answered | exit code | signal to exit, ms |
|---|--:|--:|--:|---|---|---|--:|--:|--:|--:|---|--:|
${lines.join("\n")}

| check (every trial) | |
|---|---|
| requests in flight at the signal: answered complete (or \`server_shutting_down\`) | ${check(inFlightOk)} |
| requests started after the signal: answered, or their connection refused | ${check(afterOk)} |
| the only errors answered are \`server_shutting_down\` | ${check(explicit)} |
| rows == accepted requests, none lost, no row for a request not answered | ${check(rowsOk)} |
| exit code 0 | ${check(exitOk)} |
`;
}

/** Rewrites the named sections of bench/SOAK.md, keeping the others. */
export function writeSoak(parts: Record<string, string>): string {
  // The header is always this file's; the sections of earlier runs are kept.
  let doc = HEADER;
  try {
    const old = readFileSync(FILE, "utf8");
    const first = old.indexOf("<!-- soak-");
    if (first >= 0) doc = `${HEADER}\n${old.slice(first)}`;
  } catch {
    // first run
  }
  for (const [name, body] of Object.entries(parts)) doc = spliceSection(doc, `soak-${name}`, section(`soak-${name}`, body));
  writeFileSync(FILE, doc.endsWith("\n") ? doc : `${doc}\n`);
  return FILE;
}
