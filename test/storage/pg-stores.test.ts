// The PostgreSQL stores (src/storage/pg/*.ts, opened by openStores with a
// DATABASE_URL) against a real server, each compared with its SQLite
// counterpart where both can run the same calls: keys (their lifecycle, the
// in-memory lookup that sees this store's writes at once and other replicas'
// and the CLI's by NOTIFY within a second, and answers while the server is
// stopped), limits and budgets (the same merge semantics, exact bigints,
// dataVersion moving on another replica's write), usage (the same counts,
// summaries, spending and row views for the same rows; rows not committed yet
// counted; committed() covering every batch sent; U+0000 kept as U+FFFD; rows
// held while the server does not answer, then committed exactly once), stored
// responses (the same reads as SQLite's, ownership, expiry), the
// readiness write check, and a database newer than this Gatewayz refused.
import pg from "pg";
import { describe, expect, it } from "vitest";
import { hashKey, looksLikeKey, type KeyRecord, type KeyStore } from "../../src/storage/keys.js";
import type { LimitStore } from "../../src/storage/limits.js";
import { PG_MIGRATIONS } from "../../src/storage/pg/pg-migrations.js";
import type { ResponseStore, SavedResponse, StoredItem } from "../../src/storage/responses.js";
import { openStores, type Stores, type StoresOptions } from "../../src/storage/stores.js";
import type { UsageRecord } from "../../src/storage/usage.js";
import { itemIds } from "../../src/responses/ids.js";
import { startPostgres, type TestPostgres } from "../support/postgres.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, ms = 5000): Promise<number> {
  const started = performance.now();
  while (!check()) {
    if (performance.now() - started > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
  return performance.now() - started;
}

/** The value and how long the call took (ms): what is read from memory must not wait on the server. */
function timed<T>(fn: () => T): { value: T; ms: number } {
  const started = performance.now();
  const value = fn();
  return { value, ms: performance.now() - started };
}

/** What the stores logged, to assert on (and nothing on stderr). */
function recorder() {
  const warns: string[] = [];
  const errors: string[] = [];
  return { warns, errors, log: { warn: (m: string) => void warns.push(m), error: (m: string) => void errors.push(m) } };
}

/** Every store a test opens, closed by its finally (before postgres.ts's afterEach kills the server). */
function opener() {
  const opened: Stores[] = [];
  const rec = recorder();
  const open = (target: { url?: string; timeoutMs?: number }, options: Partial<StoresOptions> = {}): Stores => {
    const stores = openStores(
      { databasePath: ":memory:", databaseUrl: target.url, databaseTimeoutMs: target.timeoutMs },
      { listen: false, log: rec.log, ...options });
    opened.push(stores);
    return stores;
  };
  return {
    ...rec,
    pg: (server: TestPostgres, options: Partial<StoresOptions> = {}, timeoutMs?: number) => open({ url: server.url, timeoutMs }, options),
    sqlite: (options: Partial<StoresOptions> = {}) => open({}, options),
    async closeAll() {
      await Promise.all(opened.splice(0).map((s) => s.close()));
    },
  };
}

function throws(fn: () => unknown): string {
  try {
    fn();
    return "no error";
  } catch (err) {
    return (err as Error).message;
  }
}

/** Waits until the clock has moved, so that rows made one after the other sort by created_at on both engines. */
function tick(): void {
  const at = Date.now();
  while (Date.now() === at) { /* spin a millisecond at most */ }
}

async function sql<R extends pg.QueryResultRow>(server: TestPostgres, text: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  try {
    return (await client.query<R>(text, params)).rows;
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------
// Keys

/**
 * The same calls on either engine, as a transcript in which ids are labels
 * (K1, U1: by first appearance) and times only "set" or null, so that two
 * engines' transcripts can be compared whole.
 */
function keyScenario(keys: KeyStore, startedAt: number) {
  const labels = new Map<string, string>();
  const label = (id: string | null, prefix: string) => {
    if (id === null) return null;
    let l = labels.get(id);
    if (!l) labels.set(id, (l = `${prefix}${[...labels.values()].filter((v) => v.startsWith(prefix)).length + 1}`));
    return l;
  };
  const secrets = new Map<string, string>();
  const norm = (r: KeyRecord | undefined) => {
    if (!r) return r;
    const key = secrets.get(r.id);
    if (key) expect(r.display).toBe(`${key.slice(0, r.kind === "admin" ? 13 : 12)}…${key.slice(-4)}`);
    expect(r.createdAt).toBeGreaterThanOrEqual(startedAt);
    expect(r.createdAt).toBeLessThanOrEqual(Date.now());
    if (r.revokedAt !== null) expect(r.revokedAt).toBeGreaterThanOrEqual(r.createdAt);
    const out: Record<string, unknown> = {
      id: label(r.id, "K"), userId: label(r.userId, "U"), userName: r.userName, name: r.name, kind: r.kind,
      revoked: r.revokedAt === null ? null : "set", replacedBy: label(r.replacedBy, "K"), cache: r.cache,
    };
    if ("hash" in r) out.hashMatches = key ? (r as { hash: Buffer }).hash.equals(hashKey(key)) : "unknown key";
    return out;
  };
  const make = (input: Parameters<KeyStore["create"]>[0]) => {
    tick();
    const made = keys.create(input);
    secrets.set(made.record.id, made.key);
    return made;
  };
  const found = (key: string) => norm(keys.findByHash(hashKey(key)));
  const t: Record<string, unknown> = {};

  const a = make({ user: "alice", name: "laptop" });
  const b = make({ user: " alice ", name: "phone", cache: "off" });
  const admin = make({ user: "root", name: "ops", kind: "admin" });
  const c = make({ user: "bob", name: "ci", cache: "on" });
  t.created = [a, b, admin, c].map((k) => norm(k.record));
  t.shapes = [a, b, admin, c].map((k) => [looksLikeKey(k.key), /^gw_(live|admin)_/.exec(k.key)![0]]);
  t.emptyUser = throws(() => keys.create({ user: "  ", name: "x" }));
  // The store's own writes count for its next lookup at once.
  t.found = [a, b, admin, c].map((k) => found(k.key));
  t.unknown = keys.findByHash(hashKey(`gw_live_${"0".repeat(32)}`));
  t.get = [norm(keys.get(b.record.id)), keys.get("key_nope")];
  t.list = keys.list().map(norm);
  t.listAlice = keys.list({ user: "alice" }).map(norm);
  t.listNobody = keys.list({ user: "nobody" });
  t.userIds = [keys.userId("alice") === a.record.userId, keys.userId("bob") === c.record.userId, keys.userId("nobody")];
  t.admins0 = keys.countAdminKeys();

  tick();
  const b2 = keys.rotate(b.record.id);
  secrets.set(b2.record.id, b2.key);
  t.rotated = [norm(b2.record), norm(keys.get(b.record.id)), found(b.key), found(b2.key), looksLikeKey(b2.key), b2.key !== b.key];
  t.rotateRevoked = throws(() => keys.rotate(b.record.id)).replace(b.record.id, label(b.record.id, "K")!);
  t.rotateUnknown = throws(() => keys.rotate("key_nope"));
  tick();
  const admin2 = keys.rotate(admin.record.id);
  secrets.set(admin2.record.id, admin2.key);
  t.adminRotated = [norm(admin2.record), keys.countAdminKeys()];

  t.revoke = [keys.revoke(c.record.id), keys.revoke(c.record.id), keys.revoke("key_nope"), found(c.key)];
  t.setCache = [keys.setCache(a.record.id, "off"), found(a.key), keys.setCache(a.record.id, "on"), norm(keys.get(a.record.id)),
    keys.setCache(a.record.id, null), found(a.key), keys.setCache("key_nope", "on")];
  t.revokeAdmin = [keys.revoke(admin2.record.id), keys.countAdminKeys()];
  t.lists = [keys.list().map(norm), keys.list({ includeRevoked: true }).map(norm), keys.list({ user: "alice", includeRevoked: true }).map(norm)];
  return t;
}

// ---------------------------------------------------------------------------
// Limits and budgets

const sorted = <V>(m: Map<string, V>) => Object.fromEntries([...m].sort(([x], [y]) => (x < y ? -1 : 1)));

function limitScenario(limits: LimitStore) {
  const steps: unknown[] = [];
  const snap = (what: string, fn: () => void) => {
    const error = throws(fn);
    steps.push({ what, error, limits: sorted(limits.limits()) });
  };
  snap("system rpm and tpm", () => limits.setLimits("system", "", { rpm: 60, tpm: 100_000 }));
  snap("system rpd, the others kept", () => limits.setLimits("system", "", { rpd: 1_000 }));
  snap("system rpm back to the default", () => limits.setLimits("system", "", { rpm: null }));
  snap("a user unlimited concurrency", () => limits.setLimits("user", "usr_x", { concurrent: 0 }));
  snap("a key with tpm named as undefined", () => limits.setLimits("key", "key_y", { rpm: 5, tpm: undefined }));
  snap("a key past 2^31", () => limits.setLimits("key", "key_y", { rpm: 2 ** 40 }));
  snap("nothing named", () => limits.setLimits("user", "usr_empty", {}));
  snap("negative", () => limits.setLimits("system", "", { rpm: -1 }));
  snap("fractional", () => limits.setLimits("key", "key_y", { tpm: 1.5 }));
  snap("a valid field beside an invalid one", () => limits.setLimits("user", "usr_x", { rpm: 7, tpm: -1 }));
  snap("a new row refused", () => limits.setLimits("user", "usr_new", { rpd: 2.5 }));
  snap("all four, then all reset", () => {
    limits.setLimits("key", "key_z", { rpm: 1, tpm: 2, rpd: 3, concurrent: 4 });
    limits.setLimits("key", "key_z", { rpm: null, tpm: null, rpd: null });
  });

  const budgets: unknown[] = [];
  const bsnap = (fn: () => void) => {
    fn();
    budgets.push(sorted(limits.budgets()));
  };
  bsnap(() => limits.setBudget("user", "usr_x", { limitPico: 2n ** 60n + 7n, period: "month" }));
  bsnap(() => limits.setBudget("user", "usr_x", { limitPico: 5n, period: "total" }));
  bsnap(() => limits.setBudget("key", "key_y", { limitPico: 2n ** 63n - 1n, period: "total" }));
  bsnap(() => limits.setBudget("user", "usr_x", null));
  bsnap(() => limits.setBudget("user", "usr_none", null));
  return { steps, budgets };
}

// ---------------------------------------------------------------------------
// Usage

const DAY = 86_400_000;
const BASE = Date.UTC(2024, 0, 10);

function usageRow(i: number): UsageRecord {
  const status = ["ok", "ok", "cached", "error", "cancelled", "rejected"][i % 6]!;
  const r: UsageRecord = {
    ts: BASE + Math.floor(i / 8) * DAY + (i % 8) * 3_600_000,
    keyId: i % 4 === 3 ? null : `key_${"abc"[i % 3]}`,
    userId: i % 5 === 4 ? null : `usr_${i % 2}`,
    protocol: ["openai", "grpc"][i % 2]!,
    requestedModel: `asked-${i % 3}`,
    model: i % 6 === 5 ? null : ["qwen-plus", "qwen-max", "Qwen-turbo", "ünicode-model"][i % 4]!,
    upstreamModel: i % 2 ? "qwen-plus-2025" : null,
    provider: i % 2 ? "alibaba-cloud" : "openrouter",
    promptTokens: 100 + i, completionTokens: i * 7, cachedTokens: i % 3, reasoningTokens: i % 2,
    costPico: status === "cached" ? 0n : BigInt(i) * 2n ** 50n + 123n,
    latencyMs: 10.5 + i, ttftMs: i % 2 ? null : 3.25, status, errorKind: status === "error" ? "upstream_5xx" : null,
    estimated: i % 3 === 0, attempts: 1 + (i % 3),
  };
  if (i % 7 === 0) r.clamped = true;
  if (i !== 13) r.requestId = i % 10 === 0 ? "req-dup" : `req-${i}`;
  const op = (["chat", "responses", "embeddings", undefined] as const)[i % 4];
  if (op) r.operation = op;
  if (status === "cached") r.savedPico = 2n ** 54n + BigInt(i);
  return r;
}

/** 24 rows over three days, inserted newest first, and rows on the days' edges and sharing a request id and a ts. */
function usageRows(): UsageRecord[] {
  const rows = Array.from({ length: 24 }, (_, i) => usageRow(i)).reverse();
  rows.push({ ...usageRow(1), ts: BASE - 1, requestId: "req-edge-before" });
  rows.push({ ...usageRow(2), ts: BASE + 3 * DAY, requestId: "req-edge-after", savedPico: 1n });
  rows.push({ ...usageRow(3), ts: BASE + 5, requestId: "req-same", requestedModel: "first" });
  rows.push({ ...usageRow(4), ts: BASE + 5, requestId: "req-same", requestedModel: "second" });
  return rows;
}

const FILTERS = [
  {}, { since: BASE + DAY }, { until: BASE + DAY }, { since: BASE + DAY / 2, until: BASE + 2 * DAY },
  { userId: "usr_1" }, { keyId: "key_b" }, { userId: "usr_0", since: BASE }, { keyId: "key_a", until: BASE + 2 * DAY }, { userId: "nobody" },
];
const SPENT = [
  ...["key_a", "key_b", "key_c", "key_none"].map((s) => ["key", s] as const),
  ...["usr_0", "usr_1", "nobody"].map((s) => ["user", s] as const),
].flatMap(([scope, subject]) => [0, BASE + DAY, BASE + 3 * DAY + 1].map((since) => ({ scope, subject, since })));

const expectedSpent = (rows: readonly UsageRecord[], scope: "key" | "user", subject: string, since: number) =>
  rows.filter((r) => r.ts >= since && (scope === "key" ? r.keyId : r.userId) === subject).reduce((s, r) => s + r.costPico, 0n);

// ---------------------------------------------------------------------------
// Responses

function conversationScenario(store: ResponseStore) {
  const idOf = (n: number) => `resp_${(0x18d0000000 + n).toString(16).padStart(12, "0")}${"ab".repeat(18)}`;
  const msg = (id: string, role: string, text: string): StoredItem => ({ type: "message", id, role, content: [{ type: "input_text", text }] });
  const r1 = idOf(1);
  const r2 = idOf(2);
  const ids1 = itemIds(r1);
  const ids2 = itemIds(r2);
  const q1 = msg(ids1("msg"), "user", "Q1");
  const a1 = msg(ids1("msg"), "assistant", "A1");
  const q2 = msg(ids2("msg"), "user", "Q2");
  const a2 = msg(ids2("msg"), "assistant", "A2");
  const neverMade = ids2("msg"); // of r2's shape, but no item of it
  const saved = (id: string, previousId: string | null, input: StoredItem[], output: StoredItem[]): SavedResponse => ({
    id, userId: "usr_a", createdAt: Date.now(), previousId, input, body: JSON.stringify({ id, object: "response", output, metadata: { n: "ü\u2028" } }),
  });
  return {
    r1, r2, a1, q2,
    first: saved(r1, null, [q1], [a1]),
    second: (before: StoredItem[]) => saved(r2, r1, [...before, q2], [a2]),
    // Awaited: PostgreSQL's store answers later, SQLite's at once.
    read: async (user: string) => ({
      get: await Promise.all([store.get(r1, user), store.get(r2, user)]),
      conversation: await Promise.all([store.conversation(r1, user), store.conversation(r2, user)]),
      inputDesc: await store.inputItems(r2, user, { limit: 2, order: "desc" }),
      inputAsc: await store.inputItems(r2, user, { limit: 10, order: "asc" }),
      inputAfter: await store.inputItems(r2, user, { after: a1.id, limit: 1, order: "asc" }),
      inputUnknownCursor: await store.inputItems(r2, user, { after: "msg_unknown", limit: 5, order: "desc" }),
      items: await Promise.all([store.item(a1.id, user), store.item(q2.id, user), store.item("msg_not_ours", user), store.item(neverMade, user)]),
    }),
  };
}

async function runConversation(store: ResponseStore) {
  const s = conversationScenario(store);
  await store.save(s.first);
  const before = (await store.conversation(s.r1, "usr_a"))!;
  await store.save(s.second(before));
  const owner = await s.read("usr_a");
  const other = await s.read("usr_b");
  const deletes = [];
  for (const [id, user] of [[s.r1, "usr_b"], [s.r1, "usr_a"], [s.r1, "usr_a"], ["resp_nope", "usr_a"]] as const) deletes.push(await store.delete(id, user));
  return { s, owner, other, deletes, afterDelete: await s.read("usr_a") };
}

// ---------------------------------------------------------------------------

describe("the PostgreSQL stores", { timeout: 60_000 }, () => {
  it("keys: create, get, list, rotate, revoke, setCache, userId and countAdminKeys as on SQLite; findByHash sees its own writes at once", async () => {
    const server = await startPostgres();
    const o = opener();
    try {
      const stores = o.pg(server);
      expect(stores).toMatchObject({ engine: "postgres", where: server.url, sqlite: undefined });
      const started = Date.now();
      const onPg = keyScenario(stores.keys, started);
      const onSqlite = keyScenario(o.sqlite().keys, started);
      expect(onPg).toEqual(onSqlite);

      // What the transcript says, spelled out.
      expect(onPg.created).toEqual([
        { id: "K1", userId: "U1", userName: "alice", name: "laptop", kind: "client", revoked: null, replacedBy: null, cache: null },
        { id: "K2", userId: "U1", userName: "alice", name: "phone", kind: "client", revoked: null, replacedBy: null, cache: "off" },
        { id: "K3", userId: "U2", userName: "root", name: "ops", kind: "admin", revoked: null, replacedBy: null, cache: null },
        { id: "K4", userId: "U3", userName: "bob", name: "ci", kind: "client", revoked: null, replacedBy: null, cache: "on" },
      ]);
      expect(onPg.shapes).toEqual([[true, "gw_live_"], [true, "gw_live_"], [true, "gw_admin_"], [true, "gw_live_"]]);
      expect(onPg.emptyUser).toBe("a key needs a user");
      expect((onPg.found as Array<{ hashMatches: boolean }>).map((f) => f.hashMatches)).toEqual([true, true, true, true]);
      expect(onPg.unknown).toBeUndefined();
      expect(onPg.get).toEqual([expect.objectContaining({ id: "K2" }), undefined]);
      expect((onPg.list as Array<{ id: string }>).map((k) => k.id)).toEqual(["K1", "K2", "K3", "K4"]);
      expect((onPg.listAlice as Array<{ id: string }>).map((k) => k.id)).toEqual(["K1", "K2"]);
      expect(onPg.listNobody).toEqual([]);
      expect(onPg.userIds).toEqual([true, true, undefined]);
      expect(onPg.admins0).toBe(1);
      const [fresh, old, oldFound, freshFound, shaped, differs] = onPg.rotated as unknown[];
      expect(fresh).toEqual({ id: "K5", userId: "U1", userName: "alice", name: "phone", kind: "client", revoked: null, replacedBy: null, cache: "off" });
      expect(old).toMatchObject({ id: "K2", revoked: "set", replacedBy: "K5" });
      expect(oldFound).toMatchObject({ id: "K2", revoked: "set", replacedBy: "K5", hashMatches: true });
      expect(freshFound).toMatchObject({ id: "K5", revoked: null, hashMatches: true });
      expect([shaped, differs]).toEqual([true, true]);
      expect(onPg.rotateRevoked).toBe("no active key K2");
      expect(onPg.rotateUnknown).toBe("no active key key_nope");
      expect(onPg.adminRotated).toEqual([{ id: "K6", userId: "U2", userName: "root", name: "ops", kind: "admin", revoked: null, replacedBy: null, cache: null }, 1]);
      expect(onPg.revoke).toEqual([true, false, false, expect.objectContaining({ id: "K4", revoked: "set", replacedBy: null })]);
      expect(onPg.setCache).toEqual([true, expect.objectContaining({ cache: "off" }), true, expect.objectContaining({ cache: "on" }),
        true, expect.objectContaining({ cache: null }), false]);
      expect(onPg.revokeAdmin).toEqual([true, 0]);
      const [active, all, alice] = (onPg.lists as Array<Array<{ id: string }>>).map((l) => l.map((k) => k.id));
      expect(active).toEqual(["K1", "K5"]);
      expect(all).toEqual(["K1", "K2", "K3", "K4", "K5", "K6"]);
      expect(alice).toEqual(["K1", "K2", "K5"]);
      expect(o.errors).toEqual([]);
    } finally {
      await o.closeAll();
    }
  });

  it("keys: another replica sees a key created, rotated, revoked and its cache set within 1 s (NOTIFY), and a key the CLI made", async () => {
    const server = await startPostgres();
    const o = opener();
    try {
      const first = o.pg(server, { listen: true });
      const replica = o.pg(server, { listen: true });
      const cli = o.pg(server, { listen: false });
      const seen = (s: Stores, key: string) => s.keys.findByHash(hashKey(key));
      const within1s = (what: string, check: () => boolean) => until(what, check, 1000);

      // The replica's copy is loaded (by its first lookup) before the writes it must follow.
      expect(replica.keys.findByHash(hashKey(`gw_live_${"1".repeat(32)}`))).toBeUndefined();
      const made = first.keys.create({ user: "carol", name: "k" });
      expect(seen(first, made.key)?.id).toBe(made.record.id);
      await within1s("the replica to see the new key", () => seen(replica, made.key)?.id === made.record.id);
      expect(seen(replica, made.key)).toEqual({ ...made.record, hash: hashKey(made.key) });

      const rotated = first.keys.rotate(made.record.id);
      await within1s("the replica to see the rotation", () =>
        seen(replica, made.key)?.replacedBy === rotated.record.id && seen(replica, rotated.key)?.revokedAt === null);
      expect(seen(replica, made.key)?.revokedAt).toEqual(expect.any(Number));
      expect(seen(replica, rotated.key)).toEqual({ ...rotated.record, hash: hashKey(rotated.key) });

      expect(first.keys.setCache(rotated.record.id, "off")).toBe(true);
      await within1s("the replica to see the cache setting", () => seen(replica, rotated.key)?.cache === "off");

      expect(first.keys.revoke(rotated.record.id)).toBe(true);
      await within1s("the replica to see the revocation", () => seen(replica, rotated.key)?.revokedAt !== null);

      // The CLI (listen: false) writes with the same notification, and both serving replicas take it in.
      const byCli = cli.keys.create({ user: "dave", name: "from-cli", kind: "admin" });
      expect(seen(cli, byCli.key)?.id).toBe(byCli.record.id);
      await within1s("both replicas to see the CLI's key", () => seen(first, byCli.key)?.id === byCli.record.id && seen(replica, byCli.key)?.id === byCli.record.id);
      expect(replica.keys.countAdminKeys()).toBe(1);
      expect(seen(replica, `gw_live_${"1".repeat(32)}`)).toBeUndefined();
      expect(o.warns).toEqual([]);
    } finally {
      await o.closeAll();
    }
  });

  it("with the server paused, findByHash (known and unknown keys), limits(), budgets() and dataVersion() answer at once from memory", async () => {
    const server = await startPostgres();
    const o = opener();
    try {
      const stores = o.pg(server, { listen: true });
      const made = stores.keys.create({ user: "erin", name: "k" });
      stores.limits.setLimits("user", made.record.userId, { rpm: 10 });
      stores.limits.setBudget("key", made.record.id, { limitPico: 2n ** 55n, period: "month" });
      await sleep(300); // the stores' own notifications come back and are taken in
      const before = {
        known: stores.keys.findByHash(hashKey(made.key)), limits: stores.limits.limits(), budgets: stores.limits.budgets(), version: stores.limits.dataVersion(),
      };
      expect(before.known?.id).toBe(made.record.id);

      server.pause();
      try {
        for (let round = 0; round < 3; round++) {
          const known = timed(() => stores.keys.findByHash(hashKey(made.key)));
          const unknown = timed(() => stores.keys.findByHash(hashKey(`gw_live_${String(round).repeat(32)}`)));
          const limits = timed(() => stores.limits.limits());
          const budgets = timed(() => stores.limits.budgets());
          const version = timed(() => stores.limits.dataVersion());
          expect(known.value).toEqual(before.known);
          expect(unknown.value).toBeUndefined();
          expect(limits.value).toEqual(before.limits);
          expect(budgets.value).toEqual(before.budgets);
          expect(version.value).toBe(before.version);
          for (const call of [known, unknown, limits, budgets, version]) expect(call.ms).toBeLessThan(50);
          await sleep(50);
        }
      } finally {
        server.resume();
      }
      // And the server serves again once it is back.
      expect(stores.keys.get(made.record.id)?.id).toBe(made.record.id);
    } finally {
      await o.closeAll();
    }
  });

  it("limits and budgets: setLimits merges as on SQLite, null resets, invalid values throw and change nothing; budgets exact past 2^53; dataVersion follows another replica", async () => {
    const server = await startPostgres();
    const o = opener();
    try {
      const stores = o.pg(server, { listen: true });
      const onPg = limitScenario(stores.limits);
      const onSqlite = limitScenario(o.sqlite().limits);
      expect(onPg).toEqual(onSqlite);

      const steps = onPg.steps as Array<{ what: string; error: string; limits: Record<string, unknown> }>;
      const at = (what: string) => steps.find((s) => s.what === what)!;
      expect(at("system rpd, the others kept").limits["system:"]).toEqual({ scope: "system", subject: "", rpm: 60, tpm: 100_000, rpd: 1_000 });
      expect(at("system rpm back to the default").limits["system:"]).toEqual({ scope: "system", subject: "", tpm: 100_000, rpd: 1_000 });
      expect(at("a key with tpm named as undefined").limits["key:key_y"]).toEqual({ scope: "key", subject: "key_y", rpm: 5 });
      expect(at("a key past 2^31").limits["key:key_y"]).toEqual({ scope: "key", subject: "key_y", rpm: 2 ** 40 });
      expect(at("nothing named").limits["user:usr_empty"]).toEqual({ scope: "user", subject: "usr_empty" });
      expect(at("all four, then all reset").limits["key:key_z"]).toEqual({ scope: "key", subject: "key_z", concurrent: 4 });
      const valid = at("nothing named").limits;
      for (const [what, value] of [["negative", -1], ["fractional", 1.5], ["a valid field beside an invalid one", -1], ["a new row refused", 2.5]] as const) {
        expect(at(what).error).toBe(`limits must be non-negative integers, got ${value}`);
        expect(at(what).limits).toEqual(valid);
      }
      expect(onPg.budgets[0]).toEqual({ "user:usr_x": { scope: "user", subject: "usr_x", limitPico: 1152921504606846983n, period: "month" } });
      expect(onPg.budgets[1]).toEqual({ "user:usr_x": { scope: "user", subject: "usr_x", limitPico: 5n, period: "total" } });
      expect(onPg.budgets[4]).toEqual({ "key:key_y": { scope: "key", subject: "key_y", limitPico: 9223372036854775807n, period: "total" } });
      // What PostgreSQL holds, read another way: exact.
      expect(await sql(server, "SELECT limit_pico::text AS l FROM budgets")).toEqual([{ l: "9223372036854775807" }]);

      // Its own write moves dataVersion at once; another replica's within a second, by NOTIFY.
      const v0 = stores.limits.dataVersion();
      stores.limits.setLimits("system", "", { rpm: 1 });
      const v1 = stores.limits.dataVersion();
      expect(v1).not.toBe(v0);
      await sleep(100); // its own notification is taken in too
      const replica = o.pg(server, { listen: true });
      const v2 = stores.limits.dataVersion();
      replica.limits.setLimits("user", "usr_far", { tpm: 77 });
      await until("dataVersion to move on the other replica's limit", () => stores.limits.dataVersion() !== v2, 1000);
      expect(stores.limits.limits().get("user:usr_far")).toEqual({ scope: "user", subject: "usr_far", tpm: 77 });
      const v3 = stores.limits.dataVersion();
      replica.limits.setBudget("user", "usr_far", { limitPico: 2n ** 53n + 1n, period: "total" });
      await until("dataVersion to move on the other replica's budget", () => stores.limits.dataVersion() !== v3, 1000);
      expect(stores.limits.budgets().get("user:usr_far")?.limitPico).toBe(9007199254740993n);
      const v4 = stores.limits.dataVersion();
      const cli = o.pg(server, { listen: false });
      cli.limits.setBudget("user", "usr_far", null);
      await until("dataVersion to move on the CLI's budget removal", () => stores.limits.dataVersion() !== v4, 1000);
      expect(stores.limits.budgets().has("user:usr_far")).toBe(false);
    } finally {
      await o.closeAll();
    }
  });

  it("usage: count, every summary with filters, spent (rows not committed yet included) and byRequestId equal SQLite's for the same rows; U+0000 is kept as U+FFFD", async () => {
    const server = await startPostgres();
    const o = opener();
    try {
      const onPg = o.pg(server);
      const onSqlite = o.sqlite();
      const rows = usageRows();
      for (const r of rows) onPg.usage.insert(r);
      for (const r of rows) onSqlite.usage.insert(r);

      // Before committed(): the rows are queued, not written, and spending counts them already.
      expect(onPg.usage.rowCounts()).toMatchObject({ pending: rows.length, written: 0 });
      for (const { scope, subject, since } of SPENT) {
        expect(onPg.usage.spent(scope, subject, since), `${scope} ${subject} since ${since}`).toBe(expectedSpent(rows, scope, subject, since));
      }
      await Promise.all([onPg.usage.committed(), onSqlite.usage.committed()]);
      expect(onPg.usage.rowCounts()).toEqual({ pending: 0, written: rows.length, lost: 0 });

      expect(onPg.usage.count()).toBe(rows.length);
      expect(onSqlite.usage.count()).toBe(rows.length);
      for (const by of ["key", "user", "model", "day"] as const) {
        for (const filter of FILTERS) {
          expect(onPg.usage.summary(by, filter), `${by} ${JSON.stringify(filter)}`).toEqual(onSqlite.usage.summary(by, filter));
        }
      }
      // What was compared is not trivially empty.
      expect(onPg.usage.summary("day").map((r) => r.group)).toEqual(["2024-01-09", "2024-01-10", "2024-01-11", "2024-01-12", "2024-01-13"]);
      expect(onPg.usage.summary("model").map((r) => r.group)).toEqual(["Qwen-turbo", "asked-2", "qwen-max", "qwen-plus", "ünicode-model"]);
      expect(onPg.usage.summary("key").map((r) => r.group)).toEqual(["(none)", "key_a", "key_b", "key_c"]);
      const total = onPg.usage.summary("user").reduce((s, r) => s + r.costPico, 0n);
      expect(total).toBe(rows.reduce((s, r) => s + r.costPico, 0n));
      expect(total > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
      expect(onPg.usage.summary("user", { userId: "nobody" })).toEqual([]);
      for (const { scope, subject, since } of SPENT) {
        const want = expectedSpent(rows, scope, subject, since);
        expect(onPg.usage.spent(scope, subject, since), `${scope} ${subject} since ${since}`).toBe(want);
        expect(onSqlite.usage.spent(scope, subject, since)).toBe(want);
      }

      const requestIds = [...new Set(rows.map((r) => r.requestId ?? "none"))].concat("req-unknown");
      for (const id of requestIds) expect(onPg.usageRows.byRequestId(id), id).toEqual(onSqlite.usageRows.byRequestId(id));
      expect(onPg.usageRows.byRequestId("req-dup").map((r) => r.ts)).toEqual([BASE, BASE + DAY + 2 * 3_600_000, BASE + 2 * DAY + 4 * 3_600_000]);
      expect(onPg.usageRows.byRequestId("req-same").map((r) => r.requestedModel)).toEqual(["first", "second"]);
      expect(onPg.usageRows.byRequestId("req-6")).toEqual([{
        ts: BASE + 6 * 3_600_000, requestId: "req-6", keyId: "key_a", userName: null, protocol: "openai", requestedModel: "asked-0",
        model: "Qwen-turbo", upstreamModel: null, provider: "openrouter", promptTokens: 106, completionTokens: 42, cachedTokens: 0,
        reasoningTokens: 0, costPico: 6n * 2n ** 50n + 123n, savedPico: 0n, latencyMs: 16.5, ttftMs: 3.25, status: "ok", errorKind: null,
        estimated: true, clamped: false, attempts: 1, operation: "embeddings",
      }]);

      // A requested model with U+0000, which a text column cannot hold, and its neighbours in the same batch.
      const odd = [
        { ...usageRow(1), requestId: "nul-before" },
        { ...usageRow(2), requestId: "nul-row", requestedModel: "bad\u0000model", model: null },
        { ...usageRow(3), requestId: "nul-after" },
      ];
      for (const r of odd) onPg.usage.insert(r);
      await onPg.usage.committed();
      expect(onPg.usage.count()).toBe(rows.length + 3);
      expect(onPg.usageRows.byRequestId("nul-row").map((r) => r.requestedModel)).toEqual(["bad\uFFFDmodel"]);
      expect(onPg.usageRows.byRequestId("nul-before")).toHaveLength(1);
      expect(onPg.usageRows.byRequestId("nul-after")).toHaveLength(1);
      expect(onPg.usage.summary("model", { since: BASE, until: BASE + DAY }).map((r) => r.group)).toContain("bad\uFFFDmodel");
      expect(onPg.usage.rowCounts()).toEqual({ pending: 0, written: rows.length + 3, lost: 0 });

      // committed() covers every row inserted so far, also those of a full batch sent before (700 rows in a
      // turn: 512 go at once, 188 at its end, on another connection, and may be answered first).
      for (let round = 0; round < 10; round++) {
        const before = onPg.usage.count();
        for (let i = 0; i < 700; i++) onPg.usage.insert({ ...usageRow(i % 24), requestId: `bulk-${round}-${i}` });
        await onPg.usage.committed();
        expect(onPg.usage.count() - before, `round ${round}`).toBe(700);
      }
      expect(o.errors).toEqual([]);
    } finally {
      await o.closeAll();
    }
  });

  it("usage: rows inserted while the server does not answer are held, committed() still resolves, the store is unavailable at bufferRows, then every row is committed exactly once", async () => {
    const server = await startPostgres();
    const o = opener();
    try {
      const stores = o.pg(server, { usage: { bufferRows: 5, retryMs: { first: 50, max: 200 } } }, 500);
      const changes: boolean[] = [];
      stores.usage.onAvailabilityChange((a) => changes.push(a));
      const row = (name: string): UsageRecord => ({ ...usageRow(1), requestId: name, ts: Date.now() });
      stores.usage.insert(row("before"));
      await stores.usage.committed();
      expect(stores.usage.count()).toBe(1);

      const held: string[] = [];
      server.pause();
      try {
        const insert = (name: string) => {
          held.push(name);
          stores.usage.insert(row(name));
        };
        for (let i = 0; i < 3; i++) insert(`held-${i}`);
        const started = performance.now();
        await stores.usage.committed();
        // Bounded by the bridge's wait (DATABASE_TIMEOUT_MS 500: 500 + 500 + 1000 ms), not by the server.
        expect(performance.now() - started).toBeLessThan(4_000);
        expect(stores.usage.health()).toMatchObject({ available: true, buffered: 3, capacity: 5, lost: 0 });
        // The batch went out on a pooled connection and its answer never came: it may yet commit (it does, once
        // the server resumes), and the retry sends the same rows again. row_uid (migration 9) keeps them single.
        expect(stores.usage.health().lastError).toMatch(/^PostgreSQL did not answer within 2000 ms /);
        expect(changes).toEqual([]);

        for (let i = 3; i < 5; i++) insert(`held-${i}`);
        const behind = performance.now();
        await stores.usage.committed();
        expect(performance.now() - behind).toBeLessThan(100); // behind held rows: held at once, not tried
        expect(stores.usage.health()).toMatchObject({ available: false, buffered: 5 });
        expect(stores.usage.available()).toBe(false);
        expect(changes).toEqual([false]);

        // A request already in flight still has its row kept (up to the hard limit).
        insert("held-5");
        await stores.usage.committed();
        await sleep(300); // retries go on meanwhile, and fail
        expect(stores.usage.health()).toMatchObject({ available: false, buffered: 6, lost: 0 });
      } finally {
        server.resume();
      }
      await until("the held rows to be committed", () => stores.usage.available() && stores.usage.health().buffered === 0, 15_000);
      expect(changes).toEqual([false, true]);
      expect(stores.usage.health()).toMatchObject({ available: true, buffered: 0, lost: 0, lastError: undefined });
      await sleep(500); // anything the server still had queued from before would have landed by now
      const counts = await sql<{ request_id: string; n: number }>(server, "SELECT request_id, count(*)::int AS n FROM usage GROUP BY request_id ORDER BY request_id");
      expect(counts).toEqual(["before", ...held].sort().map((request_id) => ({ request_id, n: 1 })));
      expect(stores.usage.count()).toBe(1 + held.length);
      expect(stores.usage.rowCounts()).toMatchObject({ pending: 0, lost: 0 });
      expect(o.errors.some((e) => /new chat requests are refused/.test(e))).toBe(true);
    } finally {
      await o.closeAll();
    }
  });

  it("responses: save, get, conversation, inputItems, item and delete as on SQLite, never across users; sweep removes expired rows", async () => {
    const server = await startPostgres();
    const o = opener();
    try {
      const stores = o.pg(server);
      const sqlite = o.sqlite();
      const onPg = await runConversation(stores.responses(60_000));
      const onSqlite = await runConversation(sqlite.responses(60_000));
      expect(onPg.owner).toEqual(onSqlite.owner);
      expect(onPg.other).toEqual(onSqlite.other);
      expect(onPg.deletes).toEqual(onSqlite.deletes);
      expect(onPg.afterDelete).toEqual(onSqlite.afterDelete);

      const { s, owner, other } = onPg;
      expect(owner.get[0]).toEqual(JSON.parse(s.first.body));
      expect((owner.get[1] as { metadata: unknown }).metadata).toEqual({ n: "ü\u2028" });
      expect(owner.conversation[1]!.map((i) => (i.content as Array<{ text: string }>)[0]!.text)).toEqual(["Q1", "A1", "Q2", "A2"]);
      expect(owner.inputDesc).toEqual({ data: [s.q2, s.a1], hasMore: true });
      expect(owner.inputAsc!.data.map((i) => i.id)).toEqual([...s.first.input, s.a1, s.q2].map((i) => i.id));
      expect(owner.inputAsc!.hasMore).toBe(false);
      expect(owner.inputAfter).toEqual({ data: [s.q2], hasMore: false });
      expect(owner.inputUnknownCursor).toEqual({ data: [], hasMore: false });
      // a1 is found in r1 (its own response), q2 in r2; ids not of ours, or of no stored item, are not.
      expect(owner.items).toEqual([s.a1, s.q2, undefined, undefined]);
      expect(other).toEqual({
        get: [undefined, undefined], conversation: [undefined, undefined], inputDesc: undefined, inputAsc: undefined,
        inputAfter: undefined, inputUnknownCursor: undefined, items: [undefined, undefined, undefined, undefined],
      });
      // Another user cannot delete it; its owner can, once.
      expect(onPg.deletes).toEqual([false, true, false, false]);
      expect(onPg.afterDelete.get).toEqual([undefined, expect.objectContaining({ id: s.r2 })]);
      expect(onPg.afterDelete.items[0]).toBeUndefined(); // a1 lived in r1 only

      // Several saves in one turn go in one batch; a store with a tiny TTL sees them expire, and sweep() removes them.
      const brief = stores.responses(1);
      const briefIds = ["resp_a1", "resp_a2", "resp_a3"];
      await Promise.all(briefIds.map((id) => brief.save({ id, userId: "usr_a", createdAt: Date.now(), previousId: null, body: JSON.stringify({ id, output: [] }), input: [] })));
      await sleep(5);
      expect(await Promise.all(briefIds.map((id) => brief.get(id, "usr_a")))).toEqual([undefined, undefined, undefined]);
      expect(await brief.sweep()).toBe(3);
      expect(await brief.sweep()).toBe(0);
      expect(await sql(server, "SELECT id FROM responses ORDER BY id")).toEqual([{ id: s.r2 }]);
      // The long-lived response is untouched by the sweep.
      expect(await stores.responses(60_000).get(s.r2, "usr_a")).toEqual(expect.objectContaining({ id: s.r2 }));
    } finally {
      await o.closeAll();
    }
  });

  it("writeCheck: writable on a live server (a real write), false within 2 × maxAge of the server pausing, writable again after it resumes", async () => {
    const server = await startPostgres();
    const o = opener();
    try {
      const stores = o.pg(server);
      const check = stores.writeCheck();
      expect(check.writable()).toBe(true);
      await sleep(1_050);
      const sent = Date.now();
      expect(check.writable()).toBe(true); // the result older than maxAge: a new write goes out
      let checkedAt = 0;
      for (const started = performance.now(); checkedAt < sent && performance.now() - started < 2_000; await sleep(20)) {
        checkedAt = Number((await sql<{ checked_at: string }>(server, "SELECT checked_at FROM health WHERE id = 1"))[0]!.checked_at);
      }
      expect(checkedAt).toBeGreaterThanOrEqual(sent);
      expect(checkedAt).toBeLessThanOrEqual(Date.now());
      expect(check.lastError).toBeUndefined();

      server.pause();
      const paused = performance.now();
      let falseAfter: number | undefined;
      try {
        while (performance.now() - paused < 3_000) {
          if (!check.writable()) {
            falseAfter = performance.now() - paused;
            break;
          }
          await sleep(20);
        }
        expect(falseAfter).toBeDefined();
        expect(falseAfter!).toBeLessThan(2 * 1_000 + 200);
        expect(check.lastError).toMatch(/^PostgreSQL has not confirmed a write for \d+ ms$/);
        expect(check.writable()).toBe(false);
      } finally {
        server.resume();
      }
      const back = await until("writable() to be true again", () => check.writable(), 5_000);
      expect(back).toBeLessThan(2_000);
      expect(check.lastError).toBeUndefined();
    } finally {
      await o.closeAll();
    }
  });

  it("openStores refuses a database whose schema_version is above the known migrations, leaving it as it is", async () => {
    const server = await startPostgres();
    const o = opener();
    try {
      o.pg(server);
      await o.closeAll(); // the schema is made, at the newest version
      const newer = PG_MIGRATIONS.length + 1;
      await sql(server, "UPDATE schema_version SET version = $1", [newer]);
      expect(() => openStores({ databasePath: ":memory:", databaseUrl: server.url }, { listen: true, log: o.log })).toThrow(
        `the database is at schema version ${newer}, newer than this Gatewayz understands (${PG_MIGRATIONS.length}); upgrade Gatewayz or use another DATABASE_URL`);
      expect(await sql(server, "SELECT version FROM schema_version")).toEqual([{ version: newer }]);
    } finally {
      await o.closeAll();
    }
  });
});
