import cluster, { type Worker } from "node:cluster";
import type { Config } from "../config.js";
import { createBudgets } from "../core/budgets.js";
import { createLimiter } from "../core/limiter.js";
import { createPolicy } from "../core/policy.js";
import { localQuota, type QuotaTicket } from "../core/quota.js";
import type { Logger } from "../log.js";
import { openStores } from "../storage/stores.js";
import { primaryMetrics } from "./cluster-metrics.js";
import { toWire, type ToPrimary, type ToWorker } from "./messages.js";

export interface Primary {
  /** Drains every worker (each lets its requests finish, then commits its usage rows and exits), then itself. */
  close(): Promise<void>;
  /** Cuts the workers' drains short: each ends what is still in flight now. */
  hurry(): void;
}

/** Past the drain and its end, a worker that has not exited is killed. */
const EXIT_MARGIN_MS = 15_000;

/**
 * `--workers N`: N processes share the port (node:cluster hands connections
 * round-robin), each a whole gateway with its own SQLite connection. This
 * process serves no requests: it holds the rate-limit counters and budgets
 * for all of them (src/cluster/remote-quota.ts asks it), restarts a worker
 * that dies, and gives back what a dead worker held.
 */
export async function startPrimary(config: Config, log: Logger, count: number): Promise<Primary> {
  // Read-only use of usage: budgets load what was spent so far from the usage table.
  const stores = openStores({ databasePath: config.databasePath, databaseUrl: config.database.url, databaseTimeoutMs: config.database.timeoutMs },
    { listen: true, log });
  const policy = createPolicy(stores.limits, config.limits);
  const usage = stores.usage;
  const quota = localQuota(createLimiter(policy), createBudgets(policy, usage));
  const held = new Map<Worker, Map<number, QuotaTicket>>();
  let nextTicket = 1;
  let stopping = false;
  // A scrape of any worker answers for all of them (cluster-metrics.ts).
  const metrics = primaryMetrics(() => held.keys());

  const onMessage = (worker: Worker, m: ToPrimary) => {
    const tickets = held.get(worker);
    if (!tickets) return;
    if (m.t === "scrape" || m.t === "collected") return metrics.onMessage(worker, m);
    if (m.t === "settle") {
      tickets.get(m.ticket)?.settle(m.tokens, BigInt(m.pico));
      tickets.delete(m.ticket);
      return;
    }
    let reply: ToWorker;
    try {
      const ticket = quota.take(m.subject, m.tokens, BigInt(m.pico));
      const id = nextTicket++;
      tickets.set(id, ticket);
      reply = { t: "took", id: m.id, ticket: id, snapshot: ticket.snapshot };
    } catch (err) {
      reply = { t: "refused", id: m.id, error: toWire(err) };
    }
    if (worker.isConnected()) worker.send(reply);
  };

  const fork = (): Promise<Worker> => new Promise((resolve, reject) => {
    const worker = cluster.fork();
    held.set(worker, new Map());
    worker.on("message", (m: ToPrimary) => onMessage(worker, m));
    const early = (code: number | null) => reject(new Error(`a worker exited (${code}) before it was listening`));
    worker.once("exit", early);
    worker.once("listening", () => {
      worker.off("exit", early);
      worker.once("exit", (code, signal) => {
        // What its requests held is given back; their usage rows are whatever it had committed.
        for (const t of held.get(worker)?.values() ?? []) t.settle(0, 0n);
        held.delete(worker);
        if (stopping) return;
        log.error(`worker ${worker.process.pid} exited (${signal ?? code}); starting another`);
        fork().catch((err: Error) => log.error(`could not restart a worker: ${err.message}`));
      });
      resolve(worker);
    });
  });

  try {
    await Promise.all(Array.from({ length: count }, fork));
  } catch (err) {
    stopping = true;
    for (const w of held.keys()) w.kill("SIGKILL");
    await stores.close();
    throw err;
  }
  // Told over IPC rather than by signal: with a process-group signal each
  // worker also gets its own, and a second signal means "hurry".
  const tell = (w: Worker, hurry: boolean) => {
    const m: ToWorker = { t: "shutdown", hurry };
    if (w.isConnected()) w.send(m);
  };
  return {
    async close() {
      stopping = true;
      const workers = [...held.keys()];
      await Promise.all(workers.map((w) => new Promise<void>((resolve) => {
        if (w.isDead()) return resolve();
        const force = setTimeout(() => w.kill("SIGKILL"), config.server.drainTimeoutMs + EXIT_MARGIN_MS);
        w.once("exit", () => { clearTimeout(force); resolve(); });
        tell(w, false);
      })));
      await stores.close();
    },
    hurry() {
      for (const w of held.keys()) tell(w, true);
    },
  };
}
