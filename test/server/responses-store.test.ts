// Stored responses (store, default true): previous_response_id chains on any
// provider, GET / DELETE / input_items, ownership by the key's user, store:
// false, item_reference, and expiry after RESPONSES_TTL_DAYS.

import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { openDb } from "../../src/storage/db.js";
import { createResponseStore } from "../../src/storage/responses.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

let gw: TestGateway;
let client: OpenAI;
let other: OpenAI;

beforeAll(async () => {
  gw = await startTestGateway();
  client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  other = new OpenAI({ apiKey: gw.app.accounts.createKey({ user: "someone-else", name: "k" }).key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.close();
});
beforeEach(() => gw.fake.reset());

const upstream = () => gw.fake.requests.at(-1)!.body as Record<string, any>;
const say = (content: string) => gw.fake.enqueue({ kind: "reply", content });

async function status(p: Promise<unknown>): Promise<{ status: number | undefined; param: string | null | undefined; message: string }> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof OpenAI.APIError)) throw new Error(`expected an API error, got ${String(err)}`);
  return { status: err.status, param: err.param, message: err.message };
}

describe("previous_response_id", () => {
  it("a chain of three turns sends the upstream the whole conversation, with only the latest instructions", async () => {
    say("A1");
    const r1 = await client.responses.create({ model: "qwen-max", instructions: "old", input: "Q1" });
    say("A2");
    const r2 = await client.responses.create({ model: "qwen-max", previous_response_id: r1.id, input: "Q2" });
    say("A3");
    const r3 = await client.responses.create({ model: "qwen-max", previous_response_id: r2.id, instructions: "new", input: [{ role: "user", content: "Q3" }] });
    expect(r3.output_text).toBe("A3");
    expect(upstream().messages).toEqual([
      { role: "system", content: "new" },
      { role: "user", content: "Q1" }, { role: "assistant", content: "A1" },
      { role: "user", content: "Q2" }, { role: "assistant", content: "A2" },
      { role: "user", content: "Q3" },
    ]);
    // input_items lists everything the model was given, newest first by default.
    const items = await client.responses.inputItems.list(r3.id);
    expect(items.data.map((i) => (i as { content: Array<{ text: string }> }).content[0]!.text)).toEqual(["Q3", "A2", "Q2", "A1", "Q1"]);
  });

  it("continues a streamed response as soon as it has completed", async () => {
    say("streamed");
    const first = await client.responses.stream({ model: "qwen-max", input: "Q" }).finalResponse();
    await client.responses.create({ model: "qwen-max", previous_response_id: first.id, input: "next" });
    expect(upstream().messages.map((m: { content: string }) => m.content)).toEqual(["Q", "streamed", "next"]);
  });

  it("works whatever provider served the earlier turns: the conversation is the gateway's", async () => {
    const g = await startTestGateway({}, { providers: ["openrouter"] });
    try {
      const c = new OpenAI({ apiKey: g.key, baseURL: `${g.url}/v1`, maxRetries: 0 });
      g.fake.enqueue({ kind: "error", status: 500 }); // DashScope fails: OpenRouter answers (failover before the first byte)
      g.fakes.openrouter!.enqueue({ kind: "reply", content: "from openrouter" });
      const r1 = await c.responses.create({ model: "qwen-plus", input: "Q1" });
      expect(r1.output_text).toBe("from openrouter");
      await c.responses.create({ model: "qwen-plus", previous_response_id: r1.id, input: "Q2" });
      expect(g.fake.requests.at(-1)!.body.messages.map((m: { content: string }) => m.content)).toEqual(["Q1", "from openrouter", "Q2"]);
    } finally {
      await g.close();
    }
  });
});

