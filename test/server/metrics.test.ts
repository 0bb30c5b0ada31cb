// Prometheus metrics end to end: a real gateway driven by real clients (the
// `openai` package, grpc-js), its /metrics read as text, checked by Debian's
// `promtool check metrics`, and scraped by a real Prometheus server whose
// PromQL answers must count exactly the requests this file sent. Then the
// separate METRICS_PORT, METRICS=off, and --workers 2 (a scrape of either
// worker answers for both).

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeUpstream, type FakeUpstream } from "../support/fake-upstream.js";
import { freePort, startGatewayChild, type GatewayChild } from "../support/gateway-child.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { grpcChat } from "../support/grpc-chat.js";
import { prometheusPath, promtoolPath } from "../support/prometheus.js";

/** Served by alibaba-cloud alone. */
const SOLO = "qwen-long";
/** Served by alibaba-cloud, then openrouter: the failover. */
const FAILOVER = "qwen-max";
const USER = [{ role: "user" as const, content: "hi" }];
const REQUEST_ID = "metrics-test-4d1f9a2b7c";
/** Admitted chats in the mix below (the 400 fails before the limiter): the next one is refused. */
const RPM = 5;

// ---------------------------------------------------------------- the text format

interface Sample { name: string; labels: Record<string, string>; value: number }

/** The samples of a text exposition (comments skipped). */
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of the samples named `name` whose labels include `labels`. */
function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0);
}

async function scrape(url: string): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(`${url}/metrics`);
  return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The rpm window is a clock minute: start the mix early enough in one that it ends in the same. */
async function startOfAMinute(): Promise<void> {
  const into = Date.now() % 60_000;
  if (into > 55_000) await sleep(60_000 - into + 50);
}

/** Polls until `check` stops throwing. */
async function eventually(check: () => Promise<void>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(250);
    }
  }
}

// ---------------------------------------------------------------- a known mix of requests

