// The response cache's metrics: createMetrics with deps whose cache stats the
// test sets, fed through the observer the core calls (the seam the gateway
// uses), read back as the text exposition a scrape gets, checked by
// `promtool check metrics`, and aggregated across workers as the --workers
// primary does (prom-client's AggregatorRegistry on each worker's JSON).

import { spawnSync } from "node:child_process";
import { AggregatorRegistry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { CacheStats } from "../../src/cache/store.js";
import { createMetrics, type MetricsDeps } from "../../src/observe/metrics.js";
import type { FinishedChat } from "../../src/observe/observer.js";
import { promtoolPath } from "../support/prometheus.js";

const baseDeps = (cache?: MetricsDeps["cache"]): MetricsDeps => ({
  inFlight: () => 0,
  providers: [],
  circuit: () => "closed",
  authRefusals: () => ({}),
  usageRows: () => ({ pending: 0, written: 0, lost: 0 }),
  ...(cache && { cache }),
});

const chat = (over: Partial<FinishedChat>): FinishedChat => ({
  protocol: "openai", operation: "chat", model: "qwen-plus", provider: "dashscope", outcome: "ok", latencyMs: 3, ttftMs: undefined,
  usage: { promptTokens: 10, completionTokens: 5, totalTokens: 15, cachedTokens: 0, reasoningTokens: 0 },
  costPico: 0n, streamed: false, ...over,
});

/** The sample lines of one metric family, e.g. `gatewayz_cache_lookups_total{operation="chat",outcome="hit"} 2`. */
const samples = (text: string, name: string) => text.split("\n").filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));

function promtool(text: string) {
  const run = spawnSync(promtoolPath(), ["check", "metrics"], { input: text, encoding: "utf8" });
  return { status: run.status, out: run.stdout + run.stderr };
}

