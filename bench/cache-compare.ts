// The cache profile (issue 12): the shim's non-streaming load through a gateway with the
// response cache on, every request different (all misses) and one request repeated (all hits
// but the first), against the same distinct load with the cache off, interleaved. Off twice:
// in the same gateway process, through a key whose own cache setting is off (the target's
// baseline), and in a second process started with CACHE=off. Two processes configured alike
// differ by up to ±10% from one run to the next (an A/A run measured it), more than the 5%
// the target allows, so only the same process can tell a miss's cost; the second process
// stays as a row, a check that a key set to off costs what CACHE=off does.
// Its own section of RESULTS.md, so that `--only-cache` can refresh it alone.
import type { Profile } from "./fake-upstream.js";
import { measure } from "./measure.js";
import { paths, type Part } from "./paths.js";
import { createKey, startGateway, type Fake, type Gateway, type GatewayEnv } from "./processes.js";
import type { RunRecord } from "./report.js";

export const CACHE_SECTION = "cache";
// In this order (reversed every other round), so that each ratio's two variants run back to back.
const VARIANTS = ["cache off (process)", "cache off", "cache miss", "cache hit"] as const;
/** The order of a round's runs (odd rounds; even ones swap the first two). */
const ORDER = ["cache off", "cache miss", "cache hit", "cache off (process)"] as const;
type Variant = (typeof VARIANTS)[number];

export interface CacheCompareSpec {
  fake: Fake;
  env: GatewayEnv;
  key: string;
  rounds: number;
  seconds: number;
  concurrency: number;
  warmupS: Record<Profile, number>;
}

const CACHE_WARMUP_S = 3;

export async function compareCache(spec: CacheCompareSpec): Promise<RunRecord[]> {
  const { fake, env, key, rounds, seconds, concurrency } = spec;
  await fake.setProfile("zero");
  const offKey = createKey(env.dbPath, undefined, ["--cache", "off"]);
  // The embedded store in the gateway's default place (beside the database), as `npm start` has it.
  const on = await startGateway(env, key, { env: { CACHE: "on" } });
  const off = await startGateway(env, key, { env: { CACHE: "off" } });
  const shim = (gw: Gateway, distinct: boolean, k = key): Part =>
    paths({ fake: `http://127.0.0.1:${fake.port}`, gateway: `http://127.0.0.1:${gw.port}`, gatewayPort: gw.port, key: k }, { distinct }).shim[0]!;
  const runs: Record<Variant, { gw: Gateway; part: Part }> = {
    "cache off": { gw: on, part: shim(on, true, offKey) },
    "cache off (process)": { gw: off, part: shim(off, true) },
    "cache miss": { gw: on, part: shim(on, true) },
    "cache hit": { gw: on, part: shim(on, false) },
  };
  // A longer warm-up than the other profiles': the targets are ratios a few percent apart, and
  // a gateway's first seconds (JIT, the cache file's first pages) would weigh on round 1 alone.
  for (const v of VARIANTS) await runs[v].part.gateway(concurrency, Math.max(CACHE_WARMUP_S, spec.warmupS.zero));
  const records: RunRecord[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      // Off and miss back to back, their order alternating, so that a drift in the machine's load
      // favours neither; then hit and off (process). Each of the pair follows the same runs as
      // often as the other: a hit run (5,000 usage rows a second, and the WAL checkpoints they
      // cause in the next run) right before one of them only would weigh on that one.
      for (const v of round % 2 ? ORDER : [ORDER[1], ORDER[0], ...ORDER.slice(2)]) {
        const { gw, part } = runs[v];
        records.push(await measure({ profile: "zero", round, path: "shim", part, side: "gateway", concurrency, seconds, gw, fake, variant: v }));
      }
    }
  } finally {
    await on.stop();
    await off.stop();
  }
  return records;
}

export interface CacheRow { variant: Variant; rps: number; cpu: number; errors: number; cpuByRound: number[] }

