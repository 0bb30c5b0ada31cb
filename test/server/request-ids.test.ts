// Request ids and the one log line per finished request. An incoming
// x-request-id (printable, at most 128 characters) is kept, anything else is
// replaced by a fresh one; either way it comes back on every door, errors
// included, lands in the usage row, and is carried by the request's log
// lines, as text or as JSON (LOG_FORMAT=json). Keys and prompts never appear.

import { createClient, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatewayService } from "../../gen/gatewayz/v1/gateway_pb.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { grpcChat } from "../support/grpc-chat.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const PROMPT = "the secret prompt of request ids";

const rowOf = (g: TestGateway, id: string) =>
  g.app.db.prepare("SELECT request_id, status, error_kind, key_id FROM usage WHERE request_id = ?").all(id) as Array<{ request_id: string; status: string; error_kind: string | null; key_id: string | null }>;

/** Waits for the request's line (written once its response has closed and its work settled). */
async function requestLine(g: TestGateway, id: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const line = g.logs.find((l) => l.includes(`request_id=${id}`) || l.includes(`"request_id":"${id}"`));
    if (line) return line;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no request line for ${id} in:\n${g.logs.join("\n")}`);
}

const chat = (g: TestGateway, headers: Record<string, string>, body: object = { model: "qwen-plus", messages: [{ role: "user", content: PROMPT }] }) =>
  fetch(`${g.url}/v1/chat/completions`, { method: "POST", headers: { authorization: g.authorization, "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

describe("request ids", () => {
  let g: TestGateway;
  beforeAll(async () => {
    g = await startTestGateway({ LOG_LEVEL: "info" });
  });
  afterAll(() => g.close());

  it("keeps a client's id: on the answer, in the usage row and in the log line", async () => {
    const res = await chat(g, { "x-request-id": "client-req 42/abc" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("client-req 42/abc");
    await res.json();
    expect(rowOf(g, "client-req 42/abc")).toMatchObject([{ status: "ok" }]);
    // Text lines quote a value with a space in it, so the line still splits into fields.
    const line = await requestLine(g, '"client-req 42/abc"');
    expect(line).toMatch(/ info  request request_id="client-req 42\/abc" protocol=openai method=POST path=\/v1\/chat\/completions status=200 result=ok model=qwen-plus provider=alibaba-cloud key_id=\S+ attempts=1 latency_ms=[\d.]+ ttft_ms=\d+ prompt_tokens=\d+ completion_tokens=\d+ cost_usd=0\.\d+$/);
  });

  it("replaces an id that is too long or not printable, and makes one when there is none", async () => {
    for (const sent of ["x".repeat(129), "tab\there", "é", undefined]) {
      const res = await chat(g, sent === undefined ? {} : { "x-request-id": sent });
      const id = res.headers.get("x-request-id");
      expect(id).toMatch(UUID);
      await res.json();
      expect(rowOf(g, id!)).toHaveLength(1);
    }
    // 128 characters is still accepted.
    const longest = "y".repeat(128);
    expect((await chat(g, { "x-request-id": longest })).headers.get("x-request-id")).toBe(longest);
  });

  it("comes back on errors too: a bad key (no row), a bad body, an unknown model", async () => {
    const badKey = await fetch(`${g.url}/v1/chat/completions`, { method: "POST", headers: { authorization: "Bearer gw_live_nope", "x-request-id": "e-401" }, body: "{}" });
    expect(badKey.status).toBe(401);
    expect(badKey.headers.get("x-request-id")).toBe("e-401");
    const badBody = await chat(g, { "x-request-id": "e-400" }, { model: "qwen-plus", messages: "no" });
    expect(badBody.status).toBe(400);
    expect(badBody.headers.get("x-request-id")).toBe("e-400");
    expect(rowOf(g, "e-400")).toMatchObject([{ status: "rejected", error_kind: "invalid_request" }]);
    const unknown = await chat(g, { "x-request-id": "e-404" }, { model: "no-such-model", messages: [{ role: "user", content: "x" }] });
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get("x-request-id")).toBe("e-404");
    expect(await requestLine(g, "e-404")).toMatch(/status=404 result=rejected error=model_not_found/);
    // Not a chat at all: still an id, still a line.
    const models = await fetch(`${g.url}/v1/models`, { headers: { authorization: g.authorization, "x-request-id": "m-1" } });
    expect(models.headers.get("x-request-id")).toBe("m-1");
    expect(await requestLine(g, "m-1")).toMatch(/protocol=openai method=GET path=\/v1\/models status=200 latency_ms=[\d.]+$/);
  });

  it("the openai SDK's own requests get one (the SDK reads x-request-id as the request id)", async () => {
    const client = new OpenAI({ apiKey: g.key, baseURL: `${g.url}/v1`, maxRetries: 0 });
    const { data, response } = await client.chat.completions.create({ model: "qwen-plus", messages: [{ role: "user", content: "hi" }] }).withResponse();
    expect(data.choices[0]!.message.content).toBeTruthy();
    const id = response.headers.get("x-request-id")!;
    expect(id).toMatch(UUID);
    expect(rowOf(g, id)).toHaveLength(1);
  });

  it("streams: the header comes with the SSE answer and the row has it", async () => {
    const res = await chat(g, { "x-request-id": "s-1" }, { model: "qwen-plus", stream: true, messages: [{ role: "user", content: "hi" }] });
    expect(res.headers.get("x-request-id")).toBe("s-1");
    expect(await res.text()).toContain("[DONE]");
    expect(rowOf(g, "s-1")).toMatchObject([{ status: "ok" }]);
  });

  it("gRPC: response metadata, on success and on error, and the row", async () => {
    const ok = await grpcChat(g.url, g.authorization, { model: "qwen-plus", messages: [{ role: "user", content: "hi" }] }, { "x-request-id": "g-1" });
    expect(ok.status.code).toBe(0);
    expect(ok.metadata?.get("x-request-id")).toEqual(["g-1"]);
    expect(rowOf(g, "g-1")).toMatchObject([{ status: "ok" }]);
    expect(await requestLine(g, "g-1")).toMatch(/protocol=grpc method=POST path=\/gatewayz.v1.GatewayService\/Chat status=200 result=ok model=qwen-plus/);
    const bad = await grpcChat(g.url, "Bearer gw_live_nope", { model: "qwen-plus", messages: [{ role: "user", content: "hi" }] }, { "x-request-id": "g-2" });
    expect(bad.status.code).toBe(16); // UNAUTHENTICATED
    // The refusal's headers (initial metadata) carry it; its trailers carry the status.
    expect([...(bad.metadata?.get("x-request-id") ?? []), ...bad.status.metadata.get("x-request-id")]).toEqual(["g-2"]);
    const made = await grpcChat(g.url, g.authorization, { model: "qwen-plus", messages: [{ role: "user", content: "hi" }] });
    const id = String(made.metadata?.get("x-request-id")[0]);
    expect(id).toMatch(UUID);
    expect(rowOf(g, id)).toHaveLength(1);
  });

  it("Connect: response header on success and in the error's metadata", async () => {
    let header: string | null = null;
    const client = createClient(GatewayService, createConnectTransport({
      baseUrl: g.url,
      interceptors: [(next) => async (req) => {
        req.header.set("authorization", req.url.endsWith("/ListModels") && req.header.get("x-bad") ? "Bearer gw_live_nope" : g.authorization);
        const res = await next(req);
        header = res.header.get("x-request-id");
        return res;
      }],
    }));
    await client.listModels({}, { headers: { "x-request-id": "c-1" } });
    expect(header).toBe("c-1");
    const err = await client.listModels({}, { headers: { "x-request-id": "c-2", "x-bad": "1" } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).metadata.get("x-request-id")).toBe("c-2");
  });

  it("no line carries the key or the prompt", () => {
    const all = g.logs.join("\n");
    expect(all).not.toContain(g.key);
    expect(all).not.toContain(PROMPT);
  });
});

describe("LOG_FORMAT=json", () => {
  let g: TestGateway;
  beforeAll(async () => {
    g = await startTestGateway({ LOG_LEVEL: "info", LOG_FORMAT: "json" });
  });
  afterAll(() => g.close());

  it("writes one JSON object per line, the request line with its fields", async () => {
    const res = await chat(g, { "x-request-id": "j-1" });
    await res.json();
    const line = await requestLine(g, "j-1");
    const event = JSON.parse(line) as Record<string, unknown>;
    expect(event).toMatchObject({
      level: "info", msg: "request", request_id: "j-1", protocol: "openai", method: "POST", path: "/v1/chat/completions",
      status: 200, result: "ok", model: "qwen-plus", provider: "alibaba-cloud", attempts: 1,
    });
    expect(typeof event.time).toBe("string");
    expect(typeof event.latency_ms).toBe("number");
    expect(event.prompt_tokens).toBeGreaterThan(0);
    expect(event.cost_usd).toMatch(/^0\.\d+$/);
    for (const l of g.logs) expect(() => JSON.parse(l)).not.toThrow();
    expect(g.logs.join("\n")).not.toContain(g.key);
    expect(g.logs.join("\n")).not.toContain(PROMPT);
  });

  it("a bad LOG_FORMAT is a configuration error", async () => {
    await expect(startTestGateway({ LOG_FORMAT: "xml" })).rejects.toThrow(/LOG_FORMAT must be text or json, got xml/);
  });
});
