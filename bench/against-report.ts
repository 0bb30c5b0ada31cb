// The --against comparison as a table: per path, this tree's gateway over the ref's, each ratio
// taken within a round (the two runs back to back) and then summarised over the rounds as the
// median and the range, so a disturbed round shows as spread instead of skewing a mean.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AgainstRun } from "./against.js";
import type { Profile } from "./fake-upstream.js";
import { PATH_TITLES, type PathId } from "./paths.js";
import { AGAINST_SECTION, median, type Meta, type RunRecord } from "./report.js";
import { section, spliceSection } from "./sections.js";

const ROOT = new URL("..", import.meta.url).pathname;

/** A median and the range around it, over the rounds. */
export interface Spread { median: number; min: number; max: number }

export interface AgainstRow {
  profile: Profile;
  concurrency: number;
  path: PathId;
  rounds: number;
  rps: Record<"this" | "ref" | "ratio", Spread>;
  cpu: Record<"this" | "ref" | "ratio", Spread>;
  p50: Record<"this" | "ref", Spread>;
  p99: Record<"this" | "ref", Spread>;
  errors: Record<"this" | "ref", number>;
  /** Fewest CPU ticks in one run's window (a 10 ms tick each: under 20, the CPU figure is rough). */
  minTicks: number;
  /** The most CPU that others used on the machine during one of these runs, ms per s. */
  othersMaxMsPerS: number;
}

const spread = (xs: number[]): Spread => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

export function againstRows(records: RunRecord[]): AgainstRow[] {
  const key = (r: RunRecord) => `${r.profile}|${r.concurrency}|${r.path}`;
  return [...new Set(records.map(key))].map((k) => {
    const recs = records.filter((r) => key(r) === k);
    const rounds = [...new Set(recs.map((r) => r.round))].sort((a, b) => a - b);
    const pairs = rounds.map((n) => ({
      this: recs.find((r) => r.round === n && r.variant === "this")!,
      ref: recs.find((r) => r.round === n && r.variant === "ref")!,
    })).filter((p) => p.this && p.ref);
    const of = (side: "this" | "ref", f: (r: RunRecord) => number) => spread(pairs.map((p) => f(p[side])));
    const ratio = (f: (r: RunRecord) => number) => spread(pairs.map((p) => f(p.this) / f(p.ref)));
    const rps = (r: RunRecord) => r.rps;
    const cpu = (r: RunRecord) => r.gatewayCpuUsPerRequest;
    return {
      profile: recs[0]!.profile, concurrency: recs[0]!.concurrency, path: recs[0]!.path, rounds: pairs.length,
      rps: { this: of("this", rps), ref: of("ref", rps), ratio: ratio(rps) },
      cpu: { this: of("this", cpu), ref: of("ref", cpu), ratio: ratio(cpu) },
      p50: { this: of("this", (r) => r.p50), ref: of("ref", (r) => r.p50) },
      p99: { this: of("this", (r) => r.p99), ref: of("ref", (r) => r.p99) },
      errors: {
        this: pairs.reduce((n, p) => n + p.this.errors, 0),
        ref: pairs.reduce((n, p) => n + p.ref.errors, 0),
      },
      minTicks: Math.min(...recs.map((r) => r.gatewayWindowTicks)),
      othersMaxMsPerS: Math.max(...recs.map((r) => (r.otherCpuUs ?? 0) / 1000 / r.seconds)),
    };
  });
}

const fixed = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : "—");
const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "—");
const ms = (x: number) => (x < 1 ? fixed(x, 3) : x < 100 ? fixed(x, 2) : fixed(x, 1));
const show = (s: Spread, f: (x: number) => string) => `${f(s.median)} (${f(s.min)}–${f(s.max)})`;

export interface AgainstMeta {
  date: string;
  machine: Meta["machine"];
  /** This tree's commit, "(dirty)" when it has uncommitted changes. */
  commit: string;
  command: string;
  label: string;
  rounds: number;
  seconds: number;
  elapsedS: number;
}

