// One measured run: a load through one side (direct or a gateway), with the gateway's CPU over
// the steady window (from /proc), its RSS, the fake's and the load generator's CPU, and what
// the rest of the machine ran meanwhile. Used by bench/run.ts and the --against comparison.
import type { Profile } from "./fake-upstream.js";
import { PATH_TITLES, type Part, type PathId } from "./paths.js";
import { cpuMeter, machineBusyTicks, quiesce, sampleCpu, sampleRss, ticksAt, ticksToUs } from "./process-stats.js";
import type { Fake, Gateway } from "./processes.js";
import type { RunRecord } from "./report.js";
import { sleep } from "./stats.js";

const SETTLE_MS = 50;

export interface RunSpec {
  profile: Profile;
  round: number;
  path: PathId;
  part: Part;
  side: "direct" | "gateway";
  concurrency: number;
  seconds: number;
  gw: Gateway;
  fake: Fake;
  variant?: string;
}

export async function measure({ profile, round, path, part, side, concurrency, seconds, gw, fake, variant = "" }: RunSpec): Promise<RunRecord> {
  const gwCpu = sampleCpu(gw.pid);
  const fakeCpu = cpuMeter(fake.pid);
  const self = process.cpuUsage();
  const busy = machineBusyTicks();
  const rss = side === "gateway" ? sampleRss(gw.pid) : undefined;
  const r = await part[side](concurrency, seconds);
  const samples = gwCpu.stop();
  const machineUs = ticksToUs(machineBusyTicks() - busy);
  // The gateway's CPU rate over the steady part of the run, divided by the requests/s.
  const windowTicks = ticksAt(samples, r.windowTo) - ticksAt(samples, r.windowFrom);
  const wholeTicks = samples.at(-1)!.ticks - samples[0]!.ticks;
  const fakeCpuUs = fakeCpu().us;
  const loadgenCpuUs = (({ user, system }) => user + system)(process.cpuUsage(self));
  const rec: RunRecord = {
    variant, profile, round, path, part: part.kind, side, ...r,
    gatewayCpuUs: ticksToUs(wholeTicks), gatewayCpuTicks: wholeTicks,
    gatewayWindowCpuUs: ticksToUs(windowTicks), gatewayWindowTicks: windowTicks,
    gatewayCpuUsPerRequest: ticksToUs(windowTicks) / ((r.windowTo - r.windowFrom) / 1000) / r.rps,
    fakeCpuUs, loadgenCpuUs,
    // Clamped: the four readings are not taken at the same instant, and ticks are coarse.
    otherCpuUs: Math.max(0, machineUs - ticksToUs(wholeTicks) - fakeCpuUs - loadgenCpuUs),
    ...(rss ? { gatewayRssMaxMiB: rss.stop() } : {}),
    // Requests cancelled at the end of an autocannon run are finished off here, so the next run starts on an idle gateway.
    gatewayAfterCpuUs: side === "gateway" ? await quiesce(gw.pid) : 0,
  };
  const ttfb = r.ttfbP50 === undefined ? "" : ` ttfb p50 ${r.ttfbP50.toFixed(2)} p99 ${r.ttfbP99!.toFixed(2)}`;
  const cpu = side === "gateway" ? ` gw cpu ${Math.round(rec.gatewayCpuUsPerRequest)} µs/req` : "";
  const other = rec.otherCpuUs! / 1000 / r.seconds;
  process.stderr.write(`  [${variant ? `${variant} ` : ""}${profile} r${round} c=${concurrency}] ${PATH_TITLES[path]}${part.kind === "ttfb" ? " (ttfb probe)" : ""} ${side}: ` +
    `${Math.round(r.rps)} req/s p50 ${r.p50.toFixed(2)} p99 ${r.p99.toFixed(2)}${ttfb}${cpu}${r.errors ? ` ERRORS ${r.errors}` : ""}` +
    `${other > 100 ? ` (others on the machine: ${Math.round(other)} ms/s)` : ""}\n`);
  await sleep(SETTLE_MS);
  return rec;
}