export function cacheRows(records: RunRecord[]): CacheRow[] {
  return VARIANTS.map((variant) => {
    const rs = records.filter((r) => r.variant === variant);
    const requests = rs.reduce((n, r) => n + (r.rps * (r.windowTo - r.windowFrom)) / 1000, 0);
    return {
      variant,
      rps: rs.reduce((n, r) => n + r.rps, 0) / Math.max(1, rs.length),
      // Pooled over the rounds: all the window CPU over all the requests.
      cpu: rs.reduce((n, r) => n + r.gatewayWindowCpuUs, 0) / requests,
      errors: rs.reduce((n, r) => n + r.errors, 0),
      cpuByRound: rs.map((r) => r.gatewayCpuUsPerRequest),
    };
  }).filter((r) => r.cpuByRound.length > 0);
}

const int = (n: number) => Math.round(n).toLocaleString("en-US");

interface Paired { median: number; min: number; max: number; pooled: number }

/** a / b round by round (each round ran both), and pooled. */
function pairedRatio(a: CacheRow, b: CacheRow): Paired {
  const ratios = a.cpuByRound.map((x, i) => x / b.cpuByRound[i]!).filter(Number.isFinite).sort((p, q) => p - q);
  const mid = ratios.length >> 1;
  const median = ratios.length % 2 ? ratios[mid]! : (ratios[mid - 1]! + ratios[mid]!) / 2;
  return { median, min: ratios[0]!, max: ratios.at(-1)!, pooled: a.cpu / b.cpu };
}

export function cacheMarkdown(records: RunRecord[], meta: { date: string; commit: string; command: string; concurrency: number; rounds: number; seconds: number }): string {
  const rows = cacheRows(records);
  const of = (v: Variant) => rows.find((r) => r.variant === v);
  const off = of("cache off");
  const miss = of("cache miss");
  const hit = of("cache hit");
  const lines = [
    `## Response cache (zero profile, shim non-streaming, c=${meta.concurrency})`,
    "",
    `${meta.date}, commit ${meta.commit}, \`${meta.command}\`; ${meta.rounds} rounds of ${meta.seconds} s, interleaved. ` +
      "Two gateways on one database: `CACHE=on` with the embedded SQLite store, and `CACHE=off`. " +
      "Off, off (process) and miss send every request with a different message (a counter in its text); hit repeats one request. " +
      "Off is the `CACHE=on` gateway through a key whose cache setting is off (`keys cache <id> off`): the same process, " +
      "so the target compares like with like; off (process) is the `CACHE=off` gateway, whose CPU differs from another " +
      "process's by up to ±10% between runs whatever its settings.",
    "",
    "| variant | req/s | gateway CPU µs/req (pooled) | per round | errors |",
    "|---|--:|--:|---|--:|",
    ...rows.map((r) => `| ${r.variant} | ${int(r.rps)} | ${int(r.cpu)} | ${r.cpuByRound.map(int).join(", ")} | ${r.errors} |`),
  ];
  if (off && miss && hit) {
    const missRatio = pairedRatio(miss, off);
    const hitRatio = pairedRatio(hit, miss);
    const shown = (r: Paired) => `${r.median.toFixed(3)} [${r.min.toFixed(3)}–${r.max.toFixed(3)}] (pooled ${r.pooled.toFixed(3)})`;
    lines.push("",
      "Each ratio is the median of its rounds' ratios (the two variants of a round run back to back, so a drift in the " +
      "machine's speed cancels), with their range, and the ratio of the pooled figures.",
      "", "| target | limit | measured | |", "|---|---|---|---|",
      `| CPU of a miss, cache on / cache off | ≤ 1.05 | ${shown(missRatio)} | ${missRatio.median <= 1.05 ? "✅" : "❌"} |`,
      `| CPU of a hit / a miss | ≤ 0.5 | ${shown(hitRatio)} | ${hitRatio.median <= 0.5 ? "✅" : "❌"} |`);
  }
  return lines.join("\n");
}
