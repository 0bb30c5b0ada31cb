// Keys scoped to models, end to end: keys made by the real `gatewayz` CLI
// (bundled once, run as child processes on the gateway's own SQLite file)
// with `--models 'qwen-plus,qwen3*'`, a real gateway listening on an
// ephemeral port that uses them, and real clients on every door: the openai
// SDK and plain fetch on the OpenAI-compatible door, grpc-js on gRPC (the
// .proto loaded by @grpc/proto-loader, so nothing relies on generated code),
// connect-node on Connect. A model outside the key's list is refused with 403
// model_not_allowed (PERMISSION_DENIED, reason MODEL_NOT_ALLOWED) after its
// name is resolved, so an alias or `qwen/` prefix is no way round it; the
// model lists show only what the key may call; `keys update --models` and
// `keys rotate` change and keep the list; AdminService's CreateKey takes it.

import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import OpenAI, { AuthenticationError, PermissionDeniedError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatewayService } from "../../gen/gatewayz/v1/gateway_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { cliRunner } from "../support/cli-runner.js";
import { door as rawDoor } from "../support/http-door.js";
import { bundleGateway, type GatewayBundle } from "../support/gateway-bundle.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { grpcChat } from "../support/grpc-chat.js";
import { ROOT } from "../support/node-child.js";

const HI = [{ role: "user" as const, content: "hi" }];
const SCOPE = "qwen-plus,qwen3*";

/** The shipped catalog, read as data: what the key's scope is compared against. */
const CATALOG = (JSON.parse(readFileSync(join(ROOT, "src/data/models.json"), "utf8")) as { models: Array<{ id: string; aliases: string[]; kind?: string }> }).models;
const inScope = (id: string) => id === "qwen-plus" || id.startsWith("qwen3");
/** Every catalog id the scope 'qwen-plus,qwen3*' covers, in catalog order. */
const ALLOWED = CATALOG.map((m) => m.id).filter(inScope);
const aliasesOf = (id: string) => CATALOG.find((m) => m.id === id)?.aliases ?? [];

interface UsageRow { id: number; key_id: string | null; protocol: string; operation: string; requested_model: string; status: string; error_kind: string | null }

let dir: string;
let dbPath: string;
let cli: GatewayBundle;
let gw: TestGateway;
/** The key made with --models 'qwen-plus,qwen3*', and its id. */
let scoped: { key: string; id: string; models: unknown };
let adminKey: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gatewayz-key-models-"));
  dbPath = join(dir, "g.db");
  // The gateway first, so the file exists (and is migrated) before any CLI run.
  [gw, cli] = await Promise.all([startTestGateway({ DATABASE_PATH: dbPath }), bundleGateway("src/cli.ts")]);
  const [made, admin] = await Promise.all([
    json(dbPath, "keys", "create", "--user", "scoped", "--name", "app", "--models", SCOPE),
    json(dbPath, "keys", "create", "--user", "root", "--name", "ops", "--admin"),
  ]);
  scoped = made;
  adminKey = admin.key;
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await gw?.close();
  cli?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const { onDb, json } = cliRunner(() => cli.entry);

/** A key as `keys list --all --json` shows it. */
async function listed(id: string): Promise<any> {
  const keys = (await json(dbPath, "keys", "list", "--all")) as Array<{ id: string }>;
  const k = keys.find((x) => x.id === id);
  expect(k, `keys list --all has no key ${id}`).toBeDefined();
  return k;
}

const rejection = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

const openai = (apiKey: string) => new OpenAI({ apiKey, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 10_000 });
const sdkChat = (apiKey: string, model: string) => openai(apiKey).chat.completions.create({ model, messages: HI });

/** A raw request on the OpenAI door (or a Connect unary call), its status and parsed JSON body. */
const door = (method: "GET" | "POST", path: string, key: string, body?: object) => rawDoor(gw.url, method, path, key, body);

const listedIds = async (key: string): Promise<string[]> => {
  const r = await door("GET", "/v1/models", key);
  expect(r.status).toBe(200);
  return (r.body.data as Array<{ id: string }>).map((m) => m.id);
};

