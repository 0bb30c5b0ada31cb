// Six fixes reported by outside clients (issue 10), each checked the way that
// client met it, against a real gateway and its fake upstream: reflection
// under its older v1alpha name (grpc-js + proto-loader, as grpcurl-era tools
// do), a weak GATEWAYZ_ADMIN_KEY refused at start, 429s that waiting cannot
// cure telling the OpenAI SDK not to retry, an upstream's 429 told apart from
// the key's own, a revoked key's request recorded under that key, and usage
// always reported, with OpenAI's chat framing in the estimate.

import { spawn } from "node:child_process";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { countTokens } from "gpt-tokenizer/encoding/cl100k_base";
import OpenAI, { AuthenticationError, RateLimitError } from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GatewayService } from "../../gen/gatewayz/v1/gateway_pb.js";
import { ErrorInfoSchema, QuotaFailureSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { loadConfig } from "../../src/config.js";
import { grpcChat } from "../support/grpc-chat.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { ROOT } from "../support/node-child.js";

const HI = [{ role: "user" as const, content: "hi" }];

let gw: TestGateway;
let users = 0;

beforeAll(async () => {
  gw = await startTestGateway();
});

afterAll(async () => {
  await gw?.close();
});

beforeEach(() => {
  gw.fake.reset();
});

function newKey(limits: Record<string, unknown> = {}, g: TestGateway = gw): { key: string; id: string } {
  const { key, record } = g.app.accounts.createKey({ user: `outside-${++users}`, name: "k", ...limits });
  return { key, id: record.id };
}

/** An OpenAI SDK client that counts the HTTP requests it makes (retries included). */
function countingClient(apiKey: string, maxRetries: number, g: TestGateway = gw): { client: OpenAI; calls: () => number } {
  let n = 0;
  const client = new OpenAI({
    apiKey, baseURL: `${g.url}/v1`, maxRetries, timeout: 20_000,
    fetch: (input, init) => {
      n++;
      return fetch(input, init);
    },
  });
  return { client, calls: () => n };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => undefined, (e: unknown) => e);
}

/** One Chat over an RPC transport, run to its end; the ConnectError if it failed. */
async function rpcChatError(transport: Transport, key: string, extra: Record<string, unknown> = {}): Promise<ConnectError | undefined> {
  const client = createClient(GatewayService, transport);
  const err = await rejection((async () => {
    for await (const _ of client.chat({ model: "qwen-plus", messages: HI, ...extra }, { headers: { authorization: `Bearer ${key}` } })) { /* drain */ }
  })());
  return err === undefined ? undefined : ConnectError.from(err);
}

const grpcTransport = (g: TestGateway) => createGrpcTransport({ baseUrl: g.url });
const connectTransport = (g: TestGateway) => createConnectTransport({ baseUrl: g.url, httpVersion: "1.1" });

/** Waits out the last seconds of a UTC minute so an rpm test never straddles two windows. */
async function inFreshMinute(): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 3_000) await new Promise((r) => setTimeout(r, left + 50));
}

