// Embeddings through the response cache (CACHE=on, the embedded store): the
// openai SDK and grpc-js against a real gateway on the fake DashScope. What
// shares an entry, what a hit's row says, single flight, and what is never kept.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { fakeEmbedding } from "../support/fake-embeddings.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { newUsageRows } from "../support/new-usage-rows.js";

const MODEL = "text-embedding-v4";
const LOADER: protoLoader.Options = { includeDirs: ["proto"], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const pkg = grpc.loadPackageDefinition(protoLoader.loadSync("gatewayz/v1/gateway.proto", LOADER));
const ServiceClient = ((pkg.gatewayz as grpc.GrpcObject).v1 as grpc.GrpcObject).GatewayService as unknown as new (address: string, creds: grpc.ChannelCredentials) => grpc.Client;
type Unary = (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: any) => void) => grpc.ClientUnaryCall;

let gw: TestGateway;
let client: OpenAI;
let rpc: grpc.Client & { embed: Unary };
let n = 0;

beforeAll(async () => {
  gw = await startTestGateway({ CACHE: "on" });
  client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  rpc = new ServiceClient(new URL(gw.url).host, grpc.credentials.createInsecure()) as typeof rpc;
});
afterAll(async () => {
  rpc?.close();
  await gw?.close();
});

interface Row { operation: string; status: string; cost_pico: number; saved_pico: number; prompt_tokens: number; attempts: number; provider: string }
const usage = newUsageRows(() => gw.app.db, "operation, status, cost_pico, saved_pico, prompt_tokens, attempts, provider");
beforeEach(() => {
  gw.fake.reset();
  usage.mark();
});

/** A text no other test embeds, so each test starts with an empty cache for it. */
const fresh = () => `text ${++n} ${Date.now()}`;

async function post(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await fetch(`${gw.url}/v1/embeddings`, {
    method: "POST",
    headers: { authorization: gw.authorization, "content-type": "application/json", ...headers },
    body: JSON.stringify({ model: MODEL, ...body }),
  });
  return { status: res.status, cache: res.headers.get("x-gatewayz-cache"), body: await res.json() as any };
}

function embedRpc(req: object, md: Record<string, string> = {}): Promise<{ res?: any; err?: grpc.ServiceError; headers?: grpc.Metadata }> {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", gw.authorization);
  for (const [k, v] of Object.entries(md)) metadata.set(k, v);
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    const c = rpc.embed(req, metadata, (err, res) => resolve({ res, err: err ?? undefined, headers }));
    c.on("metadata", (m: grpc.Metadata) => (headers = m));
  });
}

