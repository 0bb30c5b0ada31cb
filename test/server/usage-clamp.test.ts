// Upstream usage is validated in one place (src/core/usage.ts): a count that
// is not a non-negative number becomes 0, one above 100 million tokens is
// clamped to it, and either way the row is flagged `usage_clamped`. Before,
// `prompt_tokens: 1e30` priced to a cost beyond SQLite's int64: the row could
// not be written and took the other rows of its event-loop turn with it, and
// over gRPC a count above 2^32 could not be encoded in the uint32 `done`
// message, so a stream already billed ended INTERNAL.

import OpenAI from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { MAX_REPORTED_TOKENS } from "../../src/core/usage.js";
import { grpcChat } from "../support/grpc-chat.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const HI = [{ role: "user" as const, content: "hi" }];
const REQUESTS = 40;

let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

interface Row { prompt_tokens: number; completion_tokens: number; cost_pico: number | bigint; status: string; usage_clamped: number }

function rows(g: TestGateway): Row[] {
  return g.app.db.prepare("SELECT prompt_tokens, completion_tokens, cost_pico, status, usage_clamped FROM usage ORDER BY id").all() as Row[];
}

function costOf(g: TestGateway, promptTokens: number, completionTokens: number): number {
  return Number(g.app.gateway.prices.picoOf(g.app.gateway.catalog.find("qwen-plus")!, { promptTokens, completionTokens }));
}

/** `count` requests at once, half of them streaming; resolves with how many were answered in full. */
async function concurrently(g: TestGateway, count: number): Promise<number> {
  const client = new OpenAI({ apiKey: g.key, baseURL: `${g.url}/v1`, maxRetries: 0 });
  const one = async (i: number) => {
    if (i % 2 === 0) return (await client.chat.completions.create({ model: "qwen-plus", messages: HI })).choices[0]?.finish_reason;
    let finish: string | null | undefined;
    for await (const chunk of await client.chat.completions.create({ model: "qwen-plus", messages: HI, stream: true })) {
      finish ??= chunk.choices[0]?.finish_reason;
    }
    return finish;
  };
  const finishes = await Promise.all(Array.from({ length: count }, (_, i) => one(i)));
  return finishes.filter((f) => f === "stop").length;
}

describe("absurd usage from one upstream among 40 concurrent requests", () => {
  it.each([
    ["1e30", 1e30, MAX_REPORTED_TOKENS],
    ["2^32 + 5", 2 ** 32 + 5, MAX_REPORTED_TOKENS],
    ["a negative count", -7, 0],
    ["a string", "12" as unknown as number, 0],
  ])("prompt_tokens %s: all 40 rows are written, the bad one clamped and flagged, priced from the clamped count", async (_, reported, kept) => {
    gw = await startTestGateway();
    gw.fake.enqueue({ kind: "reply", usage: { prompt_tokens: reported, completion_tokens: 5 } });
    expect(await concurrently(gw, REQUESTS)).toBe(REQUESTS);
    await new Promise((r) => setTimeout(r, 20)); // any commit still due would be done by now

    const all = rows(gw);
    expect(all).toHaveLength(REQUESTS);
    const flagged = all.filter((r) => r.usage_clamped === 1);
    expect(flagged).toEqual([{ prompt_tokens: kept, completion_tokens: 5, cost_pico: costOf(gw, kept, 5), status: "ok", usage_clamped: 1 }]);
    for (const r of all.filter((x) => x.usage_clamped === 0)) {
      expect(r).toEqual({ prompt_tokens: 10, completion_tokens: 5, cost_pico: costOf(gw, 10, 5), status: "ok", usage_clamped: 0 });
    }
    // The whole table still sums: what budgets and `gatewayz usage` read.
    expect(gw.app.accounts.usage("user").total).toMatchObject({ requests: REQUESTS, promptTokens: kept + 10 * (REQUESTS - 1) });
  });
});

describe("a count above 2^32 over gRPC", () => {
  it("the stream ends with its done message, the clamped counts in it, and status OK; the row is flagged", async () => {
    gw = await startTestGateway();
    gw.fake.enqueue({ kind: "reply", usage: { prompt_tokens: 2 ** 32 + 5, completion_tokens: 5 } });
    const result = await grpcChat(gw.url, gw.authorization, { model: "qwen-plus", messages: HI });
    expect(result.status.code, result.status.details).toBe(0);
    expect(result.done?.finish_reason).toBe("stop");
    expect(result.done?.usage).toMatchObject({ prompt_tokens: MAX_REPORTED_TOKENS, completion_tokens: 5, total_tokens: MAX_REPORTED_TOKENS });
    expect(rows(gw)).toEqual([{ prompt_tokens: MAX_REPORTED_TOKENS, completion_tokens: 5, cost_pico: costOf(gw, MAX_REPORTED_TOKENS, 5), status: "ok", usage_clamped: 1 }]);
  });
});
