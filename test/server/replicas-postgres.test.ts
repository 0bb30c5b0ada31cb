// Replicas on PostgreSQL (DATABASE_URL) end to end, beyond the shared limits that
// limits-redis.test.ts proves on both engines: the start-up log when DATABASE_URL and
// DATABASE_PATH are both set, the CLI against the shared database, exactly one usage row a
// request whichever replica served it, a replica killed with SIGKILL under load losing at most
// its current batches' rows, and PostgreSQL stopping to answer: served from memory, rows held and
// committed once it is back, admin writes refused as storage_unavailable, readiness false.
import { describe, expect, it } from "vitest";
import { main as cli } from "../../src/cli/main.js";
import { useBundledReplicas } from "../support/bundled-replicas.js";
import { startPostgres } from "../support/postgres.js";
import { selectRows } from "../support/shared-usage.js";

const MODEL = "qwen-max";
const ADMIN_KEY = "gw_admin_" + "Replicas0123456789abcdefghijklmn".slice(0, 32);
const suite = useBundledReplicas();

/** The CLI in this process, as `gatewayz ARGS` with DATABASE_URL set; its output and exit status. */
function gatewayz(url: string, ...argv: string[]): { code: number; out: string; err: string } {
  let out = "";
  let err = "";
  const code = cli(argv, { out: (t) => void (out += t), err: (t) => void (err += t), env: { DATABASE_URL: url, ENV_FILE: "/nonexistent.env" } });
  return { code, out, err };
}

function createKey(url: string, user = "team"): string {
  const made = gatewayz(url, "keys", "create", "--user", user, "--name", "replicas", "--json");
  expect(made.code, made.err).toBe(0);
  return (JSON.parse(made.out) as { key: string }).key;
}

async function ask(base: string, key: string, requestId?: string): Promise<number> {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...(requestId ? { "x-request-id": requestId } : {}) },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }] }),
  });
  await res.arrayBuffer();
  return res.status;
}

const rowCount = async (url: string) => Number((await selectRows<{ n: string }>({ databasePath: "", databaseUrl: url }, "SELECT COUNT(*) AS n FROM usage"))[0]!.n);

