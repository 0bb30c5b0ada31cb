// The replicated profile (issue 13): what sharing the limits through Redis (REDIS_URL) costs a
// request. The shim's non-streaming load, zero upstream profile, with a key limit that applies to
// every request and is never reached, through three set-ups, interleaved round by round:
//   - "limits local": one gateway keeping its limits in its own memory;
//   - "limits in Redis": one gateway with REDIS_URL (one script call before going upstream, and
//     a settle it does not wait for);
//   - "2 replicas in Redis": that gateway and a second one, on the same Redis and database, the
//     load split between them (c=64 only: c=1 cannot be split).
// At c=1 the latency (the target: Redis adds at most one of its own round trips, measured here
// as the bench's closed loop of script calls to the same Redis), at c=64 throughput and CPU.
// Its own section of RESULTS.md, so that `--only-replicas` can refresh it alone.
import { Redis } from "ioredis";
import { measure } from "./measure.js";
import { paths, type Part } from "./paths.js";
import { quiesce, sampleCpu, ticksAt, ticksToUs } from "./process-stats.js";
import { startGateway, type Fake, type Gateway, type GatewayEnv } from "./processes.js";
import { startBenchRedis } from "./redis-server.js";
import type { RunRecord } from "./report.js";
import { percentile, sleep } from "./stats.js";

export const REPLICAS_SECTION = "replicas";

const LOCAL = "limits local";
const REDIS = "limits in Redis";
const TWO = "2 replicas in Redis";
/** A limit on every request that is never reached (each request checks and takes it); no cache in the picture. */
const LIMITED = { RATE_LIMITS_KEY: "rpm=100000000,concurrent=100000", CACHE: "off" };
/** The load concurrency for throughput and CPU; latency is taken at c=1. */
const WIDE = 64;

export interface ReplicasSpec { fake: Fake; env: GatewayEnv; key: string; rounds: number; seconds: number; warmupS: number }

/** One round of the two replicas: both autocannon runs at once, half the connections each. */
export interface PairRecord {
  round: number;
  /** The two runs' req/s summed. */
  rps: number;
  /** Both gateways' CPU rate over their runs' windows, per request/s of the pair. */
  cpuUsPerRequest: number;
  /** Each replica's run alone. */
  halves: Array<{ rps: number; p50: number; p99: number; errors: number; requests: number }>;
}

export interface ReplicasRun {
  /** limits local / limits in Redis, at c=1 and c=64. */
  records: RunRecord[];
  pairs: PairRecord[];
  /** The p50 of the bench's own round trips to Redis, one per round, ms. */
  rttMs: number[];
  /** The gateways' script calls (EVALSHA) over the measured runs, against the requests they served through Redis. */
  scriptCalls: number;
  redisRequests: number;
}

