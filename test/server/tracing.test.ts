// OpenTelemetry traces end to end: a real gateway exporting OTLP/HTTP JSON to
// a receiver in this test, driven by real clients (the `openai` package,
// grpc-js). A request is one SERVER span continuing the caller's traceparent,
// with one CLIENT child per upstream attempt whose context the upstream
// receives; the attributes follow the GenAI semantic conventions; no prompt
// or answer text is ever exported; and without an OTLP endpoint the SDK is
// not even loaded.

import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeUpstream, type FakeUpstream } from "../support/fake-upstream.js";
import { startGatewayChild } from "../support/gateway-child.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { grpcChat } from "../support/grpc-chat.js";
import { ROOT } from "../support/node-child.js";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../support/otlp-receiver.js";
import { closedPortUrl } from "../support/unreachable.js";

/** Served by alibaba-cloud first, then (of the providers configured here) openrouter. */
const MODEL = "qwen-2.5-72b-instruct";
const SERVER = 2;
const CLIENT = 3;
const ERROR = 2;
/** Text that must never leave in an export. */
const PROMPT = "PROMPT-TEXT-never-exported-5d1f";
const ANSWER = "ANSWER-TEXT-never-exported-9c3b";

/** A caller's W3C trace context: a fresh trace id and the caller's span id. */
function caller() {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

const ofTrace = (spans: ReceivedSpan[], traceId: string) => spans.filter((s) => s.traceId === traceId);
/** The trace's request span and its attempt spans, once the request span and `attempts` children are in. */
async function tree(receiver: OtlpReceiver, traceId: string, attempts = 1) {
  const spans = ofTrace(await receiver.waitFor((all) => {
    const t = ofTrace(all, traceId);
    const root = t.find((s) => s.kind === SERVER);
    return !!root && t.filter((s) => s.parentSpanId === root.spanId).length >= attempts;
  }), traceId);
  const request = spans.find((s) => s.kind === SERVER)!;
  return { request, attempts: spans.filter((s) => s.parentSpanId === request.spanId), spans };
}

describe("traces exported over OTLP/HTTP", () => {
  let receiver: OtlpReceiver;
  let gw: TestGateway;
  let client: OpenAI;
  let keyId: string;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    // The SDK reads process.env too: the gateway's own variables must win, and nothing leak in.
    process.env.OTEL_EXPORTER_OTLP_HEADERS = "x-from-process-env=leaked";
    process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "http://127.0.0.1:9/elsewhere";
    gw = await startTestGateway({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_HEADERS: "x-collector-token=t0k3n",
      OTEL_BSP_SCHEDULE_DELAY: "20",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=test",
    }, { providers: ["openrouter"] });
    client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    keyId = gw.app.accounts.listKeys({ user: "test" })[0]!.id;
  });
  afterAll(async () => {
    delete process.env.OTEL_EXPORTER_OTLP_HEADERS;
    delete process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
    await gw?.close();
    await receiver?.close();
  });

  it("a chat continues the caller's trace: one SERVER span, one CLIENT attempt, GenAI attributes, the context sent upstream", async () => {
    const c = caller();
    gw.fake.enqueue({ kind: "reply", content: ANSWER, usage: { prompt_tokens: 12, completion_tokens: 7 } });
    const answer = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: PROMPT }] }, { headers: { traceparent: c.traceparent } });
    expect(answer.choices[0]!.message.content).toBe(ANSWER);

    const { request, attempts } = await tree(receiver, c.traceId);
    expect(request).toMatchObject({ name: `chat ${MODEL}`, parentSpanId: c.spanId, status: { code: 0 }, scope: "gatewayz" });
    expect(request.attributes).toMatchObject({
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "alibaba-cloud",
      "gen_ai.request.model": MODEL,
      "gen_ai.response.model": "qwen2.5-72b-instruct",
      "gen_ai.usage.input_tokens": 12,
      "gen_ai.usage.output_tokens": 7,
      "gen_ai.response.finish_reasons": ["stop"],
      "gatewayz.attempts": 1,
      "gatewayz.key_id": keyId,
      "gatewayz.protocol": "openai",
      "http.request.method": "POST",
      "http.response.status_code": 200,
    });
    expect(request.attributes["gatewayz.cost_usd"]).toMatch(/^\d+\.\d+$/);
    expect(Number(request.attributes["gatewayz.cost_usd"])).toBeGreaterThan(0);
    expect(request.attributes["error.type"]).toBeUndefined();
    expect(request.resource).toMatchObject({ "service.name": "gatewayz", "deployment.environment.name": "test" });

    expect(attempts).toHaveLength(1);
    const [attempt] = attempts;
    expect(attempt).toMatchObject({ kind: CLIENT, name: "chat qwen2.5-72b-instruct", status: { code: 0 } });
    expect(attempt!.attributes).toMatchObject({
      "gen_ai.operation.name": "chat", "gen_ai.provider.name": "alibaba-cloud", "gen_ai.request.model": "qwen2.5-72b-instruct",
      "gen_ai.response.model": "qwen2.5-72b-instruct", "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 7,
      "gen_ai.response.finish_reasons": ["stop"], "gatewayz.attempt": 1,
    });

    // The upstream got the attempt's context: same trace, the attempt span as parent.
    const upstream = gw.fake.requests.find((r) => String(r.headers.traceparent ?? "").includes(c.traceId));
    expect(upstream?.headers.traceparent).toBe(`00-${c.traceId}-${attempt!.spanId}-01`);
  });

  it("exports to the configured endpoint with the configured headers, not process.env's", async () => {
    await receiver.waitFor((spans) => spans.length > 0);
    for (const h of receiver.headers) {
      expect(h["x-collector-token"]).toBe("t0k3n");
      expect(h["x-from-process-env"]).toBeUndefined();
    }
    expect(process.env.OTEL_EXPORTER_OTLP_HEADERS).toBe("x-from-process-env=leaked");
  });

  it("a stream without a traceparent starts a new trace and is traced the same way", async () => {
    gw.fake.enqueue({ kind: "reply", content: ANSWER, usage: { prompt_tokens: 9, completion_tokens: 4 } });
    const stream = await client.chat.completions.create(
      { model: MODEL, messages: [{ role: "user", content: PROMPT }], stream: true, stream_options: { include_usage: true } },
      { headers: { "x-request-id": "trace-stream-1" } },
    );
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(text).toBe(ANSWER);

    const root = (await receiver.waitFor((all) => all.some((s) => s.attributes["gatewayz.request_id"] === "trace-stream-1")))
      .find((s) => s.attributes["gatewayz.request_id"] === "trace-stream-1")!;
    const { request, attempts } = await tree(receiver, root.traceId);
    expect(request).toMatchObject({ name: `chat ${MODEL}`, parentSpanId: "" });
    expect(request.attributes).toMatchObject({
      "gen_ai.operation.name": "chat", "gen_ai.provider.name": "alibaba-cloud", "gen_ai.request.model": MODEL,
      "gen_ai.usage.input_tokens": 9, "gen_ai.usage.output_tokens": 4, "gen_ai.response.finish_reasons": ["stop"],
      "gatewayz.attempts": 1, "gatewayz.key_id": keyId,
    });
    expect(attempts).toHaveLength(1);
    expect(attempts[0]!.attributes).toMatchObject({ "gen_ai.usage.output_tokens": 4 });
  });

  it("a failover has two attempts, the first failed with its error.type; the request counts two", async () => {
    const c = caller();
    gw.fake.enqueue({ kind: "error", status: 500 });
    const answer = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: PROMPT }] }, { headers: { traceparent: c.traceparent } });
    expect(answer.choices[0]!.message.content).toBe("Hello from qwen/qwen-2.5-72b-instruct");

    const { request, attempts } = await tree(receiver, c.traceId, 2);
    expect(request.attributes).toMatchObject({ "gatewayz.attempts": 2, "gen_ai.provider.name": "openrouter", "gen_ai.response.model": "qwen/qwen-2.5-72b-instruct" });
    expect(request.status.code).toBe(0);
    const [first, second] = attempts.sort((a, b) => Number(a.attributes["gatewayz.attempt"]) - Number(b.attributes["gatewayz.attempt"]));
    expect(first!.attributes).toMatchObject({ "gen_ai.provider.name": "alibaba-cloud", "gatewayz.attempt": 1, "error.type": "upstream_error" });
    expect(first!.status).toMatchObject({ code: ERROR, message: "upstream_error" });
    expect(second!.attributes).toMatchObject({ "gen_ai.provider.name": "openrouter", "gatewayz.attempt": 2, "gen_ai.request.model": "qwen/qwen-2.5-72b-instruct" });
    expect(second!.attributes["error.type"]).toBeUndefined();
    // Each upstream saw its own attempt as the parent.
    const seen = [gw.fakes["alibaba-cloud"]!, gw.fakes.openrouter!].map((f) => f.requests.find((r) => String(r.headers.traceparent ?? "").includes(c.traceId))?.headers.traceparent);
    expect(seen).toEqual([`00-${c.traceId}-${first!.spanId}-01`, `00-${c.traceId}-${second!.spanId}-01`]);
  });

  it("a request that fails ends its span with status ERROR and error.type", async () => {
    const c = caller();
    gw.fake.enqueue({ kind: "error", status: 400, message: "Range of max_tokens should be [1, 8192]", code: "invalid_parameter_error" });
    await expect(client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: PROMPT }] }, { headers: { traceparent: c.traceparent } })).rejects.toThrow();
    const { request, attempts } = await tree(receiver, c.traceId);
    expect(request.status.code).toBe(ERROR);
    expect(request.attributes["error.type"]).toEqual(expect.any(String));
    expect(request.status.message).toBe(request.attributes["error.type"]);
    expect(attempts[0]!.status.code).toBe(ERROR);
  });

  it("a gRPC Chat with traceparent in its metadata continues the caller's trace", async () => {
    const c = caller();
    gw.fake.enqueue({ kind: "reply", content: ANSWER, usage: { prompt_tokens: 5, completion_tokens: 3 } });
    const r = await grpcChat(gw.url, gw.authorization, { model: MODEL, messages: [{ role: "user", content: PROMPT }] }, { traceparent: c.traceparent });
    expect(r.status.code).toBe(0);

    const { request, attempts } = await tree(receiver, c.traceId);
    expect(request).toMatchObject({ kind: SERVER, name: `chat ${MODEL}`, parentSpanId: c.spanId });
    expect(request.attributes).toMatchObject({
      "gatewayz.protocol": "grpc", "gen_ai.operation.name": "chat", "gen_ai.provider.name": "alibaba-cloud",
      "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 3, "gatewayz.attempts": 1, "gatewayz.key_id": keyId,
    });
    expect(attempts).toHaveLength(1);
    const upstream = gw.fake.requests.find((r) => String(r.headers.traceparent ?? "").includes(c.traceId));
    expect(upstream?.headers.traceparent).toBe(`00-${c.traceId}-${attempts[0]!.spanId}-01`);
  });

  it("probes are not traced", async () => {
    const c = caller();
    await fetch(`${gw.url}/healthz`, { headers: { traceparent: c.traceparent } });
    await fetch(`${gw.url}/v1/models`, { headers: { traceparent: c.traceparent, authorization: gw.authorization } });
    const spans = ofTrace(await receiver.waitFor((all) => ofTrace(all, c.traceId).length > 0), c.traceId);
    expect(spans.map((s) => s.name)).toEqual(["GET /v1/models"]);
  });

  it("no prompt or answer text appears anywhere in the export", async () => {
    expect(receiver.bodies.length).toBeGreaterThan(0);
    const all = receiver.bodies.join("\n");
    expect(all).toContain(MODEL);
    expect(all).not.toContain(PROMPT);
    expect(all).not.toContain(ANSWER);
    expect(all).not.toContain(gw.key);
  });
});

