/**
 * The Embed RPC end to end: grpc-js with the .proto loaded at run time (as a user without our
 * generated code would), connect-web's Connect and gRPC-Web transports, and raw requests for
 * what no well-behaved client sends. Errors are gRPC codes; every call leaves one usage row.
 */
import http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GatewayService } from "../../gen/gatewayz/v1/gateway_pb.js";
import { fakeEmbedding, fakeTokens } from "../support/fake-embeddings.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const MODEL = "text-embedding-v4";
const LOADER: protoLoader.Options = { includeDirs: ["proto"], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const pkg = grpc.loadPackageDefinition(protoLoader.loadSync("gatewayz/v1/gateway.proto", LOADER));
const ServiceClient = ((pkg.gatewayz as grpc.GrpcObject).v1 as grpc.GrpcObject).GatewayService as unknown as new (address: string, creds: grpc.ChannelCredentials) => grpc.Client;

interface EmbedReply {
  embeddings: Array<{ index: number; values: number[] }>;
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
  cost: { prompt_usd: string; completion_usd: string; total_usd: string };
  provider: string;
  catalog_model: string;
  attempts: number;
}
type Unary = (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: any) => void) => grpc.ClientUnaryCall;
type GrpcClient = grpc.Client & { embed: Unary; listModels: Unary };

let gw: TestGateway;
let client: GrpcClient;
let mark = 0;

beforeAll(async () => {
  gw = await startTestGateway();
  client = new ServiceClient(new URL(gw.url).host, grpc.credentials.createInsecure()) as GrpcClient;
});
afterAll(async () => {
  client?.close();
  await gw?.close();
});
beforeEach(() => {
  gw.fake.reset();
  mark = (gw.app.db.prepare("SELECT COALESCE(MAX(id), 0) AS m FROM usage").get() as { m: number }).m;
});

const rows = () => gw.app.db.prepare("SELECT * FROM usage WHERE id > ? ORDER BY id").all(mark) as Array<Record<string, unknown>>;

function metadata(authorization = gw.authorization): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", authorization);
  return md;
}

/** One unary call over grpc-js: its answer or its error, and its response headers. */
function call(method: "embed" | "listModels", req: object, authorization?: string): Promise<{ res?: any; err?: grpc.ServiceError; headers?: grpc.Metadata }> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    const c = client[method](req, metadata(authorization), (err, res) => resolve({ res, err: err ?? undefined, headers }));
    c.on("metadata", (m: grpc.Metadata) => (headers = m));
  });
}