/** EVALSHA calls Redis has served so far: the gateways' scripts (ioredis's defineCommand); the bench's own probe sends EVAL. */
async function scriptCalls(client: Redis): Promise<number> {
  const info = await client.info("commandstats");
  return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

/**
 * p50 of a closed loop of `EVAL "return 1" 0` from the bench process, at c=1, for `ms`: a script
 * call's round trip, as the gateway makes one per request. Run between the gateway runs, not
 * during them: in the same event loop as autocannon it would add its own delays to the latency
 * being measured, and in the gateway's Redis it would queue behind (or ahead of) its calls.
 */
async function roundTrip(client: Redis, ms: number): Promise<number> {
  const times: number[] = [];
  const until = performance.now() + ms;
  while (performance.now() < until) {
    const t = performance.now();
    await client.eval("return 1", 0);
    times.push(performance.now() - t);
  }
  return percentile(times.sort((a, b) => a - b), 50);
}

/**
 * Two autocannon runs at once, one per replica, half the connections each. The CPU is read as
 * measure() reads one gateway's: each gateway's over its own run's steady window, here summed
 * as rates and divided by the pair's requests/s.
 */
async function measurePair(pair: Gateway[], parts: Part[], round: number, seconds: number): Promise<PairRecord> {
  const samplers = pair.map((gw) => sampleCpu(gw.pid));
  const results = await Promise.all(parts.map((part) => part.gateway(WIDE / pair.length, seconds)));
  const samples = samplers.map((s) => s.stop());
  const cpuRate = results.reduce((n, r, i) =>
    n + ticksToUs(ticksAt(samples[i]!, r.windowTo) - ticksAt(samples[i]!, r.windowFrom)) / ((r.windowTo - r.windowFrom) / 1000), 0);
  const rps = results.reduce((n, r) => n + r.rps, 0);
  const rec: PairRecord = {
    round, rps, cpuUsPerRequest: cpuRate / rps,
    halves: results.map((r) => ({ rps: r.rps, p50: r.p50, p99: r.p99, errors: r.errors, requests: r.requests })),
  };
  const errors = results.reduce((n, r) => n + r.errors, 0);
  process.stderr.write(`  [${TWO} zero r${round} c=${pair.length}×${WIDE / pair.length}] shim non-streaming gateway: ${Math.round(rps)} req/s ` +
    `(${results.map((r) => Math.round(r.rps)).join(" + ")}) p50 ${results.map((r) => r.p50.toFixed(2)).join(" / ")} ` +
    `gw cpu ${Math.round(rec.cpuUsPerRequest)} µs/req${errors ? ` ERRORS ${errors}` : ""}\n`);
  // As measure() does: the requests cancelled at the end are finished off before the next run.
  await Promise.all(pair.map((gw) => quiesce(gw.pid)));
  await sleep(50);
  return rec;
}

export async function compareReplicas(spec: ReplicasSpec): Promise<ReplicasRun> {
  const { fake, env, key, rounds, seconds } = spec;
  await fake.setProfile("zero");
  const redis = await startBenchRedis();
  const probe = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  const gateways: Gateway[] = [];
  try {
    // All three up front, so that the pair runs in every round with the others, not after them.
    const local = await startGateway(env, key, { env: LIMITED });
    gateways.push(local);
    const shared = await startGateway(env, key, { env: { ...LIMITED, REDIS_URL: redis.url } });
    gateways.push(shared);
    const replica = await startGateway(env, key, { env: { ...LIMITED, REDIS_URL: redis.url } });
    gateways.push(replica);
    const shim = (gw: Gateway): Part => paths({ fake: `http://127.0.0.1:${fake.port}`, gateway: `http://127.0.0.1:${gw.port}`, gatewayPort: gw.port, key }).shim[0]!;
    const single: Record<string, { gw: Gateway; part: Part }> = { [LOCAL]: { gw: local, part: shim(local) }, [REDIS]: { gw: shared, part: shim(shared) } };
    const pair = [shared, replica];
    const pairParts = pair.map(shim);
    await single[LOCAL]!.part.gateway(WIDE, spec.warmupS);
    await Promise.all(pairParts.map((part) => part.gateway(WIDE / 2, spec.warmupS)));
    await Promise.all(gateways.map((gw) => quiesce(gw.pid)));

    const records: RunRecord[] = [];
    const pairs: PairRecord[] = [];
    const rttMs: number[] = [];
    const callsBefore = await scriptCalls(probe);
    for (let round = 1; round <= rounds; round++) {
      // The order alternates every round, so that a drift in the machine's load favours no variant.
      const forward = round % 2 === 1;
      for (const v of forward ? [LOCAL, REDIS] : [REDIS, LOCAL]) {
        const { gw, part } = single[v]!;
        records.push(await measure({ profile: "zero", round, path: "shim", part, side: "gateway", concurrency: 1, seconds, gw, fake, variant: v }));
      }
      // Right after the c=1 runs, as long as one of them, while the machine is in the same state.
      const rtt = await roundTrip(probe, seconds * 1000);
      rttMs.push(rtt);
      process.stderr.write(`  [redis round trip r${round} c=1] EVAL "return 1" 0: p50 ${rtt.toFixed(3)} ms\n`);
      for (const v of forward ? [LOCAL, REDIS, TWO] : [TWO, REDIS, LOCAL]) {
        if (v === TWO) pairs.push(await measurePair(pair, pairParts, round, seconds));
        else {
          const { gw, part } = single[v]!;
          records.push(await measure({ profile: "zero", round, path: "shim", part, side: "gateway", concurrency: WIDE, seconds, gw, fake, variant: v }));
        }
      }
    }
    // A check that "in Redis" really was: the gateways' script calls against their requests
    // (a take each, and a settle each; a few more from requests cut off at the end of a run).
    const redisRequests = records.filter((r) => r.variant === REDIS).reduce((n, r) => n + r.requests, 0) +
      pairs.reduce((n, p) => n + p.halves.reduce((m, h) => m + h.requests, 0), 0);
    return { records, pairs, rttMs, scriptCalls: (await scriptCalls(probe)) - callsBefore, redisRequests };
  } finally {
    probe.disconnect();
    for (const gw of gateways) await gw.stop();
    await redis.stop();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const int = (n: number) => Math.round(n).toLocaleString("en-US");
const ms = (n: number) => n.toFixed(3);
const signed = (n: number) => `${n >= 0 ? "+" : "−"}${ms(Math.abs(n))}`;
const range = (xs: number[], f: (n: number) => string) => `[${f(Math.min(...xs))} – ${f(Math.max(...xs))}]`;

export function replicasMarkdown(run: ReplicasRun, meta: { date: string; commit: string; command: string; rounds: number; seconds: number }): string {
  const of = (variant: string, concurrency: number) => run.records.filter((r) => r.variant === variant && r.concurrency === concurrency);
  const row = (variant: string, concurrency: number) => {
    const rs = of(variant, concurrency);
    return {
      rps: median(rs.map((r) => r.rps)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)),
      cpu: median(rs.map((r) => r.gatewayCpuUsPerRequest)), errors: rs.reduce((n, r) => n + r.errors, 0),
    };
  };
  /** f(Redis's run, local's run) for each round at `concurrency`: the two ran back to back. */
  const paired = (concurrency: number, f: (redis: RunRecord, local: RunRecord) => number) =>
    of(REDIS, concurrency).flatMap((r) => {
      const l = of(LOCAL, concurrency).find((x) => x.round === r.round);
      return l ? [f(r, l)] : [];
    });
  const rtt = median(run.rttMs);
  const added = paired(1, (r, l) => r.p50 - l.p50);
  const rpsRatio = paired(WIDE, (r, l) => r.rps / l.rps);
  const cpuRatio = paired(WIDE, (r, l) => r.gatewayCpuUsPerRequest / l.gatewayCpuUsPerRequest);
  const one = row(REDIS, WIDE);
  // Per round: the pair's req/s over the single Redis gateway's in the same round.
  const scale = run.pairs.flatMap((p) => {
    const r = of(REDIS, WIDE).find((x) => x.round === p.round);
    return r ? [p.rps / r.rps] : [];
  });
  const two = {
    rps: median(run.pairs.map((p) => p.rps)), cpu: median(run.pairs.map((p) => p.cpuUsPerRequest)),
    // Two runs' percentiles cannot be merged: the mean of the two replicas' own.
    p50: median(run.pairs.map((p) => mean(p.halves.map((h) => h.p50)))), p99: median(run.pairs.map((p) => mean(p.halves.map((h) => h.p99)))),
    errors: run.pairs.reduce((n, p) => n + p.halves.reduce((m, h) => m + h.errors, 0), 0),
  };
  const ratio = (xs: number[]) => `${median(xs).toFixed(3)} ${range(xs, (n) => n.toFixed(3))}`;
  const addedP50 = median(added);
  return [
    "## Replicas (zero profile, shim non-streaming)",
    "",
    `${meta.date}, commit ${meta.commit}, \`${meta.command}\`; ${meta.rounds} rounds of ${meta.seconds} s, interleaved (the order ` +
      `alternating every round). Every request is under a key limit that is never reached (\`RATE_LIMITS_KEY=${LIMITED.RATE_LIMITS_KEY}\`, ` +
      `\`CACHE=off\`), so each one checks and takes it: in the gateway's own memory (${LOCAL}), or in a local \`redis-server\` ` +
      `(${REDIS}, \`REDIS_URL\`). ${TWO}: that gateway and a second one on the same Redis and database, one autocannon run ` +
      `each at once, ${WIDE / 2} connections each; req/s summed, both gateways' CPU per request, p50/p99 the mean of the two runs'. ` +
      "Medians of the rounds; the differences and ratios are paired round by round, [range over the rounds]. " +
      "Redis's round trip: the bench's own `EVAL \"return 1\" 0` in a closed loop at c=1, as long as a run, right after each round's c=1 runs.",
    "",
    "| variant | c | req/s | p50 ms | p99 ms | gateway CPU µs/req | errors |",
    "|---|--:|--:|--:|--:|--:|--:|",
    ...[1, WIDE].flatMap((c) => [LOCAL, REDIS].map((v) => {
      const r = row(v, c);
      return `| ${v} | ${c} | ${int(r.rps)} | ${ms(r.p50)} | ${ms(r.p99)} | ${int(r.cpu)} | ${r.errors} |`;
    })),
    `| ${TWO} | 2×${WIDE / 2} | ${int(two.rps)} | ${ms(two.p50)} | ${ms(two.p99)} | ${int(two.cpu)} | ${two.errors} |`,
    "",
    `Redis round trip p50: ${ms(rtt)} ms ${range(run.rttMs, ms)}. Script calls (EVALSHA) per request through Redis: ` +
      `${(run.scriptCalls / run.redisRequests).toFixed(2)} (${int(run.scriptCalls)} for ${int(run.redisRequests)} requests; a take and a settle each).`,
    "",
    "| target | limit | measured | |",
    "|---|---|---|---|",
    `| added p50 at c=1, ${REDIS} over ${LOCAL} | ≤ one Redis round trip p50 (${ms(rtt)} ms) | ${signed(addedP50)} ms ${range(added, signed)} | ${addedP50 <= rtt ? "✅" : "❌"} |`,
    `| req/s at c=${WIDE}, Redis / local | (stated) | ${ratio(rpsRatio)} | |`,
    `| gateway CPU per request at c=${WIDE}, Redis / local | (stated) | ${ratio(cpuRatio)} | |`,
    `| req/s, ${TWO} / one gateway in Redis (c=${WIDE} in all) | (stated) | ${ratio(scale)} (${int(two.rps)} / ${int(one.rps)}) | |`,
    "| usage on PostgreSQL ≥ 0.9 of SQLite's throughput at c=64 | ≥ 0.9 | not measured: DATABASE_URL is not built yet | ❌ |",
  ].join("\n");
}
