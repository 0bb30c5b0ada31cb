// `npm test` first runs test/support/ensure-test-tools.sh, which finds or
// installs the programs the suites drive (Chromium, Prometheus, redis-server,
// PostgreSQL);
// the metrics suites find Prometheus through test/support/prometheus.ts, the
// Redis store's suite redis-server through test/support/redis.ts. apt-get is never
// really run here: a stand-in on the PATH records how it was called.

import { execFile } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { ROOT } from "./node-child.js";
import { findTool, prometheusPath, promtoolPath } from "./prometheus.js";
import { redisServerPath } from "./redis.js";

const run = promisify(execFile);
const SCRIPT = join(ROOT, "test/support/ensure-test-tools.sh");
const dirs: string[] = [];

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/**
 * A bin directory holding `id` (the real one, or one that says `uid`), an
 * `openssl` (present, as on most machines: the others stand for the missing
 * programs) and an `apt-get` that appends its arguments to apt.log and, on
 * install, puts the packages' programs into the same directory, as the real
 * packages would.
 */
function fakeBin(options: { uid?: number; present?: string[] } = {}): { bin: string; aptCalls: () => string[] } {
  const bin = mkdtempSync(join(tmpdir(), "gatewayz-tools-"));
  dirs.push(bin);
  const log = join(bin, "apt.log");
  if (options.uid === undefined) symlinkSync("/usr/bin/id", join(bin, "id"));
  else script(join(bin, "id"), `echo ${options.uid}`);
  script(join(bin, "openssl"), "");
  script(join(bin, "apt-get"), [
    `printf '%s\\n' "$*" >> ${log}`,
    `if [ "$1" = install ]; then for p in "$@"; do case "$p" in`,
    `  chromium) printf '#!/bin/sh\\n' > ${bin}/chromium; /bin/chmod +x ${bin}/chromium ;;`,
    `  prometheus) for b in prometheus promtool; do printf '#!/bin/sh\\n' > ${bin}/$b; /bin/chmod +x ${bin}/$b; done ;;`,
    `  redis-server) printf '#!/bin/sh\\n' > ${bin}/redis-server; /bin/chmod +x ${bin}/redis-server ;;`,
    `esac; done; fi`,
  ].join("\n"));
  for (const name of options.present ?? []) script(join(bin, name), "exit 0");
  return { bin, aptCalls: () => (existsSync(log) ? readFileSync(log, "utf8").trimEnd().split("\n") : []) };
}

function script(path: string, body: string): void {
  writeFileSync(path, `#!/bin/bash\n${body}\n`);
  chmodSync(path, 0o755);
}

