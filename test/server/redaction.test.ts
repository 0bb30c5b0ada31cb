// An upstream that echoes its request (its URL, its Host, its Authorization
// and other headers) in an error message must not hand the gateway's provider
// key or upstream address to clients or to the log. Every path that relays an
// upstream's words is driven through the fake's "echo" behaviour and read by
// real clients: the openai SDK (non-streaming and streaming) and grpc-js.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Behaviour } from "../support/fake-upstream.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

const KEY = "sk-live-redaction-0123456789abcdef";
const EXTRA = "xk-extra-credential-4242";
const USER = [{ role: "user" as const, content: "hi" }];

const pkg = grpc.loadPackageDefinition(protoLoader.loadSync("gatewayz/v1/gateway.proto", { includeDirs: ["proto"], keepCase: true, oneofs: true, longs: String }));
type ChatClient = grpc.Client & { chat(req: object, md: grpc.Metadata): grpc.ClientReadableStream<{ event: string }> };
const GatewayService = ((pkg.gatewayz as grpc.GrpcObject).v1 as grpc.GrpcObject).GatewayService as unknown as new (a: string, c: grpc.ChannelCredentials) => ChatClient;

let gw: TestGateway;
let sdk: OpenAI;
let rpc: ChatClient;

beforeAll(async () => {
  gw = await startTestGateway({ ALIBABA_CLOUD_API_KEY: KEY, ALIBABA_CLOUD_HEADERS: `X-Api-Key: ${EXTRA}` });
  gw.fake.apiKey = KEY;
  sdk = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  rpc = new GatewayService(new URL(gw.url).host, grpc.credentials.createInsecure());
});
afterAll(async () => {
  rpc?.close();
  await gw?.close();
});
beforeEach(() => gw.fake.reset());

/** Everything that would tell a reader the provider key or where the upstream lives. */
function secrets(): string[] {
  const base = new URL(gw.fake.baseUrl);
  return [KEY, KEY.slice(8, 24), EXTRA, gw.fake.baseUrl, base.origin, base.host, `:${base.port}`];
}

function expectRedacted(text: string): void {
  for (const s of secrets()) expect(text).not.toContain(s);
  // The upstream really said them: they were replaced, not lost.
  expect(text).toContain("[redacted]");
  expect(text).toContain("[alibaba-cloud URL]");
}

/** The SDK's error for a chat (streaming ones read to their end). */
async function sdkError(model: string, stream: boolean): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    if (!stream) await sdk.chat.completions.create({ model, messages: USER });
    else for await (const _ of await sdk.chat.completions.create({ model, messages: USER, stream: true }));
  } catch (err) {
    expect(err).toBeInstanceOf(OpenAI.APIError);
    return err as InstanceType<typeof OpenAI.APIError>;
  }
  throw new Error("the chat succeeded; expected an error");
}

function rpcError(model: string): Promise<grpc.ServiceError> {
  const md = new grpc.Metadata();
  md.set("authorization", gw.authorization);
  return new Promise((resolve, reject) => {
    const call = rpc.chat({ model, messages: USER }, md);
    call.on("data", () => {});
    call.on("error", resolve);
    call.on("end", () => reject(new Error("the chat succeeded; expected an error")));
  });
}

const echo = (status: number, stream = false, chunks = 0): Behaviour => ({ kind: "echo", status, stream, chunks });

// [what, behaviour, model, streaming client, HTTP status the SDK sees]
const CASES: Array<[string, Behaviour, string, boolean, number]> = [
  ["a 400", echo(400), "qwen-max", false, 400],
  ["a 404", echo(404), "qwen-max", false, 404],
  ["a 413", echo(413), "qwen-max", false, 413],
  ["a 422", echo(422), "qwen-max", false, 400],
  ["a 200 whose body is an error", echo(200), "qwen-max", false, 502],
  ["an error event before any chunk", echo(200, true), "qwen-max", true, 502],
  ["an error event mid-stream, after chunks reached the client", echo(200, true, 2), "qwen-max", true, 502],
  ["an error event in a stream aggregated for a non-streaming client", echo(200, true, 1), "qwq-plus", false, 502],
];

describe("upstream words relayed to an OpenAI SDK client", () => {
  it.each(CASES)("%s: keeps the upstream's message, without our key or address", async (_, behaviour, model, stream, status) => {
    gw.fake.enqueue(behaviour);
    const err = await sdkError(model, stream);
    expect(err.status ?? 502).toBe(status);
    expect(err.message).toMatch(/cannot serve POST/);
    expectRedacted(JSON.stringify(err.error ?? err.message));
    expect(gw.fake.requests.at(-1)!.headers.authorization).toBe(`Bearer ${KEY}`);
  });
});

describe("upstream words relayed to a gRPC client", () => {
  it.each(CASES.filter(([, , , stream]) => !stream))("%s: the status details keep the message, without our key or address", async (_, behaviour, model) => {
    gw.fake.enqueue(behaviour);
    const err = await rpcError(model);
    expect(err.code).not.toBe(grpc.status.OK);
    expect(err.details).toMatch(/cannot serve POST/);
    expectRedacted(err.details);
  });

  it("an error event mid-stream: the final status, after the deltas, without our key or address", async () => {
    gw.fake.enqueue(echo(200, true, 2));
    const err = await rpcError("qwen-max");
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expectRedacted(err.details);
  });
});

describe("the log", () => {
  it("never holds our key or address, though every failure above was logged", () => {
    const log = gw.logs.join("\n");
    expect(log).toMatch(/cannot serve POST \[alibaba-cloud URL\]/);
    for (const s of secrets()) expect(log).not.toContain(s);
  });
});
