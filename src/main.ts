import cluster from "node:cluster";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { startApp } from "./app.js";
import { workerMetrics } from "./cluster/cluster-metrics.js";
import { startPrimary } from "./cluster/primary.js";
import type { ToWorker } from "./cluster/messages.js";
import { remoteQuota } from "./cluster/remote-quota.js";
import { loadConfig, type Config } from "./config.js";
import { createLogger, type Logger } from "./log.js";
import { describeDatabaseChoice } from "./storage/database-config.js";

/**
 * Entry point: configuration, then the server (or, with --workers N / WORKERS,
 * a primary process and N workers sharing the port), then a drain on
 * SIGINT/SIGTERM (a second signal ends what is still in flight at once).
 */
async function main(): Promise<void> {
  let config: Config;
  try {
    const { values } = parseArgs({ options: { workers: { type: "string" } }, strict: true });
    config = loadConfig(values.workers === undefined ? process.env : { ...process.env, WORKERS: values.workers });
  } catch (err) {
    process.stderr.write(`gatewayz: configuration error: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const log = createLogger(config.logLevel, undefined, config.logFormat);
  if (cluster.isWorker) return worker(config, log);
  log.info(`Database: ${describeDatabaseChoice(config.database) ?? describeDatabase(config.databasePath)}`);
  const listening = `(gRPC, gRPC-Web, Connect and OpenAI-compatible /v1)`;
  const fail = (err: NodeJS.ErrnoException): never => {
    log.error(err.code === "EADDRINUSE" ? `port ${config.port} on ${config.host} is already in use` : `could not start: ${err.message}`);
    process.exit(1);
  };
  if (config.workers > 1) {
    const primary = await startPrimary(config, log, config.workers).catch(fail);
    log.info(`Gatewayz listening on http://${config.host}:${config.port} with ${config.workers} workers ${listening}`);
    onStop(log, config, primary);
  } else {
    const app = await startApp(config, log).catch(fail);
    log.info(`Gatewayz listening on ${app.url} ${listening}`);
    onStop(log, config, app);
  }
}

/** The database's absolute path (DATABASE_PATH may be relative to the working directory), and whether it is new. */
function describeDatabase(path: string): string {
  if (path === ":memory:") return ":memory: (in memory: nothing is kept)";
  const absolute = resolve(path);
  return existsSync(absolute) ? absolute : `${absolute} (new: creating it)`;
}

/** A --workers worker: a whole gateway whose limits and budgets live in the primary. */
async function worker(config: Config, log: Logger): Promise<void> {
  // Its limits live in the primary, and a scrape of it answers for every worker (cluster/cluster-metrics.ts).
  const app = await startApp(config, log, { quota: (policy) => remoteQuota(policy), metrics: (local) => workerMetrics(local) }).catch((err: Error) => {
    log.error(`worker could not start: ${err.message}`);
    process.exit(1);
  });
  const stop = onStop(log, config, app);
  // The primary drains the workers over IPC, not by signal (see cluster/primary.ts).
  process.on("message", (m: ToWorker) => {
    if (m.t === "shutdown") stop(m.hurry ? "the primary is stopping now" : "the primary is stopping", m.hurry);
  });
  // The primary is gone (killed): nothing would count this worker's limits any
  // more, so stop. Node's cluster code would exit at once after this event;
  // marking the disconnect expected lets the shutdown drain and commit first.
  cluster.worker!.once("disconnect", () => {
    cluster.worker!.exitedAfterDisconnect = true;
    stop("the primary process exited");
  });
}

interface Stoppable {
  close(): Promise<void>;
  hurry(): void;
}

/**
 * SIGTERM or SIGINT drains (README: shutdown); a second signal ends what is
 * still in flight at once, and the usage rows are still committed. The
 * process exits 0 once everything is closed. Only signals count towards
 * "second": a worker told by its primary to drain and then reached by the
 * same process-group signal must not take it for a second one.
 */
function onStop(log: Logger, config: Config, target: Stoppable): (why: string, hurry?: boolean) => void {
  let stopping = false;
  let signals = 0;
  const stop = (why: string, hurry = false) => {
    if (hurry) {
      if (stopping) log.warn(`${why}: ending the requests still in flight now`);
      target.hurry();
    }
    if (stopping) return;
    stopping = true;
    log.info(`${why}: draining (up to ${config.server.drainTimeoutMs} ms), then shutting down`);
    target.close().then(() => process.exit(0), (err: Error) => {
      log.error(`shutdown failed: ${err.message}`);
      process.exit(1);
    });
  };
  const onSignal = (name: string) => stop(++signals > 1 ? `${name} again` : name, signals > 1);
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  return stop;
}

void main();
