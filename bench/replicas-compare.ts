// The replicated profile (issue 13): what sharing the limits through Redis (REDIS_URL) costs a
// request. The shim's non-streaming load, with a key limit that applies to every request and is
// never reached, through a gateway whose limits are its own ("limits local") and one whose limits
// are in Redis ("limits in Redis"), interleaved, at c=1 (latency) and c=64 (CPU); then two
// replicas on one Redis and one database sharing the c=64 load. The target: Redis adds at most
// one of its round trips to a request, measured here as the bench's own round trip to the same
// Redis (a script call, as the gateway makes). Its own section of RESULTS.md (--only-replicas).
import { Redis } from "ioredis";
import { measure } from "./measure.js";
import { paths, type Part } from "./paths.js";
import { cpuMeter, quiesce } from "./process-stats.js";
import { startGateway, type Fake, type Gateway, type GatewayEnv } from "./processes.js";
import { startBenchRedis } from "./redis-server.js";
import type { RunRecord } from "./report.js";
import { percentile } from "./stats.js";

export const REPLICAS_SECTION = "replicas";

const LOCAL = "limits local";
const REDIS = "limits in Redis";
const TWO = "2 replicas in Redis";
/** A limit on every request that is never reached: each request checks and takes it. */
const LIMITED = { RATE_LIMITS_KEY: "rpm=100000000,concurrent=100000", CACHE: "off" };

export interface ReplicasSpec { fake: Fake; env: GatewayEnv; key: string; rounds: number; seconds: number; warmupS: number }
export interface ReplicasRun { records: RunRecord[]; two: Array<{ rps: number; cpu: number }>; rttMs: number[] }

/** p50 of a closed loop of script calls to Redis from here, at c=1, for `ms`. */
async function roundTrip(url: string, ms: number): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    const times: number[] = [];
    const until = performance.now() + ms;
    while (performance.now() < until) {
      const t = performance.now();
      await client.eval("return 1", 0);
      times.push(performance.now() - t);
    }
    return percentile(times.sort((a, b) => a - b), 50);
  } finally {
    client.disconnect();
  }
}