/** What a refusal of `id` says in OpenAI's error JSON. */
const refusedJson = (id: string) => ({
  error: { code: "model_not_allowed", type: "permission_error", param: "model", message: expect.stringContaining(`'${id}'`) },
});

/** The openai SDK's error for a refused model: PermissionDeniedError, 403, model_not_allowed, naming the catalog id. */
function expectRefused(err: unknown, id: string): void {
  expect(err, `expected a PermissionDeniedError for ${id}`).toBeInstanceOf(PermissionDeniedError);
  const e = err as PermissionDeniedError;
  expect(e.status).toBe(403);
  expect(e.code).toBe("model_not_allowed");
  expect(e.type).toBe("permission_error");
  expect(e.message).toContain(`'${id}'`);
}

const upstreamModels = () => gw.fake.requests.map((r) => r.body?.model as string);

const rowsOfKey = (keyId: string, afterId = 0) =>
  gw.app.db.prepare("SELECT * FROM usage WHERE key_id = ? AND id > ? ORDER BY id").all(keyId, afterId) as UsageRow[];
const lastRowId = () => (gw.app.db.prepare("SELECT COALESCE(MAX(id), 0) AS m FROM usage").get() as { m: number }).m;

// ---------------------------------------------------------------- grpc-js on the .proto files

type Unary = (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: any) => void) => void;
type RpcClient = grpc.Client & Record<string, Unary>;
type Ctor = new (address: string, credentials: grpc.ChannelCredentials) => RpcClient;

const clients: RpcClient[] = [];
let services: { GatewayService: Ctor; AdminService: Ctor } | undefined;

function client(service: "GatewayService" | "AdminService"): RpcClient {
  services ??= (() => {
    const def = protoLoader.loadSync(["gatewayz/v1/gateway.proto", "gatewayz/v1/admin.proto"], {
      includeDirs: [join(ROOT, "proto")], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
    });
    return (grpc.loadPackageDefinition(def) as unknown as { gatewayz: { v1: { GatewayService: Ctor; AdminService: Ctor } } }).gatewayz.v1;
  })();
  const c = new services[service](new URL(gw.url).host, grpc.credentials.createInsecure());
  clients.push(c);
  return c;
}

let gatewayClient: RpcClient | undefined;
let adminClient: RpcClient | undefined;

