// AdminService: the admin-key guard, keys, limits, budgets and usage reports,
// driven in process through a router transport, then once over a real port
// per protocol (gRPC over HTTP/2, gRPC-Web and Connect over HTTP/1.1).

import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { toJson } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport, type Client, type ConnectRouter, type Transport } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AdminService, ListKeysResponseSchema } from "../../gen/gatewayz/v1/admin_pb.js";
import { createAccounts } from "../../src/core/accounts.js";
import { createAuthenticator } from "../../src/core/auth.js";
import { registerAdminService } from "../../src/server/admin-service.js";
import { openDb, type Db } from "../../src/storage/db.js";
import { createKeyStore, type KeyStore } from "../../src/storage/keys.js";
import { createLimitStore } from "../../src/storage/limits.js";
import { createUsageStore, type UsageRecord, type UsageStore } from "../../src/storage/usage.js";

const BOOTSTRAP = "gw_admin_" + "A".repeat(32);
const asAdmin = (key = BOOTSTRAP) => ({ headers: { authorization: `Bearer ${key}` } });

interface Setup {
  db: Db;
  keys: KeyStore;
  usage: UsageStore;
  routes: (router: ConnectRouter) => void;
}

function setup(): Setup {
  const db = openDb(":memory:");
  const keys = createKeyStore(db);
  const usage = createUsageStore(db);
  const accounts = createAccounts(keys, createLimitStore(db), usage);
  const auth = createAuthenticator(keys, BOOTSTRAP);
  return { db, keys, usage, routes: (router) => registerAdminService(router, { accounts, auth }) };
}

async function codeOf(call: Promise<unknown>): Promise<Code> {
  const err = await call.then(() => undefined, (e: unknown) => e);
  expect(err, "the call should have failed").toBeInstanceOf(ConnectError);
  return (err as ConnectError).code;
}

