/**
 * Every failure the OpenAI-compatible front door reports, end to end: OpenAI's error shape
 * (`{"error":{message,type,param,code}}`) with the right HTTP status, for bad requests, for
 * upstream trouble (driven through the fake upstream) and for failures after a stream started.
 */
import { describe, it, expect, beforeAll, afterAll, beforeEach } from "vitest";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import OpenAI from "openai";
import type { ChatCompletionChunk } from "openai/resources/chat/completions";
import { partialChunk, type Behaviour } from "../support/fake-upstream.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const USER = [{ role: "user" as const, content: "hi" }];

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  gw = await startTestGateway();
  client = sdk(gw);
});
afterAll(async () => {
  await gw?.close();
});
beforeEach(() => {
  gw.fake.reset();
});

function sdk(g: TestGateway): OpenAI {
  return new OpenAI({ apiKey: g.key, baseURL: g.url + "/v1", maxRetries: 0 });
}

/** Await a promise expected to reject and hand back the error. */
async function failure(p: PromiseLike<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

/** A helpful message: says something, and leaks no stack trace. */
function expectHelpful(message: string): void {
  expect(typeof message).toBe("string");
  expect(message.length).toBeGreaterThan(10);
  expect(message).not.toContain("    at ");
  expect(message).not.toMatch(/\.(ts|js):\d+/);
}

/** Checks an SDK APIError against the wire error it must have been built from. */
function expectSdkError(err: unknown, status: number, code: string, type: string, param: string | null = null): ErrorBody["error"] {
  expect(err).toBeInstanceOf(OpenAI.APIError);
  const e = err as InstanceType<typeof OpenAI.APIError>;
  expect(e.status).toBe(status);
  expect(e.code).toBe(code);
  expect(e.type).toBe(type);
  expect(e.param ?? null).toBe(param);
  const body = e.error as ErrorBody["error"];
  expect(Object.keys(body).sort()).toEqual(["code", "message", "param", "type"]);
  expectHelpful(body.message);
  expect(JSON.stringify(body)).not.toContain("    at ");
  return body;
}

/** Reads a raw error response, asserting status, JSON content type and OpenAI's shape. */
async function expectRawError(res: Response, status: number, code: string, type = "invalid_request_error", param: string | null = null): Promise<ErrorBody["error"]> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  expect(text).not.toContain("    at ");
  const body = JSON.parse(text) as ErrorBody;
  expect(Object.keys(body)).toEqual(["error"]);
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
  expect(body.error.code).toBe(code);
  expect(body.error.type).toBe(type);
  expect(body.error.param).toBe(param);
  expectHelpful(body.error.message);
  return body.error;
}

function post(g: TestGateway, body: BodyInit | undefined, contentType: string | undefined = "application/json", path = "/v1/chat/completions"): Promise<Response> {
  const headers: Record<string, string> = { authorization: g.authorization };
  if (contentType !== undefined) headers["content-type"] = contentType;
  return fetch(g.url + path, { method: "POST", headers, body });
}

const postJson = (g: TestGateway, body: unknown) => post(g, JSON.stringify(body));

