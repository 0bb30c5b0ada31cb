// Health that tells the truth: GET/HEAD /livez (the process answers), /readyz
// (it should get traffic: not draining, the database takes writes, a provider
// is configured and not every circuit is cooling down), /healthz (the same
// verdict with each provider in plain words), and grpc.health.v1.Health per
// service: the chat service needs everything, the admin service only the
// database, health and reflection only that no drain has begun. A real
// gateway, real clients: fetch, raw HTTP/1, @grpc/grpc-js.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { healthCheck, healthClient, type HealthClient } from "../support/drain-clients.js";
import { fillDisk, freeDisk } from "../support/full-disk.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { getInTwoSteps } from "../support/two-step-get.js";

const GATEWAY = "gatewayz.v1.GatewayService";
const ADMIN = "gatewayz.v1.AdminService";
const HEALTH = "grpc.health.v1.Health";
const REFLECTION = "grpc.reflection.v1.ServerReflection";
const SERVICES = ["", GATEWAY, ADMIN, HEALTH, REFLECTION];

const gateways: TestGateway[] = [];
const clients: HealthClient[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(gateways.splice(0).map((g) => g.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function gateway(env: Record<string, string | undefined> = {}): Promise<TestGateway> {
  const gw = await startTestGateway(env);
  gateways.push(gw);
  return gw;
}

function health(gw: TestGateway): HealthClient {
  const c = healthClient(gw.url);
  clients.push(c);
  return c;
}

async function probe(gw: TestGateway, path: string, method = "GET"): Promise<{ status: number; body: any }> {
  const res = await fetch(`${gw.url}${path}`, { method });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Check for every service: `{ "": "SERVING", ... }`. */
async function statuses(c: HealthClient): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const s of SERVICES) out[s] = (await healthCheck(c, s)).status;
  return out;
}

const serving = (notServing: string[]) => Object.fromEntries(SERVICES.map((s) => [s, notServing.includes(s) ? "NOT_SERVING" : "SERVING"]));

/** A Watch on `service`, every status it was sent, in order. */
function watch(c: HealthClient, service: string): string[] {
  const seen: string[] = [];
  const call = c.watch({ service });
  call.on("data", (m: { status: string }) => seen.push(m.status));
  call.on("error", () => {});
  return seen;
}

function chat(gw: TestGateway): Promise<number> {
  return fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: gw.authorization, "content-type": "application/json" },
    body: JSON.stringify({ model: "qwen-max", messages: [{ role: "user", content: "hi" }] }),
  }).then(async (res) => {
    await res.arrayBuffer();
    return res.status;
  });
}

describe("a healthy gateway with a provider", () => {
  it("/livez 200 ok, /readyz 200 ready, /healthz ok with the provider ok; GET and HEAD, no key; every gRPC service SERVING", async () => {
    const gw = await gateway();
    expect(await probe(gw, "/livez")).toEqual({ status: 200, body: { status: "ok" } });
    expect(await probe(gw, "/readyz")).toEqual({ status: 200, body: { status: "ready", reasons: [] } });
    expect(await probe(gw, "/readyz?verbose")).toEqual({ status: 200, body: { status: "ready", reasons: [] } });
    const healthz = await probe(gw, "/healthz");
    expect(healthz.status).toBe(200);
    expect(healthz.body).toMatchObject({ status: "ok", reasons: [], providers: { "alibaba-cloud": "ok", together: "not_configured" } });
    for (const path of ["/livez", "/readyz", "/healthz"]) {
      const head = await fetch(`${gw.url}${path}`, { method: "HEAD" });
      expect(head.status, path).toBe(200);
      expect(head.headers.get("content-type")).toMatch(/^application\/json/);
      expect(await head.text()).toBe("");
    }
    expect(await statuses(health(gw))).toEqual(serving([]));
  });
});

describe("no provider configured", () => {
  it("starts and lists models, but /readyz is 503 no_provider_configured: the chat service NOT_SERVING, the admin service SERVING", async () => {
    const gw = await gateway({ ALIBABA_CLOUD_API_KEY: "" });
    expect(await probe(gw, "/livez")).toEqual({ status: 200, body: { status: "ok" } });
    expect(await probe(gw, "/readyz")).toEqual({ status: 503, body: { status: "not_ready", reasons: ["no_provider_configured"] } });
    expect((await fetch(`${gw.url}/readyz`, { method: "HEAD" })).status).toBe(503);
    const healthz = await probe(gw, "/healthz");
    expect(healthz.status).toBe(503);
    expect(healthz.body.status).toBe("no_provider_configured");
    expect(new Set(Object.values(healthz.body.providers))).toEqual(new Set(["not_configured"]));
    expect(await statuses(health(gw))).toEqual(serving(["", GATEWAY]));
    const models = await fetch(`${gw.url}/v1/models`, { headers: { authorization: gw.authorization } });
    expect(models.status).toBe(200);
  });
});

