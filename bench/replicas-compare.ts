// The replicated profile (issue 13): what sharing the limits through Redis (REDIS_URL) costs a
// request. The shim's non-streaming load, zero upstream profile, with a key limit that applies to
// every request and is never reached, through three set-ups, interleaved round by round:
//   - "limits local": one gateway keeping its limits in its own memory;
//   - "limits in Redis": one gateway with REDIS_URL (one script call before going upstream, and
//     a settle it does not wait for);
//   - "2 replicas in Redis": that gateway and a second one, on the same Redis and the same SQLite
//     file (DATABASE_PATH), the load split between them (c=64 only: c=1 cannot be split);
//   - "2 replicas in Redis, PostgreSQL": two more gateways, on the same Redis and on a local
//     PostgreSQL (DATABASE_URL, bench/postgres-server.ts) for keys, limits and usage, the load
//     split the same way: the usage rows go in asynchronous batched INSERTs, and the target is
//     that this pair serves at least 0.9 of the SQLite pair's throughput.
// At c=1 the latency (the target: Redis adds at most one of its own round trips, measured here
// as the bench's closed loop of script calls to the same Redis), at c=64 throughput and CPU.
// Its own section of RESULTS.md, so that `--only-replicas` can refresh it alone.
import { Redis } from "ioredis";
import pg from "pg";
import { Pool } from "undici";
import { measure } from "./measure.js";
import { paths, type Part } from "./paths.js";
import { cpuMeter, machineBusyTicks, quiesce, sampleCpu, ticksAt, ticksToUs, type CpuSample } from "./process-stats.js";
import { startBenchPostgres, REPORTED_SETTINGS, type BenchPostgres } from "./postgres-server.js";
import { createKey, startGateway, type Fake, type Gateway, type GatewayEnv } from "./processes.js";
import { startBenchRedis } from "./redis-server.js";
import type { RunRecord } from "./report.js";
import { percentile, sleep, type LoadResult } from "./stats.js";

type Window = Pick<LoadResult, "windowFrom" | "windowTo">;

export const REPLICAS_SECTION = "replicas";

const LOCAL = "limits local";
const REDIS = "limits in Redis";
const TWO = "2 replicas in Redis";
const TWO_PG = "2 replicas in Redis, PostgreSQL";
/** The throughput the PostgreSQL pair must keep, against the SQLite pair's (issue 13). */
const PG_TARGET = 0.9;
/** A limit on every request that is never reached (each request checks and takes it); no cache in the picture. */
const LIMITED = { RATE_LIMITS_KEY: "rpm=100000000,concurrent=100000", CACHE: "off" };
/** The load concurrency for throughput and CPU; latency is taken at c=1. */
const WIDE = 64;

export interface ReplicasSpec { fake: Fake; env: GatewayEnv; key: string; rounds: number; seconds: number; warmupS: number }

/** One round of two replicas: both autocannon runs at once, half the connections each. */
export interface PairRecord {
  round: number;
  /** The two runs' req/s summed. */
  rps: number;
  /** Both gateways' CPU rate over their runs' windows, per request/s of the pair. */
  cpuUsPerRequest: number;
  /** The PostgreSQL server's (the postmaster and its backends) over the same windows, per request/s; on PostgreSQL only. */
  dbCpuUsPerRequest?: number;
  /** CPU the rest of the machine used meanwhile (not the fake, the pair, PostgreSQL or the bench), ms per s. */
  otherMsPerS: number;
  /** Each replica's run alone. */
  halves: Array<{ rps: number; p50: number; p99: number; errors: number; requests: number }>;
}