describe("bad requests", () => {
  it("an unknown model is a 404 model_not_found naming the model (SDK NotFoundError)", async () => {
    const err = await failure(client.chat.completions.create({ model: "gpt-9-ultra", messages: USER }));
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    const body = expectSdkError(err, 404, "model_not_found", "invalid_request_error", "model");
    expect(body.message).toContain("'gpt-9-ultra'");
    expect(body.message).toContain("/v1/models");
    expect(gw.fake.requests).toHaveLength(0);
  });

  it("an unknown model on a streaming request is a plain 404 before any stream starts", async () => {
    const err = await failure(client.chat.completions.create({ model: "qwen/not-a-model", messages: USER, stream: true }));
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(expectSdkError(err, 404, "model_not_found", "invalid_request_error", "model").message).toContain("qwen/not-a-model");
    const res = await postJson(gw, { model: "qwen/not-a-model", messages: USER, stream: true });
    expect(res.headers.get("content-type")).not.toMatch(/event-stream/);
    await expectRawError(res, 404, "model_not_found", "invalid_request_error", "model");
  });

  it("a provider prefix that does not own the model is model_not_found", async () => {
    const err = await failure(client.chat.completions.create({ model: "openai/qwen-max", messages: USER }));
    expect(expectSdkError(err, 404, "model_not_found", "invalid_request_error", "model").message).toContain("openai/qwen-max");
  });

  it.each<[string, Record<string, unknown>, string, RegExp]>([
    ["missing model", { messages: USER }, "model", /model is required/],
    ["empty model", { model: "  ", messages: USER }, "model", /model is required/],
    ["missing messages", { model: "qwen-max" }, "messages", /messages must be a non-empty array/],
    ["empty messages", { model: "qwen-max", messages: [] }, "messages", /messages must be a non-empty array/],
    ["messages not an array", { model: "qwen-max", messages: "hi" }, "messages", /messages must be a non-empty array/],
    ["a message that is not an object", { model: "qwen-max", messages: ["hi"] }, "messages[0]", /messages\[0\] must be an object/],
    ["a bad role", { model: "qwen-max", messages: [{ role: "user", content: "a" }, { role: "robot", content: "b" }] }, "messages[1].role", /messages\[1\]\.role must be one of/],
    ["a missing content", { model: "qwen-max", messages: [{ role: "user" }] }, "messages[0].content", /messages\[0\]\.content is required/],
    ["a numeric content", { model: "qwen-max", messages: [{ role: "user", content: 7 }] }, "messages[0].content", /string or an array/],
    ["a non-boolean stream", { model: "qwen-max", messages: USER, stream: "yes" }, "stream", /stream must be a boolean/],
  ])("%s is a 400 invalid_request with param", async (_name, params, param, message) => {
    const err = await failure(client.chat.completions.create(params as any));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(expectSdkError(err, 400, "invalid_request", "invalid_request_error", param).message).toMatch(message);
    expect(gw.fake.requests).toHaveLength(0);
  });

  it.each([
    ["an array", "[1]"],
    ["a string", '"x"'],
    ["a number", "42"],
    ["null", "null"],
  ])("a body that is %s, not a JSON object, is a 400", async (_name, body) => {
    const e = await expectRawError(await post(gw, body), 400, "invalid_request");
    expect(e.message).toBe("the request body must be a JSON object");
  });

  it("malformed JSON is a 400", async () => {
    const e = await expectRawError(await post(gw, '{"model": "qwen-max", "messages": ['), 400, "invalid_request");
    expect(e.message).toMatch(/not valid JSON/);
  });

  it.each([
    ["no body", undefined],
    ["an empty body", ""],
    ["a blank body", "  \n"],
  ])("%s is a 400", async (_name, body) => {
    const e = await expectRawError(await post(gw, body), 400, "invalid_request");
    expect(e.message).toMatch(/empty/);
  });

  it.each([
    ["text/plain", '{"model":"qwen-max","messages":[{"role":"user","content":"hi"}]}'],
    ["application/x-www-form-urlencoded", '{"model":"qwen-max","messages":[{"role":"user","content":"hi"}]}'],
    ["multipart/form-data; boundary=x", "--x--"],
  ])("Content-Type %s is a 415", async (type, body) => {
    const e = await expectRawError(await post(gw, body, type), 415, "unsupported_media_type");
    expect(e.message).toContain("application/json");
    expect(e.message).toContain(type.split(";")[0]!);
    expect(gw.fake.requests).toHaveLength(0);
  });

  it("application/json with a charset is accepted", async () => {
    const res = await post(gw, JSON.stringify({ model: "qwen-max", messages: USER }), "application/json; charset=utf-8");
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).choices[0].message.content).toBe("Hello from qwen-max");
  });

  it.each([
    ["GET", "/v1/nope"],
    ["POST", "/v2/chat/completions"],
    ["POST", "/v1/completions"],
    ["DELETE", "/v1/models/qwen-plus"],
  ])("%s %s is a 404 not_found in OpenAI's shape", async (method, path) => {
    const res = await fetch(gw.url + path, { method, headers: { authorization: gw.authorization } });
    const e = await expectRawError(res, 404, "not_found");
    expect(e.message).toContain(method);
  });

  it("a malformed percent-escape in a model path is a client error, not a 500", async () => {
    const res = await fetch(gw.url + "/v1/models/%ZZ", { headers: { authorization: gw.authorization } });
    expect([400, 404]).toContain(res.status);
    const e = await expectRawError(res, res.status, res.status === 400 ? "invalid_request" : "model_not_found", "invalid_request_error", "model");
    expect(e.message).not.toBe("internal error");
  });

  it("GET /v1/chat/completions is a 404/405 in OpenAI's shape", async () => {
    const res = await fetch(gw.url + "/v1/chat/completions", { headers: { authorization: gw.authorization } });
    expect([404, 405]).toContain(res.status);
    const e = await expectRawError(res, res.status, "not_found");
    expect(e.message).toMatch(/POST/);
  });

  describe("with MAX_BODY_BYTES=1024", () => {
    let small: TestGateway;
    beforeAll(async () => {
      small = await startTestGateway({ MAX_BODY_BYTES: "1024" });
    });
    afterAll(async () => {
      await small?.close();
    });

    const big = () => JSON.stringify({ model: "qwen-max", messages: [{ role: "user", content: "x".repeat(2000) }] });

    it("a body over the limit is a 413 (declared Content-Length)", async () => {
      const e = await expectRawError(await post(small, big()), 413, "payload_too_large");
      expect(e.message).toContain("1024");
      expect(small.fake.requests).toHaveLength(0);
    });

    it("a huge body over the limit is a 413, not a dropped connection", async () => {
      const huge = JSON.stringify({ model: "qwen-max", messages: [{ role: "user", content: "x".repeat(4 * 1024 * 1024) }] });
      await expectRawError(await post(small, huge), 413, "payload_too_large");
    });

    it("a chunked body (no Content-Length) over the limit is a 413", async () => {
      const payload = new TextEncoder().encode(big());
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < payload.length; i += 256) controller.enqueue(payload.slice(i, i + 256));
          controller.close();
        },
      });
      const res = await fetch(small.url + "/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: small.authorization },
        body,
        duplex: "half",
      } as RequestInit & { duplex: "half" });
      await expectRawError(res, 413, "payload_too_large");
    });

    it("the SDK sees a 413 as an APIError with status 413", async () => {
      const err = await failure(sdk(small).chat.completions.create({ model: "qwen-max", messages: [{ role: "user", content: "y".repeat(3000) }] }));
      expectSdkError(err, 413, "payload_too_large", "invalid_request_error");
    });

    it("a body under the limit still works", async () => {
      const res = await sdk(small).chat.completions.create({ model: "qwen-max", messages: USER });
      expect(res.choices[0]!.message.content).toBe("Hello from qwen-max");
    });
  });
});