describe("after a known mix of requests (ok, 400, 429, an upstream failure, a failover; openai and gRPC)", () => {
  let gw: TestGateway;
  let text: string;
  let samples: Sample[];

  beforeAll(async () => {
    gw = await startTestGateway({ RATE_LIMITS_KEY: `rpm=${RPM},concurrent=0` }, { providers: ["openrouter"] });
    const client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 10_000 });
    const status = (p: Promise<unknown>) => p.then(() => 200, (err: unknown) => (err as InstanceType<typeof OpenAI.APIError>).status);
    await startOfAMinute();
    // 1-3: three answers, plain, streamed and over gRPC.
    await client.chat.completions.create({ model: SOLO, messages: USER }, { headers: { "x-request-id": REQUEST_ID } });
    const stream = await client.chat.completions.create({ model: SOLO, messages: USER, stream: true, stream_options: { include_usage: true } });
    for await (const chunk of stream) void chunk;
    const rpc = await grpcChat(gw.url, gw.authorization, { model: SOLO, messages: USER });
    expect(rpc.status.code).toBe(0);
    // 4: a 400 (refused before the model is resolved: model "unknown").
    expect(await status(client.chat.completions.create({ model: SOLO, messages: [] }))).toBe(400);
    // 5: the only provider fails.
    gw.fake.enqueue({ kind: "error", status: 502 });
    expect(await status(client.chat.completions.create({ model: SOLO, messages: USER }))).toBe(502);
    // 6: alibaba-cloud fails, openrouter answers.
    gw.fake.enqueue({ kind: "error", status: 502 });
    const moved = await client.chat.completions.create({ model: FAILOVER, messages: USER }).withResponse();
    expect(moved.response.headers.get("x-gatewayz-provider")).toBe("openrouter");
    // 7: past the key's rpm.
    expect(await status(client.chat.completions.create({ model: SOLO, messages: USER }))).toBe(429);
    // And a key the door refuses (no usage row, no request counted).
    const stranger = new OpenAI({ apiKey: "sk-not-a-key", baseURL: `${gw.url}/v1`, maxRetries: 0 });
    expect(await status(stranger.chat.completions.create({ model: SOLO, messages: USER }))).toBe(401);
    const scraped = await scrape(gw.url);
    expect(scraped.status).toBe(200);
    expect(scraped.type).toBe("text/plain; version=0.0.4; charset=utf-8");
    text = scraped.text;
    samples = parse(text);
  }, 90_000);

  afterAll(async () => {
    await gw?.close();
  });

  it("counts every request once, by protocol, catalog model, provider and outcome", () => {
    const requests = samples.filter((s) => s.name === "gatewayz_requests_total").map((s) => ({ ...s.labels, n: s.value }));
    expect(requests).toHaveLength(6);
    expect(requests).toEqual(expect.arrayContaining([
      { protocol: "openai", operation: "chat", model: SOLO, provider: "alibaba-cloud", outcome: "ok", n: 2 },
      { protocol: "grpc", operation: "chat", model: SOLO, provider: "alibaba-cloud", outcome: "ok", n: 1 },
      { protocol: "openai", operation: "chat", model: "unknown", provider: "none", outcome: "client_error", n: 1 },
      { protocol: "openai", operation: "chat", model: SOLO, provider: "alibaba-cloud", outcome: "upstream_error", n: 1 },
      { protocol: "openai", operation: "chat", model: FAILOVER, provider: "openrouter", outcome: "ok", n: 1 },
      { protocol: "openai", operation: "chat", model: SOLO, provider: "alibaba-cloud", outcome: "rate_limited", n: 1 },
    ]));
    expect(total(samples, "gatewayz_request_duration_seconds_count")).toBe(7);
    // Only the answers had a first token.
    expect(total(samples, "gatewayz_time_to_first_token_seconds_count")).toBe(4);
    expect(total(samples, "gatewayz_time_to_first_token_seconds_count", { protocol: "grpc" })).toBe(1);
  });

  it("counts upstream attempts, the failover, the limiter's and the door's refusals", () => {
    const attempts = (provider: string, outcome: string) => total(samples, "gatewayz_upstream_attempt_duration_seconds_count", { provider, outcome });
    expect(attempts("alibaba-cloud", "ok")).toBe(3);
    expect(attempts("alibaba-cloud", "upstream_error")).toBe(2);
    expect(attempts("openrouter", "ok")).toBe(1);
    expect(total(samples, "gatewayz_upstream_attempt_duration_seconds_count")).toBe(6);
    expect(total(samples, "gatewayz_failovers_total", { from: "alibaba-cloud", to: "openrouter" })).toBe(1);
    expect(total(samples, "gatewayz_failovers_total")).toBe(1);
    expect(total(samples, "gatewayz_limiter_refusals_total", { dimension: "rpm", scope: "key" })).toBe(1);
    expect(total(samples, "gatewayz_limiter_refusals_total")).toBe(1);
    expect(total(samples, "gatewayz_auth_refusals_total", { reason: "unauthenticated" })).toBe(1);
    expect(total(samples, "gatewayz_auth_refusals_total")).toBe(1);
  });

  it("sums tokens and cost as the usage table does", () => {
    const rows = gw.app.db.prepare(`SELECT SUM(prompt_tokens) AS prompt, SUM(completion_tokens) AS completion, SUM(cached_tokens) AS cached,
      SUM(reasoning_tokens) AS reasoning, SUM(cost_pico) AS pico, COUNT(*) AS n FROM usage`).get() as Record<string, number>;
    expect(rows.n).toBe(7);
    expect(rows.prompt).toBeGreaterThan(0);
    for (const type of ["prompt", "completion", "cached", "reasoning"]) {
      expect(total(samples, "gatewayz_tokens_total", { type })).toBe(rows[type]);
    }
    expect(total(samples, "gatewayz_tokens_total", { model: FAILOVER, provider: "openrouter", type: "prompt" })).toBeGreaterThan(0);
    expect(rows.pico).toBeGreaterThan(0);
    expect(total(samples, "gatewayz_cost_usd_total")).toBeCloseTo(rows.pico / 1e12, 15);
  });

  it("reports the gauges: in flight, streams, circuits, usage rows; and Node's process metrics", () => {
    expect(total(samples, "gatewayz_requests_in_flight")).toBe(1); // the scrape itself
    expect(total(samples, "gatewayz_streams_in_flight")).toBe(0);
    for (const provider of ["alibaba-cloud", "openrouter"]) {
      expect(total(samples, "gatewayz_circuit_state", { provider, state: "ok" })).toBe(1);
      expect(total(samples, "gatewayz_circuit_state", { provider })).toBe(1);
    }
    expect(total(samples, "gatewayz_usage_rows_written_total")).toBe(7);
    expect(total(samples, "gatewayz_usage_rows_pending")).toBe(0);
    expect(total(samples, "gatewayz_usage_rows_lost_total")).toBe(0);
    expect(samples.some((s) => s.name === "process_cpu_seconds_total")).toBe(true);
    expect(samples.some((s) => s.name === "nodejs_eventloop_lag_seconds")).toBe(true);
  });

  it("never carries a key or a request id in a label", async () => {
    expect(gw.app.db.prepare("SELECT COUNT(*) AS n FROM usage WHERE request_id = ?").get(REQUEST_ID)).toEqual({ n: 1 });
    for (const secret of [gw.key, REQUEST_ID, "sk-not-a-key", "sk-test-openrouter", gw.fake.apiKey]) expect(text).not.toContain(secret);
    const labelNames = new Set(samples.flatMap((s) => Object.keys(s.labels)));
    // Ours, then Node's process metrics' (nodejs_version_info, heap spaces, GC kinds, resource types).
    const known = ["protocol", "operation", "model", "provider", "outcome", "le", "from", "to", "type", "dimension", "scope", "reason", "state", "version", "major", "minor", "patch", "space", "kind"];
    for (const name of labelNames) expect(known).toContain(name);
  });

  it("passes `promtool check metrics` with no problem reported", () => {
    const run = spawnSync(promtoolPath(), ["check", "metrics"], { input: text, encoding: "utf8" });
    expect({ status: run.status, out: run.stdout + run.stderr }).toEqual({ status: 0, out: "" });
  });

  describe("scraped by a real Prometheus server", () => {
    let prometheus: ChildProcess | undefined;
    let dir: string;
    let api: string;
    let output = "";

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "gatewayz-prometheus-"));
      const target = new URL(gw.url).host;
      writeFileSync(join(dir, "prometheus.yml"), [
        "global:", "  scrape_interval: 1s", "  evaluation_interval: 1s",
        "scrape_configs:", "  - job_name: gatewayz", "    static_configs:", `      - targets: ["${target}"]`, "",
      ].join("\n"));
      const port = await freePort();
      api = `http://127.0.0.1:${port}`;
      prometheus = spawn(prometheusPath(), [
        `--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn",
      ], { stdio: ["ignore", "pipe", "pipe"] });
      prometheus.stdout!.on("data", (b: Buffer) => (output += b.toString()));
      prometheus.stderr!.on("data", (b: Buffer) => (output += b.toString()));
    });

    afterAll(async () => {
      if (prometheus && prometheus.exitCode === null && prometheus.signalCode === null) {
        const gone = new Promise((resolve) => prometheus!.once("exit", resolve));
        prometheus.kill("SIGTERM");
        const force = setTimeout(() => prometheus!.kill("SIGKILL"), 5_000);
        await gone;
        clearTimeout(force);
      }
      rmSync(dir, { recursive: true, force: true });
    });

    async function query(promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
      const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`);
      const body = await res.json() as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      expect(body.status).toBe("success");
      return body.data.result;
    }

    it("answers PromQL with exactly the requests sent, by model and outcome", async () => {
      let byModel: Record<string, number> = {};
      await eventually(async () => {
        expect(prometheus!.exitCode, output).toBe(null);
        const result = await query("sum by (model, outcome) (gatewayz_requests_total)");
        byModel = Object.fromEntries(result.map((r) => [`${r.metric.model} ${r.metric.outcome}`, Number(r.value[1])]));
        expect(byModel).toEqual({
          [`${SOLO} ok`]: 3, "unknown client_error": 1, [`${SOLO} upstream_error`]: 1, [`${SOLO} rate_limited`]: 1, [`${FAILOVER} ok`]: 1,
        });
      }, 30_000);
      const up = await query('up{job="gatewayz"}');
      expect(up.map((r) => r.value[1])).toEqual(["1"]);
      const failovers = await query("sum by (from, to) (gatewayz_failovers_total)");
      expect(failovers.map((r) => [r.metric.from, r.metric.to, r.value[1]])).toEqual([["alibaba-cloud", "openrouter", "1"]]);
    }, 40_000);
  });
});