describe("Embed over gRPC (grpc-js)", () => {
  it("23 inputs: every vector in order (split upstream 10 + 10 + 3), usage, cost and provider; one row", async () => {
    const input = Array.from({ length: 23 }, (_, i) => `text ${i}`);
    const { res, err, headers } = await call("embed", { model: MODEL, input });
    expect(err).toBeUndefined();
    const reply = res as EmbedReply;
    expect(reply.embeddings.map((e) => e.index)).toEqual(input.map((_, i) => i));
    expect(reply.embeddings.map((e) => e.values)).toEqual(input.map((t) => fakeEmbedding(t)));
    expect(gw.fake.requests.map((r) => r.body.input.length).sort()).toEqual([10, 10, 3]);
    const tokens = input.reduce((n, t) => n + fakeTokens(t), 0);
    expect(reply).toMatchObject({
      model: MODEL, provider: "alibaba-cloud", catalog_model: MODEL, attempts: 1,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
      cost: { completion_usd: "0", total_usd: (tokens * 0.00000007).toFixed(8).replace(/0+$/, "") },
    });
    expect(headers?.get("x-gatewayz-provider")).toEqual(["alibaba-cloud"]);
    expect(rows()).toMatchObject([{ operation: "embeddings", protocol: "grpc", status: "ok", prompt_tokens: tokens }]);
  });

  it("dimensions: vectors of the size asked for", async () => {
    const { res } = await call("embed", { model: MODEL, input: ["a"], dimensions: 512 });
    expect((res as EmbedReply).embeddings[0]!.values).toEqual(fakeEmbedding("a", 512));
    expect(gw.fake.requests[0]!.body).toMatchObject({ dimensions: 512, encoding_format: "float" });
  });

  it.each([
    ["a chat model", { model: "qwen-plus", input: ["a"] }, grpc.status.INVALID_ARGUMENT, /'qwen-plus' is a chat model/],
    ["no input", { model: MODEL }, grpc.status.INVALID_ARGUMENT, /input is required/],
    ["token ids, which DashScope's models do not take", { model: MODEL, tokens: [{ ids: [1, 2] }] }, grpc.status.INVALID_ARGUMENT, /takes text only/],
    ["both texts and token ids", { model: MODEL, input: ["a"], tokens: [{ ids: [1] }] }, grpc.status.INVALID_ARGUMENT, /not both/],
    ["a size the model does not make", { model: MODEL, input: ["a"], dimensions: 100 }, grpc.status.INVALID_ARGUMENT, /dimensions 100 is not one of them/],
    ["an unknown model", { model: "nope", input: ["a"] }, grpc.status.NOT_FOUND, /'nope' does not exist/],
  ])("%s is refused with its gRPC code, and a row", async (_, req, code, message) => {
    const { err } = await call("embed", req);
    expect(err?.code).toBe(code);
    expect(err?.details).toMatch(message);
    expect(gw.fake.requests).toHaveLength(0);
    expect(rows()).toMatchObject([{ operation: "embeddings", protocol: "grpc", status: "rejected" }]);
  });

  it("an upstream failure is UNAVAILABLE, with a row", async () => {
    gw.fake.enqueue({ kind: "error", status: 503 });
    const { err } = await call("embed", { model: MODEL, input: ["a"] });
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(rows()).toMatchObject([{ operation: "embeddings", status: "error", error_kind: "upstream_unavailable" }]);
  });

  it("a cancelled call aborts the upstream request", async () => {
    gw.fake.enqueue({ kind: "hang" });
    const pending = new Promise<grpc.ServiceError | null>((resolve) => {
      const c = client.embed({ model: MODEL, input: ["a"] }, metadata(), (err) => resolve(err));
      void gw.fake.waitForRequests(1).then(() => c.cancel());
    });
    expect((await pending)?.code).toBe(grpc.status.CANCELLED);
    expect((await gw.fake.waitForAbort(1000)).path).toBe("/compatible-mode/v1/embeddings");
    await expect.poll(() => rows()).toMatchObject([{ operation: "embeddings", status: "cancelled" }]);
  });

  it("a revoked key is UNAUTHENTICATED, and its row says embeddings", async () => {
    const { key, record } = gw.app.accounts.createKey({ user: "revoked-rpc", name: "old" });
    gw.app.accounts.revokeKey(record.id);
    const { err } = await call("embed", { model: MODEL, input: ["a"] }, `Bearer ${key}`);
    expect(err?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(rows()).toMatchObject([{ operation: "embeddings", key_id: record.id, status: "rejected", error_kind: "unauthenticated" }]);
  });

  it("ListModels says which kind each model is, and an embedding model's sizes", async () => {
    const { res } = await call("listModels", {});
    const byId = new Map((res.models as Array<Record<string, unknown>>).map((m) => [m.id, m]));
    expect(byId.get(MODEL)).toMatchObject({ kind: "embedding", dimensions: [2048, 1536, 1024, 768, 512, 256, 128, 64], default_dimensions: 1024 });
    expect(byId.get("qwen-plus")).toMatchObject({ kind: "chat", dimensions: [], default_dimensions: 0 });
  });
});

const withKey = (authorization: string): Interceptor => (next) => (req) => {
  req.header.set("authorization", authorization);
  return next(req);
};

describe.each([
  ["Connect", () => createConnectTransport({ baseUrl: gw.url, interceptors: [withKey(gw.authorization)] })],
  ["gRPC-Web", () => createGrpcWebTransport({ baseUrl: gw.url, interceptors: [withKey(gw.authorization)] })],
])("Embed over %s (connect-web)", (name, transport) => {
  const protocol = name === "Connect" ? "connect" : "grpc-web";

  it("embeds, in order, with one row", async () => {
    const res = await createClient(GatewayService, transport()).embed({ model: MODEL, input: ["x", "y"] });
    expect(res.embeddings.map((e) => e.values)).toEqual([fakeEmbedding("x"), fakeEmbedding("y")]);
    expect(rows()).toMatchObject([{ operation: "embeddings", protocol, status: "ok" }]);
  });

  it("a chat model is INVALID_ARGUMENT", async () => {
    const err = await createClient(GatewayService, transport()).embed({ model: "qwen-plus", input: ["x"] }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.InvalidArgument);
    expect(rows()).toMatchObject([{ operation: "embeddings", protocol, status: "rejected", error_kind: "invalid_request" }]);
  });
});

describe("a message Connect cannot read, refused before the service sees it", () => {
  it("Connect JSON with an unknown field: INVALID_ARGUMENT, and a row", async () => {
    const res = await fetch(`${gw.url}/gatewayz.v1.GatewayService/Embed`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: gw.authorization },
      body: JSON.stringify({ model: MODEL, input: ["a"], encoding_format: "float" }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
    expect(rows()).toMatchObject([{ operation: "embeddings", protocol: "connect", status: "rejected", error_kind: "invalid_request" }]);
  });

  it("gRPC-Web with bytes that do not decode: INVALID_ARGUMENT in the trailer frame, and a row", async () => {
    const res = await fetch(`${gw.url}/gatewayz.v1.GatewayService/Embed`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", authorization: gw.authorization },
      body: Buffer.from([0, 0, 0, 0, 3, 0xff, 0xff, 0xff]),
    });
    const body = Buffer.from(await res.arrayBuffer());
    expect(body[0]).toBe(0x80); // the trailer frame, and nothing before it
    expect(body.subarray(5).toString()).toMatch(new RegExp(`grpc-status: ?${grpc.status.INVALID_ARGUMENT}\r\n`));
    expect(rows()).toMatchObject([{ operation: "embeddings", protocol: "grpc-web", status: "rejected", error_kind: "invalid_request" }]);
  });

  it("gRPC with bytes that do not decode: INVALID_ARGUMENT (not INTERNAL), and a row", async () => {
    const session = http2.connect(gw.url);
    try {
      const stream = session.request({
        ":method": "POST", ":path": "/gatewayz.v1.GatewayService/Embed", "content-type": "application/grpc", te: "trailers", authorization: gw.authorization,
      });
      const garbage = Buffer.from([0xff, 0xff, 0xff]);
      const head = Buffer.from([0, 0, 0, 0, garbage.length]);
      const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.on("trailers", resolve));
      stream.end(Buffer.concat([head, garbage]));
      stream.resume();
      const t = await trailers;
      expect(t["grpc-status"]).toBe(String(grpc.status.INVALID_ARGUMENT));
    } finally {
      session.close();
    }
    expect(rows()).toMatchObject([{ operation: "embeddings", protocol: "grpc", status: "rejected", error_kind: "invalid_request" }]);
  });
});
