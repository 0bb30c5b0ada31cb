// API key expiry, end to end: keys made by the real `gatewayz` CLI (bundled
// once, run as child processes on the gateway's own SQLite file) with
// `--expires`, a real gateway listening on an ephemeral port that uses them,
// and real clients on every door: the openai SDK and plain fetch on the
// OpenAI-compatible door, grpc-js on gRPC, connect-node on Connect and
// gRPC-Web. A key works until its instant and is refused with key_expired
// after it, leaving a usage row under that key as a revoked key's does;
// `keys update --expires never` brings it back. The AdminService's
// expires_at goes over gRPC (grpc-js on the .proto, so the check does not
// rely on generated code); its ListKeys is also how the tests read the
// instant a CLI command stored, apart from how the CLI prints it.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import OpenAI, { AuthenticationError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatewayService } from "../../gen/gatewayz/v1/gateway_pb.js";
import { cliRunner } from "../support/cli-runner.js";
import { door as rawDoor } from "../support/http-door.js";
import { bundleGateway, type GatewayBundle } from "../support/gateway-bundle.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { grpcChat } from "../support/grpc-chat.js";
import { ROOT } from "../support/node-child.js";

const HI = [{ role: "user" as const, content: "hi" }];
const ADMIN_KEY = "gw_admin_" + "Expiry0123456789abcdefghijklmnopq".slice(0, 32);
/** A year safely in the future whatever day the suite runs. */
const YEAR = new Date().getUTCFullYear() + 2;

interface UsageRow { id: number; key_id: string | null; user_id: string | null; protocol: string; operation: string; status: string; error_kind: string | null }

let dir: string;
let dbPath: string;
let cli: GatewayBundle;
let gw: TestGateway;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gatewayz-key-expiry-"));
  dbPath = join(dir, "g.db");
  // The gateway first, so the file exists (and is migrated) before any CLI run.
  gw = await startTestGateway({ DATABASE_PATH: dbPath, GATEWAYZ_ADMIN_KEY: ADMIN_KEY });
  cli = await bundleGateway("src/cli.ts");
}, 60_000);

