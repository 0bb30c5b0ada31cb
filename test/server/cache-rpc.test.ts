// The response cache across doors: a chat asked over the OpenAI JSON door and
// the same chat over gRPC (grpc-js) or Connect (connect-node, and a raw
// Connect streaming JSON request) are one entry, whichever door comes first,
// with generation parameters set or none at all; and the RPC done message
// says whether the answer came from the cache (ChatDone.cached).
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { JsonObject, JsonValue, MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GatewayService, type ChatDone, type ChatRequestSchema } from "../../gen/gatewayz/v1/gateway_pb.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { grpcChat, type GrpcChatResult } from "../support/grpc-chat.js";

const MODEL = "qwen-max";
let gw: TestGateway;
let n = 0;

beforeAll(async () => {
  gw = await startTestGateway({ CACHE: "on" });
});
afterAll(async () => {
  await gw?.close();
});
beforeEach(() => {
  gw.fake.reset();
});

/** A question no other test asks, so each starts with no entry for it. */
const fresh = () => `rpc cache question ${++n} ${Date.now()}`;

/** One chat over the OpenAI JSON door, with `body` exactly as given. */
async function http(body: Record<string, unknown>) {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: gw.authorization, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json() as any;
  expect(res.status, JSON.stringify(json)).toBe(200);
  return { cache: res.headers.get("x-gatewayz-cache"), body: json };
}

/** One chat over gRPC (grpc-js), which must succeed; its done message as proto-loader gives it (defaults filled in). */
async function grpc(req: object) {
  const r: GrpcChatResult = await grpcChat(gw.url, gw.authorization, req);
  expect(r.status.code, r.status.details).toBe(0);
  return { cache: r.metadata?.get("x-gatewayz-cache")[0], done: r.done as (GrpcChatResult["done"] & { cached?: boolean; attempts?: number }) | undefined, text: text(r) };
}

const text = (r: GrpcChatResult) => r.messages.map((m) => m.delta?.content ?? "").join("");

/**
 * A JSON value as google.protobuf.Value in proto-loader's object form.
 * protobufjs bundles its own struct.proto, whose names are camelCase even
 * with keepCase (a snake_case name would be dropped, leaving an empty Value).
 */
function value(v: JsonValue): object {
  if (v === null) return { nullValue: "NULL_VALUE" };
  if (typeof v === "number") return { numberValue: v };
  if (typeof v === "string") return { stringValue: v };
  if (typeof v === "boolean") return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(value) } };
  return { structValue: struct(v) };
}

/** A JSON object as google.protobuf.Struct for grpc-js. */
function struct(o: JsonObject): object {
  return { fields: Object.fromEntries(Object.entries(o).map(([k, v]) => [k, value(v as JsonValue)])) };
}

