import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { join } from "node:path";
import { ROOT } from "./node-child.js";

/** A ChatResponse as proto-loader decodes it with keepCase (snake_case field names, int64 as strings). */
export interface GrpcChatResponse {
  event: "delta" | "done";
  delta: { content: string } | null;
  done: {
    id: string;
    finish_reason: string;
    usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number; cached_tokens: number; reasoning_tokens: number } | null;
    cost: { prompt_usd: string; completion_usd: string; total_usd: string } | null;
  } | null;
}

export interface GrpcChatResult {
  messages: GrpcChatResponse[];
  done: GrpcChatResponse["done"] | undefined;
  status: grpc.StatusObject;
  /** The response's initial metadata (headers), if the server sent any before the status. */
  metadata: grpc.Metadata | undefined;
}

type ChatClient = grpc.Client & {
  chat(req: object, metadata: grpc.Metadata): grpc.ClientReadableStream<GrpcChatResponse>;
};
type ClientCtor = new (address: string, credentials: grpc.ChannelCredentials) => ChatClient;

let ctor: ClientCtor | undefined;

/** GatewayService's client class, loaded from the .proto at run time (once). */
function clientClass(): ClientCtor {
  if (ctor) return ctor;
  const def = protoLoader.loadSync("gatewayz/v1/gateway.proto", {
    includeDirs: [join(ROOT, "proto")], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def);
  return (ctor = ((pkg.gatewayz as grpc.GrpcObject).v1 as grpc.GrpcObject).GatewayService as unknown as ClientCtor);
}

/**
 * One Chat call over real gRPC (grpc-js, HTTP/2 cleartext) to the gateway at
 * `url`, run to its final status; the client is closed afterwards. `extra`
 * metadata goes with the call (x-request-id, traceparent).
 */
export function grpcChat(url: string, authorization: string, req: object, extra: Record<string, string> = {}): Promise<GrpcChatResult> {
  const Client = clientClass();
  const client = new Client(new URL(url).host, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set("authorization", authorization);
  for (const [name, value] of Object.entries(extra)) md.set(name, value);
  return new Promise((resolve) => {
    const call = client.chat(req, md);
    const messages: GrpcChatResponse[] = [];
    let metadata: grpc.Metadata | undefined;
    call.on("metadata", (m: grpc.Metadata) => (metadata = m));
    call.on("data", (m: GrpcChatResponse) => messages.push(m));
    call.on("error", () => {}); // the status below carries it
    call.on("status", (status: grpc.StatusObject) => {
      // "status" may come before the last "data" events; settle after them.
      setImmediate(() => {
        client.close();
        resolve({ messages, done: messages.filter((m) => m.event === "done").at(-1)?.done ?? undefined, status, metadata });
      });
    });
  });
}
