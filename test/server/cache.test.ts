// The response cache end to end (CACHE=on, the embedded SQLite store): a real
// gateway on the fake upstream, driven by the openai package and grpc-js.
// What is served from it, to whom, how it is replayed as a stream, what a
// request can ask of it, and what each request's usage row says.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { grpcChat } from "../support/grpc-chat.js";
import { newUsageRows } from "../support/new-usage-rows.js";

const MODEL = "qwen-max";
let gw: TestGateway;
let client: OpenAI;
let n = 0;

beforeAll(async () => {
  gw = await startTestGateway({ CACHE: "on" });
  client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.close();
});

interface Row { status: string; cost_pico: number; saved_pico: number; prompt_tokens: number; completion_tokens: number; attempts: number }
const usage = newUsageRows(() => gw.app.db, "status, cost_pico, saved_pico, prompt_tokens, completion_tokens, attempts");
beforeEach(() => {
  gw.fake.reset();
  usage.mark();
});

/** A question no other test asks, so each test starts with an empty cache for it. */
const fresh = () => `question ${++n} ${Date.now()}`;

async function ask(content: string, init: { headers?: Record<string, string>; key?: string; extra?: Record<string, unknown> } = {}) {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${init.key ?? gw.key}`, "content-type": "application/json", ...init.headers },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content }], ...init.extra }),
  });
  return { status: res.status, cache: res.headers.get("x-gatewayz-cache"), body: await res.json() as any };
}

describe("the response cache", () => {
  it("answers an identical request from the cache: one upstream call, a cached usage row that saved the first's cost", async () => {
    const q = fresh();
    const first = await ask(q);
    const second = await ask(q);
    expect([first.cache, second.cache]).toEqual(["miss", "hit"]);
    expect(second.body.choices).toEqual(first.body.choices);
    expect(second.body.usage).toEqual(first.body.usage);
    expect(gw.fake.requests).toHaveLength(1);
    const [miss, hit] = usage.rows<Row>();
    expect(miss).toMatchObject({ status: "ok", saved_pico: 0 });
    expect(miss!.cost_pico).toBeGreaterThan(0);
    expect(hit).toMatchObject({ status: "cached", cost_pico: 0, saved_pico: miss!.cost_pico, attempts: 0,
      prompt_tokens: miss!.prompt_tokens, completion_tokens: miss!.completion_tokens });
  });

  it("keys on what affects the answer: key order, user and stream options do not matter; a parameter does", async () => {
    const q = fresh();
    await ask(q, { extra: { temperature: 0.5, max_tokens: 50 } });
    const reordered = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST", headers: { authorization: gw.authorization, "content-type": "application/json" },
      body: `{"max_tokens":50,"user":"someone","messages":[{"content":${JSON.stringify(q)},"role":"user"}],"temperature":0.5,"model":"${MODEL}"}`,
    });
    expect(reordered.headers.get("x-gatewayz-cache")).toBe("hit");
    expect((await ask(q, { extra: { temperature: 0.7, max_tokens: 50 } })).cache).toBe("miss");
    expect(gw.fake.requests).toHaveLength(2);
  });

  it("replays a cached answer as a stream, and caches a streamed answer for a JSON request", async () => {
    const q = fresh();
    gw.fake.enqueue({ kind: "reply", content: "cached words", usage: { prompt_tokens: 7, completion_tokens: 3 } });
    await ask(q);
    const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: q }], stream: true, stream_options: { include_usage: true } })
      .withResponse();
    expect(stream.response.headers.get("x-gatewayz-cache")).toBe("hit");
    let text = "";
    let streamedUsage: unknown;
    let finish: string | null | undefined;
    for await (const chunk of stream.data) {
      text += chunk.choices[0]?.delta?.content ?? "";
      finish ??= chunk.choices[0]?.finish_reason;
      if (chunk.usage) streamedUsage = chunk.usage;
    }
    expect(text).toBe("cached words");
    expect(finish).toBe("stop");
    expect(streamedUsage).toMatchObject({ prompt_tokens: 7, completion_tokens: 3 });

    const q2 = fresh();
    gw.fake.enqueue({ kind: "reply", content: "streamed once" });
    for await (const _ of await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: q2 }], stream: true })) void _;
    const json = await ask(q2);
    expect(json.cache).toBe("hit");
    expect(json.body.choices[0].message.content).toBe("streamed once");
    expect(gw.fake.requests).toHaveLength(2);
  });

  it("serves a hit only to the same user (CACHE_SCOPE=user): another key of theirs hits, another user's misses", async () => {
    const q = fresh();
    await ask(q);
    const sameUser = gw.app.accounts.createKey({ user: "test", name: `second-${n}` });
    const otherUser = gw.app.accounts.createKey({ user: `other-${n}`, name: "k" });
    expect((await ask(q, { key: sameUser.key })).cache).toBe("hit");
    expect((await ask(q, { key: otherUser.key })).cache).toBe("miss");
    expect(gw.fake.requests).toHaveLength(2);
  });

  it("Cache-Control: no-cache refreshes the entry; no-store neither reads nor writes; a bad x-gatewayz-cache-ttl is a 400", async () => {
    const q = fresh();
    gw.fake.enqueue({ kind: "reply", content: "old" }, { kind: "reply", content: "new" });
    await ask(q);
    const refreshed = await ask(q, { headers: { "cache-control": "no-cache" } });
    expect([refreshed.cache, refreshed.body.choices[0].message.content]).toEqual(["bypass", "new"]);
    expect((await ask(q)).body.choices[0].message.content).toBe("new");

    const q2 = fresh();
    expect((await ask(q2, { headers: { "cache-control": "no-store" } })).cache).toBe("bypass");
    expect((await ask(q2)).cache).toBe("miss");
    expect(gw.fake.requests).toHaveLength(4);

    const bad = await ask(fresh(), { headers: { "x-gatewayz-cache-ttl": "soon" } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe("x-gatewayz-cache-ttl");
  });

  it("never keeps an error or a cut answer", async () => {
    const q = fresh();
    gw.fake.enqueue({ kind: "error", status: 500 }, { kind: "reply", finishReason: "content_filter" });
    expect((await ask(q)).status).toBe(502);
    expect((await ask(q)).body.choices[0].finish_reason).toBe("content_filter");
    expect((await ask(q)).cache).toBe("miss");
    expect(gw.fake.requests).toHaveLength(3);
  });

  it("makes one upstream call for identical requests in flight together; the others are coalesced", async () => {
    const q = fresh();
    gw.fake.enqueue({ kind: "reply", content: "once", firstByteDelayMs: 300 });
    const answers = await Promise.all([ask(q), ask(q), ask(q)]);
    expect(answers.map((a) => a.cache).sort()).toEqual(["coalesced", "coalesced", "miss"]);
    for (const a of answers) expect(a.body.choices[0].message.content).toBe("once");
    expect(gw.fake.requests).toHaveLength(1);
    expect(usage.rows<Row>().map((r) => r.status).sort()).toEqual(["cached", "cached", "ok"]);
  });

  it("serves the Responses API and gRPC from the same entries", async () => {
    const q = fresh();
    await ask(q);
    const r = await client.responses.create({ model: MODEL, input: [{ role: "user", content: q }] }).withResponse();
    expect(r.response.headers.get("x-gatewayz-cache")).toBe("hit");
    const g = await grpcChat(gw.url, gw.authorization, { model: MODEL, messages: [{ role: "user", content: q }] });
    expect(g.status.code).toBe(0);
    expect(g.done?.finish_reason).toBe("stop");
    expect(g.metadata?.get("x-gatewayz-cache")).toEqual(["hit"]);
    // The RPC doors take Cache-Control as metadata.
    const refreshed = await grpcChat(gw.url, gw.authorization, { model: MODEL, messages: [{ role: "user", content: q }] }, { "cache-control": "no-cache" });
    expect(refreshed.metadata?.get("x-gatewayz-cache")).toEqual(["bypass"]);
    expect(gw.fake.requests).toHaveLength(2);
    expect(usage.rows<Row>().map((row) => row.status)).toEqual(["ok", "cached", "cached", "ok"]);
  });
});

describe("the cache's limits and its file", () => {
  it("a hit counts against rpm but not against tpm", async () => {
    const limited = await startTestGateway({ CACHE: "on", RATE_LIMITS_KEY: "rpm=3,tpm=20,concurrent=0" });
    try {
      const post = () => fetch(`${limited.url}/v1/chat/completions`, {
        method: "POST", headers: { authorization: limited.authorization, "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, max_tokens: 4, messages: [{ role: "user", content: "hi" }] }),
      });
      // 15 tokens each: a second miss would pass tpm=20 only if hits were not counted.
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await post()).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
      expect(limited.fake.requests).toHaveLength(1);
    } finally {
      await limited.close();
    }
  });

  it("survives a restart (its own SQLite file beside the database)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gatewayz-cache-"));
    try {
      const env = { CACHE: "on", DATABASE_PATH: join(dir, "gatewayz.db") };
      const first = await startTestGateway(env);
      const body = JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "remember me" }] });
      const post = (g: TestGateway) => fetch(`${g.url}/v1/chat/completions`, {
        method: "POST", headers: { authorization: g.authorization, "content-type": "application/json" }, body,
      });
      await post(first);
      await first.close();
      const second = await startTestGateway(env);
      try {
        expect((await post(second)).headers.get("x-gatewayz-cache")).toBe("hit");
        expect(second.fake.requests).toHaveLength(0);
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