describe("every circuit open", () => {
  it("503 all_circuits_open while cooling down; at the end of the cool-down ready again (a probe must be let in), and ok after a success; Watch sees NOT_SERVING then SERVING", async () => {
    const gw = await gateway({ BREAKER_FAILURES: "1", BREAKER_COOLDOWN_MS: "1500" });
    const c = health(gw);
    const overall = watch(c, "");
    const chats = watch(c, GATEWAY);
    const admin = watch(c, ADMIN);
    await expect.poll(() => [overall, chats, admin]).toEqual([["SERVING"], ["SERVING"], ["SERVING"]]);

    gw.fake.enqueue({ kind: "error", status: 503 });
    expect(await chat(gw)).toBe(503);
    await expect.poll(() => chats).toEqual(["SERVING", "NOT_SERVING"]);
    expect(overall).toEqual(["SERVING", "NOT_SERVING"]);
    expect(await probe(gw, "/readyz")).toEqual({ status: 503, body: { status: "not_ready", reasons: ["all_circuits_open"] } });
    expect((await probe(gw, "/healthz")).body).toMatchObject({ status: "all_circuits_open", providers: { "alibaba-cloud": "cooling_down" } });
    expect(await statuses(c)).toEqual(serving(["", GATEWAY]));

    // The cool-down ends on a timer, with no request: half-open, which takes traffic (its probe).
    await expect.poll(() => chats, { timeout: 3_000 }).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
    expect(overall).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
    expect(await probe(gw, "/readyz")).toEqual({ status: 200, body: { status: "ready", reasons: [] } });
    expect((await probe(gw, "/healthz")).body).toMatchObject({ status: "ok", providers: { "alibaba-cloud": "probing" } });

    expect(await chat(gw)).toBe(200);
    expect((await probe(gw, "/healthz")).body).toMatchObject({ status: "ok", providers: { "alibaba-cloud": "ok" } });
    expect(await statuses(c)).toEqual(serving([]));
    expect(admin).toEqual(["SERVING"]); // admin calls never needed a provider
  });
});

describe("a database that refuses writes", () => {
  it("read-only: 503 database_unwritable, the chat and admin services NOT_SERVING, health and reflection SERVING; ready again once it takes writes", async () => {
    const gw = await gateway();
    const c = health(gw);
    gw.app.db.pragma("query_only = ON");
    try {
      // The write check's result stands for a second.
      await expect.poll(async () => (await probe(gw, "/readyz")).status, { timeout: 3_000 }).toBe(503);
      expect(await probe(gw, "/readyz")).toEqual({ status: 503, body: { status: "not_ready", reasons: ["database_unwritable"] } });
      expect(await statuses(c)).toEqual(serving(["", GATEWAY, ADMIN]));
      expect(gw.logs.join("\n")).toMatch(/error\s+readiness: the database refuses writes \(attempt to write a readonly database \(SQLITE_READONLY\)\); not ready/);
      expect((await probe(gw, "/livez")).status).toBe(200);
    } finally {
      gw.app.db.pragma("query_only = OFF");
    }
    await expect.poll(async () => (await probe(gw, "/readyz")).status, { timeout: 3_000 }).toBe(200);
    expect(await statuses(c)).toEqual(serving([]));
    expect(gw.logs.join("\n")).toMatch(/info\s+readiness: the database accepts writes again/);
  });

  it("full disk: once a usage row is refused, 503 database_unwritable and both services NOT_SERVING (Watch told); ready again once it has room", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gatewayz-readiness-"));
    dirs.push(dir);
    const gw = await gateway({ DATABASE_PATH: join(dir, "g.db") });
    const c = health(gw);
    const admin = watch(c, ADMIN);
    expect(await chat(gw)).toBe(200); // a row for the disk to fill up with
    fillDisk(gw.app.db);
    try {
      expect(await chat(gw)).toBe(200); // answered: its row is held in memory, and the database said why
      const ready = await probe(gw, "/readyz");
      expect(ready).toEqual({ status: 503, body: { status: "not_ready", reasons: ["database_unwritable"] } });
      expect(await statuses(c)).toEqual(serving(["", GATEWAY, ADMIN]));
      await expect.poll(() => admin).toEqual(["SERVING", "NOT_SERVING"]);
      expect(gw.logs.join("\n")).toMatch(/readiness: the database refuses writes \(database or disk is full \(SQLITE_FULL\)\); not ready/);
    } finally {
      freeDisk(gw.app.db);
    }
    await expect.poll(async () => (await probe(gw, "/readyz")).status, { timeout: 3_000 }).toBe(200);
    expect(await statuses(c)).toEqual(serving([]));
    await expect.poll(() => admin).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
  });
});

describe("a drain", () => {
  it("/readyz 503 draining, even grpc.health.v1.Health NOT_SERVING (a Watch told, then ended), while /livez stays 200", async () => {
    const gw = await gateway({ DRAIN_TIMEOUT_MS: "10000" });
    gw.fake.onModel("qwen-max", { kind: "reply", content: "slow", firstByteDelayMs: 1_000 });
    const c = health(gw);
    const seen: string[] = [];
    const call = c.watch({ service: HEALTH });
    call.on("data", (m: { status: string }) => seen.push(m.status));
    call.on("error", () => {});
    const ended = new Promise<void>((resolve) => call.on("status", () => resolve()));
    await expect.poll(() => seen).toEqual(["SERVING"]);
    const port = gw.app.address.port;
    const ready = await getInTwoSteps(port, "/readyz");
    const live = await getInTwoSteps(port, "/livez");
    const inFlight = chat(gw); // so that the drain lasts
    await gw.fake.waitForRequests(1);

    const closing = gw.app.close();
    await ended;
    expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
    expect(await ready.finish()).toMatchObject({ statusLine: "HTTP/1.1 503 Service Unavailable", body: { status: "not_ready", reasons: ["draining"] } });
    expect(await live.finish()).toMatchObject({ statusLine: "HTTP/1.1 200 OK", body: { status: "ok" } });
    expect(gw.app.readiness.reasons).toEqual(["draining"]);
    expect(await inFlight).toBe(200);
    await closing;
  });
});