// ---------------------------------------------------------------- where they are served

/** GET or HEAD without keep-alive, for status, type and body. */
function get(url: string, method = "GET"): Promise<{ status: number; type: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode!, type: res.headers["content-type"], body }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function chatOnce(url: string, key: string): Promise<void> {
  const client = new OpenAI({ apiKey: key, baseURL: `${url}/v1`, maxRetries: 0, timeout: 10_000 });
  await client.chat.completions.create({ model: SOLO, messages: USER });
}

describe("METRICS_PORT", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ METRICS_PORT: "0" });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it("serves /metrics (GET and HEAD) on its own port, and the main port's /metrics is 404", async () => {
    await chatOnce(gw.url, gw.key);
    expect(gw.app.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(gw.app.metricsUrl).not.toBe(gw.url);
    const res = await get(`${gw.app.metricsUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.type).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(total(parse(res.body), "gatewayz_requests_total", { model: SOLO, outcome: "ok" })).toBe(1);
    // The scrape is not a request of the main port.
    expect(total(parse(res.body), "gatewayz_requests_in_flight")).toBe(0);
    expect(await get(`${gw.app.metricsUrl}/metrics?x=1`, "HEAD")).toMatchObject({ status: 200, body: "" });
    expect((await get(`${gw.app.metricsUrl}/v1/models`)).status).toBe(404);
    expect((await get(`${gw.url}/metrics`)).status).toBe(404);
  });
});

describe("METRICS=off", () => {
  it("serves no /metrics, and the gateway works as before", async () => {
    const gw = await startTestGateway({ METRICS: "off" });
    try {
      await chatOnce(gw.url, gw.key);
      expect(gw.app.metricsUrl).toBeUndefined();
      expect((await get(`${gw.url}/metrics`)).status).toBe(404);
    } finally {
      await gw.close();
    }
  });
});

describe("with --workers 2", () => {
  let fake: FakeUpstream;
  let child: GatewayChild;
  let metricsUrl: string;
  beforeAll(async () => {
    fake = await startFakeUpstream();
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}`;
    // The limits live in the primary: a refusal there reaches the worker's metrics over IPC.
    child = await startGatewayChild(fake, { env: { WORKERS: "2", METRICS_PORT: String(port), RATE_LIMITS_KEY: "rpm=6,concurrent=0" } });
  }, 30_000);
  afterAll(async () => {
    child?.dispose();
    await fake?.close();
  });

  it("a scrape, whichever worker it lands on, counts the requests of both (the primary's limit refusals too)", async () => {
    // A connection each: the primary hands them to the workers in turn.
    const sent = 6;
    await startOfAMinute();
    for (let i = 0; i < sent; i++) expect((await postChat(child.url, child.key)).status).toBe(200);
    expect((await postChat(child.url, child.key)).status).toBe(429);
    // A connection each again: the workers share METRICS_PORT as they share the main port.
    for (let i = 0; i < 4; i++) {
      const res = await get(`${metricsUrl}/metrics`);
      expect(res.status).toBe(200);
      const s = parse(res.body);
      expect(total(s, "gatewayz_requests_total", { model: SOLO, outcome: "ok" })).toBe(sent);
      expect(total(s, "gatewayz_requests_total", { model: SOLO, outcome: "rate_limited" })).toBe(1);
      expect(total(s, "gatewayz_limiter_refusals_total", { dimension: "rpm", scope: "key" })).toBe(1);
      expect(total(s, "gatewayz_usage_rows_written_total")).toBe(sent + 1);
      // Per state, the number of workers whose circuit is in it.
      expect(total(s, "gatewayz_circuit_state", { provider: "alibaba-cloud", state: "ok" })).toBe(2);
      expect(s.filter((x) => x.name === "nodejs_version_info")).toHaveLength(1);
    }
    expect((await get(`${child.url}/metrics`)).status).toBe(404);
  }, 30_000);
});

/** One chat on a connection of its own. */
function postChat(url: string, key: string): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ model: SOLO, messages: USER });
    const req = http.request(`${url}/v1/chat/completions`, {
      method: "POST", agent: false,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) },
    }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode! }));
    });
    req.on("error", reject);
    req.end(body);
  });
}