export function againstMarkdown(meta: AgainstMeta, run: AgainstRun, rows: AgainstRow[]): string {
  const m = meta.machine;
  const head = "| profile, conc | path | req/s this | req/s ref | throughput this/ref | CPU µs/req this | CPU µs/req ref | CPU this/ref | p50 ms this | p50 ms ref | p99 ms this | p99 ms ref | errors this/ref | others' CPU (max) |\n" +
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|";
  const lines = rows.map((r) => `| ${r.profile}, c=${r.concurrency} | ${PATH_TITLES[r.path]} | ${show(r.rps.this, int)} | ${show(r.rps.ref, int)} | ` +
    `**${show(r.rps.ratio, (x) => fixed(x, 3))}** | ${r.minTicks < 20 ? "~" : ""}${show(r.cpu.this, int)} | ${show(r.cpu.ref, int)} | **${show(r.cpu.ratio, (x) => fixed(x, 3))}** | ` +
    `${show(r.p50.this, ms)} | ${show(r.p50.ref, ms)} | ${show(r.p99.this, ms)} | ${show(r.p99.ref, ms)} | ${r.errors.this}/${r.errors.ref} | ${int(r.othersMaxMsPerS)} ms/s |`);
  return `## ${meta.label}: this tree against ${run.refCommit}

Written by \`npm run bench -- --against REF\` (bench/against.ts); a full \`npm run bench\` keeps this
section as it is. The ref's gateway is built with its own \`npm run build\` in a temporary git worktree;
both gateways run side by side, each on its own database and key, against the same fake upstream, with
the setup of the main runs (usage recording on, \`LOG_LEVEL=info\`, the rate limiter running), and the
same closed-loop load goes through each in turn, the order swapped every round. Every figure is the
median over the rounds, with the range in parentheses; a ratio is this tree over the ref within one
round (the two runs back to back), then the median and range of those. Throughput above 1 and CPU below
1 favour this tree. CPU per request is the gateway process's (from \`/proc\`), as in the main tables.
Latencies are autocannon's (grpc-js's for gRPC) over the whole run, so p99 includes the first request
of each of the c connections opened at once, which a saturated gateway of either build may keep
waiting for up to a second or two: read p99 with its range, p50 and CPU for the steady state.
"Others' CPU" is what the rest of the machine used during the worst of these runs (the machine's busy
time less the gateway's, the fake's and the load generator's): a few tens of ms/s is noise; hundreds
mean another process was competing for the two cores and that round's figures are suspect.

- Date: ${meta.date}
- Machine: ${m.cpus} CPUs (\`nproc\`), ${m.cpuModel}, ${m.memGiB.toFixed(1)} GiB RAM, Node ${m.node}
- This tree: ${meta.commit}; ref: \`${run.ref}\` = ${run.refCommit}${run.depsDiffer ? " (its runtime dependencies differ from this tree's, whose node_modules it was built with)" : ""}
- Command: \`${meta.command}\`
- Runs: ${meta.rounds} rounds of ${meta.seconds} s per gateway per path; total ${meta.elapsedS.toFixed(0)} s

${head}
${lines.join("\n")}
`;
}

/** Splices the section into bench/RESULTS.md (creating it if need be) and writes the run's JSON. */
export function writeAgainst(markdown: string, json: unknown): { md: string; json: string } {
  return writeSection(AGAINST_SECTION, "against", markdown, json);
}

/** One marked section of RESULTS.md replaced (or added), and the run's JSON under bench/out/`prefix`-<time>.json. */
export function writeSection(name: string, prefix: string, markdown: string, json: unknown): { md: string; json: string } {
  const md = join(ROOT, "bench/RESULTS.md");
  let doc = "# Gatewayz benchmark results\n";
  try {
    doc = readFileSync(md, "utf8");
  } catch {
    // no RESULTS.md yet
  }
  writeFileSync(md, spliceSection(doc, name, section(name, markdown)));
  const dir = join(ROOT, "bench/out");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${prefix}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify(json, null, 2) + "\n");
  return { md, json: file };
}
