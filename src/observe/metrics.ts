import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricValue } from "prom-client";
import type { CacheStats } from "../cache/store.js";
import type { BreakerState } from "../core/circuit-breaker.js";
import type { CacheOutcome, FinishedChat, Observer } from "./observer.js";

/** What the metrics read at scrape time, from the parts of the app that own it. */
export interface MetricsDeps {
  /** Requests (HTTP requests and RPCs) in flight now: server/requests.ts. */
  inFlight(): number;
  /** The providers with a loaded client, each with its circuit gauge. */
  readonly providers: readonly string[];
  circuit(provider: string): BreakerState;
  /** Requests refused at the door for their key, by reason (server/auth-gate.ts). */
  authRefusals(): Readonly<Record<string, number>>;
  /** Usage rows queued or held for retry, written, and lost since start (storage/usage.ts). */
  usageRows(): { pending: number; written: number; lost: number };
  /**
   * The response cache's store (cache/store.ts stats()), when there is one:
   * absent, or undefined from it (CACHE=off, or a store that cannot tell
   * cheaply), and the entries, bytes and evictions series are not exported.
   */
  cache?: () => CacheStats | undefined;
}

export interface Metrics {
  readonly observer: Observer;
  /** The text exposition format's content type, for the /metrics answer. */
  readonly contentType: string;
  /** This process's metrics in the text format. */
  render(): Promise<string>;
  /** The same as data, for the --workers primary to aggregate (prom-client's AggregatorRegistry). */
  json(): Promise<Array<MetricObjectWithValues<MetricValue<string>>>>;
}

/**
 * LLM latencies run from a few milliseconds (a refusal) to minutes (a long
 * reasoning answer): roughly doubling buckets from 10 ms to 2 min.
 */
const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];

/** The circuit gauge's states, in /healthz's words (server/probes.ts). */
const CIRCUIT_WORDS: Record<BreakerState, string> = { closed: "ok", open: "cooling_down", half_open: "probing" };
const CIRCUIT_STATES = Object.values(CIRCUIT_WORDS);

/** Why the door refuses a key (server/auth-gate.ts). */
const AUTH_REASONS = ["unauthenticated", "key_expired", "permission_denied", "rate_limited"];

const TOKEN_TYPES = [
  ["prompt", "promptTokens"], ["completion", "completionTokens"], ["cached", "cachedTokens"], ["reasoning", "reasoningTokens"],
] as const;

interface ChatLabels {
  readonly chat: Readonly<Record<"protocol" | "operation" | "model" | "provider" | "outcome", string>>;
  readonly route: Readonly<Record<"protocol" | "operation" | "model" | "provider", string>>;
  readonly priced: Readonly<Record<"model" | "provider", string>>;
  readonly tokens: ReadonlyArray<Readonly<Record<"model" | "provider" | "type", string>>>;
}

let processRegistry: Registry | undefined;

/**
 * Node's process metrics (CPU, memory, event-loop lag, GC), made on first
 * need and then shared by every gateway in the process: they describe the
 * process, and the monitors prom-client starts for them (an event-loop delay
 * histogram, a GC observer) cannot be stopped, so one set per gateway would
 * pile up in a test process that starts many.
 */
function processMetrics(): Registry {
  if (processRegistry) return processRegistry;
  const register = new Registry();
  collectDefaultMetrics({ register });
  // Gauges named like counters, which `promtool check metrics` rejects; the
  // same counts stay, by type, in nodejs_active_{handles,requests,resources}.
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) register.removeSingleMetric(name);
  return (processRegistry = register);
}

/**
 * The Prometheus metrics, in a registry of their own (never prom-client's
 * global one: several gateways share a test process), with Node's process
 * metrics (shared: processMetrics). Every label is bounded (observer.ts): catalog model ids,
 * provider ids, protocols, outcomes, error kinds, limit dimensions; never a
 * key, a user, a prompt or a request id. Gauges of state owned elsewhere (in
 * flight, circuits, usage rows, door refusals) are read at scrape time, so
 * the request path pays only for the counters and histograms it feeds.
 */
