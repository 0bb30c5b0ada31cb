import type { Worker } from "node:cluster";
import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { Metrics } from "../observe/metrics.js";
import type { MetricsSource } from "../server/metrics-route.js";
import type { CollectedMetrics, ScrapeRequest, ToPrimary, ToWorker } from "./messages.js";

/** Bounds a collection when a worker does not answer (it is wedged or dying): the scrape fails. */
const COLLECT_TIMEOUT_MS = 5_000;

type MetricsJson = Array<MetricObjectWithValues<MetricValue<string>>>;

/**
 * With --workers a scrape lands on one worker (node:cluster hands out the
 * connection), yet must see them all: that worker asks the primary, which
 * collects every worker's registry as JSON over the IPC channel and sums
 * them with prom-client's AggregatorRegistry (counters and histograms add
 * up; gauges too: requests in flight across workers, and per circuit state
 * the number of workers whose circuit is in it; a metric may say otherwise
 * with its `aggregator`: the cache store's entries and bytes are the max,
 * every worker reading the same shared file, observe/metrics.ts). The primary holds no
 * metrics of its own.
 */
export function primaryMetrics(workers: () => Iterable<Worker>) {
  let nextScrape = 1;
  const collecting = new Map<number, { parts: MetricsJson[]; pending: number; done: (err?: Error) => void }>();

  const collect = (): Promise<string> => new Promise((resolve, reject) => {
    const scrape = nextScrape++;
    const live = [...workers()].filter((w) => w.isConnected());
    const timer = setTimeout(() => finish(new Error(`a worker did not send its metrics within ${COLLECT_TIMEOUT_MS} ms`)), COLLECT_TIMEOUT_MS);
    const entry = { parts: [] as MetricsJson[], pending: live.length, done: (err?: Error) => finish(err) };
    function finish(err?: Error) {
      if (!collecting.delete(scrape)) return;
      clearTimeout(timer);
      if (err) return reject(err);
      // Loaded on the first scrape: with METRICS=off the primary never loads prom-client.
      import("prom-client").then(({ AggregatorRegistry }) => AggregatorRegistry.aggregate(entry.parts).metrics()).then(resolve, reject);
    }
    collecting.set(scrape, entry);
    if (!live.length) return finish();
    const m: ToWorker = { t: "collect", scrape };
    for (const w of live) w.send(m);
  });

  return {
    /** A worker's metrics message: its part of a collection, or its scrape to answer. */
    onMessage(worker: Worker, m: ScrapeRequest | CollectedMetrics): void {
      if (m.t === "collected") {
        const entry = collecting.get(m.scrape);
        if (entry) {
          entry.parts.push(m.metrics as MetricsJson);
          if (--entry.pending === 0) entry.done();
        }
        return;
      }
      const reply = (r: ToWorker) => { if (worker.isConnected()) worker.send(r); };
      collect().then((text) => reply({ t: "scraped", id: m.id, text }), (err: Error) => reply({ t: "scraped", id: m.id, error: err.message }));
    },
  };
}

/** A worker's side: answers the primary's collections, and renders a scrape as the primary's aggregate. */
export function workerMetrics(local: Metrics, channel: NodeJS.Process = process): MetricsSource {
  let nextId = 1;
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  channel.on("message", (m: ToWorker) => {
    if (m.t === "collect") {
      void local.json().then((metrics) => {
        const reply: ToPrimary = { t: "collected", scrape: m.scrape, metrics };
        if (channel.connected) channel.send!(reply);
      });
    } else if (m.t === "scraped") {
      const w = waiting.get(m.id);
      if (!w) return;
      waiting.delete(m.id);
      clearTimeout(w.timer);
      if (m.text !== undefined) w.resolve(m.text);
      else w.reject(new Error(m.error ?? "the primary sent no metrics"));
    }
  });
  return {
    contentType: local.contentType,
    render() {
      if (!channel.connected) return Promise.reject(new Error("the primary process is gone"));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error("the primary did not answer"));
        }, COLLECT_TIMEOUT_MS + 1_000);
        waiting.set(id, { resolve, reject, timer });
        const m: ToPrimary = { t: "scrape", id };
        channel.send!(m);
      });
    },
  };
}