async function ensure(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await run("/bin/bash", [SCRIPT], { env: { HOME: tmpdir(), ...env } });
    return { code: 0, stderr };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

describe("test/support/ensure-test-tools.sh", () => {
  it("finds chromium, prometheus, promtool and redis-server on this machine and installs nothing", async () => {
    const { bin, aptCalls } = fakeBin();
    const r = await ensure({ PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}` });
    expect(r).toEqual({ code: 0, stderr: "" });
    expect(aptCalls()).toEqual([]);
  });

  it("takes CHROMIUM_PATH, PROMETHEUS_PATH, PROMTOOL_PATH and REDIS_SERVER_PATH instead of the PATH", async () => {
    const { bin, aptCalls } = fakeBin({ present: ["my-chromium", "my-prometheus", "my-promtool", "my-redis-server"] });
    const r = await ensure({
      PATH: bin, CHROMIUM_PATH: `${bin}/my-chromium`, PROMETHEUS_PATH: `${bin}/my-prometheus`, PROMTOOL_PATH: `${bin}/my-promtool`,
      REDIS_SERVER_PATH: `${bin}/my-redis-server`,
    });
    expect(r).toEqual({ code: 0, stderr: "" });
    expect(aptCalls()).toEqual([]);
  });

  it("takes PG_BIN_DIR for PostgreSQL (not on Debian's PATH) and refuses one without initdb and pg_ctl", async () => {
    const { bin, aptCalls } = fakeBin({ present: ["initdb", "pg_ctl"] });
    const path = `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`;
    expect(await ensure({ PATH: path, PG_BIN_DIR: bin })).toEqual({ code: 0, stderr: "" });
    expect(await ensure({ PATH: path, PG_BIN_DIR: "/nonexistent" })).toEqual({ code: 1, stderr: "PG_BIN_DIR=/nonexistent holds no initdb and pg_ctl\n" });
    expect(aptCalls()).toEqual([]);
  });

  it("refuses an override that is not an executable, naming it", async () => {
    const { bin, aptCalls } = fakeBin();
    const r = await ensure({ PATH: `${bin}:${process.env.PATH}`, PROMTOOL_PATH: "/nonexistent/promtool" });
    expect(r).toEqual({ code: 1, stderr: "PROMTOOL_PATH=/nonexistent/promtool is not an executable\n" });
    expect(aptCalls()).toEqual([]);
  });

  it("as root, installs everything missing with one apt-get update and one apt-get install", async () => {
    const { bin, aptCalls } = fakeBin();
    const r = await ensure({ PATH: bin });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("Installing Debian's chromium prometheus redis-server for the tests (apt-get), for chromium prometheus promtool redis-server...\n");
    expect(aptCalls()).toEqual(["update -qq", "install -y -qq --no-install-recommends chromium prometheus redis-server"]);
  });

  it("installs only the package that is missing", async () => {
    const { bin, aptCalls } = fakeBin({ present: ["chromium", "prometheus", "redis-server"] });
    const r = await ensure({ PATH: bin });
    expect(r.code).toBe(0);
    expect(aptCalls()).toEqual(["update -qq", "install -y -qq --no-install-recommends prometheus"]);
  });

  it("fails, saying what to run, when it cannot install (not root, no passwordless sudo)", async () => {
    const { bin, aptCalls } = fakeBin({ uid: 1000, present: ["chromium", "redis-server"] });
    const r = await ensure({ PATH: bin });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("The tests need prometheus promtool: run 'sudo apt-get update && sudo apt-get install -y --no-install-recommends prometheus', " +
      "or set CHROMIUM_PATH, PROMETHEUS_PATH, PROMTOOL_PATH, REDIS_SERVER_PATH or PG_BIN_DIR to the programs\n");
    expect(aptCalls()).toEqual([]);
  });

  it("fails when the install leaves a program missing", async () => {
    const { bin } = fakeBin();
    script(join(bin, "apt-get"), "exit 0"); // installs nothing
    const r = await ensure({ PATH: bin });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/but chromium prometheus promtool redis-server still cannot be found on the PATH\n$/);
  });
});

describe("test/support/prometheus.ts", () => {
  it("finds Debian's promtool and prometheus, and they run", async () => {
    for (const path of [promtoolPath(), prometheusPath()]) {
      const { stdout, stderr } = await run(path, ["--version"]);
      expect(stdout + stderr).toMatch(/version 2\.\d+/);
    }
  });

  it("prefers the override variable, then the PATH, then /usr/bin", () => {
    const { bin } = fakeBin({ present: ["promtool", "other-promtool"] });
    expect(findTool("promtool", "PROMTOOL_PATH", { env: { PROMTOOL_PATH: `${bin}/other-promtool`, PATH: bin } })).toBe(`${bin}/other-promtool`);
    expect(findTool("promtool", "PROMTOOL_PATH", { env: { PATH: `/nonexistent:${bin}` } })).toBe(`${bin}/promtool`);
    expect(findTool("promtool", "PROMTOOL_PATH", { env: { PATH: "/nonexistent" } })).toBe("/usr/bin/promtool");
  });

  it("throws a clear error when the program is missing or the override is wrong", () => {
    expect(() => findTool("promtool", "PROMTOOL_PATH", { env: { PATH: "/nonexistent" }, fallback: [] }))
      .toThrow(/^promtool was not found \(PATH, no fallback\): install Debian's prometheus package .*, or set PROMTOOL_PATH$/);
    expect(() => findTool("prometheus", "PROMETHEUS_PATH", { env: { PROMETHEUS_PATH: "/etc" } })).toThrow("PROMETHEUS_PATH=/etc is not an executable file");
  });
});

describe("test/support/redis.ts", () => {
  it("finds Debian's redis-server, and it runs", async () => {
    const { stdout } = await run(redisServerPath(), ["--version"]);
    expect(stdout).toMatch(/^Redis server v=7\./);
  });

  it("names REDIS_SERVER_PATH and the package when redis-server is missing or the override is wrong", () => {
    expect(() => redisServerPath({ env: { PATH: "/nonexistent" }, fallback: [] }))
      .toThrow(/^redis-server was not found .*install Debian's redis-server package .*, or set REDIS_SERVER_PATH$/);
    expect(() => redisServerPath({ env: { REDIS_SERVER_PATH: "/etc" } })).toThrow("REDIS_SERVER_PATH=/etc is not an executable file");
  });
});