describe("replicas on PostgreSQL", { timeout: 60_000 }, () => {
  it("says at start that DATABASE_URL wins over DATABASE_PATH, and the CLI and every replica share keys and usage", async () => {
    const pg = await startPostgres();
    const key = createKey(pg.url);
    const replicas = await Promise.all([0, 1, 2].map(() => suite.start({ DATABASE_URL: pg.url })));
    // startGatewayChild sets DATABASE_PATH too: DATABASE_URL wins, and the log says which database, without a password.
    expect(replicas[0]!.output()).toMatch(/Database: PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres; DATABASE_URL wins over DATABASE_PATH \(.*gatewayz\.db is not used\)/);
    suite.fake.onModel(MODEL, { kind: "reply" });
    const ids = Array.from({ length: 30 }, (_, i) => `pg-replica-${i}`);
    const statuses = await Promise.all(ids.map((id, i) => ask(replicas[i % 3]!.url, key, id)));
    expect(statuses.every((s) => s === 200)).toBe(true);
    // Exactly one row a request, whichever replica served it (in the batch after its answer).
    const byId = () => selectRows<{ request_id: string; n: string }>({ databasePath: "", databaseUrl: pg.url },
      "SELECT request_id, COUNT(*) AS n FROM usage WHERE request_id LIKE 'pg-replica-%' GROUP BY request_id");
    await expect.poll(async () => (await byId()).length, { timeout: 2_000 }).toBe(30);
    const rows = await byId();
    expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
    // The CLI reads the same rows.
    const usage = gatewayz(pg.url, "usage", "--by", "user", "--json");
    expect(usage.code, usage.err).toBe(0);
    expect(JSON.parse(usage.out)).toMatchObject({ rows: [expect.objectContaining({ group: expect.any(String), requests: 30 })] });
  });

  it("a response stored through one replica is read, continued and deleted through another", async () => {
    const pg = await startPostgres();
    const key = createKey(pg.url);
    const [a, b] = await Promise.all([0, 1].map(() => suite.start({ DATABASE_URL: pg.url })));
    suite.fake.onModel(MODEL, { kind: "reply" });
    const post = (base: string, body: object) => fetch(`${base}/v1/responses`, {
      method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify({ model: MODEL, ...body }),
    });
    const first = await post(a!.url, { input: "remember: 42" });
    expect(first.status).toBe(200);
    const { id } = await first.json() as { id: string };
    const read = await fetch(`${b!.url}/v1/responses/${id}`, { headers: { authorization: `Bearer ${key}` } });
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ id, object: "response" });
    const next = await post(b!.url, { input: "what was it?", previous_response_id: id });
    expect(next.status).toBe(200);
    // The conversation went upstream whole: the first turn's input, its answer, then the new input.
    const sent = suite.fake.requests.at(-1)!.body as { messages: Array<{ role: string; content: unknown }> };
    expect(sent.messages.map((m) => m.role)).toEqual(["user", "assistant", "user"]);
    const items = await fetch(`${a!.url}/v1/responses/${(await next.json() as { id: string }).id}/input_items?order=asc`, { headers: { authorization: `Bearer ${key}` } });
    expect((await items.json() as { data: unknown[] }).data).toHaveLength(3); // what the model was given: the first turn, its answer, the new input
    expect((await fetch(`${b!.url}/v1/responses/${id}`, { method: "DELETE", headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    expect((await fetch(`${a!.url}/v1/responses/${id}`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(404);
  });

  it("a replica killed with SIGKILL under load loses at most the rows of its current batches", async () => {
    const pg = await startPostgres();
    const key = createKey(pg.url);
    const [victim, other] = await Promise.all([0, 1].map(() => suite.start({ DATABASE_URL: pg.url })));
    suite.fake.onModel(MODEL, { kind: "reply" });
    let answered = 0;
    let sent = 0;
    const load = Array.from({ length: 16 }, async () => {
      for (;;) {
        sent++;
        const status = await ask(victim!.url, key).catch(() => 0);
        if (status !== 200) return;
        answered++;
      }
    });
    await expect.poll(() => answered, { timeout: 10_000 }).toBeGreaterThan(200);
    victim!.kill();
    await Promise.all(load);
    const rows = await rowCount(pg.url);
    // What is lost is at most its current batches: the one in flight and the rows gathered behind it,
    // the requests of about one round trip to PostgreSQL (here far fewer than a second's worth).
    process.stderr.write(`SIGKILL: ${answered} answered, ${sent} sent, ${rows} rows\n`);
    expect(rows).toBeGreaterThanOrEqual(answered - 100);
    expect(rows).toBeLessThanOrEqual(sent);
    // The survivor carries on.
    expect(await ask(other!.url, key)).toBe(200);
  });

  it("PostgreSQL not answering: keys and limits served from memory, rows held then committed, admin writes refused, not ready", async () => {
    const pg = await startPostgres();
    const key = createKey(pg.url);
    const gw = await suite.start({ DATABASE_URL: pg.url, DATABASE_TIMEOUT_MS: "500", GATEWAYZ_ADMIN_KEY: ADMIN_KEY });
    suite.fake.onModel(MODEL, { kind: "reply" });
    expect(await ask(gw.url, key)).toBe(200);
    pg.pause();
    try {
      // Answered: the key and its limits are in memory, the row waits in the retry buffer.
      const t = performance.now();
      expect(await Promise.all([ask(gw.url, key), ask(gw.url, key), ask(gw.url, key)])).toEqual([200, 200, 200]);
      expect(performance.now() - t).toBeLessThan(3_000);
      const created = await fetch(`${gw.url}/gatewayz.v1.AdminService/CreateKey`, {
        method: "POST", headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ user: "late", name: "late" }),
      });
      expect(created.status).toBe(503);
      expect(await created.json()).toMatchObject({ code: "unavailable", message: expect.stringMatching(/PostgreSQL/) });
      await expect.poll(async () => (await fetch(`${gw.url}/readyz`)).status, { timeout: 5_000, interval: 200 }).toBe(503);
      // The batch's INSERT gives up (within DATABASE_TIMEOUT_MS and the bridge's margin): its rows are held.
      await gw.waitForOutput(/holding usage rows in memory/, 10_000);
    } finally {
      pg.resume();
    }
    // Back by itself: the held rows are committed (one a request: 4), and it is ready again.
    await expect.poll(() => rowCount(pg.url), { timeout: 10_000, interval: 200 }).toBe(4);
    await expect.poll(async () => (await fetch(`${gw.url}/readyz`)).status, { timeout: 10_000, interval: 200 }).toBe(200);
    expect(gw.output()).toMatch(/usage: the database accepts writes again; \d+ held usage row\(s\) committed/);
  });
});

describe("--workers on PostgreSQL", { timeout: 60_000 }, () => {
  it("the primary and its workers share the database: a key made by the CLI while running works, every request has its row", async () => {
    const pg = await startPostgres();
    createKey(pg.url);
    const gw = await suite.start({ DATABASE_URL: pg.url, WORKERS: "2", RATE_LIMITS_KEY: "rpm=20" });
    suite.fake.onModel(MODEL, { kind: "reply" });
    const late = createKey(pg.url, "late");
    await expect.poll(() => ask(gw.url, late), { timeout: 2_000, interval: 50 }).toBe(200);
    const statuses = await Promise.all(Array.from({ length: 24 }, () => ask(gw.url, late)));
    // The key's limit is counted by the primary for both workers: 20 a minute in all, the poll's one included.
    expect(statuses.filter((s) => s === 200).length).toBe(19);
    expect(statuses.filter((s) => s === 429).length).toBe(5);
    await expect.poll(() => rowCount(pg.url), { timeout: 2_000 }).toBe(25);
  });
});
