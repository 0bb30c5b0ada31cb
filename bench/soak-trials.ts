// The three soak trials (bench/soak.ts): a long mixed load with memory sampled; kill -9 under
// load; SIGTERM under load. Each gateway gets a database of its own, so that its usage rows can
// be checked against what its clients saw: every request is tagged (`#tag<N>`, reported by the
// fake as N prompt tokens), so a row names the request it is for.
import Database from "better-sqlite3";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Profile } from "./fake-upstream.js";
import { gcTrace, type GcTrace } from "./gc-trace.js";
import { processTree, vmMiB } from "./process-stats.js";
import { createKey, startGateway, type Fake, type Gateway } from "./processes.js";
import { startMixedLoad, type Finished } from "./soak-load.js";
import { sleep } from "./stats.js";

/** Tags start here, far above the prompt tokens of any untagged row (the start-up probe's 12, estimates). */
const FIRST_TAG = 1_000_000;
const EXIT_WAIT_MS = 45_000;

export interface SoakContext {
  fake: Fake;
  tmp: string;
  concurrency: number;
}

interface Started { gw: Gateway; dbPath: string; key: string; gc: GcTrace; origin: string }

let started = 0;
async function start(ctx: SoakContext, workers: number, traceGc = false): Promise<Started> {
  const dbPath = join(ctx.tmp, `soak-${++started}.db`);
  const key = createKey(dbPath);
  const gc = gcTrace();
  const gw = await startGateway({ dbPath, fakePort: ctx.fake.port, envFile: join(ctx.tmp, "none.env") }, key, {
    env: workers > 1 ? { WORKERS: String(workers) } : {},
    ...(traceGc ? { nodeArgs: ["--trace-gc"], onOutput: (t: string) => gc.feed(t) } : {}),
  });
  return { gw, dbPath, key, gc, origin: `http://127.0.0.1:${gw.port}` };
}

/** The rows of the load: all but the start-up probe's (startGateway's one successful request). */
export interface Rows {
  total: number;
  byStatus: Record<string, number>;
  /** Tag → rows naming it. */
  tags: Map<number, number>;
}

function readRows(dbPath: string): Rows {
  // Read-write: after a kill -9 the WAL is recovered on open.
  const db = new Database(dbPath, { fileMustExist: true });
  try {
    const rows = db.prepare("SELECT status, error_kind AS kind, prompt_tokens AS tokens FROM usage").all() as Array<{ status: string; kind: string | null; tokens: number }>;
    const probe = rows.findIndex((r) => r.status === "ok" && r.tokens === 12);
    if (probe >= 0) rows.splice(probe, 1);
    const byStatus: Record<string, number> = {};
    const tags = new Map<number, number>();
    for (const r of rows) {
      const k = r.kind ? `${r.status} ${r.kind}` : r.status;
      byStatus[k] = (byStatus[k] ?? 0) + 1;
      if (r.tokens >= FIRST_TAG) tags.set(r.tokens, (tags.get(r.tokens) ?? 0) + 1);
    }
    return { total: rows.length, byStatus, tags };
  } finally {
    db.close();
  }
}

/** Answers the client saw complete with no row; tagged rows twice; tagged rows of requests the client did not see answered. */
export interface Match { lost: number[]; duplicated: number[]; unanswered: number }

function match(fs: readonly Finished[], rows: Rows): Match {
  const ok = new Set(fs.filter((f) => f.outcome === "ok").map((f) => f.tag));
  return {
    lost: [...ok].filter((t) => !rows.tags.has(t)),
    duplicated: [...rows.tags].filter(([, n]) => n > 1).map(([t]) => t),
    unanswered: [...rows.tags.keys()].filter((t) => !ok.has(t)).length,
  };
}

const alive = (pid: number) => existsSync(`/proc/${pid}`);
async function waitGone(pids: number[], ms: number): Promise<boolean> {
  const until = performance.now() + ms;
  while (pids.some(alive)) {
    if (performance.now() > until) return false;
    await sleep(50);
  }
  return true;
}

const count = (fs: readonly Finished[], outcome: Finished["outcome"]) => fs.filter((f) => f.outcome === outcome).length;