describe("1. gRPC reflection as grpc.reflection.v1alpha", () => {
  interface V1alphaResponse {
    message_response: string;
    list_services_response?: { service: Array<{ name: string }> };
    file_descriptor_response?: { file_descriptor_proto: Buffer[] };
    error_response?: { error_code: number };
  }
  type ReflectionClient = grpc.Client & {
    ServerReflectionInfo(metadata?: grpc.Metadata): grpc.ClientDuplexStream<object, V1alphaResponse>;
  };

  /** Sends the requests on one stream, without any key, and collects the answers. */
  async function reflect(requests: object[]): Promise<V1alphaResponse[]> {
    const def = protoLoader.loadSync("grpc/reflection/v1alpha/reflection.proto", {
      includeDirs: [`${ROOT}/proto`], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      grpc: { reflection: { v1alpha: { ServerReflection: new (address: string, creds: grpc.ChannelCredentials) => ReflectionClient } } };
    };
    const client = new pkg.grpc.reflection.v1alpha.ServerReflection(new URL(gw.url).host, grpc.credentials.createInsecure());
    try {
      return await new Promise((resolve, reject) => {
        const out: V1alphaResponse[] = [];
        const call = client.ServerReflectionInfo();
        call.on("data", (m: V1alphaResponse) => {
          out.push(m);
          if (out.length === requests.length) call.end();
        });
        call.on("error", reject);
        call.on("end", () => resolve(out));
        for (const r of requests) call.write({ host: "localhost", ...r });
      });
    } finally {
      client.close();
    }
  }

  it("lists the services (v1 and v1alpha reflection among them) and serves a file with its dependencies, with no key", async () => {
    const [list, file] = await reflect([{ list_services: "*" }, { file_containing_symbol: "gatewayz.v1.GatewayService" }]);
    expect(list!.message_response).toBe("list_services_response");
    expect(list!.list_services_response!.service.map((s) => s.name)).toEqual(expect.arrayContaining([
      "gatewayz.v1.GatewayService", "gatewayz.v1.AdminService", "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
    ]));
    expect(file!.message_response).toBe("file_descriptor_response");
    const fds = file!.file_descriptor_response!.file_descriptor_proto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
    expect(fds[0]!.name).toBe("gatewayz/v1/gateway.proto");
    expect(fds[0]!.service.map((s) => s.name)).toContain("GatewayService");
    expect(fds.map((f) => f.name)).toContain("google/protobuf/struct.proto");
  });

  it("answers an unknown symbol with NOT_FOUND in error_response, as v1 does", async () => {
    const [res] = await reflect([{ file_containing_symbol: "gatewayz.v1.Nope" }]);
    expect(res!.message_response).toBe("error_response");
    expect(res!.error_response!.error_code).toBe(grpc.status.NOT_FOUND);
  });
});

describe("2. GATEWAYZ_ADMIN_KEY must be a strong secret", () => {
  const NO_FILE = { ENV_FILE: "/nonexistent/.env" };
  const STRONG = "gw_admin_" + "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4f";

  it("loadConfig refuses a value not of the form gw_admin_ + at least 32 base62 characters, naming the variable but not the value", () => {
    for (const weak of ["secret", "gw_admin_" + "a".repeat(31), "gw_live_" + "A".repeat(32), "gw_admin_" + "x".repeat(31) + "!", ` ${STRONG}`]) {
      let message = "";
      try {
        loadConfig({ ...NO_FILE, GATEWAYZ_ADMIN_KEY: weak });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, weak).toMatch(/^GATEWAYZ_ADMIN_KEY must be gw_admin_ followed by at least 32 random base62 characters/);
      expect(message).not.toContain(weak.trim());
    }
    expect(loadConfig({ ...NO_FILE, GATEWAYZ_ADMIN_KEY: STRONG }).adminKey).toBe(STRONG);
    expect(loadConfig({ ...NO_FILE, GATEWAYZ_ADMIN_KEY: STRONG + "MoreRandom42" }).adminKey).toBe(STRONG + "MoreRandom42");
    expect(loadConfig(NO_FILE).adminKey).toBeUndefined();
  });

  it("the gateway process exits 2 with a configuration error when it is `secret`", async () => {
    const exit = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
        cwd: ROOT,
        env: { ...process.env, ENV_FILE: "/nonexistent/.env", GATEWAYZ_ADMIN_KEY: "secret", PORT: "0", DATABASE_PATH: ":memory:", HOST: "127.0.0.1" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      // A gateway that accepted the value would start and serve: end it, the test has failed.
      const started = setTimeout(() => child.kill("SIGKILL"), 20_000);
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      child.on("error", reject);
      child.on("close", (code) => {
        clearTimeout(started);
        resolve({ code, stderr });
      });
    });
    expect(exit.code).toBe(2);
    expect(exit.stderr).toMatch(/gatewayz: configuration error: GATEWAYZ_ADMIN_KEY must be gw_admin_/);
    expect(exit.stderr).not.toContain("secret");
  }, 30_000);
});

