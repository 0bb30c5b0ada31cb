import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { describeDatabaseChoice } from "../src/storage/database-config.js";
import { loadConfig } from "../src/config.js";

const NO_FILE = { ENV_FILE: "/nonexistent/.env" };
const alibaba = (env: Record<string, string>) => loadConfig({ ...NO_FILE, ...env }).providers.find((p) => p.row.id === "alibaba-cloud")!;

describe("configuration", () => {
  it("binds to 127.0.0.1:8000 by default", () => {
    const c = loadConfig(NO_FILE);
    expect(c.host).toBe("127.0.0.1");
    expect(c.port).toBe(8000);
    expect(c.corsOrigins).toEqual([]);
  });

  it("picks DashScope's region by ALIBABA_CLOUD_REGION, Singapore by default", () => {
    expect(alibaba({}).baseUrl).toBe("https://dashscope-intl.aliyuncs.com/compatible-mode/v1");
    expect(alibaba({ ALIBABA_CLOUD_REGION: "beijing" }).baseUrl).toBe("https://dashscope.aliyuncs.com/compatible-mode/v1");
    expect(alibaba({ ALIBABA_CLOUD_REGION: "Singapore" }).baseUrl).toBe("https://dashscope-intl.aliyuncs.com/compatible-mode/v1");
  });

  it("reports an unknown region as the provider's problem instead of guessing", () => {
    expect(alibaba({ ALIBABA_CLOUD_API_KEY: "k", ALIBABA_CLOUD_REGION: "mars" }).problem).toMatch(/ALIBABA_CLOUD_REGION must be one of singapore, beijing/);
  });

  it("lets ALIBABA_CLOUD_BASE_URL override the region", () => {
    expect(alibaba({ ALIBABA_CLOUD_BASE_URL: "http://127.0.0.1:9/v1/", ALIBABA_CLOUD_REGION: "beijing" }).baseUrl).toBe("http://127.0.0.1:9/v1");
  });

  it("reads extra headers in either form and a per-provider timeout, default 30 s", () => {
    expect(alibaba({}).timeouts).toEqual({ connectMs: 10_000, firstByteMs: 30_000, idleMs: 30_000, totalMs: 600_000 });
    expect(alibaba({ PROVIDER_TIMEOUT_MS: "45000" }).timeouts).toMatchObject({ firstByteMs: 45_000, idleMs: 45_000 });
    expect(alibaba({ ALIBABA_CLOUD_TIMEOUT_MS: "1500" }).timeouts).toMatchObject({ firstByteMs: 1500, idleMs: 1500 });
    expect(alibaba({ ALIBABA_CLOUD_TIMEOUT_MS: "1500", ALIBABA_CLOUD_IDLE_TIMEOUT_MS: "700", ALIBABA_CLOUD_CONNECT_TIMEOUT_MS: "50" }).timeouts)
      .toMatchObject({ connectMs: 50, firstByteMs: 1500, idleMs: 700 });
    expect(alibaba({ ALIBABA_CLOUD_HEADERS: "X-DashScope-SSE: enable; X-Other: 1" }).headers).toEqual({ "X-DashScope-SSE": "enable", "X-Other": "1" });
    expect(alibaba({ ALIBABA_CLOUD_HEADERS: '{"X-DashScope-SSE":"enable"}' }).headers).toEqual({ "X-DashScope-SSE": "enable" });
  });

  it("marks a provider without a key as unusable, with the reason", () => {
    expect(alibaba({}).problem).toBe("ALIBABA_CLOUD_API_KEY is not set");
    expect(alibaba({ ALIBABA_CLOUD_API_KEY: "sk-1" })).toMatchObject({ apiKey: "sk-1", problem: undefined });
  });

  it("reads a .env file, with the process environment taking precedence", () => {
    const dir = mkdtempSync(join(tmpdir(), "gatewayz-env-"));
    const file = join(dir, ".env");
    writeFileSync(file, "ALIBABA_CLOUD_API_KEY=from-file\nPORT=9001\n# comment\nHOST=0.0.0.0\n");
    const c = loadConfig({ ENV_FILE: file, PORT: "9002" });
    expect(c.port).toBe(9002);
    expect(c.host).toBe("0.0.0.0");
    expect(c.providers.find((p) => p.row.id === "alibaba-cloud")!.apiKey).toBe("from-file");
  });

  it("names the variable when a value is invalid", () => {
    expect(() => loadConfig({ ...NO_FILE, PORT: "eighty" })).toThrow(/PORT must be a non-negative integer/);
    expect(() => loadConfig({ ...NO_FILE, LOG_LEVEL: "loud" })).toThrow(/LOG_LEVEL/);
    expect(() => loadConfig({ ...NO_FILE, ALIBABA_CLOUD_HEADERS: "nocolon" })).toThrow(/ALIBABA_CLOUD_HEADERS/);
  });
});