export interface ReplicasRun {
  /** limits local / limits in Redis, at c=1 and c=64. */
  records: RunRecord[];
  /** The pair on the shared SQLite file. */
  pairs: PairRecord[];
  /** The pair on PostgreSQL. */
  pgPairs: PairRecord[];
  /** Each pair's warm-up: its gateways' CPU µs per request in each 1 s run. */
  warmups: { sqlite: number[]; postgres: number[] };
  /** PostgreSQL's settings as the server reports them (SHOW), and the ones given on its command line. */
  pg: {
    settings: Record<string, string>; commandLine: readonly string[];
    /** Over the measured runs: the rows the pair wrote, in how many INSERTs (transactions), for how many requests counted. */
    usageRows: number; batches: number; requests: number;
  };
  /** The p50 of the bench's own round trips to Redis, one per round, ms: in a closed loop, and paced (see pacedRoundTrip). */
  rttMs: number[];
  pacedRttMs: number[];
  /** Each round's alternating c=1 run (see alternating) on the Redis gateway and on the local one. */
  alternating: Array<{ round: number; redis: Alternated; local: Alternated }>;
  /** The gateways' script calls (EVALSHA) over the measured runs, against the requests they served through Redis. */
  scriptCalls: number;
  redisRequests: number;
}

/** The gateways' calls Redis has served so far: scripts (EVALSHA, ioredis's defineCommand) and settles (ZREM); the bench's own probe sends EVAL. */
async function scriptCalls(client: Redis): Promise<number> {
  const info = await client.info("commandstats");
  return ["evalsha", "zrem"].reduce((n, c) => n + Number(new RegExp(`cmdstat_${c}:calls=(\\d+)`).exec(info)?.[1] ?? 0), 0);
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
 * The same round trip as a request at c=1 meets it: one call, then a 1 ms timer (about a c=1
 * request's period here), then the next, so that Redis and the caller wait idle in between as
 * they do between a gateway's requests. After an idle wait the same call takes about twice as
 * long as in a closed loop (the processes, and the machine's cores, wake up first).
 */
async function pacedRoundTrip(client: Redis, ms: number): Promise<number> {
  const times: number[] = [];
  const until = performance.now() + ms;
  while (performance.now() < until) {
    await sleep(1);
    const t = performance.now();
    await client.eval("return 1", 0);
    times.push(performance.now() - t);
  }
  return percentile(times.sort((a, b) => a - b), 50);
}

interface Alternated { limited: number; free: number; requests: number; errors: number }

/**
 * What the limits add to a request in one process: a closed loop at c=1 on one keep-alive
 * connection, alternating a key under the load's limit and a key with no limit at all (which
 * never reaches the limiter, or Redis), request by request; p50 of each. Both halves run in
 * the same process, in the same seconds, with the same JIT state, so the difference is free
 * of the ±10% that two processes (or two runs) differ by. It counts the local limiter's own
 * cost too (the local gateway's difference shows it).
 */
async function alternating(gw: Gateway, limitedKey: string, freeKey: string, seconds: number): Promise<Alternated> {
  const pool = new Pool(`http://127.0.0.1:${gw.port}`, { connections: 1, pipelining: 1 });
  const body = JSON.stringify({ model: "qwen-max", messages: [{ role: "user", content: "Hello from the alternating probe" }] });
  const times = { limited: [] as number[], free: [] as number[] };
  let errors = 0;
  try {
    const until = performance.now() + seconds * 1000;
    for (let i = 0; performance.now() < until; i++) {
      const which = i % 2 ? "limited" : "free";
      const t = performance.now();
      const res = await pool.request({
        path: "/v1/chat/completions", method: "POST", body,
        headers: { authorization: `Bearer ${which === "limited" ? limitedKey : freeKey}`, "content-type": "application/json" },
      });
      await res.body.text();
      if (res.statusCode !== 200) errors++;
      else times[which].push(performance.now() - t);
    }
  } finally {
    await pool.close();
  }
  const p50 = (xs: number[]) => percentile(xs.sort((a, b) => a - b), 50);
  return { limited: p50(times.limited), free: p50(times.free), requests: times.limited.length + times.free.length, errors };
}

/** Both runs of a pair at once, with the CPU read over their steady windows (see measurePair). */
async function loadPair(fake: Fake, pair: Gateway[], parts: Part[], seconds: number, dbPid?: number) {
  const samplers = pair.map((gw) => sampleCpu(gw.pid));
  const dbSampler = dbPid === undefined ? undefined : sampleCpu(dbPid);
  const ours = [fake.pid, ...pair.map((gw) => gw.pid), ...(dbPid === undefined ? [] : [dbPid])].map(cpuMeter);
  const self = process.cpuUsage();
  const busy = machineBusyTicks();
  const results = await Promise.all(parts.map((part) => part.gateway(WIDE / pair.length, seconds)));
  const samples = samplers.map((s) => s.stop());
  const dbSamples = dbSampler?.stop();
  // As measure() does: what the rest of the machine ran meanwhile (Redis counts there, a few % of a core).
  const oursUs = ours.reduce((n, m) => n + m().us, 0) + (({ user, system }) => user + system)(process.cpuUsage(self));
  const otherMsPerS = Math.max(0, ticksToUs(machineBusyTicks() - busy) - oursUs) / 1000 / Math.max(...results.map((r) => r.seconds));
  /** CPU µs per second of `s` over run `r`'s steady window. */
  const rateOver = (s: CpuSample[], r: Window) => ticksToUs(ticksAt(s, r.windowTo) - ticksAt(s, r.windowFrom)) / ((r.windowTo - r.windowFrom) / 1000);
  const cpuRate = results.reduce((n, r, i) => n + rateOver(samples[i]!, r), 0);
  const rps = results.reduce((n, r) => n + r.rps, 0);
  // The server serves both runs at once: its rate over the window the two runs' windows share, or the first's if none.
  const shared: Window = { windowFrom: Math.max(...results.map((r) => r.windowFrom)), windowTo: Math.min(...results.map((r) => r.windowTo)) };
  const dbWindow = shared.windowTo > shared.windowFrom ? shared : results[0]!;
  return { results, rps, cpuUsPerRequest: cpuRate / rps, dbCpuUsPerRequest: dbSamples && rateOver(dbSamples, dbWindow) / rps, otherMsPerS };
}

/**
 * Two autocannon runs at once, one per replica, half the connections each. The CPU is read as
 * measure() reads one gateway's: each gateway's over its own run's steady window, here summed
 * as rates and divided by the pair's requests/s; PostgreSQL's (`dbPid`, the postmaster and its
 * backends) over the window the two runs share.
 */
async function measurePair(label: string, fake: Fake, pair: Gateway[], parts: Part[], round: number, seconds: number, dbPid?: number): Promise<PairRecord> {
  const { results, rps, cpuUsPerRequest, dbCpuUsPerRequest, otherMsPerS } = await loadPair(fake, pair, parts, seconds, dbPid);
  const rec: PairRecord = {
    round, rps, cpuUsPerRequest,
    ...(dbCpuUsPerRequest === undefined ? {} : { dbCpuUsPerRequest }),
    halves: results.map((r) => ({ rps: r.rps, p50: r.p50, p99: r.p99, errors: r.errors, requests: r.requests })),
    otherMsPerS,
  };
  const errors = results.reduce((n, r) => n + r.errors, 0);
  process.stderr.write(`  [${label} zero r${round} c=${pair.length}×${WIDE / pair.length}] shim non-streaming gateway: ${Math.round(rps)} req/s ` +
    `(${results.map((r) => Math.round(r.rps)).join(" + ")}) p50 ${results.map((r) => r.p50.toFixed(2)).join(" / ")} ` +
    `gw cpu ${Math.round(cpuUsPerRequest)} µs/req${dbCpuUsPerRequest === undefined ? "" : ` postgres cpu ${Math.round(dbCpuUsPerRequest)} µs/req`}` +
    `${errors ? ` ERRORS ${errors}` : ""}${otherMsPerS > 100 ? ` (others on the machine: ${Math.round(otherMsPerS)} ms/s)` : ""}\n`);
  // As measure() does: the requests cancelled at the end are finished off (their rows written) before the next run.
  await Promise.all([...pair.map((gw) => quiesce(gw.pid)), ...(dbPid === undefined ? [] : [quiesce(dbPid)])]);
  await sleep(50);
  return rec;
}

/** A pair's warm-up: runs of this length, ... */
const WARM_RUN_S = 1;
/** ...until each of its gateways has served this many requests, ... */
const WARM_REQUESTS = 6000;
/** ...and two runs in a row have not beaten the best before them by more than this; at most that many runs. */
const SETTLED = 0.1;
const WARM_MAX = 15;

/**
 * Loads a pair in short runs until its gateways' CPU per request has stopped falling. A
 * gateway's JIT takes thousands of requests to settle (V8's compiler threads show in its CPU),
 * with plateaus on the way, and not as fast everywhere: on PostgreSQL the bridge's worker thread
 * runs its code once a batch, not once a request. With a fixed warm-up of a run's length the
 * PostgreSQL pair's first rounds took up to 1.6 times its last rounds' CPU per request, the
 * SQLite pair's (whose first gateway also serves the single runs) 1.25 times.
 */
async function warmPair(label: string, fake: Fake, pair: Gateway[], parts: Part[]): Promise<number[]> {
  const costs: number[] = [];
  const served = pair.map(() => 0);
  let calm = 0;
  while (costs.length < WARM_MAX) {
    const run = await loadPair(fake, pair, parts, WARM_RUN_S);
    run.results.forEach((r, i) => (served[i]! += r.requests));
    calm = costs.length && run.cpuUsPerRequest >= (1 - SETTLED) * Math.min(...costs) ? calm + 1 : 0;
    costs.push(run.cpuUsPerRequest);
    if (Math.min(...served) >= WARM_REQUESTS && calm >= 2) break;
  }
  process.stderr.write(`  [${label} warm-up] ${costs.length} runs of ${WARM_RUN_S} s at c=${pair.length}×${WIDE / pair.length}, ` +
    `${served.map(Math.round).join(" + ")} requests: gw cpu ${costs.map(Math.round).join(" → ")} µs/req\n`);
  await Promise.all(pair.map((gw) => quiesce(gw.pid)));
  return costs;
}

/** The server's settings that matter for a commit's cost, as it reports them. */
async function serverSettings(db: pg.Client): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of REPORTED_SETTINGS) out[name] = String((await db.query(`SHOW ${name}`)).rows[0]?.[name] ?? "?");
  return out;
}

/**
 * The usage table's rows, and the transactions that wrote them: a batch is one INSERT, its rows
 * share the transaction's id (xmin), so the distinct ids count the batches.
 */
async function usageRows(db: pg.Client): Promise<{ rows: number; batches: number }> {
  const r = (await db.query<{ n: string; b: string }>("SELECT COUNT(*) AS n, COUNT(DISTINCT xmin::text) AS b FROM usage")).rows[0]!;
  return { rows: Number(r.n), batches: Number(r.b) };
}

export async function compareReplicas(spec: ReplicasSpec): Promise<ReplicasRun> {
  const { fake, env, key, rounds, seconds } = spec;
  await fake.setProfile("zero");
  const redis = await startBenchRedis();
  const probe = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  const gateways: Gateway[] = [];
  let postgres: BenchPostgres | undefined;
  let db: pg.Client | undefined;
  try {
    postgres = await startBenchPostgres();
    // The key the PostgreSQL pair's load uses, made there by the CLI (as run.ts makes the SQLite one):
    // it brings the schema up too, before either gateway starts.
    const pgKey = createKey(postgres.url);
    db = new pg.Client({ connectionString: postgres.url });
    await db.connect();
    // A key with no limit (its own row of zeros over RATE_LIMITS_KEY), for the alternating probe.
    const freeKey = createKey(env.dbPath, undefined, ["--name", "bench-unlimited", "--rpm", "0", "--concurrent", "0"]);
    // All of them up front, so that the pairs run in every round with the others, not after them.
    const local = await startGateway(env, key, { env: LIMITED });
    gateways.push(local);
    const shared = await startGateway(env, key, { env: { ...LIMITED, REDIS_URL: redis.url } });
    gateways.push(shared);
    const replica = await startGateway(env, key, { env: { ...LIMITED, REDIS_URL: redis.url } });
    gateways.push(replica);
    // DATABASE_URL wins over the DATABASE_PATH that startGateway sets: nothing of theirs is in the SQLite file.
    const onPg = { ...LIMITED, REDIS_URL: redis.url, DATABASE_URL: postgres.url };
    const pgPair: Gateway[] = [];
    for (let i = 0; i < 2; i++) {
      const gw = await startGateway(env, pgKey, { env: onPg });
      gateways.push(gw);
      pgPair.push(gw);
    }
    const shim = (gw: Gateway, k = key): Part =>
      paths({ fake: `http://127.0.0.1:${fake.port}`, gateway: `http://127.0.0.1:${gw.port}`, gatewayPort: gw.port, key: k }).shim[0]!;
    const single: Record<string, { gw: Gateway; part: Part }> = { [LOCAL]: { gw: local, part: shim(local) }, [REDIS]: { gw: shared, part: shim(shared) } };
    const pair = [shared, replica];
    const pairParts = pair.map((gw) => shim(gw));
    const pgParts = pgPair.map((gw) => shim(gw, pgKey));
    await single[LOCAL]!.part.gateway(WIDE, spec.warmupS);
    // Each pair until its CPU per request has settled: see warmPair.
    const warmups = { sqlite: await warmPair(TWO, fake, pair, pairParts), postgres: await warmPair(TWO_PG, fake, pgPair, pgParts) };
    await Promise.all([...gateways.map((gw) => quiesce(gw.pid)), quiesce(postgres.pid)]);

    const records: RunRecord[] = [];
    const pairs: PairRecord[] = [];
    const pgPairs: PairRecord[] = [];
    const rttMs: number[] = [];
    const pacedRttMs: number[] = [];
    const alternated: ReplicasRun["alternating"] = [];
    const callsBefore = await scriptCalls(probe);
    const rowsBefore = await usageRows(db);
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
      const paced = await pacedRoundTrip(probe, seconds * 1000);
      pacedRttMs.push(paced);
      process.stderr.write(`  [redis round trip r${round} c=1] EVAL "return 1" 0: p50 ${rtt.toFixed(3)} ms in a closed loop, ${paced.toFixed(3)} ms paced\n`);
      const both = { redis: await alternating(shared, key, freeKey, seconds), local: await alternating(local, key, freeKey, seconds) };
      alternated.push({ round, ...both });
      for (const [name, a] of Object.entries(both)) {
        process.stderr.write(`  [alternating r${round} c=1, ${name === "redis" ? REDIS : LOCAL}] limited key p50 ${a.limited.toFixed(3)} ms, ` +
          `unlimited ${a.free.toFixed(3)} ms: ${signed(a.limited - a.free)} ms${a.errors ? ` ERRORS ${a.errors}` : ""}\n`);
      }
      // The two pairs back to back in every round (SQLite's, then PostgreSQL's, or the other way round).
      for (const v of forward ? [LOCAL, REDIS, TWO, TWO_PG] : [TWO_PG, TWO, REDIS, LOCAL]) {
        if (v === TWO) pairs.push(await measurePair(TWO, fake, pair, pairParts, round, seconds));
        else if (v === TWO_PG) pgPairs.push(await measurePair(TWO_PG, fake, pgPair, pgParts, round, seconds, postgres.pid));
        else {
          const { gw, part } = single[v]!;
          records.push(await measure({ profile: "zero", round, path: "shim", part, side: "gateway", concurrency: WIDE, seconds, gw, fake, variant: v }));
        }
      }
    }
    const halvesRequests = (ps: PairRecord[]) => ps.reduce((n, p) => n + p.halves.reduce((m, h) => m + h.requests, 0), 0);
    // A check that "in Redis" really was: the gateways' script calls against their requests
    // (a take each, and a settle each; a few more from requests cut off at the end of a run).
    const redisRequests = records.filter((r) => r.variant === REDIS).reduce((n, r) => n + r.requests, 0) + halvesRequests(pairs) + halvesRequests(pgPairs) +
      alternated.reduce((n, a) => n + Math.floor(a.redis.requests / 2), 0);
    // And that the usage rows of the PostgreSQL pair's requests are there (every request awaits its row's commit).
    const rowsAfter = await usageRows(db);
    return {
      records, pairs, pgPairs, warmups, rttMs, pacedRttMs, alternating: alternated, scriptCalls: (await scriptCalls(probe)) - callsBefore, redisRequests,
      pg: {
        settings: await serverSettings(db), commandLine: postgres.settings, requests: halvesRequests(pgPairs),
        usageRows: rowsAfter.rows - rowsBefore.rows, batches: rowsAfter.batches - rowsBefore.batches,
      },
    };
  } finally {
    probe.disconnect();
    await db?.end().catch(() => {});
    for (const gw of gateways) await gw.stop();
    await postgres?.stop();
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
  const pacedRtt = median(run.pacedRttMs);
  const added = paired(1, (r, l) => r.p50 - l.p50);
  const addedRedis = run.alternating.map((a) => a.redis.limited - a.redis.free);
  const addedLocal = run.alternating.map((a) => a.local.limited - a.local.free);
  const altErrors = run.alternating.reduce((n, a) => n + a.redis.errors + a.local.errors, 0);
  const rpsRatio = paired(WIDE, (r, l) => r.rps / l.rps);
  const cpuRatio = paired(WIDE, (r, l) => r.gatewayCpuUsPerRequest / l.gatewayCpuUsPerRequest);
  const one = row(REDIS, WIDE);
  // Per round: the pair's req/s over the single Redis gateway's in the same round.
  const scale = run.pairs.flatMap((p) => {
    const r = of(REDIS, WIDE).find((x) => x.round === p.round);
    return r ? [p.rps / r.rps] : [];
  });
  const pairRow = (ps: PairRecord[]) => ({
    rps: median(ps.map((p) => p.rps)), cpu: median(ps.map((p) => p.cpuUsPerRequest)),
    // Two runs' percentiles cannot be merged: the mean of the two replicas' own.
    p50: median(ps.map((p) => mean(p.halves.map((h) => h.p50)))), p99: median(ps.map((p) => mean(p.halves.map((h) => h.p99)))),
    errors: ps.reduce((n, p) => n + p.halves.reduce((m, h) => m + h.errors, 0), 0),
  });
  const two = pairRow(run.pairs);
  const twoPg = pairRow(run.pgPairs);
  /** f(PostgreSQL's pair, SQLite's pair) for each round: the two ran back to back. */
  const pgPaired = (f: (pgPair: PairRecord, sqlitePair: PairRecord) => number) => run.pgPairs.flatMap((p) => {
    const l = run.pairs.find((x) => x.round === p.round);
    return l ? [f(p, l)] : [];
  });
  const pgRps = pgPaired((p, l) => p.rps / l.rps);
  const pgCpu = pgPaired((p, l) => p.cpuUsPerRequest / l.cpuUsPerRequest);
  // On this machine everything shares its cores: the server's CPU a request is taken from the gateways'.
  const pgAllCpu = pgPaired((p, l) => (p.cpuUsPerRequest + (p.dbCpuUsPerRequest ?? 0)) / l.cpuUsPerRequest);
  const dbCpus = run.pgPairs.map((p) => p.dbCpuUsPerRequest ?? NaN);
  const dbCpu = median(dbCpus);
  const pgMet = median(pgRps) >= PG_TARGET;
  const settings = run.pg.settings;
  // The machine's noise, as measure() flags a run: the rest of the machine over 100 ms of CPU a second.
  const noisy = [...run.records.map((r) => (r.otherCpuUs ?? 0) / 1000 / r.seconds), ...run.pairs.map((p) => p.otherMsPerS), ...run.pgPairs.map((p) => p.otherMsPerS)];
  const ratio = (xs: number[]) => `${median(xs).toFixed(3)} ${range(xs, (n) => n.toFixed(3))}`;
  const addedP50 = median(added);
  return [
    "## Replicas (zero profile, shim non-streaming)",
    "",
    `${meta.date}, commit ${meta.commit}, \`${meta.command}\`; ${meta.rounds} rounds of ${meta.seconds} s, interleaved (the order ` +
      `alternating every round). Every request is under a key limit that is never reached (\`RATE_LIMITS_KEY=${LIMITED.RATE_LIMITS_KEY}\`, ` +
      `\`CACHE=off\`), so each one checks and takes it: in the gateway's own memory (${LOCAL}), or in a local \`redis-server\` ` +
      `(${REDIS}, \`REDIS_URL\`). ${TWO}: that gateway and a second one on the same Redis and SQLite file (\`DATABASE_PATH\`), one autocannon run ` +
      `each at once, ${WIDE / 2} connections each; req/s summed, both gateways' CPU per request, p50/p99 the mean of the two runs'. ` +
      `${TWO_PG}: two more gateways, the same way, on the same Redis and on a local PostgreSQL (\`DATABASE_URL\`; the load's key made there ` +
      `by the CLI before they start), run right before or after that pair in every round. Each pair warmed up first in ${WARM_RUN_S} s runs ` +
      `until each gateway had served ${int(WARM_REQUESTS)} requests and two runs in a row did not beat the lowest gateway CPU per request ` +
      `before them by over ${SETTLED * 100}% (at most ${WARM_MAX} runs). ` +
      "Medians of the rounds; the differences and ratios are paired round by round, [range over the rounds]. " +
      "Redis's round trip: the bench's own `EVAL \"return 1\" 0` at c=1, as long as a run, right after each round's c=1 runs: in a closed loop, " +
      "and paced (a 1 ms timer before each call, about a c=1 request's period, so that both sides wait idle in between as between requests). " +
      "Alternating: in each round, a closed loop at c=1 on one connection to one gateway, alternating a key under the limit and a key with " +
      "no limit (never sent to the limiter), request by request, as long as a run; the difference of their p50s is what the limits add, " +
      "with both halves in the same process and seconds.",
    "",
    "| variant | c | req/s | p50 ms | p99 ms | gateway CPU µs/req | errors |",
    "|---|--:|--:|--:|--:|--:|--:|",
    ...[1, WIDE].flatMap((c) => [LOCAL, REDIS].map((v) => {
      const r = row(v, c);
      return `| ${v} | ${c} | ${int(r.rps)} | ${ms(r.p50)} | ${ms(r.p99)} | ${int(r.cpu)} | ${r.errors} |`;
    })),
    `| ${TWO} | 2×${WIDE / 2} | ${int(two.rps)} | ${ms(two.p50)} | ${ms(two.p99)} | ${int(two.cpu)} | ${two.errors} |`,
    `| ${TWO_PG} | 2×${WIDE / 2} | ${int(twoPg.rps)} | ${ms(twoPg.p50)} | ${ms(twoPg.p99)} | ${int(twoPg.cpu)} (+ ${int(dbCpu)} PostgreSQL's) | ${twoPg.errors} |`,
    "",
    `PostgreSQL ${settings.server_version}: a fresh cluster (initdb) in a temporary directory, on 127.0.0.1, the bench's own ` +
      `(bench/postgres-server.ts); \`${run.pg.commandLine.join(" ")}\` on its command line, the rest its defaults: ` +
      `fsync=${settings.fsync}, synchronous_commit=${settings.synchronous_commit}, full_page_writes=${settings.full_page_writes}, ` +
      `wal_level=${settings.wal_level}, commit_delay=${settings.commit_delay}, shared_buffers=${settings.shared_buffers} ` +
      `(SQLite's file: WAL, synchronous=NORMAL, so no flush at a commit). PostgreSQL's CPU: the postmaster and its backends, ` +
      `over the window both runs of the pair share. Usage rows the PostgreSQL pair wrote over the measured runs: ` +
      `${int(run.pg.usageRows)} for ${int(run.pg.requests)} requests counted (a few more than counted: the requests cut off at the end of a run), ` +
      `in ${int(run.pg.batches)} INSERTs (transactions), ${(run.pg.usageRows / run.pg.batches).toFixed(1)} rows each on average. ` +
      `Warm-ups, gateway CPU µs/req in each 1 s run: ${TWO} ${run.warmups.sqlite.map(int).join(" → ")}; ${TWO_PG} ${run.warmups.postgres.map(int).join(" → ")}.`,
    "",
    `Runs during which the rest of the machine (other processes, or the hypervisor's steal) used over 100 ms of CPU a second: ${noisy.filter((x) => x > 100).length} of ${noisy.length} ` +
      `(the most: ${int(Math.max(...noisy))} ms/s). ` +
      `Redis round trip p50: ${ms(rtt)} ms ${range(run.rttMs, ms)} in a closed loop, ${ms(pacedRtt)} ms ${range(run.pacedRttMs, ms)} paced. ` +
      `Alternating (c=1, one process): ${REDIS} limited ${ms(median(run.alternating.map((a) => a.redis.limited)))} ms / unlimited ` +
      `${ms(median(run.alternating.map((a) => a.redis.free)))} ms; ${LOCAL} ${ms(median(run.alternating.map((a) => a.local.limited)))} / ` +
      `${ms(median(run.alternating.map((a) => a.local.free)))} ms; ${int(run.alternating.reduce((n, a) => n + a.redis.requests + a.local.requests, 0))} requests, ` +
      `${altErrors} errors. Redis calls (EVALSHA, ZREM) per request through Redis: ` +
      `${(run.scriptCalls / run.redisRequests).toFixed(2)} (${int(run.scriptCalls)} for ${int(run.redisRequests)} requests; a take each, and its settle: a plain ZREM for a lone concurrency slot).`,
    "",
    "| target | limit | measured | |",
    "|---|---|---|---|",
    `| added p50 at c=1 from Redis: limited over unlimited key in the ${REDIS} gateway, alternating | ≤ one Redis round trip p50, paced (${ms(pacedRtt)} ms) | ${signed(median(addedRedis))} ms ${range(addedRedis, signed)} | ${median(addedRedis) <= pacedRtt ? "✅" : "❌"} |`,
    `| the same in the ${LOCAL} gateway (the limiter's own cost) | (stated) | ${signed(median(addedLocal))} ms ${range(addedLocal, signed)} | |`,
    `| added p50 at c=1, ${REDIS} over ${LOCAL} (two processes, run after run) | (stated; closed-loop round trip ${ms(rtt)} ms) | ${signed(addedP50)} ms ${range(added, signed)} | |`,
    `| req/s at c=${WIDE}, Redis / local | (stated) | ${ratio(rpsRatio)} | |`,
    `| gateway CPU per request at c=${WIDE}, Redis / local | (stated) | ${ratio(cpuRatio)} | |`,
    `| req/s, ${TWO} / one gateway in Redis (c=${WIDE} in all) | (stated) | ${ratio(scale)} (${int(two.rps)} / ${int(one.rps)}) | |`,
    `| usage on PostgreSQL: req/s, ${TWO_PG} / ${TWO} (SQLite) | ≥ ${PG_TARGET} | ${ratio(pgRps)} (${int(twoPg.rps)} / ${int(two.rps)}) | ${pgMet ? "✅" : "❌"} |`,
    `| gateway CPU per request, ${TWO_PG} / ${TWO} (SQLite) | (stated) | ${ratio(pgCpu)} (${int(twoPg.cpu)} / ${int(two.cpu)} µs) | |`,
    `| PostgreSQL's own CPU per request, ${TWO_PG} | (stated) | ${int(dbCpu)} µs ${range(dbCpus, int)} | |`,
    `| CPU per request, ${TWO_PG} (gateways and PostgreSQL) / ${TWO} (gateways, SQLite in them) | (stated) | ${ratio(pgAllCpu)} | |`,
  ].join("\n");
}
