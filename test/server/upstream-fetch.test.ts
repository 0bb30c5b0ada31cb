// The openai SDK's `fetch` is built on undici's dispatcher API
// (src/providers/upstream-fetch.ts), not WHATWG fetch. These tests drive a real
// gateway against the fake upstream and check what that fetch must get right:
// upstream error statuses and their Retry-After / retry-after-ms headers (read
// through its headers view by the failover loop), error bodies that are not
// JSON, error bodies drained so the pooled connection is reused, and a client
// abort reaching the upstream request.

import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { partialChunk } from "../support/fake-upstream.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const USER = [{ role: "user" as const, content: "hi" }];
const MODEL = "qwen-max";

let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  // Alibaba Cloud alone: an upstream failure is the client's answer, not a failover.
  gw = await startTestGateway({ FAILOVER_RETRY_AFTER_MAX_MS: "1000" });
  client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 10_000 });
});
afterAll(async () => {
  await gw?.close();
});
beforeEach(() => {
  gw.fake.reset();
});

/** POST /v1/chat/completions as raw JSON; resolves with status, headers, body text and how long it took. */
async function chat(body: Record<string, unknown> = {}): Promise<{ status: number; headers: Headers; text: string; ms: number }> {
  const t0 = Date.now();
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: gw.authorization },
    body: JSON.stringify({ model: MODEL, messages: USER, ...body }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, ms: Date.now() - t0 };
}

function errorOf(text: string): { message: string; type: string; code: string } {
  return (JSON.parse(text) as { error: { message: string; type: string; code: string } }).error;
}

describe("upstream 429 and its retry headers", () => {
  it("retry-after in seconds, under the cap: waited out, then retried on the same connection", async () => {
    gw.fake.enqueue({ kind: "error", status: 429, message: "slow down", headers: { "retry-after": "0.2" } });
    const r = await chat();
    expect(r.status).toBe(200);
    expect(r.headers.get("x-gatewayz-attempts")).toBe("2");
    expect(JSON.parse(r.text).choices[0].message.content).toBe(`Hello from ${MODEL}`);
    expect(r.ms).toBeGreaterThanOrEqual(190);
    expect(gw.fake.requests).toHaveLength(2);
    // The 429's body was read to its end, so its keep-alive connection carried the retry.
    expect(gw.fake.requests[1]!.clientPort).toBe(gw.fake.requests[0]!.clientPort);
  });

  it("retry-after-ms wins over retry-after (only a headers view with a working has() reads it)", async () => {
    // retry-after alone (30 s) is over the cap and would end the request at once with a 429.
    gw.fake.enqueue({ kind: "error", status: 429, headers: { "retry-after-ms": "150", "retry-after": "30" } });
    const r = await chat();
    expect(r.status).toBe(200);
    expect(r.headers.get("x-gatewayz-attempts")).toBe("2");
    expect(r.ms).toBeGreaterThanOrEqual(140);
    expect(r.ms).toBeLessThan(1000);
  });

  it("retry-after as an HTTP date is honoured too", async () => {
    // Whole seconds only: one second ahead means a wait of 0 to 1 s, under the 1 s cap.
    const at = new Date(Math.floor(Date.now() / 1000) * 1000 + 1000).toUTCString();
    gw.fake.enqueue({ kind: "error", status: 429, headers: { "retry-after": at } });
    const r = await chat();
    expect(r.status).toBe(200);
    expect(r.headers.get("x-gatewayz-attempts")).toBe("2");
    expect(gw.fake.requests).toHaveLength(2);
  });

  it("retry-after over the cap: the client gets the 429 at once, after one upstream request", async () => {
    gw.fake.enqueue({ kind: "error", status: 429, message: "slow down", headers: { "retry-after": "30" } });
    const r = await chat();
    expect(r.status).toBe(429);
    expect(r.ms).toBeLessThan(1000);
    const e = errorOf(r.text);
    // The upstream's 429, told apart from the key's own limit (rate_limit_exceeded).
    expect(e).toMatchObject({ type: "requests", code: "upstream_rate_limited" });
    expect(e.message).toMatch(/Alibaba Cloud is rate limiting the gateway \(429\)/);
    expect(gw.fake.requests).toHaveLength(1);
    // The upstream's wait is passed on.
    expect(r.headers.get("retry-after")).toBe("30");
  });

  it("the openai SDK sees the same 429 as a RateLimitError, streaming or not", async () => {
    gw.fake.enqueue(
      { kind: "error", status: 429, headers: { "retry-after-ms": "60000" } },
      { kind: "error", status: 429, headers: { "retry-after-ms": "60000" } },
    );
    const plain = await client.chat.completions.create({ model: MODEL, messages: USER }).then(() => undefined, (e: unknown) => e);
    expect(plain).toBeInstanceOf(OpenAI.RateLimitError);
    expect((plain as InstanceType<typeof OpenAI.RateLimitError>).code).toBe("upstream_rate_limited");
    const streamed = await client.chat.completions.create({ model: MODEL, messages: USER, stream: true }).then(() => undefined, (e: unknown) => e);
    expect(streamed).toBeInstanceOf(OpenAI.RateLimitError);
    expect(gw.fake.requests).toHaveLength(2);
  });

  it("a retried 429 with a plain-text body still succeeds, streaming", async () => {
    gw.fake.enqueue({ kind: "raw", status: 429, body: "Too Many Requests", headers: { "content-type": "text/plain", "retry-after": "0.1" } });
    const r = await chat({ stream: true });
    expect(r.status).toBe(200);
    expect(r.headers.get("x-gatewayz-attempts")).toBe("2");
    expect(r.text).toContain("data: [DONE]");
  });
});