describe("AdminService in process", () => {
  let s: Setup;
  let admin: Client<typeof AdminService>;
  beforeEach(() => {
    s = setup();
    admin = createClient(AdminService, createRouterTransport(s.routes));
  });
  afterEach(() => s.db.close());

  describe("the admin-key guard", () => {
    it("answers UNAUTHENTICATED without a key, and with an unknown or malformed one", async () => {
      expect(await codeOf(admin.listKeys({}))).toBe(Code.Unauthenticated);
      expect(await codeOf(admin.listKeys({}, asAdmin("gw_admin_" + "B".repeat(32))))).toBe(Code.Unauthenticated);
      expect(await codeOf(admin.listKeys({}, asAdmin("sk-not-ours")))).toBe(Code.Unauthenticated);
    });

    it("answers PERMISSION_DENIED to a client key, and changes nothing", async () => {
      const { apiKey } = await admin.createKey({ user: "ada", name: "laptop" }, asAdmin());
      expect(await codeOf(admin.createKey({ user: "ada", name: "more" }, asAdmin(apiKey)))).toBe(Code.PermissionDenied);
      expect(await codeOf(admin.listKeys({}, asAdmin(apiKey)))).toBe(Code.PermissionDenied);
      expect(s.keys.list()).toHaveLength(1);
    });

    it("accepts an admin key it issued, until that key is revoked", async () => {
      const created = await admin.createKey({ user: "ops", name: "second admin", admin: true }, asAdmin());
      expect(created.apiKey).toMatch(/^gw_admin_[0-9A-Za-z]{32}$/);
      expect(created.key?.kind).toBe("admin");
      await expect(admin.listKeys({}, asAdmin(created.apiKey))).resolves.toBeDefined();
      await admin.revokeKey({ keyId: created.key!.id }, asAdmin());
      expect(await codeOf(admin.listKeys({}, asAdmin(created.apiKey)))).toBe(Code.Unauthenticated);
    });
  });

  describe("keys", () => {
    it("returns a new gw_live_ key once; ListKeys shows only its display form", async () => {
      const created = await admin.createKey({ user: "ada", name: "laptop" }, asAdmin());
      expect(created.apiKey).toMatch(/^gw_live_[0-9A-Za-z]{32}$/);
      const info = created.key!;
      expect(info).toMatchObject({ user: "ada", name: "laptop", kind: "client", replacedBy: "" });
      expect(info.id).toMatch(/^key_/);
      expect(info.display).toBe(`${created.apiKey.slice(0, 12)}…${created.apiKey.slice(-4)}`);
      expect(info.createdAt).toBeDefined();
      expect(info.revokedAt).toBeUndefined();

      const listed = await admin.listKeys({}, asAdmin());
      expect(listed.keys.map((k) => k.id)).toEqual([info.id]);
      expect(JSON.stringify(toJson(ListKeysResponseSchema, listed))).not.toContain(created.apiKey.slice(12, -4));
      expect(listed.keys[0]!.display).toBe(info.display);
    });

    it("filters ListKeys by user and hides revoked keys unless asked", async () => {
      const a = await admin.createKey({ user: "ada", name: "one" }, asAdmin());
      await admin.createKey({ user: "bob", name: "two" }, asAdmin());
      await admin.revokeKey({ keyId: a.key!.id }, asAdmin());
      expect((await admin.listKeys({}, asAdmin())).keys.map((k) => k.user)).toEqual(["bob"]);
      expect((await admin.listKeys({ user: "ada" }, asAdmin())).keys).toEqual([]);
      const withRevoked = await admin.listKeys({ user: "ada", includeRevoked: true }, asAdmin());
      expect(withRevoked.keys.map((k) => k.id)).toEqual([a.key!.id]);
      expect(withRevoked.keys[0]!.revokedAt).toBeDefined();
    });

    it("refuses a key without a user or name, and a bad budget, as INVALID_ARGUMENT", async () => {
      expect(await codeOf(admin.createKey({ user: "", name: "x" }, asAdmin()))).toBe(Code.InvalidArgument);
      expect(await codeOf(admin.createKey({ user: "ada", name: " " }, asAdmin()))).toBe(Code.InvalidArgument);
      expect(await codeOf(admin.createKey({ user: "ada", name: "x", budgetUsd: "1.1234567" }, asAdmin()))).toBe(Code.InvalidArgument);
      expect(await codeOf(admin.createKey({ user: "ada", name: "x", budgetUsd: "5", budgetPeriod: "week" }, asAdmin()))).toBe(Code.InvalidArgument);
      expect(await codeOf(admin.createKey({ user: "ada", name: "x", budgetPeriod: "month" }, asAdmin()))).toBe(Code.InvalidArgument);
      expect(s.keys.list()).toEqual([]);
    });

    it("creates a key with its own limits and budget", async () => {
      const created = await admin.createKey(
        { user: "ada", name: "ci", rpm: 60, concurrent: 0, budgetUsd: "25.5", budgetPeriod: "month" }, asAdmin());
      const { limits } = await admin.getLimits({ target: { target: { case: "keyId", value: created.key!.id } } }, asAdmin());
      expect(limits).toMatchObject({ rpm: 60, concurrent: 0, budget: { usd: "25.5", period: "month" } });
      expect(limits!.tpm).toBeUndefined();
      expect(limits!.rpd).toBeUndefined();
    });

    it("creates a key with its own cache setting, sets it and puts it back to the gateway's; a bad or missing one is refused", async () => {
      const off = await admin.createKey({ user: "ada", name: "ci", cache: "off" }, asAdmin());
      expect(off.key).toMatchObject({ cache: "off" });
      const plain = await admin.createKey({ user: "ada", name: "laptop" }, asAdmin());
      expect(plain.key).toMatchObject({ cache: "default" });
      expect(s.keys.get(plain.key!.id)!.cache).toBeNull();

      expect((await admin.setKeyCache({ keyId: plain.key!.id, cache: "on" }, asAdmin())).key).toMatchObject({ id: plain.key!.id, cache: "on" });
      expect((await admin.setKeyCache({ keyId: off.key!.id, cache: "default" }, asAdmin())).key).toMatchObject({ cache: "default" });
      const listed = new Map((await admin.listKeys({}, asAdmin())).keys.map((k) => [k.id, k.cache]));
      expect(listed).toEqual(new Map([[off.key!.id, "default"], [plain.key!.id, "on"]]));
      expect(s.keys.get(off.key!.id)!.cache).toBeNull();

      expect(await codeOf(admin.setKeyCache({ keyId: plain.key!.id, cache: "" }, asAdmin()))).toBe(Code.InvalidArgument);
      expect(await codeOf(admin.setKeyCache({ keyId: plain.key!.id, cache: "sometimes" }, asAdmin()))).toBe(Code.InvalidArgument);
      expect(await codeOf(admin.createKey({ user: "ada", name: "x", cache: "yes" }, asAdmin()))).toBe(Code.InvalidArgument);
      expect(await codeOf(admin.setKeyCache({ keyId: "key_nope", cache: "off" }, asAdmin()))).toBe(Code.NotFound);
      await admin.revokeKey({ keyId: off.key!.id }, asAdmin());
      expect(await codeOf(admin.setKeyCache({ keyId: off.key!.id, cache: "off" }, asAdmin()))).toBe(Code.NotFound);
      // Admin-only, as every call here.
      expect(await codeOf(admin.setKeyCache({ keyId: plain.key!.id, cache: "off" }, asAdmin(plain.apiKey)))).toBe(Code.PermissionDenied);
      expect(await codeOf(admin.setKeyCache({ keyId: plain.key!.id, cache: "off" }))).toBe(Code.Unauthenticated);
      expect(s.keys.get(plain.key!.id)!.cache).toBe("on");

      const rotated = await admin.rotateKey({ keyId: plain.key!.id }, asAdmin());
      expect(rotated.key).toMatchObject({ cache: "on" });
    });

    it("rotates a key: a new secret, the old key revoked and pointing at it, limits carried over", async () => {
      const old = await admin.createKey({ user: "ada", name: "laptop", tpm: 1000, budgetUsd: "3" }, asAdmin());
      const fresh = await admin.rotateKey({ keyId: old.key!.id }, asAdmin());
      expect(fresh.apiKey).toMatch(/^gw_live_/);
      expect(fresh.apiKey).not.toBe(old.apiKey);
      expect(fresh.key).toMatchObject({ user: "ada", name: "laptop", kind: "client" });
      const all = await admin.listKeys({ includeRevoked: true }, asAdmin());
      expect(all.keys.find((k) => k.id === old.key!.id)).toMatchObject({ replacedBy: fresh.key!.id });
      expect(all.keys.find((k) => k.id === old.key!.id)!.revokedAt).toBeDefined();
      const { limits } = await admin.getLimits({ target: { target: { case: "keyId", value: fresh.key!.id } } }, asAdmin());
      expect(limits).toMatchObject({ tpm: 1000, budget: { usd: "3", period: "total" } });
      expect(await codeOf(admin.rotateKey({ keyId: old.key!.id }, asAdmin()))).toBe(Code.NotFound);
    });

    it("revokes a key once; a second revoke and an unknown id are NOT_FOUND", async () => {
      const created = await admin.createKey({ user: "ada", name: "laptop" }, asAdmin());
      const { key } = await admin.revokeKey({ keyId: created.key!.id }, asAdmin());
      expect(key!.revokedAt).toBeDefined();
      expect(await codeOf(admin.revokeKey({ keyId: created.key!.id }, asAdmin()))).toBe(Code.NotFound);
      expect(await codeOf(admin.revokeKey({ keyId: "key_nope" }, asAdmin()))).toBe(Code.NotFound);
    });
  });

  describe("limits and budgets", () => {
    const system = { target: { case: "system" as const, value: true } };
    const user = (name: string) => ({ target: { case: "user" as const, value: name } });

    it("starts with nothing set: every limit on the default, no budget", async () => {
      const { limits } = await admin.getLimits({ target: system }, asAdmin());
      expect(limits!.target?.target).toEqual({ case: "system", value: true });
      expect([limits!.rpm, limits!.tpm, limits!.rpd, limits!.concurrent, limits!.budget]).toEqual([undefined, undefined, undefined, undefined, undefined]);
    });

    it("sets some limits, leaves the others, and resets named ones to the default", async () => {
      await admin.createKey({ user: "ada", name: "laptop" }, asAdmin());
      let { limits } = await admin.setLimits({ target: user("ada"), rpm: 100, tpm: 50_000, rpd: 0 }, asAdmin());
      expect(limits).toMatchObject({ rpm: 100, tpm: 50_000, rpd: 0 });
      expect(limits!.concurrent).toBeUndefined();

      ({ limits } = await admin.setLimits({ target: user("ada"), concurrent: 4, reset: ["rpm", "rpd"] }, asAdmin()));
      expect(limits).toMatchObject({ tpm: 50_000, concurrent: 4 });
      expect(limits!.rpm).toBeUndefined();
      expect(limits!.rpd).toBeUndefined();

      const read = await admin.getLimits({ target: user("ada") }, asAdmin());
      expect(read.limits).toEqual(limits);
    });

    it("sets limits on the whole system", async () => {
      const { limits } = await admin.setLimits({ target: system, rpm: 1000 }, asAdmin());
      expect(limits!.rpm).toBe(1000);
      expect((await admin.getLimits({ target: system }, asAdmin())).limits!.rpm).toBe(1000);
    });

    it("refuses a missing target, an unknown reset name, and a field both set and reset", async () => {
      expect(await codeOf(admin.getLimits({}, asAdmin()))).toBe(Code.InvalidArgument);
      expect(await codeOf(admin.setLimits({ target: { target: { case: "system", value: false } }, rpm: 1 }, asAdmin()))).toBe(Code.InvalidArgument);
      expect(await codeOf(admin.setLimits({ target: system, reset: ["rph"] }, asAdmin()))).toBe(Code.InvalidArgument);
      expect(await codeOf(admin.setLimits({ target: system, rpm: 5, reset: ["rpm"] }, asAdmin()))).toBe(Code.InvalidArgument);
    });

    it("answers NOT_FOUND for a user or key that does not exist", async () => {
      expect(await codeOf(admin.getLimits({ target: user("nobody") }, asAdmin()))).toBe(Code.NotFound);
      expect(await codeOf(admin.setLimits({ target: user("nobody"), rpm: 1 }, asAdmin()))).toBe(Code.NotFound);
      expect(await codeOf(admin.setBudget({ target: user("nobody"), usd: "1" }, asAdmin()))).toBe(Code.NotFound);
      expect(await codeOf(admin.getLimits({ target: { target: { case: "keyId", value: "key_nope" } } }, asAdmin()))).toBe(Code.NotFound);
    });

    it("sets a budget in exact USD, replaces it, and clears it", async () => {
      await admin.createKey({ user: "ada", name: "laptop" }, asAdmin());
      let { limits } = await admin.setBudget({ target: user("ada"), usd: "10.000001" }, asAdmin());
      expect(limits!.budget).toMatchObject({ usd: "10.000001", period: "total" });
      ({ limits } = await admin.setBudget({ target: user("ada"), usd: "0.50", period: "month" }, asAdmin()));
      expect(limits!.budget).toMatchObject({ usd: "0.5", period: "month" });
      ({ limits } = await admin.setBudget({ target: user("ada"), clear: true }, asAdmin()));
      expect(limits!.budget).toBeUndefined();
      expect((await admin.getLimits({ target: user("ada") }, asAdmin())).limits!.budget).toBeUndefined();
    });

    it("refuses a budget on the system, a bad amount or period, and clear with an amount", async () => {
      await admin.createKey({ user: "ada", name: "laptop" }, asAdmin());
      expect(await codeOf(admin.setBudget({ target: system, usd: "1" }, asAdmin()))).toBe(Code.InvalidArgument);
      expect(await codeOf(admin.setBudget({ target: user("ada"), usd: "" }, asAdmin()))).toBe(Code.InvalidArgument);
      expect(await codeOf(admin.setBudget({ target: user("ada"), usd: "-1" }, asAdmin()))).toBe(Code.InvalidArgument);
      expect(await codeOf(admin.setBudget({ target: user("ada"), usd: "1", period: "year" }, asAdmin()))).toBe(Code.InvalidArgument);
      expect(await codeOf(admin.setBudget({ target: user("ada"), usd: "1", clear: true }, asAdmin()))).toBe(Code.InvalidArgument);
    });
  });

  describe("usage", () => {
    const DAY1 = Date.UTC(2026, 10, 22, 12);
    const DAY2 = Date.UTC(2026, 10, 23, 9);
    const row = (r: Partial<UsageRecord>): UsageRecord => ({
      ts: DAY1, keyId: null, userId: null, protocol: "grpc", requestedModel: "qwen-plus", model: "qwen-plus",
      upstreamModel: "qwen-plus", provider: "alibaba-cloud", promptTokens: 0, completionTokens: 0, cachedTokens: 0,
      reasoningTokens: 0, costPico: 0n, latencyMs: 10, ttftMs: null, status: "ok", errorKind: null, estimated: false, attempts: 1,
      ...r,
    });

    async function seed() {
      const ada = await admin.createKey({ user: "ada", name: "laptop" }, asAdmin());
      const bob = await admin.createKey({ user: "bob", name: "ci" }, asAdmin());
      const adaKey = ada.key!.id;
      const bobKey = bob.key!.id;
      const adaUser = s.keys.get(adaKey)!.userId;
      const bobUser = s.keys.get(bobKey)!.userId;
      s.usage.insert(row({ keyId: adaKey, userId: adaUser, promptTokens: 1000, completionTokens: 200, costPico: 12_500_000n }));
      s.usage.insert(row({ keyId: adaKey, userId: adaUser, ts: DAY2, model: "qwen-max", promptTokens: 3, completionTokens: 0, costPico: 1n, status: "error", errorKind: "upstream_error" }));
      s.usage.insert(row({ keyId: bobKey, userId: bobUser, ts: DAY2, promptTokens: 500_000, completionTokens: 250_000, costPico: 2_000_000_000_000n }));
      return { adaKey, bobKey, adaUser, bobUser };
    }

    it("groups by key with exact cost strings and a total row", async () => {
      const { adaKey, bobKey } = await seed();
      const res = await admin.getUsage({ groupBy: "key" }, asAdmin());
      const byGroup = Object.fromEntries(res.rows.map((r) => [r.group, r]));
      expect(byGroup[adaKey]).toMatchObject({ requests: 2n, errors: 1n, promptTokens: 1003n, completionTokens: 200n, costUsd: "0.000012500001" });
      expect(byGroup[bobKey]).toMatchObject({ requests: 1n, errors: 0n, promptTokens: 500_000n, completionTokens: 250_000n, costUsd: "2" });
      expect(res.total).toMatchObject({ group: "total", requests: 3n, errors: 1n, promptTokens: 501_003n, completionTokens: 250_200n, costUsd: "2.000012500001" });
    });

    it("counts answers from the cache as hits with the cost they saved, not as errors", async () => {
      const { adaKey, adaUser } = await seed();
      s.usage.insert(row({ keyId: adaKey, userId: adaUser, promptTokens: 1000, completionTokens: 200, status: "cached", savedPico: 12_500_000n }));
      s.usage.insert(row({ keyId: adaKey, userId: adaUser, promptTokens: 1000, completionTokens: 200, status: "cached", savedPico: 12_500_000n }));
      const res = await admin.getUsage({ groupBy: "key" }, asAdmin());
      expect(res.rows.find((r) => r.group === adaKey)).toMatchObject({
        requests: 4n, errors: 1n, cached: 2n, promptTokens: 3003n, completionTokens: 600n, costUsd: "0.000012500001", savedUsd: "0.000025",
      });
      expect(res.total).toMatchObject({ requests: 5n, errors: 1n, cached: 2n, costUsd: "2.000012500001", savedUsd: "0.000025" });
      const day = await admin.getUsage({ groupBy: "day", until: timestampFromMs(DAY2) }, asAdmin());
      expect(day.rows).toMatchObject([{ group: "2026-11-22", requests: 3n, errors: 0n, cached: 2n, savedUsd: "0.000025" }]);
    });

    it("groups by model, day and user, and defaults to key", async () => {
      const { adaKey, bobKey, adaUser, bobUser } = await seed();
      const groups = async (groupBy: string) => (await admin.getUsage({ groupBy }, asAdmin())).rows.map((r) => [r.group, r.costUsd] as const);
      expect(await groups("model")).toEqual([["qwen-max", "0.000000000001"], ["qwen-plus", "2.0000125"]]);
      expect(await groups("day")).toEqual([["2026-11-22", "0.0000125"], ["2026-11-23", "2.000000000001"]]);
      expect(new Map(await groups("user"))).toEqual(new Map([[adaUser, "0.000012500001"], [bobUser, "2"]]));
      expect(new Map(await groups(""))).toEqual(new Map([[adaKey, "0.000012500001"], [bobKey, "2"]]));
      expect(await codeOf(admin.getUsage({ groupBy: "week" }, asAdmin()))).toBe(Code.InvalidArgument);
    });

    it("filters by time window, user and key", async () => {
      const { adaKey } = await seed();
      const total = async (req: Parameters<typeof admin.getUsage>[0]) => (await admin.getUsage(req, asAdmin())).total;
      expect(await total({ since: timestampFromMs(DAY2) })).toMatchObject({ requests: 2n, costUsd: "2.000000000001" });
      expect(await total({ until: timestampFromMs(DAY2) })).toMatchObject({ requests: 1n, costUsd: "0.0000125" });
      expect(await total({ user: "bob" })).toMatchObject({ requests: 1n, costUsd: "2" });
      expect(await total({ keyId: adaKey, since: timestampFromMs(DAY2) })).toMatchObject({ requests: 1n, errors: 1n, costUsd: "0.000000000001" });
      expect(await total({ user: "nobody" })).toMatchObject({ requests: 0n, costUsd: "0" });
    });
  });

  it("reports a storage failure as INTERNAL with no detail", async () => {
    s.db.close();
    const err = await admin.listKeys({}, asAdmin()).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Internal);
    expect((err as ConnectError).rawMessage).toBe("internal error");
    s.db = openDb(":memory:");
  });
});

