// USAGE_RECORDING (on by default): with it off the gateway serves chats as
// usual but writes no usage row, on any path, and says so in its log. With it
// on (the control) the same requests do write rows. The variable itself is
// read strictly: on|off|true|false|1|0, anything else names the variable.

import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const NO_FILE = { ENV_FILE: "/nonexistent/.env" };
const USER = [{ role: "user" as const, content: "hi" }];

describe("USAGE_RECORDING", () => {
  it("is on by default and when empty", () => {
    expect(loadConfig(NO_FILE).recordUsage).toBe(true);
    expect(loadConfig({ ...NO_FILE, USAGE_RECORDING: "" }).recordUsage).toBe(true);
  });

  it.each([
    ["on", true], ["true", true], ["1", true], ["ON", true], [" True ", true],
    ["off", false], ["false", false], ["0", false], ["OFF", false], [" off ", false],
  ])("reads %j as %s", (value, expected) => {
    expect(loadConfig({ ...NO_FILE, USAGE_RECORDING: value }).recordUsage).toBe(expected);
  });

  it.each(["yes", "no", "disabled", "2", "of"])("rejects %j, naming the variable and the value", (value) => {
    expect(() => loadConfig({ ...NO_FILE, USAGE_RECORDING: value })).toThrow(`USAGE_RECORDING must be on or off, got ${value}`);
  });
});

/** Every request below, against one gateway: each sends a chat down a different path. */
async function traffic(gw: TestGateway): Promise<void> {
  const client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  const plain = await client.chat.completions.create({ model: "qwen-plus", messages: USER });
  expect(plain.choices[0]!.message.content).toBe("Hello from qwen-plus");

  const stream = await client.chat.completions.create({ model: "qwen-plus", messages: USER, stream: true, stream_options: { include_usage: true } });
  let text = "";
  let usage: unknown;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    usage ??= chunk.usage ?? undefined;
  }
  expect(text).toBe("Hello from qwen-plus");
  expect(usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 5 }); // the client still gets usage

  gw.fake.enqueue({ kind: "error", status: 500 });
  await expect(client.chat.completions.create({ model: "qwen-plus", messages: USER })).rejects.toMatchObject({ status: 502 });

  const bad = new OpenAI({ apiKey: `gw_live_${"Z".repeat(32)}`, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  await expect(bad.chat.completions.create({ model: "qwen-plus", messages: USER })).rejects.toMatchObject({ status: 401 });
}

// The 401 is refused at the door from its headers and leaves no row (it is counted instead).
const TRAFFIC_ROWS = 3;

/** Rows in the usage table, read after the end-of-turn commit has had every chance to run. */
async function rows(gw: TestGateway): Promise<number> {
  await new Promise((r) => setTimeout(r, 50));
  return (gw.app.db.prepare("SELECT COUNT(*) AS n FROM usage").get() as { n: number }).n;
}

describe.each([
  { recording: "off", env: { USAGE_RECORDING: "off" }, expected: 0 },
  { recording: "on (control)", env: {}, expected: TRAFFIC_ROWS },
])("a gateway with usage recording $recording", ({ env, expected }) => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway(env);
  });
  afterAll(async () => {
    await gw?.close();
  });
  beforeEach(() => {
    gw.fake.reset();
  });

  it(`serves chats, streaming or not, and fails them as usual, writing ${expected} usage rows`, async () => {
    expect(await rows(gw)).toBe(0);
    await traffic(gw);
    expect(gw.fake.requests).toHaveLength(3);
    expect(await rows(gw)).toBe(expected);
    // What the admin view reads (it flushes first) agrees.
    expect(gw.app.accounts.usage("model").total.requests).toBe(expected);
  });

  it("logs a warning at start only when it is off", () => {
    const warned = gw.logs.some((l) => /warn.*USAGE_RECORDING=off: no usage rows are written/.test(l));
    expect(warned).toBe(expected === 0);
  });
});