describe("server bounds", () => {
  it("bound every phase by default, and take the connection cap from the descriptor limit", () => {
    const { server } = loadConfig(NO_FILE);
    expect(server).toMatchObject({
      headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 65_000, http2IdleTimeoutMs: 300_000,
      http2MaxStreams: 1_000, sendTimeoutMs: 60_000, maxJsonDepth: 64, authFailuresPerMinute: 60, drainTimeoutMs: 30_000,
    });
    const soft = Number(readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"))!.split(/\s{2,}/)[1]);
    expect(server.maxConnections).toBe(Math.min(16_384, Math.max(64, Math.floor(soft / 2) - 32)));
  });

  it("are set by their variables, and a timeout of 0 (no bound) is refused", () => {
    expect(loadConfig({ ...NO_FILE, MAX_CONNECTIONS: "5", DRAIN_TIMEOUT_MS: "0", AUTH_FAILURES_PER_MINUTE: "0" }).server)
      .toMatchObject({ maxConnections: 5, drainTimeoutMs: 0, authFailuresPerMinute: 0 });
    expect(() => loadConfig({ ...NO_FILE, HEADERS_TIMEOUT_MS: "0" })).toThrow("HEADERS_TIMEOUT_MS must be a positive integer, got 0");
    expect(() => loadConfig({ ...NO_FILE, SEND_TIMEOUT_MS: "soon" })).toThrow("SEND_TIMEOUT_MS must be a non-negative integer, got soon");
  });
});

describe("the state replicas share through Redis", () => {
  it("is off without REDIS_URL, closed with a 30 s lease by default, and refuses bad settings", () => {
    expect(loadConfig({ ...NO_FILE }).shared).toMatchObject({ redisUrl: undefined, failMode: "closed", leaseMs: 30_000 });
    expect(loadConfig({ ...NO_FILE, REDIS_URL: "redis://127.0.0.1:6379", LIMITS_FAIL_MODE: "open", LIMITS_LEASE_MS: "5000", REDIS_TIMEOUT_MS: "80" }).shared)
      .toEqual({ redisUrl: "redis://127.0.0.1:6379", failMode: "open", leaseMs: 5000, timeoutMs: 80 });
    expect(() => loadConfig({ ...NO_FILE, LIMITS_FAIL_MODE: "ajar" })).toThrow("LIMITS_FAIL_MODE must be closed or open, got ajar");
    expect(() => loadConfig({ ...NO_FILE, LIMITS_LEASE_MS: "10" })).toThrow("LIMITS_LEASE_MS must be at least 100, got 10");
  });
});

describe("the database", () => {
  it("is SQLite without DATABASE_URL; a postgres:// URL wins over DATABASE_PATH and the log line says so, without the password", () => {
    expect(loadConfig({ ...NO_FILE }).database).toEqual({ url: undefined, timeoutMs: 5_000, ignoredPath: undefined });
    const both = loadConfig({ ...NO_FILE, DATABASE_URL: "postgresql://gz:s3cret@db:5432/gz", DATABASE_PATH: "/srv/gz.db", DATABASE_TIMEOUT_MS: "800" });
    expect(both.database).toEqual({ url: "postgresql://gz:s3cret@db:5432/gz", timeoutMs: 800, ignoredPath: "/srv/gz.db" });
    expect(describeDatabaseChoice(both.database)).toBe("PostgreSQL at postgresql://gz:***@db:5432/gz; DATABASE_URL wins over DATABASE_PATH (/srv/gz.db is not used)");
    expect(describeDatabaseChoice(loadConfig({ ...NO_FILE }).database)).toBeUndefined();
    expect(() => loadConfig({ ...NO_FILE, DATABASE_URL: "mysql://u:pw@db/gz" }))
      .toThrow("DATABASE_URL must be a postgres:// or postgresql:// URL, got mysql://u:***@db/gz (for a SQLite file, set DATABASE_PATH)");
    expect(() => loadConfig({ ...NO_FILE, DATABASE_TIMEOUT_MS: "0" })).toThrow("DATABASE_TIMEOUT_MS must be a positive integer, got 0");
  });
});