/** How the requests with these tags ended, by outcome (and detail). */
function outcomesOf(fs: readonly Finished[], tags: ReadonlySet<number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of fs) {
    if (!tags.has(f.tag)) continue;
    const k = f.detail ? `${f.outcome} (${f.detail})` : f.outcome;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** What happened to the requests started after a signal, besides being answered. */
export interface AfterSignal {
  /** Answered (complete or with an error): they came on a connection that was already open. */
  answered: number;
  refused: number;
  /** The connection failed before any answer (or the answer broke), by what the client saw. */
  failed: Record<string, number>;
}

function afterSignal(fs: readonly Finished[], at: number): AfterSignal {
  const after = fs.filter((f) => f.startedAt > at);
  const failed: Record<string, number> = {};
  for (const f of after.filter((x) => x.outcome === "closed" || x.outcome === "cut")) {
    const k = `${f.outcome} (${f.detail})`;
    failed[k] = (failed[k] ?? 0) + 1;
  }
  return {
    answered: after.filter((f) => f.outcome === "ok" || f.outcome === "error").length,
    refused: after.filter((f) => f.outcome === "refused").length,
    failed,
  };
}

// ---- a: the long mixed load

export interface MemorySample {
  /** Seconds since the load started. */
  t: number;
  rssMiB: number;
  anonMiB: number;
  /** The V8 heap after the latest full collection (NaN before the first). */
  liveHeapMiB: number;
  heapTotalMiB: number;
  fullGcs: number;
}

export interface SoakResult {
  /** performance.now() when the load started: MemorySample.t and the per-minute figures count from it. */
  loadStartedAt: number;
  seconds: number;
  finished: Finished[];
  samples: MemorySample[];
  rows: Rows;
  match: Match;
  exit: { code: number | null; signal: string | null } | undefined;
  stopMs: number;
}

export async function soak(ctx: SoakContext, minutes: number, everyS = 5): Promise<SoakResult> {
  const s = await start(ctx, 1, true);
  const load = startMixedLoad({ origin: s.origin, key: s.key, concurrency: ctx.concurrency, firstTag: FIRST_TAG });
  const t0 = performance.now();
  const samples: MemorySample[] = [];
  const sample = () => samples.push({
    t: (performance.now() - t0) / 1000, rssMiB: vmMiB(s.gw.pid, "VmRSS"), anonMiB: vmMiB(s.gw.pid, "RssAnon"),
    liveHeapMiB: s.gc.liveHeapMiB(), heapTotalMiB: s.gc.heapTotalMiB(), fullGcs: s.gc.fullGcs(),
  });
  sample();
  const timer = setInterval(sample, everyS * 1000);
  const progress = setInterval(() => {
    const fs = load.finished;
    process.stderr.write(`soak: ${((performance.now() - t0) / 60_000).toFixed(1)} min, ${fs.length} requests, ${fs.length - count(fs, "ok")} not ok, RSS ${samples.at(-1)!.rssMiB.toFixed(1)} MiB\n`);
  }, 30_000);
  await sleep(minutes * 60_000);
  clearInterval(timer);
  clearInterval(progress);
  const finished = await load.stop();
  const seconds = (performance.now() - t0) / 1000;
  sample();
  const stopAt = performance.now();
  s.gw.kill("SIGTERM");
  const exit = await Promise.race([s.gw.exited, sleep(EXIT_WAIT_MS).then(() => undefined)]);
  const stopMs = performance.now() - stopAt;
  const rows = readRows(s.dbPath);
  return { loadStartedAt: t0, seconds, finished, samples, rows, match: match(finished, rows), exit, stopMs };
}

// ---- b: kill -9 under load

export type KillTarget = "primary" | "every process";

export interface KillResult {
  workers: number;
  target: KillTarget;
  loadS: number;
  inFlightAtKill: number;
  /** How the requests in flight at the kill ended, and what happened to those started after it. */
  inFlightOutcomes: Record<string, number>;
  after: AfterSignal;
  finished: Finished[];
  rows: Rows;
  match: Match;
  /** The processes were all gone within the wait (workers left alone drain first). */
  gone: boolean;
}

/**
 * A fresh gateway under the mixed load for `loadS` seconds, and what is true
 * at the moment the caller is about to kill or signal it: its process tree,
 * the requests in flight, and the time.
 */
async function loadedFor(ctx: SoakContext, workers: number, loadS: number) {
  const s = await start(ctx, workers);
  const load = startMixedLoad({ origin: s.origin, key: s.key, concurrency: ctx.concurrency, firstTag: FIRST_TAG });
  await sleep(loadS * 1000);
  return { s, load, tree: processTree(s.gw.pid), inFlight: new Set(load.inFlightTags()), at: performance.now() };
}

export async function killUnderLoad(ctx: SoakContext, workers: number, target: KillTarget, loadS: number): Promise<KillResult> {
  const { s, load, tree, inFlight: atKill, at: killedAt } = await loadedFor(ctx, workers, loadS);
  for (const pid of target === "primary" ? [s.gw.pid] : tree) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  const gone = await waitGone(tree, EXIT_WAIT_MS);
  const finished = await load.stop();
  const rows = readRows(s.dbPath);
  return {
    workers, target, loadS, inFlightAtKill: atKill.size, inFlightOutcomes: outcomesOf(finished, atKill), after: afterSignal(finished, killedAt),
    finished, rows, match: match(finished, rows), gone,
  };
}

// ---- c: SIGTERM under load

export interface TermResult {
  /** The fake's profile: "fast" answers end well within a drain's first moments; "slow" ones run seconds into it. */
  profile: Profile;
  workers: number;
  loadS: number;
  /** Requests in flight when the signal was sent, and how they ended. */
  inFlightAtSignal: number;
  inFlightOutcomes: Record<string, number>;
  after: AfterSignal;
  finished: Finished[];
  rows: Rows;
  match: Match;
  exit: { code: number | null; signal: string | null } | undefined;
  drainMs: number;
}

export async function termUnderLoad(ctx: SoakContext, workers: number, loadS: number, profile: Profile = "fast"): Promise<TermResult> {
  await ctx.fake.setProfile(profile);
  const { s, load, tree, inFlight: atSignal, at: signalAt } = await loadedFor(ctx, workers, loadS);
  s.gw.kill("SIGTERM");
  const exit = await Promise.race([s.gw.exited, sleep(EXIT_WAIT_MS).then(() => undefined)]);
  const drainMs = performance.now() - signalAt;
  await waitGone(tree, EXIT_WAIT_MS);
  const finished = await load.stop();
  const rows = readRows(s.dbPath);
  await ctx.fake.setProfile("fast");
  return {
    profile, workers, loadS, inFlightAtSignal: atSignal.size, inFlightOutcomes: outcomesOf(finished, atSignal), after: afterSignal(finished, signalAt),
    finished, rows, match: match(finished, rows), exit, drainMs,
  };
}
