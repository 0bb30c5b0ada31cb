// The `gatewayz` operator CLI, run as a real child process against a fresh
// SQLite file per test: src/cli.ts bundled once for the file, as `npm run
// build` would, since tsx compiling src/ for each of ~150 runs made the file
// slow enough to time out on two busy cores.

import Database from "better-sqlite3";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, it } from "vitest";
import { COMMANDS } from "../src/cli/commands.js";
import { openDb } from "../src/storage/db.js";
import { createUsageStore, type UsageRecord } from "../src/storage/usage.js";

import { bundleGateway, type GatewayBundle } from "./support/gateway-bundle.js";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "..");
const KEY = /gw_live_[0-9A-Za-z]{32}/;

interface Result { code: number; stdout: string; stderr: string }

let bundle: Promise<GatewayBundle> | undefined;
/** The CLI bundled on first use (a describe's beforeAll would build it once per block). */
const cliBundle = () => (bundle ??= bundleGateway("src/cli.ts"));
afterAll(async () => (await bundle)?.remove());

/** `gatewayz ...args`, with a clean environment: no .env file, no DATABASE_PATH. */
async function gatewayz(args: readonly string[], env: Record<string, string> = {}): Promise<Result> {
  const { DATABASE_PATH: _db, ...inherited } = process.env;
  const options = { cwd: ROOT, env: { ...inherited, ENV_FILE: "/nonexistent/.env", ...env } };
  try {
    const { stdout, stderr } = await run(process.execPath, [(await cliBundle()).entry, ...args], options);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code !== "number") throw err;
    return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

/** A fresh database path, and the CLI bound to it; `--json` runs parse stdout as one document. */
function fresh() {
  const db = join(mkdtempSync(join(tmpdir(), "gatewayz-cli-")), "g.db");
  const cli = (...args: string[]) => gatewayz(["--db", db, ...args]);
  const json = async (...args: string[]): Promise<any> => {
    const r = await cli(...args, "--json");
    if (r.code !== 0) throw new Error(`gatewayz ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  return { db, cli, json };
}

const noStack = (stderr: string) => !/\n\s+at /.test(stderr) && !stderr.includes("Error:");

// Each run is a fresh Node process through tsx (about half a second of CPU), and the tests run
// side by side, so a test may wait for CPU: hence the longer timeout.
describe.concurrent("gatewayz CLI", { timeout: 60_000 }, () => {
  it("creates a key, prints it once, and stores only its SHA-256 hash", async ({ expect }) => {
    const { db, cli } = fresh();
    const r = await cli("keys", "create", "--user", "alice", "--name", "ci");
    expect(r.code).toBe(0);
    const key = KEY.exec(r.stdout)![0];
    expect(r.stdout).toMatch(/user\s+alice/);
    expect(r.stdout).toMatch(/id\s+key_\S+/);
    expect(r.stdout).toMatch(/will not be shown again/);

    const sqlite = new Database(db, { readonly: true });
    const tables = sqlite.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'").all();
    for (const { name } of tables) {
      for (const row of sqlite.prepare(`SELECT * FROM "${name}"`).all() as Record<string, unknown>[]) {
        for (const value of Object.values(row)) expect(String(value)).not.toContain(key.slice(8));
      }
    }
    const stored = sqlite.prepare<[], { hash: Buffer }>("SELECT hash FROM api_keys").all();
    sqlite.close();
    expect(stored).toHaveLength(1);
    expect(stored[0]!.hash.equals(createHash("sha256").update(key).digest())).toBe(true);
  });

  it("creates keys from several CLI processes at once on one database: each succeeds (no SQLITE_BUSY)", async ({ expect }) => {
    const { cli, json } = fresh();
    await json("keys", "create", "--user", "first", "--name", "one"); // the database exists
    // Each create reads (the user) and then writes: in a deferred transaction two at once could not wait for each other.
    const runs = await Promise.all(Array.from({ length: 8 }, (_, i) =>
      cli("keys", "create", "--user", `u${i % 3}`, "--name", `k${i}`, "--rpm", "60", "--json")));
    expect(runs.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    expect((await json("keys", "list")).length).toBe(9);
  });

  it("--json gives the key with its id, display form, limits and budget; --admin makes an admin key", async ({ expect }) => {
    const { json } = fresh();
    const created = await json("keys", "create", "--user", "alice", "--name", "ci", "--rpm", "60", "--concurrent", "0", "--budget-usd", "25", "--budget-period", "month");
    expect(created.key).toMatch(/^gw_live_[0-9A-Za-z]{32}$/);
    expect(created).toMatchObject({ user: "alice", name: "ci", kind: "client", budget: { usd: "25", period: "month" } });
    expect(created.limits).toEqual({ rpm: 60, tpm: null, rpd: null, concurrent: 0 });
    expect(created.display).toBe(`${created.key.slice(0, 12)}…${created.key.slice(-4)}`);

    const admin = await json("keys", "create", "--user", "root", "--name", "ops", "--admin");
    expect(admin.key).toMatch(/^gw_admin_[0-9A-Za-z]{32}$/);
    expect(admin).toMatchObject({ kind: "admin", budget: null, limits: { rpm: null, tpm: null, rpd: null, concurrent: null } });
  });

  it("lists keys by their display form, never the key; revoked keys only with --all", async ({ expect }) => {
    const { cli, json } = fresh();
    const a = await json("keys", "create", "--user", "alice", "--name", "ci");
    const b = await json("keys", "create", "--user", "bob", "--name", "laptop");
    const list = await cli("keys", "list");
    const [header, ...lines] = list.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^id\s+user\s+name\s+kind\s+display\s+created\s+expires\s+models\s+cache\s+status$/);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^${a.id}\\s+alice\\s+ci\\s+client\\s+${a.display}\\s+\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\s+never\\s+all\\s+default\\s+active$`));
    expect(lines[1]).toContain(b.display);
    expect(list.stdout).not.toContain(a.key);
    expect(list.stdout).not.toContain(b.key);

    expect(await cli("keys", "revoke", a.id)).toMatchObject({ code: 0, stdout: `revoked ${a.id} (alice/ci)\n` });
    const [active, alices, again] = await Promise.all([
      json("keys", "list"),
      cli("keys", "list", "--all", "--user", "alice"),
      cli("keys", "revoke", a.id),
    ]);
    expect(active.map((k: { id: string }) => k.id)).toEqual([b.id]);
    expect(JSON.stringify(active)).not.toContain(b.key);
    expect(alices.stdout.trimEnd().split("\n")).toHaveLength(2);
    expect(alices.stdout).toMatch(new RegExp(`^${a.id}\\s.*\\srevoked$`, "m"));
    expect(again).toMatchObject({ code: 1, stdout: "", stderr: `gatewayz: key '${a.id}' is already revoked\n` });
  });

  it("rotates a key: a new key once, the old one revoked, limits and budget carried over", async ({ expect }) => {
    const { json, cli } = fresh();
    const old = await json("keys", "create", "--user", "alice", "--name", "ci", "--rpm", "60", "--tpm", "0", "--budget-usd", "2.5", "--budget-period", "month");
    const text = await cli("keys", "rotate", old.id);
    expect(text.code).toBe(0);
    const fresh1 = KEY.exec(text.stdout)![0];
    expect(fresh1).not.toBe(old.key);
    expect(text.stdout).toMatch(/will not be shown again/);

    const keys = await json("keys", "list", "--all");
    const before = keys.find((k: { id: string }) => k.id === old.id);
    const after = keys.find((k: { id: string }) => k.id !== old.id);
    expect(before).toMatchObject({ status: "rotated", replacedBy: after.id });
    expect(after).toMatchObject({ status: "active", user: "alice", name: "ci", kind: "client" });

    const shown = await json("limits", "show", "--key", after.id);
    expect(shown.limits).toEqual(old.limits);
    expect(shown.budget).toEqual(old.budget);
    expect(await cli("keys", "rotate", old.id)).toMatchObject({ code: 1, stderr: `gatewayz: no active key with id '${old.id}'\n` });
  });

  it("sets a key's own cache setting at creation and later, back to the gateway's with 'default'; rotation keeps it", async ({ expect }) => {
    const { json, cli } = fresh();
    const off = await json("keys", "create", "--user", "alice", "--name", "ci", "--cache", "off");
    expect(off).toMatchObject({ cache: "off" });
    const plain = await cli("keys", "create", "--user", "alice", "--name", "laptop");
    expect(plain.stdout).not.toMatch(/^cache /m); // nothing to say for the gateway's setting
    const plainId = /^id +(\S+)$/m.exec(plain.stdout)![1]!;
    expect((await json("keys", "list")).map((k: { cache: string }) => k.cache)).toEqual(["off", "default"]);
    expect((await cli("keys", "list")).stdout).toMatch(new RegExp(`^${off.id}\\s.*\\soff +active$`, "m"));

    expect(await cli("keys", "cache", plainId, "on")).toMatchObject({ code: 0, stdout: `cache on for ${plainId} (alice/laptop)\n` });
    expect(await json("keys", "cache", off.id, "default")).toMatchObject({ id: off.id, cache: "default" });
    expect((await json("keys", "list")).map((k: { cache: string }) => k.cache)).toEqual(["default", "on"]);

    const rotated = await json("keys", "rotate", plainId);
    expect(rotated).toMatchObject({ cache: "on", replaces: plainId });
    expect(await cli("keys", "cache", plainId, "off")).toMatchObject({ code: 1, stderr: `gatewayz: no active key with id '${plainId}'\n` });
    expect(await cli("keys", "cache", "key_nope", "off")).toMatchObject({ code: 1, stderr: "gatewayz: no active key with id 'key_nope'\n" });
    expect(await cli("keys", "cache", off.id, "maybe")).toMatchObject({
      code: 2, stderr: expect.stringMatching(/^gatewayz: the setting is one of off, on, default, got 'maybe'\nusage: gatewayz keys cache <key-id> off\|on\|default/),
    });
    expect(await cli("keys", "create", "--user", "a", "--name", "b", "--cache", "yes")).toMatchObject({
      code: 2, stderr: expect.stringMatching(/^gatewayz: --cache must be one of off, on, default, got 'yes'\n/),
    });
  });

  it("sets and shows limits; 'default' goes back to the configured default", async ({ expect }) => {
    const { db, json, cli } = fresh();
    await json("keys", "create", "--user", "alice", "--name", "ci");
    const withDefaults = (...args: string[]) => gatewayz(["--db", db, ...args], { RATE_LIMITS_USER: "rpm=5,concurrent=2" });
    const set = JSON.parse((await withDefaults("limits", "set", "--user", "alice", "--rpm", "10", "--tpm", "0", "--json")).stdout);
    expect(set).toMatchObject({ target: { scope: "user", user: "alice" }, budget: null, defaults: { rpm: 5, tpm: 0, rpd: 0, concurrent: 2 } });
    expect(set.limits).toEqual({ rpm: 10, tpm: 0, rpd: null, concurrent: null });

    const reset = await withDefaults("limits", "set", "--user", "alice", "--rpm", "default");
    expect(reset.stdout).toBe([
      "limits for user alice",
      "  rpm         default (5)",
      "  tpm         unlimited",
      "  rpd         default (unlimited)",
      "  concurrent  default (2)",
      "budget        none",
      "",
    ].join("\n"));

    await json("limits", "set", "--system", "--rpd", "1000");
    const system = await cli("limits", "show", "--system");
    expect(system.stdout).toMatch(/^limits for the whole system\n {2}rpm +default \(unlimited\)\n {2}tpm .*\n {2}rpd +1000\n/);
    expect(system.stdout).not.toContain("budget");
  });

  it("sets and clears budgets in exact USD", async ({ expect }) => {
    const { cli, json } = fresh();
    const k = await json("keys", "create", "--user", "alice", "--name", "ci");
    expect((await json("budgets", "set", "--key", k.id, "--usd", "12.000001", "--period", "month")).budget).toEqual({ usd: "12.000001", period: "month" });
    const user = await cli("budgets", "set", "--user", "alice", "--usd", "0.50");
    expect(user.stdout).toMatch(/^budget +0\.5 USD in total$/m);
    expect((await json("budgets", "clear", "--key", k.id)).budget).toBeNull();
    expect(await cli("budgets", "set", "--user", "alice", "--usd", "0.0000001")).toMatchObject({ code: 1, stderr: "gatewayz: a budget is a USD amount with at most 6 decimals, got '0.0000001'\n" });
  });

  it("summarises usage with exact costs and a total", async ({ expect }) => {
    const { db, cli, json } = fresh();
    const k = await json("keys", "create", "--user", "alice", "--name", "ci");
    const store = openDb(db);
    const userId = store.prepare<[], { id: string }>("SELECT id FROM users").get()!.id;
    const usage = createUsageStore(store);
    const row = (ts: string, model: string, prompt: number, completion: number, costPico: bigint, status = "ok", savedPico = 0n): UsageRecord => ({
      ts: Date.parse(ts), keyId: k.id, userId, protocol: "openai", requestedModel: model, model, upstreamModel: model, provider: "alibaba-cloud",
      promptTokens: prompt, completionTokens: completion, cachedTokens: 0, reasoningTokens: 0, costPico, latencyMs: 5, ttftMs: null,
      status, errorKind: status === "ok" || status === "cached" ? null : "upstream_error", estimated: false, attempts: 1, savedPico,
    });
    usage.insert(row("2026-01-01T10:00:00Z", "qwen-plus", 1000, 500, 1_400_000_000n));
    usage.insert(row("2026-01-01T23:59:59Z", "qwen-max", 10, 0, 16_000_000n, "error"));
    usage.insert(row("2026-01-02T00:00:00Z", "qwen-plus", 1, 1, 1_600_000n));
    usage.insert(row("2026-01-03T12:00:00Z", "qwen-max", 2_000_000, 3, 3_200_000_000_001n));
    // Two answers from the cache: cost 0, what the first answer cost saved; neither is an error.
    usage.insert(row("2026-01-01T11:00:00Z", "qwen-plus", 1000, 500, 0n, "cached", 1_400_000_000n));
    usage.insert(row("2026-01-01T12:00:00Z", "qwen-plus", 1000, 500, 0n, "cached", 1_400_000_000n));
    usage.flush();
    store.close();

    const byModel = await cli("usage", "--by", "model");
    const lines = byModel.stdout.trimEnd().split("\n").map((l) => l.split(/\s{2,}/));
    expect(lines).toEqual([
      ["model", "requests", "errors", "hits", "hit ratio", "prompt tokens", "completion tokens", "cost (USD)", "saved (USD)"],
      ["qwen-max", "2", "1", "0", "0.0%", "2000010", "3", "3.200016000001", "0"],
      ["qwen-plus", "4", "0", "2", "50.0%", "3001", "1501", "0.0014016", "0.0028"],
      ["total", "6", "1", "2", "33.3%", "2003011", "1504", "3.201417600001", "0.0028"],
    ]);

    const byDay = await json("usage", "--by", "day", "--since", "2026-01-01", "--until", "2026-01-02");
    expect(byDay.rows).toEqual([
      { group: "2026-01-01", requests: 4, errors: 1, cached: 2, hitRatio: 0.5, promptTokens: 3010, completionTokens: 1500, costUsd: "0.001416", savedUsd: "0.0028" },
      { group: "2026-01-02", requests: 1, errors: 0, cached: 0, hitRatio: 0, promptTokens: 1, completionTokens: 1, costUsd: "0.0000016", savedUsd: "0" },
    ]);
    expect(byDay.total).toEqual({ requests: 5, errors: 1, cached: 2, hitRatio: 0.4, promptTokens: 3011, completionTokens: 1501, costUsd: "0.0014176", savedUsd: "0.0028" });

    const byUser = await cli("usage", "--by", "user", "--user", "alice");
    expect(byUser.stdout).toMatch(/^alice +6 +1 +2 +33\.3% +2003011 +1504 +3\.201417600001 +0\.0028$/m);
  });

  it("prints user and key names escaped: control characters never reach the terminal as themselves", async ({ expect }) => {
    const { db, cli, json } = fresh();
    const user = "eve\x1b[2J\x1b]0;owned\x07";
    const name = "laptop\nkey_forged  mallory  admin\u202e";
    const created = await cli("keys", "create", "--user", user, "--name", name);
    expect(created.code).toBe(0);
    const k = (await json("keys", "list"))[0];
    expect(k).toMatchObject({ user, name }); // stored and given to scripts as they are
    const store = openDb(db);
    const userId = store.prepare<[], { id: string }>("SELECT id FROM users").get()!.id;
    const usage = createUsageStore(store);
    usage.insert({
      ts: Date.now(), keyId: k.id, userId, protocol: "openai", requestedModel: "qwen-plus", model: "qwen-plus", upstreamModel: "qwen-plus",
      provider: "alibaba-cloud", promptTokens: 1, completionTokens: 1, cachedTokens: 0, reasoningTokens: 0, costPico: 1n, latencyMs: 1,
      ttftMs: null, status: "ok", errorKind: null, estimated: false, attempts: 1,
    });
    usage.flush();
    store.close();

    const [list, byUser, limits, revoked] = [await cli("keys", "list"), await cli("usage", "--by", "user"), await cli("limits", "show", "--user", user), await cli("keys", "revoke", k.id)];
    for (const r of [created, list, byUser, limits, revoked]) {
      expect(r.code).toBe(0);
      expect(r.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f\u202e]/); // nothing but printable text and line ends
    }
    expect(created.stdout).toContain("user  eve\\x1b[2J\\x1b]0;owned\\x07\n");
    expect(created.stdout).toContain("name  laptop\\nkey_forged  mallory  admin\\u202e (client)\n");
    expect(list.stdout.trimEnd().split("\n")).toHaveLength(2); // the header and one row: no forged second row
    expect(list.stdout).toContain("eve\\x1b[2J\\x1b]0;owned\\x07  laptop\\nkey_forged");
    expect(byUser.stdout).toMatch(/^eve\\x1b\[2J\\x1b\]0;owned\\x07 +1 /m);
    expect(limits.stdout).toMatch(/^limits for user eve\\x1b\[2J/);
    expect(revoked.stdout).toBe(`revoked ${k.id} (eve\\x1b[2J\\x1b]0;owned\\x07/laptop\\nkey_forged  mallory  admin\\u202e)\n`);
  });

  it("refuses a user or key name over 100 characters, naming the field", async ({ expect }) => {
    const { cli, json } = fresh();
    const longUser = await cli("keys", "create", "--user", "u".repeat(101), "--name", "ci");
    const longName = await cli("keys", "create", "--user", "alice", "--name", "é".repeat(101));
    expect(longUser).toEqual({ code: 1, stdout: "", stderr: "gatewayz: user must be at most 100 characters, got 101\n" });
    expect(longName).toEqual({ code: 1, stdout: "", stderr: "gatewayz: name must be at most 100 characters, got 101\n" });
    expect(await json("keys", "list", "--all")).toEqual([]);
    const fits = await json("keys", "create", "--user", "u".repeat(100), "--name", "🔑".repeat(100));
    expect(fits.user).toHaveLength(100);
    expect([...fits.name]).toHaveLength(100); // characters, not UTF-16 units
  });

  it("answers a bad command line with exit 2 and the usage line, before touching the database", async ({ expect }) => {
    const { db, cli } = fresh();
    const [unknown, noUser, badFlag, badNumber] = await Promise.all([
      cli("frobnicate"),
      cli("keys", "create", "--name", "ci"),
      cli("keys", "list", "--usd", "5"),
      cli("limits", "set", "--system", "--rpm", "lots"),
    ]);
    expect(unknown).toMatchObject({ code: 2, stdout: "" });
    expect(unknown.stderr).toMatch(/^gatewayz: unknown command 'frobnicate'\n/);
    expect(noUser).toMatchObject({ code: 2, stderr: expect.stringMatching(/^gatewayz: --user is required\nusage: gatewayz keys create --user NAME --name NAME/) });
    expect(badFlag).toMatchObject({ code: 2, stderr: expect.stringMatching(/^gatewayz: unknown option '--usd' for 'keys list'\nusage: gatewayz keys list/) });
    expect(badNumber).toMatchObject({ code: 2, stderr: expect.stringMatching(/^gatewayz: --rpm takes a number/) });
    expect(existsSync(db)).toBe(false);
  });

  it("reports a refusal with exit 1 and the message alone, no stack trace", async ({ expect }) => {
    const { db, cli } = fresh();
    openDb(db).close();
    const r = await cli("keys", "revoke", "key_nope");
    expect(r).toEqual({ code: 1, stdout: "", stderr: "gatewayz: no key with id 'key_nope'\n" });
    const negative = await cli("limits", "set", "--system", "--rpm=-1");
    expect(negative).toMatchObject({ code: 1, stderr: "gatewayz: rpm must be a non-negative integer (0 = unlimited), got -1\n" });
  });

  it("refuses a database written by a newer Gatewayz", async ({ expect }) => {
    const { db, cli } = fresh();
    const sqlite = new Database(db);
    sqlite.pragma("user_version = 99");
    sqlite.close();
    const r = await cli("keys", "list", "--json");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^gatewayz: .*g\.db: the database is at schema version 99, newer than this Gatewayz understands/);
    expect(noStack(r.stderr)).toBe(true);
  });

  it("never creates a database for a command that only reads one (or needs a key in it): exit 1, naming the path", async ({ expect }) => {
    const { db, cli } = fresh();
    const runs = await Promise.all([cli("keys", "list"), cli("limits", "show", "--system"), cli("usage"), cli("usage", "--request-id", "r1"), cli("keys", "revoke", "key_x")]);
    for (const [r, words] of runs.map((r, i) => [r, ["keys list", "limits show", "usage", "usage", "keys revoke"][i]] as const)) {
      expect(r).toEqual({
        code: 1, stdout: "",
        stderr: `gatewayz: no database at ${db} ('${words}' does not create one). Create it by starting the gateway or with ` +
          "'gatewayz keys create --user NAME --name NAME', or point --db or DATABASE_PATH at the gateway's database\n",
      });
    }
    expect(existsSync(db)).toBe(false);
    expect((await cli("keys", "create", "--user", "a", "--name", "b")).code).toBe(0); // a command that writes creates it
    expect(await cli("keys", "list", "--json")).toMatchObject({ code: 0 });
  });

  it("shows the usage row of one request by its request id, every field, and refuses an unknown id", async ({ expect }) => {
    const { db, cli, json } = fresh();
    const k = await json("keys", "create", "--user", "alice", "--name", "ci");
    const store = openDb(db);
    const userId = store.prepare<[], { id: string }>("SELECT id FROM users").get()!.id;
    const usage = createUsageStore(store);
    const base: UsageRecord = {
      ts: Date.parse("2026-01-01T10:00:00Z"), keyId: k.id, userId, protocol: "openai", requestedModel: "qwen-3-30b", model: "qwen-3-30b-a3b-instruct",
      upstreamModel: "qwen3-30b-a3b-instruct-2507", provider: "alibaba-cloud", promptTokens: 12, completionTokens: 40, cachedTokens: 2, reasoningTokens: 0,
      costPico: 660_000_000n, latencyMs: 412.5, ttftMs: 388, status: "ok", errorKind: null, estimated: false, attempts: 1, requestId: "req-1",
    };
    usage.insert(base);
    usage.insert({ ...base, requestId: "req-2", status: "error", errorKind: "upstream_timeout", attempts: 2, estimated: true, ttftMs: null });
    usage.insert({ ...base, requestId: "req-3", status: "cached", costPico: 0n, savedPico: 660_000_000n, latencyMs: 2, ttftMs: 1 });
    usage.flush();
    store.close();

    const one = await cli("usage", "--request-id", "req-1");
    expect(one).toEqual({
      code: 0, stderr: "",
      stdout: [
        "request   req-1",
        "time      2026-01-01T10:00:00.000Z",
        `key       ${k.id} (user alice)`,
        "protocol  openai, chat",
        "model     qwen-3-30b → qwen-3-30b-a3b-instruct (upstream qwen3-30b-a3b-instruct-2507)",
        "provider  alibaba-cloud, 1 attempt",
        "status    ok",
        "tokens    12 prompt (2 cached), 40 completion (0 reasoning)",
        "cost      0.00066 USD",
        "latency   412.5 ms, first token 388 ms",
        "",
      ].join("\n"),
    });
    const two = await json("usage", "--request-id", "req-2");
    expect(two).toEqual([{
      ts: base.ts, time: "2026-01-01T10:00:00.000Z", requestId: "req-2", keyId: k.id, userName: "alice", protocol: "openai", requestedModel: "qwen-3-30b",
      model: "qwen-3-30b-a3b-instruct", upstreamModel: "qwen3-30b-a3b-instruct-2507", provider: "alibaba-cloud", promptTokens: 12, completionTokens: 40,
      cachedTokens: 2, reasoningTokens: 0, costUsd: "0.00066", savedUsd: "0", latencyMs: 412.5, ttftMs: null, status: "error", errorKind: "upstream_timeout",
      estimated: true, clamped: false, attempts: 2, operation: "chat",
    }]);
    const hit = await cli("usage", "--request-id", "req-3");
    expect(hit.stdout).toContain("status    cached\n");
    expect(hit.stdout).toContain("cost      0 USD (answered from the cache; saved 0.00066 USD)\n");
    expect(await json("usage", "--request-id", "req-3")).toMatchObject([{ status: "cached", costUsd: "0", savedUsd: "0.00066" }]);
    expect(await cli("usage", "--request-id", "nope")).toEqual({ code: 1, stdout: "", stderr: "gatewayz: no usage row with request id 'nope'\n" });
    expect(await cli("usage", "--request-id", "req-1", "--by", "model")).toMatchObject({
      code: 2, stderr: expect.stringMatching(/^gatewayz: --request-id shows one request; it does not combine with --by\nusage: gatewayz usage /),
    });
  });

  it("--version prints the version in package.json", async ({ expect }) => {
    const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    expect(await gatewayz(["--version"])).toEqual({ code: 0, stdout: `gatewayz ${version}\n`, stderr: "" });
    expect(await gatewayz(["keys", "list", "--version"])).toMatchObject({ code: 2, stderr: expect.stringMatching(/^gatewayz: unknown option '--version'/) });
  });

  it("prints help listing every command for help, --help and no arguments", async ({ expect }) => {
    const runs = await Promise.all([gatewayz([]), gatewayz(["help"]), gatewayz(["--help"])]);
    for (const r of runs) {
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(runs[0]!.stdout);
      for (const c of COMMANDS) expect(r.stdout).toContain(`gatewayz ${c.words.join(" ")} ${c.usage}`);
    }
  });
});