describe("AdminService over a real port", () => {
  let s: Setup;
  const closers: Array<() => Promise<void>> = [];
  beforeEach(() => {
    s = setup();
  });
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((close) => close()));
    s.db.close();
  });

  async function listen(server: http.Server | http2.Http2Server): Promise<string> {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async function serveHttp2(): Promise<string> {
    const server = http2.createServer(connectNodeAdapter({ routes: s.routes }));
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on("session", (session) => {
      sessions.add(session);
      session.on("close", () => sessions.delete(session));
    });
    closers.push(() => new Promise((resolve) => {
      for (const session of sessions) session.destroy();
      server.close(() => resolve());
    }));
    return listen(server);
  }

  async function serveHttp1(): Promise<string> {
    const server = http.createServer(connectNodeAdapter({ routes: s.routes }));
    closers.push(() => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }));
    return listen(server);
  }

  const protocols: Array<[string, () => Promise<Transport>]> = [
    ["gRPC (HTTP/2)", async () => createGrpcTransport({ baseUrl: await serveHttp2() })],
    ["gRPC-Web (HTTP/1.1)", async () => createGrpcWebTransport({ baseUrl: await serveHttp1() })],
    ["Connect (HTTP/1.1)", async () => createConnectTransport({ baseUrl: await serveHttp1() })],
  ];

  it.each(protocols)("lists keys over %s with the admin key, and refuses a call without it", async (_name, transport) => {
    const keys = createKeyStore(s.db);
    const { record } = keys.create({ user: "ada", name: "laptop" });
    const admin = createClient(AdminService, await transport());
    const res = await admin.listKeys({}, asAdmin());
    expect(res.keys).toHaveLength(1);
    expect(res.keys[0]).toMatchObject({ id: record.id, user: "ada", name: "laptop", kind: "client", display: record.display });
    expect(res.keys[0]!.createdAt).toEqual(timestampFromMs(record.createdAt));
    expect(await codeOf(admin.listKeys({}))).toBe(Code.Unauthenticated);
  });
});