describe("the OTEL_* settings", () => {
  it("gzip, a traces endpoint used as is, OTEL_SERVICE_NAME", async () => {
    const receiver = await startOtlpReceiver();
    const gw = await startTestGateway({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`, OTEL_EXPORTER_OTLP_COMPRESSION: "gzip",
      OTEL_SERVICE_NAME: "edge-gateway", OTEL_BSP_SCHEDULE_DELAY: "10",
    });
    try {
      const c = caller();
      await fetch(`${gw.url}/v1/models`, { headers: { traceparent: c.traceparent, authorization: gw.authorization } });
      const [span] = ofTrace(await receiver.waitFor((all) => ofTrace(all, c.traceId).length > 0), c.traceId);
      expect(span).toMatchObject({ name: "GET /v1/models", kind: SERVER, parentSpanId: c.spanId });
      expect(span!.resource["service.name"]).toBe("edge-gateway");
      expect(receiver.headers[0]!["content-encoding"]).toBe("gzip");
    } finally {
      await gw.close();
      await receiver.close();
    }
  });

  it("OTEL_TRACES_SAMPLER=always_off exports nothing, and the upstream still gets the (unsampled) context", async () => {
    const receiver = await startOtlpReceiver();
    const gw = await startTestGateway({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_TRACES_SAMPLER: "always_off", OTEL_BSP_SCHEDULE_DELAY: "10" });
    try {
      const c = caller();
      const client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
      await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }] }, { headers: { traceparent: c.traceparent } });
      const sent = String(gw.fake.requests.at(-1)?.headers.traceparent);
      expect(sent).toMatch(new RegExp(`^00-${c.traceId}-[0-9a-f]{16}-00$`));
      expect(sent).not.toContain(c.spanId);
      await new Promise((r) => setTimeout(r, 300));
      expect(receiver.spans).toEqual([]);
    } finally {
      await gw.close();
      await receiver.close();
    }
  });
});

describe("a collector that cannot be reached", () => {
  it("does not fail or slow requests, is logged once at warn, and does not hold up shutdown", async () => {
    const gw = await startTestGateway({
      OTEL_EXPORTER_OTLP_ENDPOINT: await closedPortUrl(), OTEL_BSP_SCHEDULE_DELAY: "10", OTEL_EXPORTER_OTLP_TIMEOUT: "500",
    });
    try {
      const client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
      for (let i = 0; i < 3; i++) {
        const t0 = Date.now();
        await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }] });
        expect(Date.now() - t0).toBeLessThan(1_000);
        await new Promise((r) => setTimeout(r, 700));
      }
      const failures = gw.logs.filter((l) => /tracing: exporting spans .* failed/.test(l));
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatch(/WARN/i);
    } finally {
      const t0 = Date.now();
      await gw.close();
      expect(Date.now() - t0).toBeLessThan(3_000);
    }
  });
});

/**
 * The gateway as a child process under a loader hook that records every
 * module it resolves: without an OTLP endpoint no @opentelemetry module may
 * be among them (a static import anywhere in src/ would be); with one, they
 * are (the hook sees them), and SIGTERM flushes the spans on the way out.
 */
describe("the OpenTelemetry SDK is loaded only when tracing is on", () => {
  let fake: FakeUpstream;
  let dir: string;
  beforeAll(async () => {
    fake = await startFakeUpstream();
    dir = mkdtempSync(join(tmpdir(), "gatewayz-imports-"));
  });
  afterAll(async () => {
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Starts the child, serves one chat, stops it with SIGTERM; the resolved module URLs. */
  async function importsOf(name: string, env: Record<string, string>): Promise<string[]> {
    const file = join(dir, `${name}.txt`);
    const child = await startGatewayChild(fake, {
      command: [process.execPath, "--import", "tsx", "--import", join(ROOT, "test/support/record-imports.mjs"), "src/main.ts"],
      env: { RECORD_IMPORTS_FILE: file, ...env },
    });
    try {
      const res = await fetch(`${child.url}/v1/chat/completions`, {
        method: "POST", headers: { authorization: `Bearer ${child.key}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "qwen-plus", messages: [{ role: "user", content: "hi" }] }),
      });
      expect(res.status).toBe(200);
      child.signal("SIGTERM");
      expect((await child.exited).code).toBe(0);
    } finally {
      child.dispose();
    }
    return readFileSync(file, "utf8").split("\n").filter(Boolean);
  }

  it("without OTEL_EXPORTER_OTLP_ENDPOINT, no @opentelemetry module is resolved", async () => {
    const urls = await importsOf("off", {});
    expect(urls.some((u) => u.includes("/src/app.ts"))).toBe(true);
    expect(urls.filter((u) => u.includes("@opentelemetry"))).toEqual([]);
  }, 60_000);

  it("with it, the SDK is loaded, and SIGTERM exports the buffered spans", async () => {
    const receiver = await startOtlpReceiver();
    try {
      // A long batch delay: the span arrives only because shutdown flushes it.
      const urls = await importsOf("on", { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "60000" });
      expect(urls.some((u) => u.includes("/node_modules/@opentelemetry/sdk-trace-node/"))).toBe(true);
      expect(receiver.spans.map((s) => s.name)).toContain("chat qwen-plus");
    } finally {
      await receiver.close();
    }
  }, 60_000);
});