describe("gatewayz CLI against a running gateway", { timeout: 60_000 }, () => {
  it("creates a key, limits it and revokes it; the gateway obeys each change on its next request", async ({ expect }) => {
    const { startTestGateway } = await import("./support/gateway.js");
    const { default: OpenAI } = await import("openai");
    const { db, json, cli } = fresh();
    const gw = await startTestGateway({ DATABASE_PATH: db });
    try {
      const created = await json("keys", "create", "--user", "carol", "--name", "e2e");
      const client = new OpenAI({ apiKey: created.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
      const ask = () => client.chat.completions.create({ model: "qwen-plus", messages: [{ role: "user", content: "hi" }] });
      await ask(); // a key made by another process works at once

      expect((await cli("limits", "set", "--key", created.id, "--rpm", "2")).code).toBe(0);
      await ask(); // a limit counts from when it is set (README): two more pass this minute,
      await ask();
      await expect(ask()).rejects.toMatchObject({ status: 429, code: "rate_limit_exceeded" }); // the third does not

      expect((await cli("limits", "set", "--key", created.id, "--rpm", "0")).code).toBe(0);
      await ask(); // unlimited again

      expect((await cli("keys", "revoke", created.id)).code).toBe(0);
      await expect(ask()).rejects.toMatchObject({ status: 401, code: "invalid_api_key" });

      const usage = await json("usage", "--by", "key", "--key", created.id);
      const rows = Array.isArray(usage) ? usage : usage.rows;
      expect(rows.reduce((n: number, r: { requests: number }) => n + Number(r.requests), 0)).toBe(6); // 4 answered, 1 refused by the limit, and the 401 after revocation, recorded under the revoked key
    } finally {
      await gw.close();
    }
  });
});

describe("the default database: data/gatewayz.db in the installation, whichever directory the server or the CLI runs in", { timeout: 120_000 }, () => {
  it("finds the installation from src/ (tsx), dist/src/ (tsc) and dist/ (the esbuild bundle)", async ({ expect }) => {
    const { findInstallation } = await import("../src/install-root.js");
    const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    for (const file of ["src/config.ts", "dist/src/config.js", "dist/gatewayz.mjs", "dist/src/cli/main.js"]) {
      expect(findInstallation(pathToFileURL(join(ROOT, file)).href)).toEqual({ root: ROOT, version });
    }
    expect(() => findInstallation(pathToFileURL("/nonexistent/dir/x.js").href)).toThrow(/package\.json is not in \/nonexistent\/dir or above it; set DATABASE_PATH/);
  });

  it("a bundled CLI and a bundled server in another installation share its database, run from elsewhere", async ({ expect }) => {
    const { build } = await import("esbuild");
    const { startFakeUpstream } = await import("./support/fake-upstream.js");
    const { startGatewayChild } = await import("./support/gateway-child.js");
    const { default: OpenAI } = await import("openai");
    // An installation of its own: a package.json, the two entry points bundled into dist/, the dependencies linked.
    const install = mkdtempSync(join(tmpdir(), "gatewayz-install-"));
    writeFileSync(join(install, "package.json"), JSON.stringify({ name: "gatewayz", version: "9.9.9-test", type: "module" }));
    symlinkSync(join(ROOT, "node_modules"), join(install, "node_modules"));
    const bundle = (entry: string, out: string) => build({
      entryPoints: [join(ROOT, entry)], outfile: join(install, out), bundle: true, platform: "node", format: "esm", target: "node20", logLevel: "warning",
      external: ["better-sqlite3", "gpt-tokenizer"], banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    });
    await Promise.all([bundle("src/cli.ts", "dist/cli.mjs"), bundle("src/main.ts", "dist/gatewayz.mjs")]);
    const elsewhere = mkdtempSync(join(tmpdir(), "gatewayz-elsewhere-"));
    const { DATABASE_PATH: _db, ...inherited } = process.env;
    const cli = async (...args: string[]): Promise<Result> => {
      try {
        const { stdout, stderr } = await run(process.execPath, [join(install, "dist/cli.mjs"), ...args], { cwd: elsewhere, env: { ...inherited, ENV_FILE: "/nonexistent/.env" } });
        return { code: 0, stdout, stderr };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
      }
    };
    const dbPath = join(install, "data/gatewayz.db");
    const fake = await startFakeUpstream();
    try {
      expect(await cli("--version")).toEqual({ code: 0, stdout: "gatewayz 9.9.9-test\n", stderr: "" });
      expect(await cli("keys", "list")).toMatchObject({ code: 1, stderr: expect.stringMatching(new RegExp(`^gatewayz: no database at ${dbPath} `)) });
      const created = await cli("keys", "create", "--user", "dana", "--name", "laptop", "--json");
      expect(created.code).toBe(0);
      expect(existsSync(dbPath)).toBe(true);
      expect(existsSync(join(elsewhere, "data"))).toBe(false);

      // DATABASE_PATH="" is unset; the gateway runs in the repository root, not in the installation.
      const gw = await startGatewayChild(fake, { command: [process.execPath, join(install, "dist/gatewayz.mjs")], env: { DATABASE_PATH: "" } });
      try {
        expect(gw.output()).toMatch(new RegExp(` info  Database: ${dbPath}\n`));
        const client = new OpenAI({ apiKey: JSON.parse(created.stdout).key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
        const reply = await client.chat.completions.create({ model: "qwen-plus", messages: [{ role: "user", content: "hi" }] });
        expect(reply.choices[0]!.message.content).toBe("Hello from qwen-plus");
      } finally {
        gw.dispose();
      }
      const usage = JSON.parse((await cli("usage", "--json")).stdout);
      expect(usage.total.requests).toBe(1);
    } finally {
      await fake.close();
      rmSync(install, { recursive: true, force: true });
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