describe("error bodies that are not JSON", () => {
  it("an HTML 502 page: a 502 upstream_error naming the provider, without the page", async () => {
    gw.fake.enqueue({ kind: "raw", status: 502, body: "<html><body><h1>502 Bad Gateway</h1>nginx-secret-host</body></html>", headers: { "content-type": "text/html" } });
    const r = await chat();
    expect(r.status).toBe(502);
    const e = errorOf(r.text);
    expect(e).toMatchObject({ type: "server_error", code: "upstream_error" });
    expect(e.message).toContain("Alibaba Cloud");
    expect(e.message).toContain("502");
    expect(r.text).not.toContain("nginx-secret-host");
  });

  it("a plain-text 503 and an empty 503, streaming and not: 503 upstream_unavailable", async () => {
    gw.fake.enqueue(
      { kind: "raw", status: 503, body: "service unavailable, try later", headers: { "content-type": "text/plain" } },
      { kind: "raw", status: 503, body: "" },
    );
    const plain = await chat();
    expect(plain.status).toBe(503);
    expect(errorOf(plain.text).code).toBe("upstream_unavailable");
    const streamed = await chat({ stream: true });
    expect(streamed.status).toBe(503);
    expect(errorOf(streamed.text).code).toBe("upstream_unavailable");
  });

  it("a plain-text 400: still the client's fault (400 invalid_request), not a gateway failure", async () => {
    gw.fake.enqueue({ kind: "raw", status: 400, body: "input too long", headers: { "content-type": "text/plain" } });
    const r = await chat();
    expect(r.status).toBe(400);
    const e = errorOf(r.text);
    expect(e).toMatchObject({ type: "invalid_request_error", code: "invalid_request" });
    expect(e.message).toMatch(/Alibaba Cloud rejected the request \(400\)/);
    expect(gw.fake.requests).toHaveLength(1);
  });

  it("a body claiming to be JSON that is not: a 502, not a crash", async () => {
    gw.fake.enqueue({ kind: "raw", status: 500, body: "{oops", headers: { "content-type": "application/json" } });
    const r = await chat();
    expect(r.status).toBe(502);
    expect(errorOf(r.text).code).toBe("upstream_error");
  });

  it("a 200 whose body is an HTML page, not a completion: a 502 upstream_error, not a crash", async () => {
    gw.fake.enqueue({ kind: "raw", status: 200, body: "<html><body>captive portal</body></html>", headers: { "content-type": "text/html" } });
    const r = await chat();
    expect(r.status).toBe(502);
    expect(errorOf(r.text)).toMatchObject({ code: "upstream_error" });
    expect(errorOf(r.text).message).toMatch(/not a chat completion/);
    expect(r.text).not.toContain("captive portal");
  });

  it("error bodies are drained: failures and the success after them share one keep-alive connection", async () => {
    gw.fake.enqueue(
      { kind: "raw", status: 502, body: "x".repeat(64 * 1024), headers: { "content-type": "text/html" } },
      { kind: "raw", status: 400, body: "bad", headers: { "content-type": "text/plain" } },
      { kind: "error", status: 404, message: "The model does not exist" },
    );
    expect((await chat()).status).toBe(502);
    expect((await chat()).status).toBe(400);
    expect((await chat()).status).toBe(404);
    expect((await chat()).status).toBe(200);
    expect(gw.fake.requests).toHaveLength(4);
    expect(new Set(gw.fake.requests.map((r) => r.clientPort)).size).toBe(1);
  });
});