/** One unary call over grpc-js with `key`: its answer, or the error. */
function unary(service: "GatewayService" | "AdminService", method: string, key: string, req: object): Promise<{ err: grpc.ServiceError | null; res: any }> {
  const c = service === "GatewayService" ? (gatewayClient ??= client(service)) : (adminClient ??= client(service));
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${key}`);
  return new Promise((resolve) => c[method]!(req, md, (err, res) => resolve({ err, res })));
}

/** The google.rpc.ErrorInfo reasons in a gRPC status's grpc-status-details-bin, decoded as Connect's gRPC client does. */
function grpcReasons(status: { code: number; details: string; metadata: grpc.Metadata }): string[] {
  const bin = status.metadata.get("grpc-status-details-bin")[0];
  if (!(bin instanceof Buffer)) return [];
  const decoded = findTrailerError(new Headers({
    "grpc-status": String(status.code),
    "grpc-message": encodeURIComponent(status.details),
    "grpc-status-details-bin": bin.toString("base64"),
  }));
  return decoded?.findDetails(ErrorInfoSchema).map((i) => i.reason) ?? [];
}

const connectClient = () => createClient(GatewayService, createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1" }));

/** One Chat over Connect, drained; the ConnectError if it failed. */
async function connectChatError(key: string, model: string): Promise<ConnectError | undefined> {
  const err = await rejection((async () => {
    for await (const _ of connectClient().chat({ model, messages: HI }, { headers: { authorization: `Bearer ${key}` } })) { /* drain */ }
  })());
  return err === undefined ? undefined : ConnectError.from(err);
}

// ---------------------------------------------------------------- the tests

describe(`a key made with keys create --models '${SCOPE}'`, { timeout: 30_000 }, () => {
  it("stores the list as given; keys list shows it in text and as a JSON array", async () => {
    expect(scoped.key).toMatch(/^gw_live_[0-9A-Za-z]{32}$/);
    expect(scoped.models).toEqual(["qwen-plus", "qwen3*"]);
    const text = await onDb(dbPath)("keys", "list", "--user", "scoped");
    expect(text.code, text.stderr).toBe(0);
    const line = text.stdout.split("\n").find((l) => l.startsWith(`${scoped.id} `));
    expect(line, text.stdout).toBeDefined();
    expect(line).toMatch(/\sqwen-plus,qwen3\*\s/);
    expect((await listed(scoped.id)).models).toEqual(["qwen-plus", "qwen3*"]);
    // The gateway's own unscoped key lists null: every model.
    const all = (await json(dbPath, "keys", "list", "--user", "test")) as Array<{ models: unknown }>;
    expect(all.map((k) => k.models)).toEqual([null]);
  });

  it("GET /v1/models lists exactly qwen-plus and the catalog's qwen3* models; an unscoped key sees the whole catalog", async () => {
    expect(ALLOWED).toContain("qwen-plus");
    expect(ALLOWED).toContain("qwen3-max");
    expect(ALLOWED.length).toBeGreaterThan(3);
    const everything = await listedIds(gw.key);
    expect(everything).toEqual(CATALOG.map((m) => m.id));
    expect(await listedIds(scoped.key)).toEqual(everything.filter(inScope));
    expect(await listedIds(scoped.key)).toEqual(ALLOWED);

    const one = await door("GET", "/v1/models/qwen-3-max", scoped.key); // an alias of qwen3-max
    expect(one.status).toBe(200);
    expect(one.body.id).toBe("qwen3-max");
    expect((await door("GET", "/v1/models/qwen-plus", scoped.key)).status).toBe(200);
  });

  it("allowed models answer on the OpenAI door (chat and Responses), gRPC and Connect, under any of their names, and reach the upstream", async () => {
    gw.fake.reset();
    const sdk = openai(scoped.key);
    // Each name the client may use, and the catalog model (its upstream id here) the fake should be asked for.
    const names: Record<string, string> = {
      "qwen-plus": "qwen-plus", "QWEN-PLUS": "qwen-plus", "qwen/qwen-plus": "qwen-plus", "alibaba-cloud/qwen-plus": "qwen-plus",
      ...Object.fromEntries(aliasesOf("qwen-plus").map((a) => [a, "qwen-plus"])),
      "qwen3-max": "qwen3-max", "qwen-3-max": "qwen3-max", "qwen3-32b": "qwen3-32b",
    };
    const chats = await Promise.all(Object.keys(names).map((model) => sdkChat(scoped.key, model)));
    for (const c of chats) expect(c.choices[0]!.message.content).toMatch(/^Hello from qwen/);
    const streamed: string[] = [];
    for await (const chunk of await sdk.chat.completions.create({ model: "qwen3-8b", messages: HI, stream: true })) {
      streamed.push(chunk.choices[0]?.delta?.content ?? "");
    }
    expect(streamed.join("")).toBe("Hello from qwen3-8b");
    const response = await sdk.responses.create({ model: "qwen-plus", input: "Hello" });
    expect(response.output_text).toBe("Hello from qwen-plus");

    const rpc = await grpcChat(gw.url, `Bearer ${scoped.key}`, { model: "qwen3-14b", messages: HI });
    expect(rpc.status.code, rpc.status.details).toBe(grpc.status.OK);
    expect(rpc.done?.finish_reason).toBeTruthy();
    expect(await connectChatError(scoped.key, "qwen/qwen-plus")).toBeUndefined();

    // Each call reached the fake, under the catalog model's upstream id.
    const expected = [...Object.values(names), "qwen3-8b", "qwen-plus", "qwen3-14b", "qwen-plus"];
    expect(upstreamModels().sort()).toEqual(expected.sort());
  });

  it("any other model is 403 model_not_allowed on chat (the SDK's PermissionDeniedError, streaming too), Responses, embeddings and GET /v1/models/{id}; nothing reaches the upstream", async () => {
    gw.fake.reset();
    const sdk = openai(scoped.key);
    // qwen-max under its id, its provider prefixes, another case and any alias the catalog gives it.
    const maxNames = ["qwen-max", "qwen/qwen-max", "alibaba/qwen-max", "alibaba-cloud/qwen-max", "QWEN-MAX", ...aliasesOf("qwen-max")];
    for (const model of maxNames) expectRefused(await rejection(sdkChat(scoped.key, model)), "qwen-max");
    // Prefixes match catalog ids, not the name asked for: qwen3-coder is an alias of qwen-coder, which is not a qwen3* id.
    expect(aliasesOf("qwen-coder")).toContain("qwen3-coder");
    expectRefused(await rejection(sdkChat(scoped.key, "qwen3-coder")), "qwen-coder");
    expectRefused(await rejection(sdkChat(scoped.key, "qwen3-coder-plus")), "qwen-coder"); // its upstream id
    expectRefused(await rejection(sdkChat(scoped.key, "qwen3-next-80b-a3b-instruct")), "qwen-3-80b-a3b-instruct");
    expectRefused(await rejection(sdkChat(scoped.key, "qwen-flash")), "qwen-flash");
    expectRefused(await rejection(sdk.chat.completions.create({ model: "qwen/qwen-max", messages: HI, stream: true })), "qwen-max");

    expectRefused(await rejection(sdk.responses.create({ model: "qwen-max", input: "Hello" })), "qwen-max");
    expectRefused(await rejection(sdk.responses.create({ model: "qwen/qwen-max", input: "Hello", stream: true })), "qwen-max");
    expectRefused(await rejection(sdk.embeddings.create({ model: "text-embedding-v4", input: "hello" })), "text-embedding-v4");

    // The same in plain HTTP: OpenAI's error JSON.
    const [chat, responses, embeddings, model, prefixed] = await Promise.all([
      door("POST", "/v1/chat/completions", scoped.key, { model: "qwen-max", messages: HI }),
      door("POST", "/v1/responses", scoped.key, { model: "qwen-max", input: "Hello" }),
      door("POST", "/v1/embeddings", scoped.key, { model: "text-embedding-v3", input: "hello" }),
      door("GET", "/v1/models/qwen-max", scoped.key),
      door("GET", `/v1/models/${encodeURIComponent("qwen/qwen-max")}`, scoped.key),
    ]);
    expect(chat).toEqual({ status: 403, body: refusedJson("qwen-max") });
    expect(responses).toEqual({ status: 403, body: refusedJson("qwen-max") });
    expect(embeddings).toEqual({ status: 403, body: refusedJson("text-embedding-v3") });
    expect(model).toEqual({ status: 403, body: refusedJson("qwen-max") });
    expect(prefixed).toEqual({ status: 403, body: refusedJson("qwen-max") });

    // The scope is checked before the model's kind, and an unknown model is still a 404.
    expect(await door("POST", "/v1/chat/completions", scoped.key, { model: "text-embedding-v4", messages: HI })).toEqual({ status: 403, body: refusedJson("text-embedding-v4") });
    const unknown = await door("POST", "/v1/chat/completions", scoped.key, { model: "qwen-nonesuch", messages: HI });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe("model_not_found");

    expect(gw.fake.requests).toEqual([]);
  });

  it("a refused chat leaves one usage row under the key: status rejected, error kind model_not_allowed", async () => {
    const mark = lastRowId();
    expectRefused(await rejection(sdkChat(scoped.key, "qwen-max")), "qwen-max");
    const rows = rowsOfKey(scoped.id, mark);
    expect(rows.map((r) => ({ protocol: r.protocol, operation: r.operation, requested_model: r.requested_model, status: r.status, error_kind: r.error_kind }))).toEqual([
      { protocol: "openai", operation: "chat", requested_model: "qwen-max", status: "rejected", error_kind: "model_not_allowed" },
    ]);
    // Nobody else's row came with it.
    expect(lastRowId()).toBe(rows[0]!.id);
  });

  it("gRPC (grpc-js): Chat and Embed are PERMISSION_DENIED with reason MODEL_NOT_ALLOWED; ListModels and GetPricing list only the allowed models", async () => {
    gw.fake.reset();
    const chat = await grpcChat(gw.url, `Bearer ${scoped.key}`, { model: "qwen/qwen-max", messages: HI });
    expect(chat.status.code, chat.status.details).toBe(grpc.status.PERMISSION_DENIED);
    expect(chat.status.details).toContain("'qwen-max'");
    expect(grpcReasons(chat.status)).toEqual(["MODEL_NOT_ALLOWED"]);
    expect(chat.messages).toEqual([]);

    const embed = await unary("GatewayService", "Embed", scoped.key, { model: "text-embedding-v4", input: ["hello"] });
    expect(embed.err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(grpcReasons(embed.err!)).toEqual(["MODEL_NOT_ALLOWED"]);
    expect(gw.fake.requests).toEqual([]);

    const [models, everything, prices, allPrices] = await Promise.all([
      unary("GatewayService", "ListModels", scoped.key, {}),
      unary("GatewayService", "ListModels", gw.key, {}),
      unary("GatewayService", "GetPricing", scoped.key, {}),
      unary("GatewayService", "GetPricing", gw.key, {}),
    ]);
    for (const r of [models, everything, prices, allPrices]) expect(r.err).toBeNull();
    expect((models.res.models as Array<{ id: string }>).map((m) => m.id)).toEqual(ALLOWED);
    expect((everything.res.models as Array<{ id: string }>).map((m) => m.id)).toEqual(CATALOG.map((m) => m.id));
    expect((prices.res.prices as Array<{ model: string }>).map((p) => p.model)).toEqual(ALLOWED);
    expect((allPrices.res.prices as Array<{ model: string }>).map((p) => p.model)).toEqual(CATALOG.map((m) => m.id));

    const [one, alias, refused] = await Promise.all([
      unary("GatewayService", "GetPricing", scoped.key, { model: "qwen-plus" }),
      unary("GatewayService", "GetPricing", scoped.key, { model: "qwen-3-max" }),
      unary("GatewayService", "GetPricing", scoped.key, { model: "qwen/qwen-max" }),
    ]);
    expect((one.res?.prices as Array<{ model: string }>).map((p) => p.model)).toEqual(["qwen-plus"]);
    expect((alias.res?.prices as Array<{ model: string }>).map((p) => p.model)).toEqual(["qwen3-max"]);
    expect(refused.err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(grpcReasons(refused.err!)).toEqual(["MODEL_NOT_ALLOWED"]);
  });

  it("Connect: Chat and GetPricing of another model are permission_denied (reason MODEL_NOT_ALLOWED); ListModels lists the allowed models", async () => {
    gw.fake.reset();
    const err = await connectChatError(scoped.key, "qwen-max");
    expect(err?.code).toBe(Code.PermissionDenied);
    expect(err?.rawMessage).toContain("'qwen-max'");
    expect(err?.findDetails(ErrorInfoSchema).map((i) => i.reason)).toEqual(["MODEL_NOT_ALLOWED"]);
    expect(gw.fake.requests).toEqual([]);

    // Connect's unary wire, as a browser or curl sees it.
    const pricing = await door("POST", "/gatewayz.v1.GatewayService/GetPricing", scoped.key, { model: "qwen-max" });
    expect(pricing.status).toBe(403);
    expect(pricing.body.code).toBe("permission_denied");
    expect(pricing.body.message).toContain("'qwen-max'");

    const listing = await connectClient().listModels({}, { headers: { authorization: `Bearer ${scoped.key}` } });
    expect(listing.models.map((m) => m.id)).toEqual(ALLOWED);
    const priced = await door("POST", "/gatewayz.v1.GatewayService/GetPricing", scoped.key, {});
    expect(priced.status).toBe(200);
    expect((priced.body.prices as Array<{ model: string }>).map((p) => p.model)).toEqual(ALLOWED);
  });
});

describe("keys update --models and keys rotate", { timeout: 30_000 }, () => {
  it("update --models all lets the key call every model on its next request; --models qwen-flash narrows it; keys list --json follows", async () => {
    const made = await json(dbPath, "keys", "create", "--user", "changing", "--name", "app", "--models", "qwen-plus");
    expect(made.models).toEqual(["qwen-plus"]);
    expectRefused(await rejection(sdkChat(made.key, "qwen-max")), "qwen-max");
    expect(await listedIds(made.key)).toEqual(["qwen-plus"]);

    const all = await onDb(dbPath)("keys", "update", made.id, "--models", "all");
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toContain("models all");
    expect((await listed(made.id)).models).toBeNull();
    // The running gateway sees the other process's change at once.
    gw.fake.reset();
    expect((await sdkChat(made.key, "qwen-max")).choices[0]!.message.content).toBe("Hello from qwen-max");
    expect(upstreamModels()).toEqual(["qwen-max"]);
    expect(await listedIds(made.key)).toEqual(CATALOG.map((m) => m.id));
    expect((await unary("GatewayService", "ListModels", made.key, {})).res.models).toHaveLength(CATALOG.length);

    const narrowed = await json(dbPath, "keys", "update", made.id, "--models", "qwen-flash");
    expect(narrowed.models).toEqual(["qwen-flash"]);
    expect((await listed(made.id)).models).toEqual(["qwen-flash"]);
    gw.fake.reset();
    expectRefused(await rejection(sdkChat(made.key, "qwen-plus")), "qwen-plus");
    expectRefused(await rejection(sdkChat(made.key, "qwen-max")), "qwen-max");
    expect((await sdkChat(made.key, "qwen-flash")).choices[0]!.message.content).toBe("Hello from qwen-flash");
    expect(upstreamModels()).toEqual(["qwen-flash"]);
    expect(await listedIds(made.key)).toEqual(["qwen-flash"]);

    // A bad value on update: exit 2 naming it, and the key keeps its list.
    const bad = await onDb(dbPath)("keys", "update", made.id, "--models", "qwen-pls");
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe("");
    expect(bad.stderr).toContain("'qwen-pls'");
    expect((await listed(made.id)).models).toEqual(["qwen-flash"]);
  });

  it("names are stored as catalog ids: an alias and a provider-prefixed name become the model's id", async () => {
    const made = await json(dbPath, "keys", "create", "--user", "names", "--name", "app", "--models", "qwen-3-max,qwen/qwen-flash");
    expect(made.models).toEqual(["qwen3-max", "qwen-flash"]);
    expect(await listedIds(made.key)).toEqual(["qwen-flash", "qwen3-max"].sort((a, b) => CATALOG.findIndex((m) => m.id === a) - CATALOG.findIndex((m) => m.id === b)));
  });

  it("keys rotate keeps the list: the new key is scoped like the old, and the old one is refused", async () => {
    const made = await json(dbPath, "keys", "create", "--user", "rotating", "--name", "app", "--models", SCOPE);
    const rotated = await json(dbPath, "keys", "rotate", made.id);
    expect(rotated.key).not.toBe(made.key);
    expect(rotated.replaces).toBe(made.id);
    expect(rotated.models).toEqual(["qwen-plus", "qwen3*"]);
    expect((await listed(rotated.id)).models).toEqual(["qwen-plus", "qwen3*"]);

    gw.fake.reset();
    expectRefused(await rejection(sdkChat(rotated.key, "qwen-max")), "qwen-max");
    expect((await sdkChat(rotated.key, "qwen3-max")).choices[0]!.message.content).toBe("Hello from qwen3-max");
    expect(await listedIds(rotated.key)).toEqual(ALLOWED);
    expect(await rejection(sdkChat(made.key, "qwen-plus"))).toBeInstanceOf(AuthenticationError);
    expect(upstreamModels()).toEqual(["qwen3-max"]);
  });
});

describe("bad --models values", { timeout: 30_000 }, () => {
  it.each([
    ["qwen-pls", "is not a catalog model"],
    ["zz*", "matches no catalog model"],
    ["", "is empty"],
  ])("keys create --models '%s': exit 2, the value named on stderr, no key made", async (value, why) => {
    const user = `bad-${value.replace(/\W/g, "") || "empty"}`;
    const r = await onDb(dbPath)("keys", "create", "--user", user, "--name", "app", "--models", value);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`--models '${value}' ${why}`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await json(dbPath, "keys", "list", "--all", "--user", user)).toEqual([]);

    // On a path with no database yet, the refusal creates none.
    const fresh = join(mkdtempSync(join(dir, "bad-")), "g.db");
    const none = await onDb(fresh)("keys", "create", "--user", user, "--name", "app", "--models", value);
    expect(none.code).toBe(2);
    expect(existsSync(fresh)).toBe(false);
  });
});

describe("AdminService CreateKey models (gRPC, an admin key made by the CLI)", { timeout: 30_000 }, () => {
  it("CreateKey with models [qwen-plus] gives KeyInfo.models [qwen-plus], ListKeys too, and the key is scoped; without models, empty", async () => {
    const { err, res } = await unary("AdminService", "CreateKey", adminKey, { user: "admin-models", name: "svc", models: ["qwen-plus"] });
    expect(err).toBeNull();
    expect(res.api_key).toMatch(/^gw_live_[0-9A-Za-z]{32}$/);
    expect(res.key.models).toEqual(["qwen-plus"]);

    const aliased = await unary("AdminService", "CreateKey", adminKey, { user: "admin-models", name: "aliased", models: ["qwen-3-max", "qwen/qwen-max", "qwen3*"] });
    expect(aliased.err).toBeNull();
    expect(aliased.res.key.models).toEqual(["qwen3-max", "qwen-max", "qwen3*"]);

    const plain = await unary("AdminService", "CreateKey", adminKey, { user: "admin-models", name: "plain" });
    expect(plain.err).toBeNull();
    expect(plain.res.key.models).toEqual([]);

    const keys = await unary("AdminService", "ListKeys", adminKey, { user: "admin-models" });
    expect(keys.err).toBeNull();
    expect((keys.res.keys as Array<{ name: string; models: string[] }>).map((k) => [k.name, k.models])).toEqual([
      ["svc", ["qwen-plus"]], ["aliased", ["qwen3-max", "qwen-max", "qwen3*"]], ["plain", []],
    ]);

    gw.fake.reset();
    expect((await sdkChat(res.api_key, "qwen-plus")).choices[0]!.message.content).toBe("Hello from qwen-plus");
    expectRefused(await rejection(sdkChat(res.api_key, "qwen-max")), "qwen-max");
    expect(await listedIds(res.api_key)).toEqual(["qwen-plus"]);
    expect(upstreamModels()).toEqual(["qwen-plus"]);
  });

  it("CreateKey with a model the catalog does not have is INVALID_ARGUMENT naming it; no key made", async () => {
    const [unknown, prefix] = await Promise.all([
      unary("AdminService", "CreateKey", adminKey, { user: "admin-bad-models", name: "svc", models: ["qwen-plus", "qwen-pls"] }),
      unary("AdminService", "CreateKey", adminKey, { user: "admin-bad-models", name: "svc2", models: ["zz*"] }),
    ]);
    expect(unknown.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(unknown.err?.details).toContain("'qwen-pls'");
    expect(prefix.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(prefix.err?.details).toContain("'zz*'");
    const keys = await unary("AdminService", "ListKeys", adminKey, { user: "admin-bad-models", include_revoked: true });
    expect(keys.err).toBeNull();
    expect(keys.res.keys).toEqual([]);
  });
});
