/**
 * POST /v1/embeddings as third-party SDKs call it, with only their base URL pointed at the
 * gateway: the Vercel AI SDK (`ai` with `@ai-sdk/openai`) and LangChain's OpenAIEmbeddings.
 * Each sends more inputs in one request than DashScope takes, so the gateway's splitting is
 * what makes them work.
 */
import { createOpenAI } from "@ai-sdk/openai";
import { OpenAIEmbeddings } from "@langchain/openai";
import { embed, embedMany } from "ai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { fakeEmbedding, fakeTokens } from "../support/fake-embeddings.js";
import { newUsageRows } from "../support/new-usage-rows.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const MODEL = "text-embedding-v4";

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw?.close();
});
beforeEach(() => {
  gw.fake.reset();
  usage.mark();
});

const usage = newUsageRows(() => gw.app.db, "operation, status, prompt_tokens");
const rows = () => usage.rows();
const texts = (n: number) => Array.from({ length: n }, (_, i) => `document ${i}: ${"words ".repeat(i % 5)}`);
const batchSizes = () => gw.fake.requests.map((r) => (r.body.input as string[]).length).sort((a, b) => b - a);

describe("Vercel AI SDK", () => {
  const provider = () => createOpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.key });

  it("embed: one value, its vector and usage", async () => {
    const { embedding, usage } = await embed({ model: provider().embedding(MODEL), value: "sunny day at the beach", maxRetries: 0 });
    expect(embedding).toEqual(fakeEmbedding("sunny day at the beach"));
    expect(usage.tokens).toBe(fakeTokens("sunny day at the beach"));
    expect(rows()).toEqual([{ operation: "embeddings", status: "ok", prompt_tokens: fakeTokens("sunny day at the beach") }]);
  });

  it("embedMany with 25 values: one request from the SDK, split upstream, vectors in order, one row", async () => {
    const values = texts(25);
    const { embeddings, usage } = await embedMany({ model: provider().textEmbeddingModel(MODEL), values, maxRetries: 0 });
    expect(embeddings).toEqual(values.map((v) => fakeEmbedding(v)));
    expect(batchSizes()).toEqual([10, 10, 5]);
    const tokens = values.reduce((n, v) => n + fakeTokens(v), 0);
    expect(usage.tokens).toBe(tokens);
    expect(rows()).toEqual([{ operation: "embeddings", status: "ok", prompt_tokens: tokens }]);
  });

  it("dimensions through providerOptions", async () => {
    const { embedding } = await embed({
      model: provider().embedding(MODEL), value: "short", maxRetries: 0, providerOptions: { openai: { dimensions: 128 } },
    });
    expect(embedding).toEqual(fakeEmbedding("short", 128));
  });

  it("a chat model's 400 reaches the caller as an API error naming the model", async () => {
    const err = await embed({ model: provider().embedding("qwen-plus"), value: "x", maxRetries: 0 }).catch((e: unknown) => e);
    expect((err as { statusCode?: number }).statusCode).toBe(400);
    expect((err as Error).message).toMatch(/'qwen-plus' is a chat model/);
  });
});

describe("LangChain OpenAIEmbeddings", () => {
  const embeddings = (fields: { dimensions?: number } = {}) =>
    new OpenAIEmbeddings({ model: MODEL, apiKey: gw.key, configuration: { baseURL: `${gw.url}/v1` }, maxRetries: 0, ...fields });

  it("embedQuery (the openai SDK underneath asks for base64, which the gateway encodes as OpenAI does)", async () => {
    const vector = await embeddings().embedQuery("what is the weather?");
    expect(vector).toEqual(fakeEmbedding("what is the weather?"));
    expect(gw.fake.requests[0]!.body.encoding_format).toBe("float");
  });

  it("embedDocuments with 12 documents, in order, one row", async () => {
    const docs = texts(12);
    const vectors = await embeddings().embedDocuments(docs);
    expect(vectors).toEqual(docs.map((d) => fakeEmbedding(d)));
    expect(batchSizes()).toEqual([10, 2]);
    expect(rows()).toMatchObject([{ operation: "embeddings", status: "ok" }]);
  });

  it("dimensions", async () => {
    const vector = await embeddings({ dimensions: 64 }).embedQuery("tiny");
    expect(vector).toEqual(fakeEmbedding("tiny", 64));
  });
});