export async function compareReplicas(spec: ReplicasSpec): Promise<ReplicasRun> {
  const { fake, env, key, rounds, seconds } = spec;
  await fake.setProfile("zero");
  const redis = await startBenchRedis();
  const gateways: Gateway[] = [];
  try {
    const local = await startGateway(env, key, { env: LIMITED });
    const shared = await startGateway(env, key, { env: { ...LIMITED, REDIS_URL: redis.url } });
    gateways.push(local, shared);
    const shim = (gw: Gateway): Part => paths({ fake: `http://127.0.0.1:${fake.port}`, gateway: `http://127.0.0.1:${gw.port}`, gatewayPort: gw.port, key }).shim[0]!;
    const runs: Record<string, { gw: Gateway; part: Part }> = { [LOCAL]: { gw: local, part: shim(local) }, [REDIS]: { gw: shared, part: shim(shared) } };
    for (const { part } of Object.values(runs)) await part.gateway(64, spec.warmupS);
    const records: RunRecord[] = [];
    const rttMs: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      for (const concurrency of [1, 64]) {
        for (const v of round % 2 ? [LOCAL, REDIS] : [REDIS, LOCAL]) {
          const { gw, part } = runs[v]!;
          records.push(await measure({ profile: "zero", round, path: "shim", part, side: "gateway", concurrency, seconds, gw, fake, variant: v }));
        }
      }
      rttMs.push(await roundTrip(redis.url, 1000));
    }
    // Two replicas on one Redis and one database, the c=64 load split between them.
    const second = await startGateway(env, key, { env: { ...LIMITED, REDIS_URL: redis.url } });
    gateways.push(second);
    const pair = [shared, second];
    await Promise.all(pair.map((gw) => shim(gw).gateway(32, spec.warmupS)));
    const two: Array<{ rps: number; cpu: number }> = [];
    for (let round = 1; round <= rounds; round++) {
      const meters = pair.map((gw) => cpuMeter(gw.pid));
      const results = await Promise.all(pair.map((gw) => shim(gw).gateway(32, seconds)));
      const cpuUs = meters.reduce((n, m) => n + m().us, 0);
      const rps = results.reduce((n, r) => n + r.rps, 0);
      two.push({ rps, cpu: cpuUs / (rps * seconds) });
      process.stderr.write(`  [${TWO} zero r${round} c=2×32] ${Math.round(rps)} req/s, gw cpu ${Math.round(cpuUs / (rps * seconds))} µs/req\n`);
      await Promise.all(pair.map((gw) => quiesce(gw.pid)));
    }
    return { records, two, rttMs };
  } finally {
    for (const gw of gateways) await gw.stop();
    await redis.stop();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const int = (n: number) => Math.round(n).toLocaleString("en-US");

export function replicasMarkdown(run: ReplicasRun, meta: { date: string; commit: string; command: string; rounds: number; seconds: number }): string {
  const of = (variant: string, concurrency: number) => run.records.filter((r) => r.variant === variant && r.concurrency === concurrency);
  const row = (variant: string, concurrency: number) => {
    const rs = of(variant, concurrency);
    return {
      rps: median(rs.map((r) => r.rps)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)),
      cpu: median(rs.map((r) => r.gatewayCpuUsPerRequest)), errors: rs.reduce((n, r) => n + r.errors, 0),
    };
  };
  const rtt = median(run.rttMs);
  // Paired by round: each round ran both variants back to back.
  const added = median(of(REDIS, 1).map((r, i) => r.p50 - of(LOCAL, 1)[i]!.p50));
  const cpuRatio = median(of(REDIS, 64).map((r, i) => r.gatewayCpuUsPerRequest / of(LOCAL, 64)[i]!.gatewayCpuUsPerRequest));
  const one = row(REDIS, 64);
  const two = { rps: median(run.two.map((t) => t.rps)), cpu: median(run.two.map((t) => t.cpu)) };
  return [
    "## Replicas (zero profile, shim non-streaming)",
    "",
    `${meta.date}, commit ${meta.commit}, \`${meta.command}\`; ${meta.rounds} rounds of ${meta.seconds} s, interleaved. ` +
      "Every request is under a key limit (never reached), so each one checks and takes it: in the gateway's own memory " +
      `(${LOCAL}), or in a local redis-server through one script call (${REDIS}, REDIS_URL). Medians of the rounds; ` +
      "the added latency and the CPU ratio are paired round by round. Redis's round trip: the bench's own script calls to it, at c=1.",
    "",
    "| variant | c | req/s | p50 ms | p99 ms | gateway CPU µs/req | errors |",
    "|---|--:|--:|--:|--:|--:|--:|",
    ...[1, 64].flatMap((c) => [LOCAL, REDIS].map((v) => {
      const r = row(v, c);
      return `| ${v} | ${c} | ${int(r.rps)} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${int(r.cpu)} | ${r.errors} |`;
    })),
    `| ${TWO} | 2×32 | ${int(two.rps)} | | | ${int(two.cpu)} | |`,
    "",
    "| target | limit | measured | |",
    "|---|---|---|---|",
    `| added p50 at c=1, Redis over local | ≤ one Redis round trip (${rtt.toFixed(3)} ms) | +${added.toFixed(3)} ms | ${added <= rtt ? "✅" : "❌"} |`,
    `| gateway CPU per request at c=64, Redis / local | (stated) | ${cpuRatio.toFixed(3)} | |`,
    `| throughput, 2 replicas / 1 (both in Redis, c=64 in all) | (stated) | ${(two.rps / one.rps).toFixed(2)} | |`,
    `| usage on PostgreSQL ≥ 0.9 of SQLite's throughput at c=64 | ≥ 0.9 | not measured: DATABASE_URL is not built yet | ❌ |`,
  ].join("\n");
}