describe("GET, DELETE and input_items", () => {
  it("GET returns the response as it was sent; DELETE removes it, then both are 404", async () => {
    const r = await client.responses.create({ model: "qwen-max", input: "Hello", metadata: { k: "v" } });
    const got = await client.responses.retrieve(r.id);
    expect(got).toEqual(r);
    // Typed void by the SDK, but the body is OpenAI's deletion object.
    expect(await client.responses.delete(r.id)).toEqual({ id: r.id, object: "response", deleted: true });
    const res = await fetch(`${gw.url}/v1/responses/${r.id}`, { method: "DELETE", headers: { authorization: gw.authorization } });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { message: `Response with id '${r.id}' not found.`, type: "invalid_request_error", param: null, code: "not_found" } });
    expect((await status(client.responses.retrieve(r.id))).status).toBe(404);
  });

  it("cancel and a streamed replay are for background responses, which there are none of: 400 (404 if unknown)", async () => {
    const r = await client.responses.create({ model: "qwen-max", input: "Hello" });
    expect(await status(client.responses.cancel(r.id))).toMatchObject({ status: 400 });
    expect((await status(client.responses.cancel("resp_unknown"))).status).toBe(404);
    const replay = await fetch(`${gw.url}/v1/responses/${r.id}?stream=true`, { headers: { authorization: gw.authorization } });
    expect(replay.status).toBe(400);
    expect((await replay.json()).error.param).toBe("stream");
  });

  it("input_items is OpenAI's list, paged with limit, after and order", async () => {
    const input = ["a", "b", "c"].map((text) => ({ role: "user" as const, content: text }));
    const r = await client.responses.create({ model: "qwen-max", input });
    const url = (q: string) => `${gw.url}/v1/responses/${r.id}/input_items${q}`;
    const get = async (q: string) => (await fetch(url(q), { headers: { authorization: gw.authorization } })).json() as Promise<any>;
    const page1 = await get("?limit=2&order=asc");
    expect(page1).toMatchObject({ object: "list", has_more: true });
    expect(page1.data.map((i: any) => i.content[0].text)).toEqual(["a", "b"]);
    expect(page1.data[0]).toEqual({ id: expect.stringMatching(/^msg_/), type: "message", status: "completed", role: "user", content: [{ type: "input_text", text: "a" }] });
    expect(page1.first_id).toBe(page1.data[0].id);
    expect(page1.last_id).toBe(page1.data[1].id);
    const page2 = await get(`?limit=2&order=asc&after=${page1.last_id}`);
    expect(page2.data.map((i: any) => i.content[0].text)).toEqual(["c"]);
    expect(page2.has_more).toBe(false);
    // The SDK's auto-pagination walks the same pages.
    const all: string[] = [];
    for await (const item of client.responses.inputItems.list(r.id, { limit: 1 })) all.push((item as any).content[0].text);
    expect(all).toEqual(["c", "b", "a"]);
    const bad = await fetch(url("?limit=1000"), { headers: { authorization: gw.authorization } });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.param).toBe("limit");
  });
});