describe("upstream trouble", () => {
  it.each<[number, string, string, new (...args: any[]) => Error]>([
    [500, "upstream_error", "server_error", OpenAI.InternalServerError],
    [502, "upstream_error", "server_error", OpenAI.InternalServerError],
    [503, "upstream_unavailable", "server_error", OpenAI.InternalServerError],
    [504, "upstream_timeout", "server_error", OpenAI.InternalServerError],
    [429, "upstream_rate_limited", "requests", OpenAI.RateLimitError],
  ])("upstream %i becomes the right status, non-streaming and streaming", async (upstream, code, type, cls) => {
    const status = upstream === 500 ? 502 : upstream;
    gw.fake.enqueue(
      { kind: "error", status: upstream, message: "secret upstream detail" },
      { kind: "error", status: upstream, message: "secret upstream detail" },
    );
    const err = await failure(client.chat.completions.create({ model: "qwen-max", messages: USER }));
    expect(err).toBeInstanceOf(cls);
    const body = expectSdkError(err, status, code, type);
    expect(body.message).toContain("Alibaba Cloud");
    expect(body.message).toContain(String(upstream));

    // Before the first chunk a stream can still fail with a status, not an SSE error.
    const streamErr = await failure(client.chat.completions.create({ model: "qwen-max", messages: USER, stream: true }));
    expect(streamErr).toBeInstanceOf(cls);
    expect(expectSdkError(streamErr, status, code, type).message).toBe(body.message);
    expect(gw.fake.requests).toHaveLength(2);
  });

  it("an upstream 400 is a 400 carrying the upstream's message", async () => {
    gw.fake.enqueue({ kind: "error", status: 400, message: "Range of input length should be [1, 30720]", code: "invalid_parameter_error" });
    const err = await failure(client.chat.completions.create({ model: "qwen-max", messages: USER }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const body = expectSdkError(err, 400, "invalid_request", "invalid_request_error");
    expect(body.message).toContain("Range of input length should be [1, 30720]");
    expect(body.message).toContain("Alibaba Cloud");
  });

  it("an upstream 404 (model unknown upstream) is a 404 model_not_found carrying the upstream's message", async () => {
    gw.fake.enqueue({ kind: "error", status: 404, message: "The model `qwen-max` does not exist or you do not have access to it.", code: "model_not_found" });
    const err = await failure(client.chat.completions.create({ model: "qwen-max", messages: USER }));
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(expectSdkError(err, 404, "model_not_found", "invalid_request_error").message).toContain("does not exist or you do not have access");
  });

  it("a non-streaming call to a streaming-only model that fails mid-stream upstream is a 502", async () => {
    gw.fake.enqueue({ kind: "stream-then-error", chunks: 2, message: "model overloaded" });
    const err = await failure(client.chat.completions.create({ model: "qwq-plus", messages: USER }));
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect(expectSdkError(err, 502, "upstream_error", "server_error").message).toContain("model overloaded");
  });

  describe("with a wrong provider key", () => {
    const KEY = "sk-wrong-7f3a9c2e51";
    let wrong: TestGateway;
    beforeAll(async () => {
      wrong = await startTestGateway({ ALIBABA_CLOUD_API_KEY: KEY });
    });
    afterAll(async () => {
      await wrong?.close();
    });

    it("an upstream 401 is a 502 that does not reveal the key", async () => {
      const res = await postJson(wrong, { model: "qwen-max", messages: USER });
      const text = await res.clone().text();
      const e = await expectRawError(res, 502, "upstream_error", "server_error");
      expect(e.message).toMatch(/credentials/);
      expect(e.message).toContain("401");
      expect(text).not.toContain(KEY);
      expect(text).not.toContain("7f3a9c2e51");
      expect(wrong.logs.join("\n")).not.toContain(KEY);
      // The gateway really did send its (wrong) key, not the client's.
      expect(wrong.fake.requests[0]!.headers.authorization).toBe(`Bearer ${KEY}`);
      expect(JSON.stringify(wrong.fake.requests[0]!.headers)).not.toContain(wrong.key);
    });

    it("the SDK sees a 502 and never a 401 (the client's own key was fine)", async () => {
      const err = await failure(sdk(wrong).chat.completions.create({ model: "qwen-max", messages: USER, stream: true }));
      expect(err).not.toBeInstanceOf(OpenAI.AuthenticationError);
      expect(JSON.stringify(expectSdkError(err, 502, "upstream_error", "server_error"))).not.toContain(KEY);
    });
  });

  describe("with a 300 ms provider timeout", () => {
    let slow: TestGateway;
    beforeAll(async () => {
      slow = await startTestGateway({ ALIBABA_CLOUD_TIMEOUT_MS: "300" });
    });
    afterAll(async () => {
      await slow?.close();
    });
    beforeEach(() => {
      slow.fake.reset();
    });

    it("an upstream that never answers is a 504 upstream_timeout", async () => {
      slow.fake.enqueue({ kind: "hang" });
      const started = Date.now();
      const err = await failure(sdk(slow).chat.completions.create({ model: "qwen-max", messages: USER }));
      const elapsed = Date.now() - started;
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      expect(expectSdkError(err, 504, "upstream_timeout", "server_error").message).toContain("300 ms");
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(2000);
      // The gateway gave up on the upstream request.
      await slow.fake.waitForAbort(1000);
    });

    it("a streaming request whose upstream never sends headers is a 504 too", async () => {
      slow.fake.enqueue({ kind: "hang" });
      const err = await failure(sdk(slow).chat.completions.create({ model: "qwen-max", messages: USER, stream: true }));
      expectSdkError(err, 504, "upstream_timeout", "server_error");
    });

    /** POST with a client-side deadline, so a gateway that never answers fails the test quickly and clearly. */
    async function postWithin(ms: number, body: unknown): Promise<{ status: number; text: string }> {
      try {
        const res = await fetch(slow.url + "/v1/chat/completions", {
          method: "POST",
          headers: { "content-type": "application/json", authorization: slow.authorization },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(ms),
        });
        return { status: res.status, text: await res.text() };
      } catch (err) {
        throw new Error(`the gateway had not finished answering after ${ms} ms (provider timeout 300 ms): ${String(err)}`);
      }
    }

    it("a non-streaming call to a streaming-only model whose upstream stream stalls is a 504", async () => {
      slow.fake.enqueue({ kind: "stream-then-hang", chunks: 1 });
      const { status, text } = await postWithin(1500, { model: "qwq-plus", messages: USER });
      expect(status, text).toBe(504);
      expect(JSON.parse(text).error).toMatchObject({ code: "upstream_timeout", type: "server_error" });
    });

    it("a stream whose upstream stalls after the first chunks ends with an upstream_timeout error event", async () => {
      slow.fake.enqueue({ kind: "stream-then-hang", chunks: 2 });
      const { status, text } = await postWithin(1500, { model: "qwen-max", messages: USER, stream: true });
      expect(status).toBe(200);
      expect(text).toContain(partialChunk(1));
      expect(text).not.toContain("[DONE]");
      const last = JSON.parse(text.trimEnd().split("\n\n").at(-1)!.slice("data: ".length)) as ErrorBody;
      expect(last.error).toMatchObject({ code: "upstream_timeout", type: "server_error" });
    });

    it("an answer within the timeout still works", async () => {
      slow.fake.enqueue({ kind: "reply", content: "just in time", firstByteDelayMs: 50 });
      const res = await sdk(slow).chat.completions.create({ model: "qwen-max", messages: USER });
      expect(res.choices[0]!.message.content).toBe("just in time");
    });
  });

  describe("with an unreachable upstream", () => {
    let refused: TestGateway;
    let blocked: TestGateway;
    beforeAll(async () => {
      // A port that was free a moment ago: nothing listens, so connecting is refused.
      const probe = createServer();
      await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", () => resolve()));
      const { port } = probe.address() as AddressInfo;
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      refused = await startTestGateway({ ALIBABA_CLOUD_BASE_URL: `http://127.0.0.1:${port}/v1` });
      // Port 1 is on fetch's blocked-port list: refused before any connection is tried.
      blocked = await startTestGateway({ ALIBABA_CLOUD_BASE_URL: "http://127.0.0.1:1/v1" });
    });
    afterAll(async () => {
      await refused?.close();
      await blocked?.close();
    });

    it("connection refused is a 502 naming the cause", async () => {
      const err = await failure(sdk(refused).chat.completions.create({ model: "qwen-max", messages: USER }));
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      const body = expectSdkError(err, 502, "upstream_error", "server_error");
      expect(body.message).toBe("could not reach Alibaba Cloud: ECONNREFUSED");
    });

    it("connection refused on a streaming request is a 502 too", async () => {
      const res = await postJson(refused, { model: "qwen-max", messages: USER, stream: true });
      expect((await expectRawError(res, 502, "upstream_error", "server_error")).message).toContain("ECONNREFUSED");
    });

    it("a base URL on port 1 (http://127.0.0.1:1/v1) is a 502", async () => {
      const err = await failure(sdk(blocked).chat.completions.create({ model: "qwen-max", messages: USER }));
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      const body = expectSdkError(err, 502, "upstream_error", "server_error");
      expect(body.message).toMatch(/^could not reach Alibaba Cloud: /);
      expect(body.message).not.toContain("127.0.0.1");
    });
  });

  describe("with no provider key", () => {
    let keyless: TestGateway;
    beforeAll(async () => {
      keyless = await startTestGateway({ ALIBABA_CLOUD_API_KEY: "" });
    });
    afterAll(async () => {
      await keyless?.close();
    });

    it("a chat request is a 503 'Alibaba Cloud API key not configured'", async () => {
      // qwen-long is served by Alibaba Cloud alone.
      const err = await failure(sdk(keyless).chat.completions.create({ model: "qwen-long", messages: USER }));
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      const body = expectSdkError(err, 503, "provider_not_configured", "server_error");
      expect(body.message).toBe("Alibaba Cloud API key not configured");
      const streamErr = await failure(sdk(keyless).chat.completions.create({ model: "qwen-long", messages: USER, stream: true }));
      expect(expectSdkError(streamErr, 503, "provider_not_configured", "server_error").message).toBe("Alibaba Cloud API key not configured");
      // qwen-plus has alternatives: the message names them too.
      const alt = expectSdkError(await failure(sdk(keyless).chat.completions.create({ model: "qwen-plus", messages: USER })), 503, "provider_not_configured", "server_error");
      expect(alt.message).toMatch(/^Alibaba Cloud API key not configured, nor any other provider of 'qwen-plus' \(set one of ALIBABA_CLOUD_API_KEY, OPENROUTER_API_KEY\)$/);
      expect(keyless.fake.requests).toHaveLength(0);
    });

    it("the startup log lists the provider as not configured and warns that no provider is usable", () => {
      const line = keyless.logs.find((l) => l.includes("Not configured (no API key):"));
      expect(line).toMatch(/ info +Not configured \(no API key\): .*\balibaba-cloud\b/);
      expect(keyless.logs.some((l) => / warn +⚠ No provider is usable: .*ALIBABA_CLOUD_API_KEY/.test(l))).toBe(true);
      expect(keyless.logs.some((l) => l.includes("✓ Loaded"))).toBe(false);
    });

    it("the model list and /healthz still answer, /healthz saying not ready: no provider is configured", async () => {
      const models = await sdk(keyless).models.list();
      expect(models.data.length).toBeGreaterThan(0);
      const res = await fetch(keyless.url + "/healthz");
      expect(res.status).toBe(503);
      const health = await res.json();
      expect(health).toMatchObject({ status: "no_provider_configured", reasons: ["no_provider_configured"], providers: { "alibaba-cloud": "not_configured", openrouter: "not_configured" } });
      expect(Object.keys(health.providers)).toHaveLength(10);
    });
  });
});

describe("errors after the stream started", () => {
  const CHUNKS = 2;
  const partial = Array.from({ length: CHUNKS }, (_, i) => partialChunk(i)).join("");

  const cases: Array<[string, Behaviour, RegExp]> = [
    ["stream-then-error", { kind: "stream-then-error", chunks: CHUNKS, message: "internal model failure" }, /failed mid-stream: internal model failure/],
    ["stream-then-reset", { kind: "stream-then-reset", chunks: CHUNKS }, /Alibaba Cloud/],
    ["malformed", { kind: "malformed", chunks: CHUNKS }, /malformed stream event/],
    ["stream-then-end (no finish_reason)", { kind: "stream-then-end", chunks: CHUNKS }, /ended the stream before the answer was finished/],
  ];

  it.each(cases)("%s: raw SSE shows the partial chunks, then an error event, and no [DONE]", async (_name, behaviour, message) => {
    gw.fake.enqueue(behaviour);
    const res = await postJson(gw, { model: "qwen-max", messages: USER, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const text = await res.text();
    expect(text).not.toContain("[DONE]");
    expect(text).not.toContain("    at ");
    expect(text.endsWith("\n\n")).toBe(true);
    const events = text.slice(0, -2).split("\n\n");
    for (const e of events) expect(e).toMatch(/^data: [^\n]+$/);
    const payloads = events.map((e) => JSON.parse(e.slice("data: ".length)));

    const last = payloads.at(-1) as ErrorBody;
    expect(Object.keys(last)).toEqual(["error"]);
    expect(last.error).toMatchObject({ type: "server_error", code: "upstream_error", param: null });
    expect(last.error.message).toMatch(message);
    expectHelpful(last.error.message);

    const chunks = payloads.slice(0, -1) as ChatCompletionChunk[];
    expect(chunks.length).toBe(CHUNKS + 1); // the role chunk plus the content chunks
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(partial);
    // No usage chunk pretends the answer was complete.
    expect(chunks.every((c) => c.choices.length === 1)).toBe(true);
  });

  it.each(cases)("%s: the SDK receives the partial content, then throws an APIError", async (_name, behaviour, message) => {
    gw.fake.enqueue(behaviour);
    const stream = await client.chat.completions.create({ model: "qwen-max", messages: USER, stream: true });
    let content = "";
    const err = await failure((async () => {
      for await (const c of stream) content += c.choices[0]?.delta.content ?? "";
    })());
    expect(content).toBe(partial);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err).not.toBeInstanceOf(OpenAI.APIConnectionError);
    expect(err.code).toBe("upstream_error");
    expect(err.type).toBe("server_error");
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain("    at ");
  });

  it("a stream failing mid-way logs one warning naming the failure", async () => {
    gw.fake.enqueue({ kind: "stream-then-error", chunks: 1, message: "boom-42" });
    const before = gw.logs.length;
    await (await postJson(gw, { model: "qwen-max", messages: USER, stream: true })).text();
    const lines = gw.logs.slice(before).filter((l) => l.includes("boom-42"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/warn .*upstream_error/);
  });
});