const connectClient = (useBinaryFormat: boolean) => createClient(GatewayService, createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1", useBinaryFormat }));

/** One chat over Connect (connect-node): the x-gatewayz-cache header, the done message and the answer's text. */
async function connect(req: MessageInitShape<typeof ChatRequestSchema>, useBinaryFormat: boolean) {
  let cache: string | null = null;
  const dones: ChatDone[] = [];
  let answer = "";
  const stream = connectClient(useBinaryFormat).chat(req, {
    headers: { authorization: gw.authorization },
    onHeader: (h) => (cache = h.get("x-gatewayz-cache")),
  });
  for await (const res of stream) {
    if (res.event.case === "delta") answer += res.event.value.content;
    if (res.event.case === "done") dones.push(res.event.value);
  }
  expect(dones).toHaveLength(1);
  return { cache: cache as string | null, done: dones[0]!, text: answer };
}

/** A Connect streaming request's envelope: flags, big-endian length, payload. */
function envelope(payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

const SCHEMA = {
  type: "object",
  properties: {
    city: { type: "string", description: "a city name", minLength: 1 },
    days: { type: "integer", minimum: 1, maximum: 7 },
    units: { type: "string", enum: ["metric", "imperial"], default: null },
  },
  required: ["city"],
  additionalProperties: false,
} satisfies JsonObject;

/**
 * A conversation with a tool call in its history: the assistant turn has no
 * content (absent in JSON, "" in the proto), the tool turn answers it.
 */
function conversation(q: string) {
  return {
    http: [
      { role: "system", content: "Answer in JSON." },
      { role: "user", content: q, name: "alice" },
      { role: "assistant", tool_calls: [{ id: "call_1", type: "function", function: { name: "forecast", arguments: "{\"city\":\"Paris\"}" } }] },
      { role: "tool", tool_call_id: "call_1", content: "sunny" },
    ],
    grpc: [
      { role: "system", content: "Answer in JSON." },
      { role: "user", content: q, name: "alice" },
      { role: "assistant", tool_calls: [{ id: "call_1", type: "function", function: { name: "forecast", arguments: "{\"city\":\"Paris\"}" } }] },
      { role: "tool", tool_call_id: "call_1", content: "sunny" },
    ],
    connect: [
      { role: "system", content: "Answer in JSON." },
      { role: "user", content: q, name: "alice" },
      { role: "assistant", toolCalls: [{ id: "call_1", type: "function", function: { name: "forecast", arguments: "{\"city\":\"Paris\"}" } }] },
      { role: "tool", toolCallId: "call_1", content: "sunny" },
    ],
  };
}

/** The generation parameters on each door, as each spells them. */
const PARAMS = {
  http: {
    temperature: 0, top_p: 0.9, max_tokens: 64, stop: ["END", "STOP"], seed: 7,
    presence_penalty: 0.5, frequency_penalty: -0.25, parallel_tool_calls: false,
    tools: [{ type: "function", function: { name: "forecast", description: "the weather for a city", parameters: SCHEMA } }],
    tool_choice: "auto",
    response_format: { type: "json_object" },
  },
  grpc: {
    temperature: 0, top_p: 0.9, max_tokens: 64, stop: ["END", "STOP"], seed: "7",
    presence_penalty: 0.5, frequency_penalty: -0.25, parallel_tool_calls: false,
    tools: [{ type: "function", function: { name: "forecast", description: "the weather for a city", parameters: struct(SCHEMA) } }],
    tool_choice: { mode: "auto" },
    response_format: { type: "json_object" },
  },
  connect: {
    temperature: 0, topP: 0.9, maxTokens: 64, stop: ["END", "STOP"], seed: 7n,
    presencePenalty: 0.5, frequencyPenalty: -0.25, parallelToolCalls: false,
    tools: [{ type: "function", function: { name: "forecast", description: "the weather for a city", parameters: SCHEMA } }],
    toolChoice: { choice: { case: "mode" as const, value: "auto" } },
    responseFormat: { type: "json_object" },
  },
};

/** Another set: a forced function, a strict JSON schema, a strict tool, DashScope's own switches. */
const FORCED = {
  http: {
    temperature: 1.3, max_tokens: 1, seed: 0,
    tools: [{ type: "function", function: { name: "forecast", parameters: SCHEMA, strict: true } }],
    tool_choice: { type: "function", function: { name: "forecast" } },
    response_format: { type: "json_schema", json_schema: { name: "weather", description: "a forecast", schema: SCHEMA, strict: true } },
    enable_search: false, thinking_budget: 100, top_k: 20,
  },
  grpc: {
    temperature: 1.3, max_tokens: 1, seed: "0",
    tools: [{ function: { name: "forecast", parameters: struct(SCHEMA), strict: true } }],
    tool_choice: { function_name: "forecast" },
    response_format: { type: "json_schema", json_schema: { name: "weather", description: "a forecast", schema: struct(SCHEMA), strict: true } },
    enable_search: false, thinking_budget: 100, extra_body: struct({ top_k: 20 }),
  },
  connect: {
    temperature: 1.3, maxTokens: 1, seed: 0n,
    tools: [{ function: { name: "forecast", parameters: SCHEMA, strict: true } }],
    toolChoice: { choice: { case: "functionName" as const, value: "forecast" } },
    responseFormat: { type: "json_schema", jsonSchema: { name: "weather", description: "a forecast", schema: SCHEMA, strict: true } },
    enableSearch: false, thinkingBudget: 100, extraBody: { top_k: 20 },
  },
};

/** The upstream body without what a door adds for delivery (model, stream, stream_options). */
function asked(i: number): Record<string, unknown> {
  const { model: _m, stream: _s, stream_options: _o, ...rest } = gw.fake.requests[i]!.body as Record<string, unknown>;
  return rest;
}

describe("ChatDone.cached and x-gatewayz-cache over gRPC", () => {
  it("an answer the JSON door cached is a hit over gRPC (cached true, no attempt); a fresh one over gRPC is a miss (cached false)", async () => {
    const q = fresh();
    gw.fake.enqueue({ kind: "reply", content: "from the JSON door" });
    expect((await http({ model: MODEL, messages: [{ role: "user", content: q }] })).cache).toBe("miss");
    const hit = await grpc({ model: MODEL, messages: [{ role: "user", content: q }] });
    expect(hit.cache).toBe("hit");
    expect(hit.done).toMatchObject({ cached: true, attempts: 0, finish_reason: "stop" });
    expect(hit.text).toBe("from the JSON door");
    expect(gw.fake.requests).toHaveLength(1);

    const q2 = fresh();
    const miss = await grpc({ model: MODEL, messages: [{ role: "user", content: q2 }] });
    expect(miss.cache).toBe("miss");
    expect(miss.done).toMatchObject({ cached: false, attempts: 1 });
    const again = await grpc({ model: MODEL, messages: [{ role: "user", content: q2 }] });
    expect(again.cache).toBe("hit");
    expect(again.done?.cached).toBe(true);
    expect(gw.fake.requests).toHaveLength(2);
  });

  it("coalesced onto an identical request in flight is cached too", async () => {
    const q = fresh();
    gw.fake.enqueue({ kind: "reply", content: "once", firstByteDelayMs: 300 });
    const req = { model: MODEL, messages: [{ role: "user", content: q }] };
    const both = await Promise.all([grpc(req), grpc(req)]);
    expect(both.map((r) => r.cache).sort()).toEqual(["coalesced", "miss"]);
    for (const r of both) expect(r.done?.cached).toBe(r.cache === "coalesced");
    expect(gw.fake.requests).toHaveLength(1);
  });

  it.each([["sampling parameters, a tool and json_object", PARAMS], ["a forced function, a strict json_schema and provider extras", FORCED]])(
    "with %s set on both doors: one upstream call, gRPC is a hit", async (_name, params) => {
      const q = fresh();
      const turns = conversation(q);
      expect((await http({ model: MODEL, messages: turns.http, ...params.http })).cache).toBe("miss");
      const hit = await grpc({ model: MODEL, messages: turns.grpc, ...params.grpc });
      expect(hit.cache).toBe("hit");
      expect(hit.done?.cached).toBe(true);
      expect(gw.fake.requests).toHaveLength(1);

      // The other way round, the upstream is asked exactly what the JSON door would have asked.
      const q2 = fresh();
      const turns2 = conversation(q2);
      const miss = await grpc({ model: MODEL, messages: turns2.grpc, ...params.grpc });
      expect([miss.cache, miss.done?.cached]).toEqual(["miss", false]);
      expect(asked(1)).toEqual({ messages: turns2.http, ...params.http });
      expect((await http({ model: MODEL, messages: turns2.http, ...params.http })).cache).toBe("hit");
      expect(gw.fake.requests).toHaveLength(2);
    });

  it("a parameter set on one door only is another entry (temperature 0 is not unset)", async () => {
    const q = fresh();
    await http({ model: MODEL, messages: [{ role: "user", content: q }] });
    const zero = await grpc({ model: MODEL, messages: [{ role: "user", content: q }], temperature: 0 });
    expect([zero.cache, zero.done?.cached]).toEqual(["miss", false]);
    expect(asked(1)).toEqual({ messages: [{ role: "user", content: q }], temperature: 0 });
    expect((await http({ model: MODEL, messages: [{ role: "user", content: q }], temperature: 0 })).cache).toBe("hit");
    expect(gw.fake.requests).toHaveLength(2);
  });

  it("an unset name is absent, not \"\": a json_schema without one shares the JSON door's entry", async () => {
    const q = fresh();
    const format = (schema: object) => ({ type: "json_schema", json_schema: { schema, strict: true } });
    await http({ model: MODEL, messages: [{ role: "user", content: q }], response_format: format(SCHEMA) });
    const hit = await grpc({ model: MODEL, messages: [{ role: "user", content: q }], response_format: format(struct(SCHEMA)) });
    expect([hit.cache, hit.done?.cached]).toEqual(["hit", true]);
    expect(asked(0).response_format).toEqual(format(SCHEMA));
    expect(gw.fake.requests).toHaveLength(1);
  });

  it("a tool without a function name is refused over gRPC as over JSON (param tools), and never sent upstream", async () => {
    const messages = [{ role: "user", content: fresh() }];
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST", headers: { authorization: gw.authorization, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages, tools: [{ type: "function", function: { parameters: SCHEMA } }] }),
    });
    expect(res.status).toBe(400);
    const json = await res.json() as { error: { param: string; message: string } };
    expect(json.error.param).toBe("tools");
    const r = await grpcChat(gw.url, gw.authorization, { model: MODEL, messages, tools: [{ type: "function", function: { parameters: struct(SCHEMA) } }] });
    expect(r.status.code).toBe(3); // INVALID_ARGUMENT
    expect(r.status.details).toBe(json.error.message);
    expect(gw.fake.requests).toHaveLength(0);
  });

  it("a minimal gRPC request and a minimal JSON request (model and messages only) share one entry, in both orders", async () => {
    const rpcFirst = fresh();
    const turns = (q: string) => [{ role: "system", content: "be brief" }, { role: "user", content: q }, { role: "assistant", content: "?" }, { role: "user", content: "again" }];
    const g = await grpc({ model: MODEL, messages: turns(rpcFirst) });
    expect([g.cache, g.done?.cached]).toEqual(["miss", false]);
    // Every unset proto field (name, tool_call_id, parts, tools, stop, ...) stayed out of the body.
    expect(asked(0)).toEqual({ messages: turns(rpcFirst) });
    expect((await http({ model: MODEL, messages: turns(rpcFirst) })).cache).toBe("hit");

    const httpFirst = fresh();
    expect((await http({ model: MODEL, messages: turns(httpFirst) })).cache).toBe("miss");
    const h = await grpc({ model: MODEL, messages: turns(httpFirst) });
    expect([h.cache, h.done?.cached]).toEqual(["hit", true]);
    expect(gw.fake.requests).toHaveLength(2);
  });
});

