// Several keys for one provider (ALIBABA_CLOUD_API_KEY=k1,k2,k3) end to end: a real gateway on a
// fake DashScope that accepts the three keys and can answer each one its own way, driven by the
// openai SDK. Requests take the keys in turn; a key answered 429 rests for its Retry-After while
// the others carry the load; a key answered 401 is set aside and logged by its number, never by
// its value; with every key resting the client gets the provider's 429.

import OpenAI from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { createKeyRing } from "../../src/providers/key-ring.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const KEYS = ["sk-ring-one-111111", "sk-ring-two-222222", "sk-ring-three-333333"];
const HI = [{ role: "user" as const, content: "hi" }];

const started: TestGateway[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((g) => g.close()));
});

async function gateway(): Promise<TestGateway> {
  const gw = await startTestGateway({ ALIBABA_CLOUD_API_KEY: KEYS.join(", ") });
  started.push(gw);
  gw.fake.apiKey = KEYS[0]!;
  for (const k of KEYS.slice(1)) gw.fake.otherKeys.add(k);
  return gw;
}

const sdk = (gw: TestGateway) => new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
/** The bearer key of each request the fake received, in order. */
const keysSeen = (gw: TestGateway) => gw.fake.requests.map((r) => String(r.headers.authorization).replace(/^Bearer /, ""));
const chat = (gw: TestGateway) => sdk(gw).chat.completions.create({ model: "qwen-plus", messages: HI });

describe("several keys for one provider", () => {
  it("spreads requests over the keys in turn, and says how many loaded", async () => {
    const gw = await gateway();
    for (let i = 0; i < 6; i++) await chat(gw);
    expect(keysSeen(gw)).toEqual([...KEYS, ...KEYS]);
    expect(gw.logs.some((l) => l.includes("Loaded alibaba-cloud provider client (3 keys)"))).toBe(true);
  });

  it("rests a key the provider answered 429 for its Retry-After; the request goes on with the next key", async () => {
    const gw = await gateway();
    gw.fake.onKey(KEYS[1]!, { kind: "error", status: 429, type: "rate_limit_error", headers: { "retry-after": "1" } });
    const first = await Promise.all([chat(gw), chat(gw)]);
    expect(first.map((c) => c.choices[0]!.finish_reason)).toEqual(["stop", "stop"]);
    // Key 1, then key 2 (429) and at once key 3 for the same request.
    expect(keysSeen(gw)).toEqual([KEYS[0], KEYS[1], KEYS[2]]);
    gw.fake.onKey(KEYS[1]!, undefined);
    gw.fake.requests.length = 0;
    // While key 2 rests, only keys 1 and 3 are used.
    for (let i = 0; i < 4; i++) await chat(gw);
    expect(new Set(keysSeen(gw))).toEqual(new Set([KEYS[0], KEYS[2]]));
    // After its Retry-After it is back in turn.
    await new Promise((r) => setTimeout(r, 1_100));
    gw.fake.requests.length = 0;
    for (let i = 0; i < 3; i++) await chat(gw);
    expect(new Set(keysSeen(gw))).toEqual(new Set(KEYS));
  });

  it("sets aside a key the provider refuses (401), logs it by number, and the others carry on", async () => {
    const gw = await gateway();
    gw.fake.otherKeys.delete(KEYS[2]!); // the provider no longer knows key 3
    for (let i = 0; i < 6; i++) expect((await chat(gw)).choices[0]!.message.content).toBeTruthy();
    const seen = keysSeen(gw);
    expect(seen.filter((k) => k === KEYS[2])).toHaveLength(1); // tried once, then never again
    expect(seen.filter((k) => k !== KEYS[2]).length).toBe(6);
    const warning = gw.logs.filter((l) => l.includes("refused key 3 of 3 in ALIBABA_CLOUD_API_KEY (401)"));
    expect(warning).toHaveLength(1);
    for (const k of KEYS) expect(gw.logs.join("\n")).not.toContain(k);
  });

  it("answers the provider's 429 once every key is resting", async () => {
    const gw = await gateway();
    for (const k of KEYS) gw.fake.onKey(k, { kind: "error", status: 429, type: "rate_limit_error", headers: { "retry-after": "30" } });
    const err = await chat(gw).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(keysSeen(gw)).toEqual(KEYS);
    // Every key rests now: the next request is refused without reaching the provider, with when to come back.
    gw.fake.requests.length = 0;
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST", headers: { authorization: gw.authorization, "content-type": "application/json" },
      body: JSON.stringify({ model: "qwen-plus", messages: HI }),
    });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(25);
    expect(gw.fake.requests).toHaveLength(0);
  });

  it("keeps one key's 429 the request's own, as before", async () => {
    const gw = await startTestGateway();
    started.push(gw);
    gw.fake.enqueue({ kind: "error", status: 429, type: "rate_limit_error" });
    const err = await chat(gw).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(gw.fake.requests).toHaveLength(1);
    expect((await chat(gw)).choices[0]!.finish_reason).toBe("stop");
  });
});

describe("the key ring", () => {
  it("takes keys in turn, skips a resting one until its time, and never a set-aside one", () => {
    let now = 1_000;
    const ring = createKeyRing(["a", "b", "c"], () => now);
    expect([ring.next(), ring.next(), ring.next(), ring.next()].map((s) => s?.value)).toEqual(["a", "b", "c", "a"]);
    ring.coolDown(ring.next()!, 500); // b
    ring.setAside(ring.next()!); // c
    expect([ring.next(), ring.next()].map((s) => s?.value)).toEqual(["a", "a"]);
    expect(ring.readyInMs()).toBe(0);
    ring.coolDown({ number: 1, value: "a" }, 200);
    expect(ring.next()).toBeUndefined();
    expect(ring.readyInMs()).toBe(200);
    now += 500;
    // Both rested enough: the turn goes on from where it was (after a), so b, then a.
    expect([ring.next(), ring.next()].map((s) => s?.value)).toEqual(["b", "a"]);
    ring.setAside({ number: 1, value: "a" });
    ring.setAside({ number: 2, value: "b" });
    expect(ring.next()).toBeUndefined();
    expect(ring.readyInMs()).toBeUndefined();
  });
});