describe("embeddings in the response cache", () => {
  it("answers the same input from the cache: the very same vectors, one upstream call, a cached row that saved the first's cost", async () => {
    const input = [fresh(), fresh()];
    const first = await client.embeddings.create({ model: MODEL, input, encoding_format: "float" }).withResponse();
    const second = await client.embeddings.create({ model: MODEL, input, encoding_format: "float" }).withResponse();
    expect([first.response.headers.get("x-gatewayz-cache"), second.response.headers.get("x-gatewayz-cache")]).toEqual(["miss", "hit"]);
    expect(second.data.data).toEqual(input.map((text, index) => ({ object: "embedding", index, embedding: fakeEmbedding(text) })));
    expect(second.data.usage).toEqual(first.data.usage);
    expect(second.data.model).toBe(first.data.model);
    expect(second.response.headers.get("x-gatewayz-attempts")).toBe("0");
    expect(gw.fake.requests).toHaveLength(1);
    const [miss, hit] = usage.rows<Row>();
    expect(miss).toMatchObject({ operation: "embeddings", status: "ok", saved_pico: 0, attempts: 1 });
    expect(miss!.cost_pico).toBeGreaterThan(0);
    expect(hit).toMatchObject({ operation: "embeddings", status: "cached", cost_pico: 0, saved_pico: miss!.cost_pico,
      prompt_tokens: miss!.prompt_tokens, attempts: 0, provider: "alibaba-cloud" });
    // Counted as embeddings lookups on /metrics.
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/^gatewayz_cache_lookups_total\{operation="embeddings",outcome="hit"\} [1-9]/m);
    expect(metrics).toMatch(/^gatewayz_cache_lookups_total\{operation="embeddings",outcome="miss"\} [1-9]/m);
  });

  it("keys on what changes the vectors: 'a' and ['a'], float and base64, no dimensions and the default share; other dimensions do not", async () => {
    const text = fresh();
    expect((await post({ input: text })).cache).toBe("miss");
    expect((await post({ input: [text] })).cache).toBe("hit");
    const base64 = await post({ input: text, encoding_format: "base64" });
    expect(base64.cache).toBe("hit");
    const bytes = Buffer.from(base64.body.data[0].embedding, "base64");
    expect(Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4))).toEqual(fakeEmbedding(text).map(Math.fround));
    expect((await post({ input: text, dimensions: 1024 })).cache).toBe("hit");
    const smaller = await post({ input: text, dimensions: 512 });
    expect(smaller.cache).toBe("miss");
    expect(smaller.body.data[0].embedding).toHaveLength(512);
    expect((await post({ input: [text, text] })).cache).toBe("miss");
    expect(gw.fake.requests).toHaveLength(3);
  });

  it("serves the Embed RPC from the HTTP door's entries, and the other way round", async () => {
    const text = fresh();
    await post({ input: text });
    const hit = await embedRpc({ model: MODEL, input: [text] });
    expect(hit.err).toBeUndefined();
    expect(hit.headers?.get("x-gatewayz-cache")).toEqual(["hit"]);
    expect(hit.res.embeddings[0].values).toEqual(fakeEmbedding(text).map(Math.fround));
    expect(hit.res.attempts).toBe(0);
    expect(hit.res.cached).toBe(true);

    const other = fresh();
    const miss = await embedRpc({ model: MODEL, input: [other] });
    expect([miss.headers?.get("x-gatewayz-cache"), miss.res.cached]).toEqual([["miss"], false]);
    expect((await post({ input: other })).cache).toBe("hit");
    expect(gw.fake.requests).toHaveLength(2);
  });

  it("makes one upstream call for identical requests in flight together", async () => {
    const text = fresh();
    gw.fake.enqueue({ kind: "reply", firstByteDelayMs: 300 });
    const answers = await Promise.all([post({ input: text }), post({ input: text }), post({ input: text })]);
    expect(answers.map((a) => a.cache).sort()).toEqual(["coalesced", "coalesced", "miss"]);
    for (const a of answers) expect(a.body.data[0].embedding).toEqual(fakeEmbedding(text));
    expect(gw.fake.requests).toHaveLength(1);
    expect(usage.rows<Row>().map((r) => r.status).sort()).toEqual(["cached", "cached", "ok"]);
  });

  it("honours Cache-Control on both doors, and never keeps an error", async () => {
    const text = fresh();
    expect((await post({ input: text }, { "cache-control": "no-store" })).cache).toBe("bypass");
    expect((await post({ input: text })).cache).toBe("miss");
    expect((await post({ input: text }, { "cache-control": "no-cache" })).cache).toBe("bypass");
    expect((await embedRpc({ model: MODEL, input: [text] }, { "cache-control": "no-store" })).headers?.get("x-gatewayz-cache")).toEqual(["bypass"]);
    expect(gw.fake.requests).toHaveLength(4);

    const failing = fresh();
    gw.fake.enqueue({ kind: "error", status: 400, message: "refused once" });
    expect((await post({ input: failing })).status).toBe(400);
    const after = await post({ input: failing });
    expect([after.status, after.cache]).toEqual([200, "miss"]);
  });

  it("refuses a bad request exactly as without the cache, before any lookup, even for a cached input", async () => {
    const text = fresh();
    await post({ input: text });
    const bad = await post({ input: text, dimensions: 7 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe("dimensions");
    expect(bad.cache).toBeNull();
    const badTtl = await post({ input: text }, { "x-gatewayz-cache-ttl": "soon" });
    expect(badTtl.status).toBe(400);
    expect(badTtl.body.error.param).toBe("x-gatewayz-cache-ttl");
    expect(gw.fake.requests).toHaveLength(1);
    expect(usage.rows<Row>().map((r) => r.status)).toEqual(["ok", "rejected", "rejected"]);
  });
});
