import cluster from "node:cluster";
import { parseArgs } from "node:util";
import { startApp } from "./app.js";
import { startPrimary } from "./cluster/primary.js";
import { remoteQuota } from "./cluster/remote-quota.js";
import { loadConfig, type Config } from "./config.js";
import { createLogger, type Logger } from "./log.js";

/**
 * Entry point: configuration, then the server (or, with --workers N / WORKERS,
 * a primary process and N workers sharing the port), then a clean shutdown on
 * SIGINT/SIGTERM.
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
  const log = createLogger(config.logLevel);
  if (cluster.isWorker) return worker(config, log);
  const listening = `(gRPC, gRPC-Web, Connect and OpenAI-compatible /v1)`;
  const fail = (err: NodeJS.ErrnoException): never => {
    log.error(err.code === "EADDRINUSE" ? `port ${config.port} on ${config.host} is already in use` : `could not start: ${err.message}`);
    process.exit(1);
  };
  let close: () => Promise<void>;
  if (config.workers > 1) {
    const primary = await startPrimary(config, log, config.workers).catch(fail);
    log.info(`Gatewayz listening on http://${config.host}:${config.port} with ${config.workers} workers ${listening}`);
    close = () => primary.close();
  } else {
    const app = await startApp(config, log).catch(fail);
    log.info(`Gatewayz listening on ${app.url} ${listening}`);
    close = () => app.close();
  }
  onStop(log, close);
}

/** A --workers worker: a whole gateway whose limits and budgets live in the primary. */
async function worker(config: Config, log: Logger): Promise<void> {
  const app = await startApp(config, log, { quota: (policy) => remoteQuota(policy) }).catch((err: Error) => {
    log.error(`worker could not start: ${err.message}`);
    process.exit(1);
  });
  const stop = onStop(log, () => app.close());
  // The primary is gone (killed): nothing would count this worker's limits any
  // more, so stop. Node's cluster code would exit at once after this event;
  // marking the disconnect expected lets the shutdown flush usage rows first.
  cluster.worker!.once("disconnect", () => {
    cluster.worker!.exitedAfterDisconnect = true;
    stop("the primary process exited");
  });
}

function onStop(log: Logger, close: () => Promise<void>): (why: string) => void {
  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${why}: shutting down`);
    close().then(() => process.exit(0), () => process.exit(1));
  };
  // `on`, not `once`: a second signal (a process group signalled, then the
  // primary relaying it) must not kill a shutdown half-way.
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  return stop;
}

void main();
