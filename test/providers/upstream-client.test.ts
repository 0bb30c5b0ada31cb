import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createUpstreamClient } from "../../src/providers/openai-compatible.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

let gw: TestGateway;
let client: OpenAI;
const ask = (model = "qwen-max") => client.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] });

beforeAll(async () => {
  gw = await startTestGateway({ ALIBABA_CLOUD_HEADERS: "X-DashScope-SSE: enable" });
  client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
});
afterAll(() => gw.close());

describe("the upstream client", () => {
  it("reuses one keep-alive connection for sequential requests", async () => {
    gw.fake.reset();
    for (let i = 0; i < 5; i++) await ask();
    const ports = new Set(gw.fake.requests.map((r) => r.clientPort));
    expect(gw.fake.requests).toHaveLength(5);
    expect(ports.size).toBe(1);
  });

  it("sends the provider key, the configured extra headers, and the SDK's own identity", async () => {
    gw.fake.reset();
    await ask();
    const headers = gw.fake.requests[0]!.headers;
    expect(headers.authorization).toBe(`Bearer ${gw.fake.apiKey}`);
    expect(headers["x-dashscope-sse"]).toBe("enable");
    expect(headers["user-agent"]).toMatch(/OpenAI/);
  });

  it("does not retry on its own: one failed request is one upstream attempt", async () => {
    gw.fake.reset();
    gw.fake.enqueue({ kind: "error", status: 500 });
    await expect(ask()).rejects.toMatchObject({ status: 502 });
    expect(gw.fake.requests).toHaveLength(1);
  });

  it("never forwards the client's own Authorization header upstream", async () => {
    gw.fake.reset();
    await ask();
    expect(JSON.stringify(gw.fake.requests[0]!.headers)).not.toContain(gw.key);
  });
});

describe("the stream idle timeout", () => {
  const provider = (timeoutMs: number) => {
    const config = loadConfig({ ENV_FILE: "/nonexistent/.env", ALIBABA_CLOUD_API_KEY: gw.fake.apiKey, ALIBABA_CLOUD_BASE_URL: gw.fake.baseUrl, ALIBABA_CLOUD_TIMEOUT_MS: String(timeoutMs) });
    return createUpstreamClient(config.providers.find((p) => p.row.id === "alibaba-cloud")!, config.failover);
  };
  const body = { model: "qwen-max", messages: [{ role: "user" as const, content: "hi" }], stream: true as const };

  it("counts only time spent waiting on the upstream, not on a slow consumer", async () => {
    gw.fake.reset();
    gw.fake.enqueue({ kind: "reply", content: "one two three" });
    const chunks: string[] = [];
    for await (const chunk of provider(300).stream(body, new AbortController().signal)) {
      chunks.push(chunk.choices[0]?.delta?.content ?? "");
      await new Promise((r) => setTimeout(r, 400)); // the consumer holds each chunk past the timeout
    }
    expect(chunks.join("")).toBe("one two three");
  });

  it("ends a stream whose upstream goes quiet with upstream_timeout", async () => {
    gw.fake.reset();
    gw.fake.enqueue({ kind: "stream-then-hang", chunks: 1 });
    const consume = async () => { for await (const _ of provider(150).stream(body, new AbortController().signal)); };
    await expect(consume()).rejects.toMatchObject({ kind: "upstream_timeout" });
    await gw.fake.waitForAbort(); // and the upstream request was dropped
  });
});

describe("a non-streaming answer's timeouts", () => {
  // The first-byte timeout ends at the response headers; the total timeout bounds the body after them.
  const client = (env: Record<string, string>) => {
    const config = loadConfig({ ENV_FILE: "/nonexistent/.env", ALIBABA_CLOUD_API_KEY: gw.fake.apiKey, ALIBABA_CLOUD_BASE_URL: gw.fake.baseUrl, ...env });
    return createUpstreamClient(config.providers.find((p) => p.row.id === "alibaba-cloud")!, config.failover);
  };
  const body = { model: "qwen-max", messages: [{ role: "user" as const, content: "hi" }] };

  it("a body that follows its headers after longer than the first-byte timeout is still the answer", async () => {
    gw.fake.reset();
    gw.fake.enqueue({ kind: "headers-then-body", bodyDelayMs: 700, content: "slow but sure" });
    const completion = await client({ ALIBABA_CLOUD_FIRST_BYTE_TIMEOUT_MS: "300" }).complete(body, new AbortController().signal);
    expect(completion.choices[0]!.message.content).toBe("slow but sure");
  });

  it("a body slower than the total timeout is upstream_timeout, and the upstream request is dropped", async () => {
    gw.fake.reset();
    gw.fake.enqueue({ kind: "headers-then-body", bodyDelayMs: 2_000 });
    const t0 = Date.now();
    const failed = client({ ALIBABA_CLOUD_TOTAL_TIMEOUT_MS: "400" }).complete(body, new AbortController().signal);
    await expect(failed).rejects.toMatchObject({ kind: "upstream_timeout", retryable: true, rawMessage: "Alibaba Cloud took longer than 400 ms" });
    expect(Date.now() - t0).toBeLessThan(1_500);
    await gw.fake.waitForAbort();
  });

  it("through the gateway: the slow body is a 200 within the first-byte timeout, and a 504 past the total one", async () => {
    const slow = await startTestGateway({ ALIBABA_CLOUD_FIRST_BYTE_TIMEOUT_MS: "200", ALIBABA_CLOUD_TOTAL_TIMEOUT_MS: "700" });
    try {
      const sdk = new OpenAI({ apiKey: slow.key, baseURL: `${slow.url}/v1`, maxRetries: 0 });
      slow.fake.enqueue({ kind: "headers-then-body", bodyDelayMs: 400, content: "made it" }, { kind: "headers-then-body", bodyDelayMs: 2_000 });
      const ok = await sdk.chat.completions.create(body);
      expect(ok.choices[0]!.message.content).toBe("made it");
      await expect(sdk.chat.completions.create(body)).rejects.toMatchObject({ status: 504, code: "upstream_timeout" });
    } finally {
      await slow.close();
    }
  });
});

describe("a configured header that HTTP cannot carry", () => {
  it("keeps the provider from loading, naming the header but never its value", async () => {
    const bad = await startTestGateway({ ALIBABA_CLOUD_HEADERS: JSON.stringify({ "X-Api-Key": "xk-line\nbreak-secret" }) });
    try {
      const line = bad.logs.find((l) => /Failed to load alibaba-cloud provider client/.test(l));
      expect(line).toMatch(/ALIBABA_CLOUD_HEADERS: the value of header 'X-Api-Key' holds a character HTTP does not allow/);
      expect(bad.logs.join("\n")).not.toContain("break-secret");
      const sdk = new OpenAI({ apiKey: bad.key, baseURL: `${bad.url}/v1`, maxRetries: 0 });
      await expect(sdk.chat.completions.create({ model: "qwen-max", messages: [{ role: "user", content: "hi" }] }))
        .rejects.toMatchObject({ status: 503, code: "provider_not_configured" });
      expect(bad.fake.requests).toHaveLength(0);
    } finally {
      await bad.close();
    }
  });
});
