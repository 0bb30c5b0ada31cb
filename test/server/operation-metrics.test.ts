// The operation a request asked for (chat, responses, embeddings) on its
// usage row and on the request metrics, for each door, with the openai package.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  gw = await startTestGateway();
  client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
});

/** gatewayz_requests_total by operation and outcome, from the text exposition. */
async function requestsByOperation(): Promise<Record<string, number>> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^gatewayz_requests_total\{([^}]*)\} (\S+)$/gm)) {
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    const key = `${labels.operation}/${labels.outcome}`;
    out[key] = (out[key] ?? 0) + Number(m[2]);
  }
  return out;
}

describe("the operation of a request", () => {
  it("is on its usage row and labels its request metrics, errors included", async () => {
    await client.chat.completions.create({ model: "qwen-max", messages: [{ role: "user", content: "hi" }] });
    await client.responses.create({ model: "qwen-max", input: "hi" });
    await client.embeddings.create({ model: "text-embedding-v4", input: ["a", "b"] });
    // Each door refusing a wrong-kind model: a client error of that operation.
    await expect(client.embeddings.create({ model: "qwen-max", input: "a" })).rejects.toMatchObject({ status: 400 });
    await expect(client.responses.create({ model: "text-embedding-v4", input: "a" })).rejects.toMatchObject({ status: 400 });

    const rows = gw.app.db.prepare("SELECT operation, status FROM usage ORDER BY id").all();
    expect(rows).toEqual([
      { operation: "chat", status: "ok" },
      { operation: "responses", status: "ok" },
      { operation: "embeddings", status: "ok" },
      { operation: "embeddings", status: "rejected" },
      { operation: "responses", status: "rejected" },
    ]);
    expect(await requestsByOperation()).toEqual({
      "chat/ok": 1, "responses/ok": 1, "embeddings/ok": 1, "embeddings/client_error": 1, "responses/client_error": 1,
    });
  });
});