describe("response cache metrics", () => {
  it("counts lookups by operation and outcome, and the cost saved by hits only", async () => {
    const metrics = createMetrics(baseDeps());
    const o = metrics.observer;
    o.cacheLookup("chat", "hit");
    o.cacheLookup("chat", "hit");
    o.cacheLookup("chat", "miss");
    o.cacheLookup("embeddings", "bypass");
    o.cacheLookup("chat", "coalesced");
    o.cacheLookup("chat", "error");
    o.chatFinished(chat({ savedPico: 1_250_000_000n })); // a hit that saved 0.00125 USD
    o.chatFinished(chat({ savedPico: 250_000_000n }));
    o.chatFinished(chat({ costPico: 9_000_000_000n })); // a miss: it cost, saved nothing
    o.chatFinished(chat({ savedPico: 0n }));
    const text = await metrics.render();

    expect(samples(text, "gatewayz_cache_lookups_total").sort()).toEqual([
      'gatewayz_cache_lookups_total{operation="chat",outcome="coalesced"} 1',
      'gatewayz_cache_lookups_total{operation="chat",outcome="error"} 1',
      'gatewayz_cache_lookups_total{operation="chat",outcome="hit"} 2',
      'gatewayz_cache_lookups_total{operation="chat",outcome="miss"} 1',
      'gatewayz_cache_lookups_total{operation="embeddings",outcome="bypass"} 1',
    ]);
    expect(text).toContain("# TYPE gatewayz_cache_lookups_total counter");
    expect(samples(text, "gatewayz_cache_saved_usd_total")).toEqual(["gatewayz_cache_saved_usd_total 0.0015"]);
    expect(text).toContain("# TYPE gatewayz_cache_saved_usd_total counter");
    // The miss's cost is the cost counter's, not the saved one's.
    expect(samples(text, "gatewayz_cost_usd_total")).toEqual(['gatewayz_cost_usd_total{model="qwen-plus",provider="dashscope"} 0.009']);
    expect(promtool(text)).toEqual({ status: 0, out: "" });
  });

  it("exports the store's entries, bytes and evictions as they are at each scrape", async () => {
    let stats: CacheStats | undefined = { entries: 3, bytes: 4096, evictions: 0 };
    const metrics = createMetrics(baseDeps(() => stats));
    let text = await metrics.render();
    expect(samples(text, "gatewayz_cache_entries")).toEqual(["gatewayz_cache_entries 3"]);
    expect(samples(text, "gatewayz_cache_bytes")).toEqual(["gatewayz_cache_bytes 4096"]);
    expect(samples(text, "gatewayz_cache_evictions_total")).toEqual(["gatewayz_cache_evictions_total 0"]);
    expect(text).toContain("# TYPE gatewayz_cache_entries gauge");
    expect(text).toContain("# TYPE gatewayz_cache_bytes gauge");
    expect(text).toContain("# TYPE gatewayz_cache_evictions_total counter");
    expect(promtool(text)).toEqual({ status: 0, out: "" });

    stats = { entries: 2, bytes: 1000, evictions: 7 };
    text = await metrics.render();
    expect(samples(text, "gatewayz_cache_entries")).toEqual(["gatewayz_cache_entries 2"]);
    expect(samples(text, "gatewayz_cache_bytes")).toEqual(["gatewayz_cache_bytes 1000"]);
    expect(samples(text, "gatewayz_cache_evictions_total")).toEqual(["gatewayz_cache_evictions_total 7"]);

    // A store that cannot tell (Redis) or no store now: the series go, the rest stays.
    stats = undefined;
    text = await metrics.render();
    expect(text).not.toContain("gatewayz_cache_entries");
    expect(text).not.toContain("gatewayz_cache_bytes");
    expect(text).not.toContain("gatewayz_cache_evictions_total");
    expect(text).toContain("gatewayz_cache_lookups_total");
    expect(promtool(text)).toEqual({ status: 0, out: "" });
  });

  it("exports no store series when the deps have no cache hook", async () => {
    const metrics = createMetrics(baseDeps());
    const text = await metrics.render();
    for (const name of ["gatewayz_cache_entries", "gatewayz_cache_bytes", "gatewayz_cache_evictions_total"]) expect(text).not.toContain(name);
    expect(text).toContain("# TYPE gatewayz_cache_saved_usd_total counter");
    expect(promtool(text)).toEqual({ status: 0, out: "" });
  });

  it("aggregates workers as the --workers primary does: the shared store's size is the max, lookups and evictions add up", async () => {
    // Two workers on one SQLite store see the same file's totals; each counts its own evictions and lookups.
    const a = createMetrics(baseDeps(() => ({ entries: 10, bytes: 5000, evictions: 2 })));
    const b = createMetrics(baseDeps(() => ({ entries: 11, bytes: 5100, evictions: 3 })));
    a.observer.cacheLookup("chat", "hit");
    b.observer.cacheLookup("chat", "hit");
    b.observer.cacheLookup("chat", "miss");
    a.observer.chatFinished(chat({ savedPico: 1_000_000_000n }));
    b.observer.chatFinished(chat({ savedPico: 2_000_000_000n }));
    const text = await AggregatorRegistry.aggregate([await a.json(), await b.json()]).metrics();
    expect(samples(text, "gatewayz_cache_entries")).toEqual(["gatewayz_cache_entries 11"]);
    expect(samples(text, "gatewayz_cache_bytes")).toEqual(["gatewayz_cache_bytes 5100"]);
    expect(samples(text, "gatewayz_cache_evictions_total")).toEqual(["gatewayz_cache_evictions_total 5"]);
    expect(samples(text, "gatewayz_cache_lookups_total").sort()).toEqual([
      'gatewayz_cache_lookups_total{operation="chat",outcome="hit"} 2',
      'gatewayz_cache_lookups_total{operation="chat",outcome="miss"} 1',
    ]);
    expect(samples(text, "gatewayz_cache_saved_usd_total")).toEqual(["gatewayz_cache_saved_usd_total 0.003"]);
    expect(promtool(text)).toEqual({ status: 0, out: "" });
  });
});