afterAll(async () => {
  adminClient?.close();
  await gw?.close();
  cli?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const { onDb, json } = cliRunner(() => cli.entry);

/** The line of `gatewayz keys list` (text) for one key. */
/** `keys list` as rows of its table, each cell by its column's header ("expires", "status"…). */
async function listed(db: string, ...extra: string[]): Promise<Array<Record<string, string>>> {
  const r = await onDb(db)("keys", "list", ...extra);
  expect(r.code, r.stderr).toBe(0);
  const [header, ...lines] = r.stdout.trimEnd().split("\n");
  // Cells are separated by two spaces or more; none of this file's names has two in a row.
  const columns = header!.split(/\s{2,}/);
  return lines.map((l) => Object.fromEntries(l.split(/\s{2,}/).map((cell, i) => [columns[i]!, cell])));
}

async function listRow(db: string, id: string): Promise<Record<string, string>> {
  const row = (await listed(db)).find((r) => r.id === id);
  expect(row, `keys list has no row for ${id}`).toBeDefined();
  return row!;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const rejection = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

const openai = (apiKey: string) => new OpenAI({ apiKey, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 10_000 });
const sdkChat = (apiKey: string) => openai(apiKey).chat.completions.create({ model: "qwen-plus", messages: HI });

const connectTransport = () => createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1" });
const grpcWebTransport = () => createGrpcWebTransport({ baseUrl: gw.url, httpVersion: "1.1" });

/** One Chat over an RPC transport, drained; the ConnectError if it failed. */
async function rpcChatError(transport: Transport, key: string): Promise<ConnectError | undefined> {
  const client = createClient(GatewayService, transport);
  const err = await rejection((async () => {
    for await (const _ of client.chat({ model: "qwen-plus", messages: HI }, { headers: { authorization: `Bearer ${key}` } })) { /* drain */ }
  })());
  return err === undefined ? undefined : ConnectError.from(err);
}

/** A raw request on the OpenAI door, its status and parsed JSON body. */
const door = (method: "GET" | "POST", path: string, key: string, body?: object) => rawDoor(gw.url, method, path, key, body);

const rowsOfKey = (keyId: string, afterId = 0) =>
  gw.app.db.prepare("SELECT * FROM usage WHERE key_id = ? AND id > ? ORDER BY id").all(keyId, afterId) as UsageRow[];
const lastRowId = () => (gw.app.db.prepare("SELECT COALESCE(MAX(id), 0) AS m FROM usage").get() as { m: number }).m;
const nullKeyRows = () => (gw.app.db.prepare("SELECT COUNT(*) AS n FROM usage WHERE key_id IS NULL").get() as { n: number }).n;

// ---------------------------------------------------------------- AdminService over grpc-js

interface Timestamp { seconds: string; nanos: number }
interface KeyInfo { id: string; user: string; name: string; kind: string; expires_at: Timestamp | null; revoked_at: Timestamp | null }
type Unary = (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: any) => void) => void;
type AdminClient = grpc.Client & Record<"CreateKey" | "ListKeys", Unary>;

let adminClient: AdminClient | undefined;

function admin(): AdminClient {
  if (adminClient) return adminClient;
  const def = protoLoader.loadSync("gatewayz/v1/admin.proto", {
    includeDirs: [join(ROOT, "proto")], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { gatewayz: { v1: { AdminService: new (a: string, c: grpc.ChannelCredentials) => AdminClient } } };
  return (adminClient = new pkg.gatewayz.v1.AdminService(new URL(gw.url).host, grpc.credentials.createInsecure()));
}

/** One AdminService call with the admin key: its answer, or the error. */
function adminCall(method: "CreateKey" | "ListKeys", req: object): Promise<{ err: grpc.ServiceError | null; res: any }> {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${ADMIN_KEY}`);
  return new Promise((resolve) => admin()[method](req, md, (err, res) => resolve({ err, res })));
}

const msOf = (t: Timestamp | null | undefined): number | null => (t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : null);

/**
 * A key's expiry as the running gateway's AdminService reports it (KeyInfo.expires_at, in ms;
 * null for never): the instant the CLI stored, read without relying on how the CLI prints it.
 */
async function storedExpiry(id: string): Promise<number | null> {
  const { err, res } = await adminCall("ListKeys", { include_revoked: true });
  expect(err).toBeNull();
  const info = (res.keys as KeyInfo[]).find((k) => k.id === id);
  expect(info, `ListKeys has no key ${id}`).toBeDefined();
  return msOf(info!.expires_at);
}

// ---------------------------------------------------------------- the tests

describe("a key created with --expires 3s", { timeout: 30_000 }, () => {
  let key: string;
  let id: string;
  let expiresAt = NaN;
  let userId: string | null = null;
  /** The later tests need the first one's key: say so plainly rather than fail on its absence. */
  const needKey = () => expect(Number.isFinite(expiresAt) && typeof key === "string", "the first test did not create a key with an expiry").toBe(true);

  it("expires 3 s after its creation, and works on every door until then", async () => {
    const before = Date.now();
    const created = await json(dbPath, "keys", "create", "--user", "expiring", "--name", "short", "--expires", "3s");
    const after = Date.now();
    key = created.key;
    id = created.id;
    expect(key).toMatch(/^gw_live_[0-9A-Za-z]{32}$/);
    expiresAt = (await storedExpiry(id)) ?? NaN;
    // 3 s from when the CLI ran (a second's leeway either side, should it round to seconds).
    expect(expiresAt).toBeGreaterThanOrEqual(before + 3_000 - 1_000);
    expect(expiresAt).toBeLessThanOrEqual(after + 3_000 + 1_000);
    // How the CLI prints it is the business of the tests further down: the doors' checks do not depend on it.

    gw.fake.reset();
    const [chat, rpc, connect, models] = await Promise.all([
      sdkChat(key),
      grpcChat(gw.url, `Bearer ${key}`, { model: "qwen-plus", messages: HI }),
      rpcChatError(connectTransport(), key),
      door("GET", "/v1/models", key),
    ]);
    expect(Date.now(), "the machine was too slow: the checks before the instant ran past it").toBeLessThan(expiresAt);
    expect(chat.choices[0]!.message.content).toBe("Hello from qwen-plus");
    expect(rpc.status.code, rpc.status.details).toBe(grpc.status.OK);
    expect(rpc.done?.finish_reason).toBeTruthy();
    expect(connect).toBeUndefined();
    expect(models.status).toBe(200);
    expect(gw.fake.requests.filter((r) => r.path.endsWith("/chat/completions"))).toHaveLength(3);

    const ok = rowsOfKey(id);
    expect(ok.map((r) => [r.protocol, r.status]).sort()).toEqual([["connect", "ok"], ["grpc", "ok"], ["openai", "ok"]]);
    userId = ok[0]!.user_id;
    expect(userId).toBeTruthy();
  });

  it("after the instant: 401 key_expired on the OpenAI door (the openai SDK's AuthenticationError), one rejected row under the key", async () => {
    needKey();
    if (Date.now() < expiresAt) await sleep(expiresAt - Date.now());
    // Poll with a deadline instead of sleeping long: GET /v1/models is refused from the instant on.
    const deadline = expiresAt + 2_000;
    let models = await door("GET", "/v1/models", key);
    while (models.status === 200 && Date.now() < deadline) {
      await sleep(50);
      models = await door("GET", "/v1/models", key);
    }
    expect(models.status, `still accepted ${Date.now() - expiresAt} ms after expires_at`).toBe(401);
    expect(models.body).toMatchObject({ error: { code: "key_expired", type: "authentication_error", message: expect.stringContaining("expired") } });

    gw.fake.reset();
    const mark = lastRowId();
    const nullBefore = nullKeyRows();
    const err = await rejection(sdkChat(key));
    expect(err).toBeInstanceOf(AuthenticationError);
    const auth = err as AuthenticationError;
    expect(auth.status).toBe(401);
    expect(auth.code).toBe("key_expired");
    expect(auth.type).toBe("authentication_error");
    expect(auth.message).toContain("expired");

    // Exactly one row, under the expired key and its user, as a revoked key's refused chat leaves.
    const rows = rowsOfKey(id, mark);
    expect(rows.map((r) => ({ protocol: r.protocol, operation: r.operation, status: r.status, error_kind: r.error_kind, user_id: r.user_id }))).toEqual([
      { protocol: "openai", operation: "chat", status: "rejected", error_kind: "key_expired", user_id: userId },
    ]);
    expect(nullKeyRows()).toBe(nullBefore);

    // Streaming is refused before any event too.
    const streamed = await rejection(openai(key).chat.completions.create({ model: "qwen-plus", messages: HI, stream: true }));
    expect(streamed).toBeInstanceOf(AuthenticationError);
    expect((streamed as AuthenticationError).code).toBe("key_expired");
    expect(gw.fake.requests).toHaveLength(0);
  });

  it("after the instant: /v1/embeddings and /v1/responses answer 401 key_expired in OpenAI's error shape", async () => {
    needKey();
    gw.fake.reset();
    const [embeddings, responses] = await Promise.all([
      door("POST", "/v1/embeddings", key, { model: "text-embedding-v4", input: "hi" }),
      door("POST", "/v1/responses", key, { model: "qwen-max", input: "Hello" }),
    ]);
    for (const r of [embeddings, responses]) {
      expect(r.status).toBe(401);
      expect(r.body).toMatchObject({ error: { code: "key_expired", type: "authentication_error", message: expect.stringContaining("expired") } });
    }
    expect(gw.fake.requests).toHaveLength(0);
  });

  it("after the instant: gRPC Chat (grpc-js) is UNAUTHENTICATED, Connect and gRPC-Web unauthenticated, each saying expired", async () => {
    needKey();
    gw.fake.reset();
    const mark = lastRowId();
    const rpc = await grpcChat(gw.url, `Bearer ${key}`, { model: "qwen-plus", messages: HI });
    expect(rpc.status.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(rpc.status.details).toContain("expired");
    expect(rpc.messages).toEqual([]);

    const connect = await rpcChatError(connectTransport(), key);
    expect(connect?.code).toBe(Code.Unauthenticated);
    expect(connect?.rawMessage).toContain("expired");
    const web = await rpcChatError(grpcWebTransport(), key);
    expect(web?.code).toBe(Code.Unauthenticated);
    expect(web?.rawMessage).toContain("expired");
    expect(gw.fake.requests).toHaveLength(0);

    // Each refused chat is recorded under the key, as on the OpenAI door.
    expect(rowsOfKey(id, mark).map((r) => [r.protocol, r.status, r.error_kind])).toEqual([
      ["grpc", "rejected", "key_expired"],
      ["connect", "rejected", "key_expired"],
      ["grpc-web", "rejected", "key_expired"],
    ]);
  });

  it("keys list shows the instant in its expires column and the status expired; --json gives expires", async () => {
    needKey();
    const row = await listRow(dbPath, id);
    expect(Date.parse(row.expires!)).toBe(expiresAt);
    expect(row.status).toBe("expired");
    const listedKey = (await json(dbPath, "keys", "list")).find((k: { id: string }) => k.id === id);
    expect(listedKey).toBeDefined();
    expect(JSON.stringify(listedKey)).not.toContain(key);
    expect(listedKey).toMatchObject({ status: "expired" });
    expect(Date.parse(listedKey.expires)).toBe(expiresAt);
  });

  it("keys update --expires never brings the expired key back at once; --expires sets a new instant; bad values and an unknown id are refused", async () => {
    needKey();
    const cleared = await onDb(dbPath)("keys", "update", id, "--expires", "never");
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(await storedExpiry(id)).toBeNull();

    // The running gateway obeys the other process's change on its next request.
    gw.fake.reset();
    const chat = await sdkChat(key);
    expect(chat.choices[0]!.message.content).toBe("Hello from qwen-plus");
    expect((await grpcChat(gw.url, `Bearer ${key}`, { model: "qwen-plus", messages: HI })).status.code).toBe(grpc.status.OK);
    expect(await rpcChatError(connectTransport(), key)).toBeUndefined();

    const before = Date.now();
    const set = await onDb(dbPath)("keys", "update", id, "--expires", "2h");
    const after = Date.now();
    expect(set.code, set.stderr).toBe(0);
    const at = (await storedExpiry(id)) ?? NaN;
    expect(at).toBeGreaterThanOrEqual(before + 7_200_000 - 1_000);
    expect(at).toBeLessThanOrEqual(after + 7_200_000 + 1_000);
    await expect(sdkChat(key)).resolves.toBeDefined(); // two hours left

    for (const value of ["soon", "0d", "2001-01-01"]) {
      const bad = await onDb(dbPath)("keys", "update", id, "--expires", value);
      expect(bad.code, `--expires ${value}: ${bad.stderr}`).toBe(2);
      expect(bad.stderr).toContain("--expires");
      expect(bad.stderr).toContain(value);
    }
    expect(await storedExpiry(id)).toBe(at); // unchanged by the refused updates

    const unknown = await onDb(dbPath)("keys", "update", "key_nope", "--expires", "1h");
    expect(unknown.code).not.toBe(0);
    expect(unknown.stdout).toBe("");
    expect(unknown.stderr).toContain("key_nope");
    expect(unknown.stderr).not.toMatch(/\n\s+at /); // a message, not a stack
  });
});

describe("gatewayz keys create --expires", { timeout: 30_000 }, () => {
  it("takes a date (midnight UTC), an RFC 3339 timestamp and durations in s, m, h and d; no --expires means never", async () => {
    const create = (name: string, ...extra: string[]) => json(dbPath, "keys", "create", "--user", "parse", "--name", name, ...extra);
    // One after another: the CLI's writers and the gateway share the file. A duration counts
    // from when its command ran, so each is timed on its own.
    const timed = async (name: string, duration: string) => {
      const before = Date.now();
      const k = await create(name, "--expires", duration);
      return { k, before, after: Date.now() };
    };
    const never = await create("never");
    const date = await create("date", "--expires", `${YEAR}-01-01`);
    const stamp = await create("stamp", "--expires", `${YEAR}-01-01T12:00:00Z`);
    const offset = await create("offset", "--expires", `${YEAR}-06-01T12:00:00+02:00`);
    expect(await storedExpiry(never.id)).toBeNull();
    expect(await storedExpiry(date.id)).toBe(Date.UTC(YEAR, 0, 1));
    expect(await storedExpiry(stamp.id)).toBe(Date.UTC(YEAR, 0, 1, 12));
    expect(await storedExpiry(offset.id)).toBe(Date.UTC(YEAR, 5, 1, 10));
    for (const [duration, ms] of [["90s", 90_000], ["45m", 45 * 60_000], ["12h", 12 * 3_600_000], ["30d", 30 * 86_400_000]] as const) {
      const { k, before, after } = await timed(`in-${duration}`, duration);
      const at = (await storedExpiry(k.id)) ?? NaN;
      expect(at, duration).toBeGreaterThanOrEqual(before + ms - 1_000);
      expect(at, duration).toBeLessThanOrEqual(after + ms + 1_000);
    }
  });

  it("prints it: create --json has expires (null for never), keys list's expires column the instant or never, --json expires", async () => {
    const create = (name: string, ...extra: string[]) => json(dbPath, "keys", "create", "--user", "shown", "--name", name, ...extra);
    const never = await create("never");
    const dated = await create("dated", "--expires", `${YEAR}-01-01`);
    const month = await create("month", "--expires", "30d");
    expect(never).toHaveProperty("expires", null);
    expect(dated.expires).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(Date.parse(dated.expires)).toBe(Date.UTC(YEAR, 0, 1));
    expect(Date.parse(month.expires)).toBe(await storedExpiry(month.id));

    const rows = await listed(dbPath, "--user", "shown");
    const rowOf = (k: { id: string }) => rows.find((r) => r.id === k.id)!;
    expect(Date.parse(rowOf(dated).expires!)).toBe(Date.UTC(YEAR, 0, 1));
    expect(Date.parse(rowOf(month).expires!)).toBe(await storedExpiry(month.id));
    expect(rowOf(month).status).toBe("active");
    expect(rowOf(never).expires).toBe("never");
    expect(rowOf(never).status).toBe("active");

    const listedKeys = await json(dbPath, "keys", "list", "--user", "shown");
    expect(listedKeys.map((k: { name: string; expires: string | null }) => [k.name, k.expires === null ? null : Date.parse(k.expires)])).toEqual([
      ["never", null],
      ["dated", Date.UTC(YEAR, 0, 1)],
      ["month", await storedExpiry(month.id)],
    ]);
  });

  it.each(["soon", "0d", "2001-01-01", "2027-13-45"])("refuses --expires %s: exit 2, the value and the option named on stderr, no key made", async (value) => {
    const db = join(mkdtempSync(join(dir, "bad-")), "g.db");
    await json(db, "keys", "create", "--user", "ada", "--name", "good"); // the database exists, with one key
    const r = await onDb(db)("keys", "create", "--user", "ada", "--name", "bad", "--expires", value);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("--expires");
    expect(r.stderr).toContain(value);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect((await json(db, "keys", "list")).map((k: { name: string }) => k.name)).toEqual(["good"]);
  });
});

describe("AdminService CreateKey expires_at (gRPC, admin key)", { timeout: 30_000 }, () => {
  it("round-trips expires_at through CreateKey and ListKeys, leaves it unset for a key that never expires, and the key works", async () => {
    const at = Math.floor(Date.now() / 1000) + 3_600;
    const { err, res } = await adminCall("CreateKey", { user: "admin-expiry", name: "svc", expires_at: { seconds: String(at), nanos: 0 } });
    expect(err).toBeNull();
    expect(res.api_key).toMatch(/^gw_live_[0-9A-Za-z]{32}$/);
    const info = res.key as KeyInfo;
    expect(msOf(info.expires_at)).toBe(at * 1000);

    const plain = await adminCall("CreateKey", { user: "admin-expiry", name: "forever" });
    expect(plain.err).toBeNull();
    expect((plain.res.key as KeyInfo).expires_at).toBeNull();

    const listed = await adminCall("ListKeys", { user: "admin-expiry" });
    expect(listed.err).toBeNull();
    const byId = new Map((listed.res.keys as KeyInfo[]).map((k) => [k.id, k]));
    expect(msOf(byId.get(info.id)?.expires_at)).toBe(at * 1000);
    expect(byId.get(plain.res.key.id)?.expires_at).toBeNull();

    // An hour left: the key works.
    await expect(sdkChat(res.api_key)).resolves.toBeDefined();
  });

  it("refuses a CreateKey whose expires_at is in the past: INVALID_ARGUMENT naming expires_at, no key made", async () => {
    const { err, res } = await adminCall("CreateKey", {
      user: "admin-past", name: "svc", expires_at: { seconds: String(Math.floor(Date.now() / 1000) - 60), nanos: 0 },
    });
    expect(res ?? undefined).toBeUndefined();
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toContain("expires_at");
    const listed = await adminCall("ListKeys", { user: "admin-past", include_revoked: true });
    expect(listed.err).toBeNull();
    expect(listed.res.keys).toEqual([]);
  });
});
