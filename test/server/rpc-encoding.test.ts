// What an upstream streams is its own; what the RPC doors send is protobuf.
// A field the proto cannot carry (a tool call index of -1, a string field
// sent as a number) must not end an answer already under way with INTERNAL.

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(() => gw?.close());

function sse(events: unknown[]): string {
  return events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join("") + "data: [DONE]\n\n";
}

it("a Chat whose upstream sends a tool call index of -1 and 2^40, and numbers where strings belong, still ends with done and OK", async () => {
  const chunk = (delta: unknown, finish: string | null = null) => ({ id: 42, object: "chat.completion.chunk", created: 1, model: 7, choices: [{ index: 0, delta, finish_reason: finish }] });
  gw.fake.enqueue({
    kind: "raw", status: 200, headers: { "content-type": "text/event-stream" },
    body: sse([
      chunk({ role: "assistant", content: 5 }),
      chunk({ tool_calls: [{ index: -1, id: 3, type: "function", function: { name: "f", arguments: "{}" } }] }),
      chunk({ tool_calls: [{ index: 2 ** 40, function: { arguments: { not: "a string" } } }] }),
      chunk({ content: "done" }, "tool_calls"),
    ]),
  });
  const def = protoLoader.loadSync("gatewayz/v1/gateway.proto", { includeDirs: ["proto"], oneofs: true, longs: String, arrays: true, defaults: true });
  const { GatewayService } = (grpc.loadPackageDefinition(def) as unknown as { gatewayz: { v1: { GatewayService: grpc.ServiceClientConstructor } } }).gatewayz.v1;
  const client = new GatewayService(`127.0.0.1:${gw.app.address.port}`, grpc.credentials.createInsecure()) as unknown as
    grpc.Client & { Chat: (r: object, md: grpc.Metadata) => grpc.ClientReadableStream<{ delta?: { content: string; toolCalls: Array<{ index: number }> }; done?: { id: string } }> };
  const md = new grpc.Metadata();
  md.set("authorization", gw.authorization);
  const messages: Array<{ delta?: { content: string; toolCalls: Array<{ index: number }> }; done?: { id: string } }> = [];
  const status = await new Promise<grpc.StatusObject>((resolve) => {
    const call = client.Chat({ model: "qwen-plus", messages: [{ role: "user", content: "hi" }] }, md);
    call.on("data", (m) => messages.push(m));
    call.on("status", resolve);
    call.on("error", () => {});
  });
  client.close();
  expect(status.code).toBe(grpc.status.OK);
  expect(messages.at(-1)!.done).toBeDefined();
  expect(messages.flatMap((m) => m.delta?.toolCalls.map((t) => t.index) ?? [])).toEqual([0, 4294967295]);
  expect(messages.map((m) => m.delta?.content ?? "").join("")).toBe("done");
});