describe("the Connect protocol shares the entries", () => {
  it.each([["application/connect+json", false], ["application/connect+proto", true]])(
    "%s (connect-node), generation parameters set: a hit on what the JSON door cached", async (_name, binary) => {
      const q = fresh();
      const turns = conversation(q);
      gw.fake.enqueue({ kind: "reply", content: "json words" });
      expect((await http({ model: MODEL, messages: turns.http, ...PARAMS.http })).cache).toBe("miss");
      const hit = await connect({ model: MODEL, messages: turns.connect, ...PARAMS.connect }, binary);
      expect(hit.cache).toBe("hit");
      expect(hit.done).toMatchObject({ cached: true, attempts: 0 });
      expect(hit.text).toBe("json words");
      expect(gw.fake.requests).toHaveLength(1);

      const q2 = fresh();
      const minimal = await connect({ model: MODEL, messages: [{ role: "user", content: q2 }] }, binary);
      expect([minimal.cache, minimal.done.cached]).toEqual(["miss", false]);
      expect((await http({ model: MODEL, messages: [{ role: "user", content: q2 }] })).cache).toBe("hit");
      expect(gw.fake.requests).toHaveLength(2);
    });

  it("a raw Connect streaming JSON request with the OpenAI-shaped body hits, and its done says cached", async () => {
    const q = fresh();
    const params = { temperature: 0, max_tokens: 64, stop: ["END"], seed: 7, response_format: { type: "json_object" } };
    await http({ model: MODEL, messages: [{ role: "user", content: q }], ...params });
    const res = await fetch(`${gw.url}/gatewayz.v1.GatewayService/Chat`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", "connect-protocol-version": "1", authorization: gw.authorization },
      body: envelope(Buffer.from(JSON.stringify({ model: MODEL, messages: [{ role: "user", content: q }], ...params }))),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-gatewayz-cache")).toBe("hit");
    const buf = Buffer.from(await res.arrayBuffer());
    const messages: any[] = [];
    for (let i = 0; i + 5 <= buf.length; i += 5 + buf.readUInt32BE(i + 1)) {
      messages.push(JSON.parse(buf.subarray(i + 5, i + 5 + buf.readUInt32BE(i + 1)).toString("utf8")));
    }
    const done = messages.find((m) => m.done)?.done;
    expect(done).toMatchObject({ cached: true, finishReason: "stop" });
    expect(messages.at(-1).error).toBeUndefined();
    expect(gw.fake.requests).toHaveLength(1);
  });
});