describe("ownership, store: false and expiry", () => {
  it("another user's response does not exist for them: GET, DELETE, input_items, previous_response_id, item_reference", async () => {
    const r = await client.responses.create({ model: "qwen-max", input: "mine" });
    expect((await status(other.responses.retrieve(r.id))).status).toBe(404);
    expect((await status(other.responses.delete(r.id))).status).toBe(404);
    expect((await status(other.responses.inputItems.list(r.id))).status).toBe(404);
    const prev = await status(other.responses.create({ model: "qwen-max", previous_response_id: r.id, input: "x" }));
    expect(prev).toMatchObject({ status: 400, param: "previous_response_id" });
    expect(prev.message).toContain(`Previous response with id '${r.id}' not found.`);
    const ref = await status(other.responses.create({ model: "qwen-max", input: [{ type: "item_reference", id: r.output[0]!.id! }] }));
    expect(ref).toMatchObject({ status: 404, param: "input[0].id" });
    // Still there for its owner.
    expect((await client.responses.retrieve(r.id)).id).toBe(r.id);
  });

  it("item_reference brings back a stored item by its id (what the AI SDK sends)", async () => {
    gw.fake.enqueue({ kind: "reply", toolCalls: [{ id: "call_1", name: "f", arguments: "{}" }] });
    const r = await client.responses.create({ model: "qwen-max", input: "go", tools: [{ type: "function", name: "f", parameters: {}, strict: false }] });
    await client.responses.create({
      model: "qwen-max",
      input: [{ role: "user", content: "go" }, { type: "item_reference", id: r.output[0]!.id! }, { type: "function_call_output", call_id: "call_1", output: "done" }],
    });
    expect(upstream().messages.map((m: { role: string }) => m.role)).toEqual(["user", "assistant", "tool"]);
    expect(upstream().messages[1].tool_calls[0].id).toBe("call_1");
  });

  it("store: false answers but keeps nothing", async () => {
    const r = await client.responses.create({ model: "qwen-max", input: "secret", store: false });
    expect(r).toMatchObject({ store: false }); // OpenAI's body has it; the SDK's type does not
    expect((await status(client.responses.retrieve(r.id))).status).toBe(404);
    expect((await status(client.responses.create({ model: "qwen-max", previous_response_id: r.id, input: "x" }))).status).toBe(400);
    expect(gw.app.db.prepare("SELECT COUNT(*) AS n FROM responses WHERE id = ?").get(r.id)).toEqual({ n: 0 });
  });

  it("is kept RESPONSES_TTL_DAYS (30 by default), and unreadable from the moment it expires", async () => {
    const r = await client.responses.create({ model: "qwen-max", input: "old" });
    const row = gw.app.db.prepare("SELECT created_at, expires_at FROM responses WHERE id = ?").get(r.id) as { created_at: number; expires_at: number };
    expect(row.expires_at - row.created_at).toBe(30 * 86_400_000);
    gw.app.db.prepare("UPDATE responses SET expires_at = ? WHERE id = ?").run(Date.now() - 1, r.id);
    expect((await status(client.responses.retrieve(r.id))).status).toBe(404);
    expect((await status(client.responses.create({ model: "qwen-max", previous_response_id: r.id, input: "x" }))).param).toBe("previous_response_id");
  });

  it("commits the responses saved in one event-loop turn in one transaction; a failed one rejects its saves", async () => {
    const db = openDb(":memory:");
    const store = createResponseStore(db, { ttlMs: 60_000 });
    const saved = (id: string) => ({ id, userId: "u", createdAt: Date.now(), previousId: null, body: JSON.stringify({ id, output: [] }), input: [] });
    const pending = [store.save(saved("resp_a")), store.save(saved("resp_b"))];
    expect(store.get("resp_a", "u")).toBeUndefined(); // queued until the end of the turn
    await Promise.all(pending);
    expect(store.get("resp_b", "u")).toEqual({ id: "resp_b", output: [] });
    // A duplicate id fails the batch's transaction: every save in it rejects, none is half-written.
    const again = [store.save(saved("resp_c")), store.save(saved("resp_a"))];
    for (const p of again) await expect(p).rejects.toThrow(/UNIQUE/);
    expect(store.get("resp_c", "u")).toBeUndefined();
    db.close();
  });

  it("a sweep deletes expired responses and their items; RESPONSES_TTL_DAYS is validated", async () => {
    const db = openDb(":memory:");
    let now = 1_000_000;
    const store = createResponseStore(db, { ttlMs: 1000, now: () => now });
    const item = { id: "msg_1", type: "message", role: "user", content: [] };
    await store.save({ id: "resp_1", userId: "u", createdAt: now, previousId: null, body: JSON.stringify({ id: "resp_1", output: [] }), input: [item] });
    expect(store.get("resp_1", "u")).toEqual({ id: "resp_1", output: [] });
    expect(store.conversation("resp_1", "u")).toEqual([item]);
    expect(store.sweep()).toBe(0);
    now += 1000;
    expect(store.get("resp_1", "u")).toBeUndefined();
    expect(store.sweep()).toBe(1);
    expect(db.prepare("SELECT COUNT(*) AS n FROM responses").get()).toEqual({ n: 0 });
    db.close();
    const env = { ENV_FILE: "/nonexistent/.env" };
    expect(loadConfig(env).responsesTtlDays).toBe(30);
    expect(loadConfig({ ...env, RESPONSES_TTL_DAYS: "7" }).responsesTtlDays).toBe(7);
    for (const bad of ["0", "-1", "1.5", "x", "100000"]) expect(() => loadConfig({ ...env, RESPONSES_TTL_DAYS: bad })).toThrow(/RESPONSES_TTL_DAYS/);
  });
});
