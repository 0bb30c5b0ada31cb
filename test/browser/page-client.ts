// Runs inside headless Chromium, bundled by esbuild: real browser clients
// calling the gateway from another origin, so CORS is exercised for real.
import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { GrpcWebClientBase, MethodDescriptor } from "grpc-web";
import OpenAI from "openai";
import { ChatRequestSchema, ChatResponseSchema, GatewayService, type ChatRequest, type ChatResponse } from "../../gen/gatewayz/v1/gateway_pb.js";

export interface ChatResult {
  text: string;
  provider: string;
  totalUsd: string;
}

async function chat(transport: Transport): Promise<ChatResult> {
  const client = createClient(GatewayService, transport);
  const result: ChatResult = { text: "", provider: "", totalUsd: "" };
  for await (const m of client.chat({ model: "qwen-plus", messages: [{ role: "user", content: "hi" }] })) {
    if (m.event.case === "delta") result.text += m.event.value.content;
    if (m.event.case === "done") {
      result.provider = m.event.value.provider;
      result.totalUsd = m.event.value.cost?.totalUsd ?? "";
    }
  }
  return result;
}

/** Sends the gateway key on every call made through a transport. */
function withKey(key: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
}

async function openai(baseUrl: string, key: string): Promise<ChatResult & { headerProvider: string | null }> {
  const client = new OpenAI({ apiKey: key, baseURL: `${baseUrl}/v1`, dangerouslyAllowBrowser: true, maxRetries: 0 });
  const { data: stream, response } = await client.chat.completions
    .create({ model: "qwen-plus", messages: [{ role: "user", content: "hi" }], stream: true })
    .withResponse();
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
  return { text, provider: "", totalUsd: "", headerProvider: response.headers.get("x-gatewayz-provider") };
}

/** Google's grpc-web client in its default text mode (application/grpc-web-text), with protobuf-es doing the (de)serialising. */
function googleGrpcWeb(baseUrl: string, key: string): Promise<ChatResult> {
  const client = new GrpcWebClientBase({ format: "text" });
  const method = new MethodDescriptor<ChatRequest, ChatResponse>("/gatewayz.v1.GatewayService/Chat", "server_streaming",
    Object as never, Object as never, (r: ChatRequest) => toBinary(ChatRequestSchema, r), (b: Uint8Array) => fromBinary(ChatResponseSchema, b));
  const request = create(ChatRequestSchema, { model: "qwen-plus", messages: [{ role: "user", content: "hi" }] });
  const result: ChatResult = { text: "", provider: "", totalUsd: "" };
  return new Promise((resolve, reject) => {
    const stream = client.serverStreaming(`${baseUrl}/gatewayz.v1.GatewayService/Chat`, request, { authorization: `Bearer ${key}` }, method);
    stream.on("data", (m: ChatResponse) => {
      if (m.event.case === "delta") result.text += m.event.value.content;
      if (m.event.case === "done") {
        result.provider = m.event.value.provider;
        result.totalUsd = m.event.value.cost?.totalUsd ?? "";
      }
    });
    stream.on("error", (e: { code: number; message: string }) => reject(new Error(`grpc-web error ${e.code}: ${e.message}`)));
    stream.on("end", () => resolve(result));
  });
}

function show(label: string, value: unknown): void {
  const line = document.createElement("pre");
  line.textContent = `${label}: ${JSON.stringify(value)}`;
  document.body.append(line);
}

/** Each call also prints its result on the page, for a screenshot to show. */
const api = {
  grpcWeb: (baseUrl: string, key: string) =>
    chat(createGrpcWebTransport({ baseUrl, interceptors: [withKey(key)] })).then((r) => (show("gRPC-Web", r), r)),
  connect: (baseUrl: string, key: string) =>
    chat(createConnectTransport({ baseUrl, interceptors: [withKey(key)] })).then((r) => (show("Connect", r), r)),
  openai: (baseUrl: string, key: string) => openai(baseUrl, key).then((r) => (show("OpenAI SDK", r), r)),
  googleGrpcWeb: (baseUrl: string, key: string) => googleGrpcWeb(baseUrl, key).then((r) => (show("grpc-web (Google, text mode)", r), r)),
};

declare global {
  interface Window {
    gatewayz: typeof api;
  }
}
window.gatewayz = api;
show("ready", true);