export function createMetrics(deps: MetricsDeps): Metrics {
  const register = new Registry();
  const registers = [register];
  const chatLabels = ["protocol", "operation", "model", "provider"] as const;
  const requests = new Counter({
    name: "gatewayz_requests_total", help: "Requests, one per usage row, by protocol, operation (chat, responses, embeddings), catalog model, provider and outcome.",
    labelNames: [...chatLabels, "outcome"], registers,
  });
  const duration = new Histogram({
    name: "gatewayz_request_duration_seconds", help: "Request latency, from arrival to the end of the answer.",
    labelNames: [...chatLabels, "outcome"], buckets: LATENCY_BUCKETS, registers,
  });
  const ttft = new Histogram({
    name: "gatewayz_time_to_first_token_seconds", help: "Time from a request's arrival to the upstream's first chunk (or its whole answer, unstreamed).",
    labelNames: chatLabels, buckets: LATENCY_BUCKETS, registers,
  });
  const attempts = new Histogram({
    name: "gatewayz_upstream_attempt_duration_seconds", help: "Upstream attempts by provider and outcome (ok, or the error kind), until the first chunk or the answer.",
    labelNames: ["provider", "outcome"], buckets: LATENCY_BUCKETS, registers,
  });
  const failovers = new Counter({
    name: "gatewayz_failovers_total", help: "Requests moved on from one provider to the next.", labelNames: ["from", "to"], registers,
  });
  const tokens = new Counter({
    name: "gatewayz_tokens_total", help: "Tokens by catalog model, provider and type (prompt, completion, cached, reasoning; cached and reasoning are part of prompt and completion).",
    labelNames: ["model", "provider", "type"], registers,
  });
  const cost = new Counter({
    name: "gatewayz_cost_usd_total", help: "Cost of the requests at the gateway's prices, in US dollars.", labelNames: ["model", "provider"], registers,
  });
  const limiterRefusals = new Counter({
    name: "gatewayz_limiter_refusals_total", help: "Requests refused by a rate limit or a budget, by dimension (rpm, tpm, rpd, concurrent, budget) and scope (key, user, system).",
    labelNames: ["dimension", "scope"], registers,
  });
  let streams = 0;
  new Gauge({
    name: "gatewayz_streams_in_flight", help: "Streamed chat answers in progress.", registers,
    collect() { this.set(streams); },
  });
  new Gauge({
    name: "gatewayz_requests_in_flight", help: "HTTP requests and RPCs in progress, all paths (a scrape on the main port counts itself).", registers,
    collect() { this.set(deps.inFlight()); },
  });
  new Gauge({
    name: "gatewayz_circuit_state", help: "Each provider's circuit: 1 for the state it is in (ok, cooling_down, probing), 0 for the others.",
    labelNames: ["provider", "state"], registers,
    collect() {
      for (const provider of deps.providers) {
        const now = CIRCUIT_WORDS[deps.circuit(provider)];
        for (const state of CIRCUIT_STATES) this.set({ provider, state }, state === now ? 1 : 0);
      }
    },
  });
  new Counter({
    name: "gatewayz_auth_refusals_total", help: "Requests refused at the door for their key (no usage row), by reason.", labelNames: ["reason"], registers,
    collect() {
      const counts = deps.authRefusals();
      // Every reason from the start, so a rate() sees the first refusal.
      this.reset();
      for (const reason of new Set([...AUTH_REASONS, ...Object.keys(counts)])) this.inc({ reason }, counts[reason] ?? 0);
    },
  });
  new Gauge({
    name: "gatewayz_usage_rows_pending", help: "Usage rows not yet committed: queued for this event-loop turn's commit, or held for retry while the database refuses writes.", registers,
    collect() { this.set(deps.usageRows().pending); },
  });
  new Counter({
    name: "gatewayz_usage_rows_written_total", help: "Usage rows committed to the database.", registers,
    collect() {
      this.reset();
      this.inc(deps.usageRows().written);
    },
  });
  new Counter({
    name: "gatewayz_usage_rows_lost_total", help: "Usage rows dropped: the retry buffer at its hard limit, the database still refusing at shutdown, or a row SQLite could not store.", registers,
    collect() {
      this.reset();
      this.inc(deps.usageRows().lost);
    },
  });
  const cacheLookups = new Counter({
    name: "gatewayz_cache_lookups_total", help: "Response-cache lookups by operation (chat, embeddings) and outcome (hit, miss, bypass, coalesced, error).",
    labelNames: ["operation", "outcome"], registers,
  });
  const cacheSaved = new Counter({
    name: "gatewayz_cache_saved_usd_total", help: "What the answers served from the response cache cost when they were made, in US dollars: spending avoided.", registers,
  });
  const scraped = Registry.merge([register, processMetrics()]);
  // The store's series exist only while it can tell (an unlabelled metric always exports a value, so absent means another registry).
  const cacheStats = deps.cache;
  const withCache = cacheStats && Registry.merge([register, cacheStoreMetrics(cacheStats), processMetrics()]);
  const current = () => (withCache && cacheStats!() !== undefined ? withCache : scraped);

  // The label objects of each combination, made once: the request path then
  // allocates none (labels are bounded, so the map is too).
  const labelSets = new Map<string, ChatLabels>();
  const labelsOf = (c: FinishedChat): ChatLabels => {
    const key = `${c.protocol}\u0000${c.operation}\u0000${c.model}\u0000${c.provider}\u0000${c.outcome}`;
    let set = labelSets.get(key);
    if (!set) {
      const { protocol, operation, model, provider, outcome } = c;
      set = {
        chat: { protocol, operation, model, provider, outcome }, route: { protocol, operation, model, provider }, priced: { model, provider },
        tokens: TOKEN_TYPES.map(([type]) => ({ model, provider, type })),
      };
      labelSets.set(key, set);
    }
    return set;
  };
  const chatFinished = (c: FinishedChat) => {
    const labels = labelsOf(c);
    requests.inc(labels.chat);
    duration.observe(labels.chat, c.latencyMs / 1000);
    if (c.ttftMs !== undefined) ttft.observe(labels.route, c.ttftMs / 1000);
    for (let i = 0; i < TOKEN_TYPES.length; i++) {
      const n = c.usage[TOKEN_TYPES[i]![1]];
      if (n > 0) tokens.inc(labels.tokens[i]!, n);
    }
    if (c.costPico > 0n) cost.inc(labels.priced, Number(c.costPico) / 1e12);
    if (c.savedPico !== undefined && c.savedPico > 0n) cacheSaved.inc(Number(c.savedPico) / 1e12);
  };
  // Operations and outcomes are few: one label object each, made on first use.
  const lookupLabels = new Map<string, { operation: string; outcome: CacheOutcome }>();
  const cacheLookup = (operation: string, outcome: CacheOutcome) => {
    const key = `${operation}\u0000${outcome}`;
    let labels = lookupLabels.get(key);
    if (!labels) lookupLabels.set(key, (labels = { operation, outcome }));
    cacheLookups.inc(labels);
  };

  return {
    observer: {
      chatFinished,
      attemptFinished: (provider, seconds, outcome) => attempts.observe({ provider, outcome }, seconds),
      failover: (from, to) => failovers.inc({ from, to }),
      limiterRefused: (dimension, scope) => limiterRefusals.inc({ dimension, scope }),
      cacheLookup,
      streamStarted() {
        streams++;
        let ended = false;
        return () => {
          if (ended) return;
          ended = true;
          streams--;
        };
      },
    },
    contentType: scraped.contentType,
    render: () => current().metrics(),
    json: () => current().getMetricsAsJSON(),
  };
}

/**
 * The cache store's size, read at scrape time, in a registry of its own (see
 * createMetrics). With --workers every worker reports the same shared SQLite
 * file (its entries and bytes are the file's totals, other workers' writes
 * included), so the primary keeps the max of them, not the sum, which would
 * count the file once per worker. Evictions are each worker's own deletions
 * since start, so they add up.
 */
function cacheStoreMetrics(stats: () => CacheStats | undefined): Registry {
  const register = new Registry();
  const registers = [register];
  new Gauge({
    name: "gatewayz_cache_entries", help: "Entries in the response cache's store.", aggregator: "max", registers,
    collect() { this.set(stats()?.entries ?? 0); },
  });
  new Gauge({
    name: "gatewayz_cache_bytes", help: "Bytes of the entries in the response cache's store.", aggregator: "max", registers,
    collect() { this.set(stats()?.bytes ?? 0); },
  });
  new Counter({
    name: "gatewayz_cache_evictions_total", help: "Response-cache entries dropped to make room (by size), since start; expiry is not eviction.", registers,
    collect() {
      this.reset();
      this.inc(stats()?.evictions ?? 0);
    },
  });
  return register;
}