describe("a client abort", () => {
  it("mid-stream aborts the upstream request, whose connection is then dropped, not reused", async () => {
    // A steady upstream stream that would take about 4 s to finish.
    const words = Array.from({ length: 80 }, (_, i) => `w${i}`).join(" ");
    gw.fake.enqueue({ kind: "reply", content: words, chunkDelayMs: 50 });
    const controller = new AbortController();
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: gw.authorization },
      body: JSON.stringify({ model: MODEL, messages: USER, stream: true }),
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let text = "";
    const decoder = new TextDecoder();
    while (!text.includes('"content":"w1 "')) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the stream ended before it was aborted: ${text}`);
      text += decoder.decode(value, { stream: true });
    }
    const t0 = Date.now();
    controller.abort();
    await reader.read().catch(() => undefined);
    const aborted = await gw.fake.waitForAbort(1000);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(aborted.body).toMatchObject({ model: MODEL, stream: true });

    // The next request works, on a fresh connection: the aborted one was destroyed.
    const next = await client.chat.completions.create({ model: MODEL, messages: USER });
    expect(next.choices[0]!.message.content).toBe(`Hello from ${MODEL}`);
    expect(gw.fake.requests).toHaveLength(2);
    expect(gw.fake.requests[1]!.clientPort).not.toBe(aborted.clientPort);
  });

  it("through the openai SDK mid-stream: the upstream request is aborted, the chunks before it were relayed", async () => {
    gw.fake.enqueue({ kind: "stream-then-hang", chunks: 2 });
    const controller = new AbortController();
    const stream = await client.chat.completions.create({ model: MODEL, messages: USER, stream: true }, { signal: controller.signal });
    let got = "";
    const err = await (async () => {
      for await (const chunk of stream) {
        got += chunk.choices[0]?.delta?.content ?? "";
        if (got === partialChunk(0) + partialChunk(1)) controller.abort();
      }
    })().then(() => undefined, (e: unknown) => e);
    if (err !== undefined) expect(err).toBeInstanceOf(OpenAI.APIUserAbortError);
    expect(got).toBe(partialChunk(0) + partialChunk(1));
    const aborted = await gw.fake.waitForAbort(1000);
    expect(aborted.body.stream).toBe(true);
  });

  it("before the upstream answers (non-streaming): the upstream request is aborted", async () => {
    gw.fake.enqueue({ kind: "hang" });
    const controller = new AbortController();
    const pending = client.chat.completions.create({ model: MODEL, messages: USER }, { signal: controller.signal });
    await gw.fake.waitForRequests(1);
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
    const aborted = await gw.fake.waitForAbort(1000);
    expect(aborted.body.stream).not.toBe(true);
  });
});