describe("3. a 429 that waiting cannot cure says so: no Retry-After, x-should-retry: false", () => {
  it("one request above the key's tpm limit: the OpenAI SDK (maxRetries 2) sends it once and fails", async () => {
    const { key } = newKey({ tpm: 300 });
    const { client, calls } = countingClient(key, 2);
    const started = Date.now();
    const err = await rejection(client.chat.completions.create({ model: "qwen-plus", messages: HI, max_tokens: 1000 }));
    expect(err).toBeInstanceOf(RateLimitError);
    const e = err as RateLimitError;
    expect(calls()).toBe(1);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(e.headers.get("retry-after")).toBeNull();
    expect(e.headers.get("retry-after-ms")).toBeNull();
    expect(e.headers.get("x-should-retry")).toBe("false");
    expect(e.code).toBe("rate_limit_exceeded");
    expect(e.type).toBe("tokens");
    expect(e.message).toMatch(/needs an estimated \d+ tokens, more than the key's limit of 300 tokens per minute; lower max_tokens/);
    expect(gw.fake.requests).toHaveLength(0);
  });

  it("the same over the user's tpm limit, and over the gateway's (RATE_LIMITS_SYSTEM)", async () => {
    const g = await startTestGateway({ RATE_LIMITS_SYSTEM: "tpm=500" });
    try {
      const { key } = newKey({}, g);
      g.app.accounts.setLimits({ scope: "user", user: `outside-${users}` }, { tpm: 400 });
      const { client, calls } = countingClient(key, 2, g);
      const user = (await rejection(client.chat.completions.create({ model: "qwen-plus", messages: HI, max_tokens: 450 }))) as RateLimitError;
      expect(user).toBeInstanceOf(RateLimitError);
      expect(user.message).toMatch(/more than the user's limit of 400 tokens per minute/);
      expect(user.headers.get("x-should-retry")).toBe("false");
      expect(user.headers.get("retry-after")).toBeNull();
      g.app.accounts.setLimits({ scope: "user", user: `outside-${users}` }, { tpm: null });
      const system = (await rejection(client.chat.completions.create({ model: "qwen-plus", messages: HI, max_tokens: 600 }))) as RateLimitError;
      expect(system.message).toMatch(/more than the gateway's limit of 500 tokens per minute/);
      expect(system.headers.get("x-should-retry")).toBe("false");
      expect(system.headers.get("retry-after")).toBeNull();
      expect(calls()).toBe(2);
    } finally {
      await g.close();
    }
  });

  it("a used-up budget: sent once, 429 insufficient_quota with x-should-retry: false and no Retry-After", async () => {
    const { key } = newKey({ budgetUsd: "0.000001" });
    gw.fake.enqueue({ kind: "reply", usage: { prompt_tokens: 100, completion_tokens: 100 } });
    const { client, calls } = countingClient(key, 2);
    await client.chat.completions.create({ model: "qwen-plus", messages: HI });
    const err = (await rejection(client.chat.completions.create({ model: "qwen-plus", messages: HI }))) as RateLimitError;
    expect(err).toBeInstanceOf(RateLimitError);
    expect(err.code).toBe("insufficient_quota");
    expect(calls()).toBe(2);
    expect(err.headers.get("retry-after")).toBeNull();
    expect(err.headers.get("x-should-retry")).toBe("false");
  });

  it("an ordinary rpm 429 keeps its Retry-After, and says nothing against retrying", async () => {
    await inFreshMinute();
    const { key } = newKey({ rpm: 1 });
    const { client } = countingClient(key, 0);
    await client.chat.completions.create({ model: "qwen-plus", messages: HI });
    const err = (await rejection(client.chat.completions.create({ model: "qwen-plus", messages: HI }))) as RateLimitError;
    expect(err).toBeInstanceOf(RateLimitError);
    const retryAfter = Number(err.headers.get("retry-after"));
    expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60).toBe(true);
    expect(err.headers.get("x-should-retry")).toBeNull();
  });

  it.each([["gRPC", grpcTransport], ["Connect", connectTransport]])("%s: RESOURCE_EXHAUSTED without RetryInfo or retry-after for the incurable case, with them for rpm", async (_name, transport) => {
    const { key: big } = newKey({ tpm: 300 });
    const incurable = await rpcChatError(transport(gw), big, { maxTokens: 1000 });
    expect(incurable?.code).toBe(Code.ResourceExhausted);
    expect(incurable!.findDetails(RetryInfoSchema)).toEqual([]);
    expect(incurable!.findDetails(QuotaFailureSchema)[0]?.violations.map((v) => v.description)).toEqual(["300 tokens per minute"]);
    expect(incurable!.findDetails(ErrorInfoSchema).map((i) => i.reason)).toEqual(["RATE_LIMITED"]);
    expect(incurable!.metadata.get("retry-after")).toBeNull();
    expect(incurable!.metadata.get("x-should-retry")).toBe("false");

    await inFreshMinute();
    const { key: slow } = newKey({ rpm: 1 });
    expect(await rpcChatError(transport(gw), slow)).toBeUndefined();
    const ordinary = await rpcChatError(transport(gw), slow);
    expect(ordinary?.code).toBe(Code.ResourceExhausted);
    expect(ordinary!.findDetails(RetryInfoSchema)).toHaveLength(1);
    expect(Number(ordinary!.metadata.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(ordinary!.metadata.get("x-should-retry")).toBeNull();
  });
});

describe("4. an upstream's 429 is told apart from the key's own limit", () => {
  const upstream429 = { kind: "error", status: 429, type: "rate_limit_error", message: "Requests rate limit exceeded", headers: { "retry-after": "7" } } as const;

  it("OpenAI door: 429 with code upstream_rate_limited (the key's own limit says rate_limit_exceeded), the upstream's Retry-After passed on", async () => {
    gw.fake.enqueue(upstream429);
    const { client } = countingClient(gw.key, 0);
    const err = (await rejection(client.chat.completions.create({ model: "qwen-plus", messages: HI }))) as RateLimitError;
    expect(err).toBeInstanceOf(RateLimitError);
    expect(err.status).toBe(429);
    expect(err.code).toBe("upstream_rate_limited");
    expect(err.type).toBe("requests");
    expect(err.message).toMatch(/Alibaba Cloud is rate limiting the gateway \(429\)/);
    expect(err.headers.get("retry-after")).toBe("7");
    expect(err.headers.get("x-should-retry")).toBeNull();

    const { key } = newKey({ tpm: 300 });
    const own = (await rejection(countingClient(key, 0).client.chat.completions.create({ model: "qwen-plus", messages: HI, max_tokens: 1000 }))) as RateLimitError;
    expect(own.code).toBe("rate_limit_exceeded");
  });

  it("OpenAI door, streaming: the same before the first chunk", async () => {
    gw.fake.enqueue(upstream429);
    const err = (await rejection(countingClient(gw.key, 0).client.chat.completions.create({ model: "qwen-plus", messages: HI, stream: true }))) as RateLimitError;
    expect(err).toBeInstanceOf(RateLimitError);
    expect(err.code).toBe("upstream_rate_limited");
  });

  it.each([["gRPC", grpcTransport], ["Connect", connectTransport]])("%s: RESOURCE_EXHAUSTED with ErrorInfo UPSTREAM_RATE_LIMITED (the key's own: RATE_LIMITED)", async (_name, transport) => {
    gw.fake.enqueue(upstream429);
    const err = await rpcChatError(transport(gw), gw.key);
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(err!.findDetails(ErrorInfoSchema).map((i) => [i.reason, i.domain])).toEqual([["UPSTREAM_RATE_LIMITED", "gatewayz"]]);
    expect(err!.findDetails(QuotaFailureSchema)).toEqual([]);
    expect(err!.metadata.get("retry-after")).toBe("7");

    await inFreshMinute();
    const { key } = newKey({ rpm: 1 });
    await rpcChatError(transport(gw), key);
    const own = await rpcChatError(transport(gw), key);
    expect(own!.findDetails(ErrorInfoSchema).map((i) => [i.reason, i.domain])).toEqual([["RATE_LIMITED", "gatewayz"]]);
  });

  it("every provider answering 429 (failover on): still upstream_rate_limited, every provider tried; with FAILOVER_ON_429=false only the first", async () => {
    const model = "qwen-2.5-72b-instruct";
    for (const [env, tried] of [[{}, 2], [{ FAILOVER_ON_429: "false" }, 1]] as const) {
      const g = await startTestGateway(env, { providers: ["together"] });
      try {
        const everyFake429 = () => {
          for (const f of Object.values(g.fakes)) {
            f.reset();
            f.enqueue({ kind: "error", status: 429 });
          }
        };
        everyFake429();
        const err = (await rejection(countingClient(g.key, 0, g).client.chat.completions.create({ model, messages: HI }))) as RateLimitError;
        expect(err).toBeInstanceOf(RateLimitError);
        expect(err.code).toBe("upstream_rate_limited");
        expect(Object.values(g.fakes).reduce((n, f) => n + f.requests.length, 0)).toBe(tried);
        everyFake429();
        const rpc = await rpcChatError(grpcTransport(g), g.key, { model });
        expect(rpc?.code).toBe(Code.ResourceExhausted);
        expect(rpc!.findDetails(ErrorInfoSchema).map((i) => i.reason)).toEqual(["UPSTREAM_RATE_LIMITED"]);
      } finally {
        await g.close();
      }
    }
  });
});

describe("5. a revoked or rotated key's request is recorded under that key", () => {
  interface Row { key_id: string | null; user_id: string | null; protocol: string; status: string; error_kind: string | null; requested_model: string }
  const rowsOf = (keyId: string) => gw.app.db.prepare("SELECT * FROM usage WHERE key_id = ? ORDER BY id").all(keyId) as Row[];
  const nullRows = () => (gw.app.db.prepare("SELECT COUNT(*) AS n FROM usage WHERE key_id IS NULL").get() as { n: number }).n;

  it("revoked: 401 invalid_api_key on the OpenAI door (plain and streaming) and over gRPC, each leaving a row under its key id", async () => {
    const created = gw.app.accounts.createKey({ user: "outside-revoked", name: "laptop" });
    gw.app.accounts.revokeKey(created.record.id);
    const nullBefore = nullRows();
    const { client } = countingClient(created.key, 0);
    const plain = await rejection(client.chat.completions.create({ model: "qwen-plus", messages: HI }));
    expect(plain).toBeInstanceOf(AuthenticationError);
    expect((plain as AuthenticationError).code).toBe("invalid_api_key");
    expect(await rejection(client.chat.completions.create({ model: "qwen-plus", messages: HI, stream: true }))).toBeInstanceOf(AuthenticationError);
    const rpc = await grpcChat(gw.url, `Bearer ${created.key}`, { model: "qwen-plus", messages: HI });
    expect(rpc.status.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(rpc.status.details).toBe("the API key has been revoked");
    const rows = rowsOf(created.record.id);
    expect(rows.map((r) => [r.protocol, r.status, r.error_kind, r.user_id])).toEqual([
      ["openai", "rejected", "unauthenticated", created.record.userId],
      ["openai", "rejected", "unauthenticated", created.record.userId],
      ["grpc", "rejected", "unauthenticated", created.record.userId],
    ]);
    expect(nullRows()).toBe(nullBefore);
    expect(gw.fake.requests).toHaveLength(0);
  });

  it("rotated: the old key is refused and recorded under the old id, the new key works under the new id", async () => {
    const old = gw.app.accounts.createKey({ user: "outside-rotated", name: "ci" });
    const fresh = gw.app.accounts.rotateKey(old.record.id);
    const err = await rpcChatError(connectTransport(gw), old.key);
    expect(err?.code).toBe(Code.Unauthenticated);
    expect(await rpcChatError(connectTransport(gw), fresh.key)).toBeUndefined();
    expect(rowsOf(old.record.id).map((r) => [r.protocol, r.status, r.error_kind])).toEqual([["connect", "rejected", "unauthenticated"]]);
    expect(rowsOf(fresh.record.id).map((r) => [r.protocol, r.status, r.error_kind])).toEqual([["connect", "ok", null]]);
  });

  it("an unknown key still leaves no row", async () => {
    const before = (gw.app.db.prepare("SELECT COUNT(*) AS n FROM usage").get() as { n: number }).n;
    const err = await rejection(countingClient(`gw_live_${"Q".repeat(32)}`, 0).client.chat.completions.create({ model: "qwen-plus", messages: HI }));
    expect(err).toBeInstanceOf(AuthenticationError);
    await new Promise((r) => setTimeout(r, 20));
    expect((gw.app.db.prepare("SELECT COUNT(*) AS n FROM usage").get() as { n: number }).n).toBe(before);
  });
});

describe("6. an upstream that reports no usage: the client still gets the estimate, framing included", () => {
  const MESSAGES = [
    { role: "system" as const, content: "You are terse." },
    { role: "user" as const, content: "Say hello to the world" },
  ];
  // OpenAI's count for cl100k chat models: 3 a message beyond its role and content, 3 priming the reply.
  const PROMPT = MESSAGES.reduce((n, m) => n + 3 + countTokens(m.role) + countTokens(m.content), 3);
  const COMPLETION = countTokens("Hello from qwen-plus");
  const USAGE = { prompt_tokens: PROMPT, completion_tokens: COMPLETION, total_tokens: PROMPT + COMPLETION };
  const lastRow = () => gw.app.db.prepare("SELECT * FROM usage ORDER BY id DESC LIMIT 1").get() as { prompt_tokens: number; completion_tokens: number; estimated: number };

  it("the known prompt is 20 tokens, as OpenAI counts it", () => {
    expect(PROMPT).toBe(20);
  });

  it("OpenAI door, non-streaming: `usage` is the estimate, the same as the row's", async () => {
    gw.fake.enqueue({ kind: "reply", usage: null });
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: gw.authorization, "content-type": "application/json" },
      body: JSON.stringify({ model: "qwen-plus", messages: MESSAGES }),
    });
    const body = (await res.json()) as { usage: unknown };
    expect(res.status).toBe(200);
    expect(body.usage).toEqual(USAGE);
    expect(lastRow()).toMatchObject({ prompt_tokens: PROMPT, completion_tokens: COMPLETION, estimated: 1 });
  });

  it("OpenAI door, streaming with include_usage: the usage chunk carries the estimate; without it, no usage", async () => {
    gw.fake.enqueue({ kind: "reply", usage: null }, { kind: "reply", usage: null });
    const { client } = countingClient(gw.key, 0);
    const stream = await client.chat.completions.create({ model: "qwen-plus", messages: MESSAGES, stream: true, stream_options: { include_usage: true } });
    const usages: unknown[] = [];
    for await (const chunk of stream) if (chunk.usage) usages.push(chunk.usage);
    expect(usages).toEqual([USAGE]);
    const quiet = await client.chat.completions.create({ model: "qwen-plus", messages: MESSAGES, stream: true });
    for await (const chunk of quiet) expect(chunk.usage ?? undefined).toBeUndefined();
  });

  it("gRPC: the done message carries the estimate", async () => {
    gw.fake.enqueue({ kind: "reply", usage: null });
    const { done, status } = await grpcChat(gw.url, gw.authorization, { model: "qwen-plus", messages: MESSAGES });
    expect(status.code).toBe(grpc.status.OK);
    expect(done?.usage).toMatchObject(USAGE);
  });
});
