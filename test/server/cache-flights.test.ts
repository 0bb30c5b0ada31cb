// Single flight with streamed requests (CACHE=on): a streamed request that
// misses leads a flight, and identical requests arriving while it streams,
// streamed or not, are answered from its answer once it has ended. A real
// gateway on the fake upstream, driven over HTTP (SSE) and grpc-js.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { grpcChat } from "../support/grpc-chat.js";
import { newUsageRows } from "../support/new-usage-rows.js";

const MODEL = "qwen-max";
let gw: TestGateway;
let n = 0;

beforeAll(async () => {
  gw = await startTestGateway({ CACHE: "on" });
});
afterAll(async () => {
  await gw?.close();
});

const usage = newUsageRows(() => gw.app.db, "status");
beforeEach(() => {
  gw.fake.reset();
  usage.mark();
});
const statuses = () => usage.rows<{ status: string }>().map((r) => r.status).sort();

const fresh = () => `flight question ${++n} ${Date.now()}`;

function post(content: string, stream: boolean, signal?: AbortSignal) {
  return fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: gw.authorization, "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, stream, messages: [{ role: "user", content }] }),
    signal,
  });
}

/** A streamed answer's text, from its SSE chunks; throws unless it ended with [DONE]. */
async function streamed(res: Response): Promise<{ cache: string | null; text: string }> {
  const body = await res.text();
  const events = body.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
  if (events.at(-1) !== "[DONE]") throw new Error(`stream did not end with [DONE]: ${body.slice(-200)}`);
  const text = events.slice(0, -1).map((e) => JSON.parse(e)).map((c) => c.choices?.[0]?.delta?.content ?? "").join("");
  return { cache: res.headers.get("x-gatewayz-cache"), text };
}

/** Resolves once the fake has received the leader's request. */
const leaderArrived = () => gw.fake.waitForRequests(1);

describe("single flight behind a streamed request", () => {
  it("answers identical JSON, streamed and gRPC requests from the streaming leader's answer: one upstream call", async () => {
    const q = fresh();
    gw.fake.enqueue({ kind: "reply", content: "one two three", firstByteDelayMs: 150, chunkDelayMs: 30 });
    const leader = post(q, true);
    await leaderArrived();
    const followers = [post(q, false), post(q, true), grpcChat(gw.url, gw.authorization, { model: MODEL, messages: [{ role: "user", content: q }] })] as const;
    const lead = await streamed(await leader);
    const json = await followers[0];
    const stream = await streamed(await followers[1]);
    const rpc = await followers[2];
    expect(lead).toEqual({ cache: "miss", text: "one two three" });
    expect([json.headers.get("x-gatewayz-cache"), ((await json.json()) as any).choices[0].message.content]).toEqual(["coalesced", "one two three"]);
    expect(stream).toEqual({ cache: "coalesced", text: "one two three" });
    expect(rpc.metadata?.get("x-gatewayz-cache")).toEqual(["coalesced"]);
    expect(rpc.messages.map((m: any) => m.delta?.content ?? "").join("")).toBe("one two three");
    expect(gw.fake.requests).toHaveLength(1);
    expect(statuses()).toEqual(["cached", "cached", "cached", "ok"]);
  });

  it("a streamed request joins a JSON leader's flight and replays its answer", async () => {
    const q = fresh();
    gw.fake.enqueue({ kind: "reply", content: "joined", firstByteDelayMs: 200 });
    const leader = post(q, false);
    await leaderArrived();
    const follower = await streamed(await post(q, true));
    expect((await leader).headers.get("x-gatewayz-cache")).toBe("miss");
    expect(follower).toEqual({ cache: "coalesced", text: "joined" });
    expect(gw.fake.requests).toHaveLength(1);
  });

  it("a leader whose stream cannot open fails its followers the same way", async () => {
    const q = fresh();
    gw.fake.enqueue({ kind: "error", status: 400, message: "no such thing", delayMs: 200 });
    const leader = post(q, true);
    await leaderArrived();
    const followers = [post(q, true), post(q, false)];
    const answers = await Promise.all([leader, ...followers]);
    expect(answers.map((a) => a.status)).toEqual([400, 400, 400]);
    for (const a of answers) expect(((await a.json()) as any).error.message).toContain("no such thing");
    expect(gw.fake.requests).toHaveLength(1);
    // The followers never went upstream themselves: their rows say so (rejected: no attempt), with the same error.
    expect(statuses()).toEqual(["error", "rejected", "rejected"]);
  });

  it("a leader whose client goes away mid-stream leaves its followers to go upstream themselves", async () => {
    const q = fresh();
    gw.fake.enqueue({ kind: "reply", content: "a b c d e f g h", firstByteDelayMs: 50, chunkDelayMs: 100 }, { kind: "reply", content: "second" });
    const controller = new AbortController();
    const leader = await post(q, true, controller.signal);
    const reader = leader.body!.getReader();
    await reader.read(); // the stream has opened: the leader leads
    const follower = post(q, false);
    await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    await gw.fake.waitForAbort();
    const res = await follower;
    expect(res.status).toBe(200);
    expect(res.headers.get("x-gatewayz-cache")).toBe("miss");
    expect(((await res.json()) as any).choices[0].message.content).toBe("second");
    expect(gw.fake.requests).toHaveLength(2);
  });
});
