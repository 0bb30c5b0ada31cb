// Request validation happens in the core, so every front door gets it: a
// malformed content part or a wrongly typed or out-of-range generation field
// is a 400 (gRPC INVALID_ARGUMENT) naming the field, and nothing reaches the
// upstream. And a request asking for n answers reserves n answers' tokens.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const USER = [{ role: "user" as const, content: "hi" }];

const pkg = grpc.loadPackageDefinition(protoLoader.loadSync("gatewayz/v1/gateway.proto", { includeDirs: ["proto"], keepCase: true, oneofs: true, longs: String }));
type ChatClient = grpc.Client & { chat(req: object, md: grpc.Metadata): grpc.ClientReadableStream<unknown> };
const GatewayService = ((pkg.gatewayz as grpc.GrpcObject).v1 as grpc.GrpcObject).GatewayService as unknown as new (a: string, c: grpc.ChannelCredentials) => ChatClient;

let gw: TestGateway;
let sdk: OpenAI;

beforeAll(async () => {
  gw = await startTestGateway();
  sdk = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
});
afterAll(() => gw?.close());
beforeEach(() => gw.fake.reset());

async function refusal(body: Record<string, unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await sdk.chat.completions.create({ model: "qwen-max", messages: USER, ...body } as never);
  } catch (err) {
    expect(err).toBeInstanceOf(OpenAI.APIError);
    return err as InstanceType<typeof OpenAI.APIError>;
  }
  throw new Error("the chat succeeded; expected a refusal");
}

describe("over the OpenAI door", () => {
  it.each([
    ["a null content part", { messages: [{ role: "user", content: [null] }] }, "messages[0].content[0]"],
    ["a content part without a type", { messages: [{ role: "user", content: [{ text: "hi" }] }] }, "messages[0].content[0]"],
    ["temperature: \"x\"", { temperature: "x" }, "temperature"],
    ["max_tokens: -5", { max_tokens: -5 }, "max_tokens"],
    ["n: 1000000", { n: 1_000_000 }, "n"],
    ["five stop sequences", { stop: ["a", "b", "c", "d", "e"] }, "stop"],
    ["a tool without a function name", { tools: [{ type: "function", function: {} }] }, "tools"],
    ["thinking_budget: 0", { thinking_budget: 0 }, "thinking_budget"],
    ["the same, streaming", { stream: true, top_p: 3 }, "top_p"],
  ])("%s is a 400 invalid_request naming the field, and nothing reaches the upstream", async (_, body, param) => {
    const err = await refusal(body);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: "invalid_request", type: "invalid_request_error", param });
    expect(err.message).toContain(param);
    expect(gw.fake.requests).toHaveLength(0);
  });

  it("unknown fields still pass through to the upstream untouched", async () => {
    await sdk.chat.completions.create({ model: "qwen-max", messages: USER, top_k: 5, repetition_penalty: 1.1 } as never);
    expect(gw.fake.requests[0]!.body).toMatchObject({ top_k: 5, repetition_penalty: 1.1 });
  });
});

describe("over gRPC", () => {
  let rpc: ChatClient;
  beforeAll(() => {
    rpc = new GatewayService(new URL(gw.url).host, grpc.credentials.createInsecure());
  });
  afterAll(() => rpc?.close());

  function rpcError(req: object): Promise<grpc.ServiceError> {
    const md = new grpc.Metadata();
    md.set("authorization", gw.authorization);
    return new Promise((resolve, reject) => {
      const call = rpc.chat({ model: "qwen-max", messages: USER, ...req }, md);
      call.on("data", () => {});
      call.on("error", resolve);
      call.on("end", () => reject(new Error("the chat succeeded; expected INVALID_ARGUMENT")));
    });
  }

  it.each([
    ["temperature: 5", { temperature: 5 }, "temperature"],
    ["max_tokens: 0 (set, as proto3 optional says)", { max_tokens: 0 }, "max_tokens"],
    ["max_tokens: 4294967291 (a client's -5 as uint32)", { max_tokens: 4294967291 }, "max_tokens"],
    ["thinking_budget: 0", { thinking_budget: 0 }, "thinking_budget"],
  ])("%s is INVALID_ARGUMENT naming the field, and nothing reaches the upstream", async (_, req, field) => {
    const err = await rpcError(req);
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toMatch(new RegExp(`^${field} must be `));
    expect(gw.fake.requests).toHaveLength(0);
  });
});

describe("a request for n answers", () => {
  it("reserves n times max_tokens against a token limit", async () => {
    const keyId = gw.app.accounts.listKeys({ user: "test" })[0]!.id;
    gw.app.accounts.setLimits({ scope: "key", keyId }, { tpm: 2_500 });
    try {
      // Two answers of up to 1000 tokens fit in 2500 a minute; three do not, though each alone would.
      await sdk.chat.completions.create({ model: "qwen-max", messages: USER, max_tokens: 1_000, n: 2 });
      const err = await refusal({ max_tokens: 1_000, n: 3 });
      expect(err).toMatchObject({ status: 429, code: "rate_limit_exceeded" });
      expect(err.message).toMatch(/needs an estimated 30\d\d tokens, more than the key's limit of 2500/);
      expect(gw.fake.requests).toHaveLength(1);
    } finally {
      gw.app.accounts.setLimits({ scope: "key", keyId }, { tpm: null });
    }
  });
});
