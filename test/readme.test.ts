// Every example in README.md, run as a user would paste it, against a real
// gateway whose DashScope is the fake (test/support/fake-upstream.ts), so the
// README cannot drift from the code. Only placeholders are substituted: the
// address 127.0.0.1:8000, `gw_live_...` (the key), `key_...` (a key id), a
// request id. `npx gatewayz` runs this checkout's CLI from source, and `npx buf`
// node_modules/.bin/buf. A block that is not an example (a log excerpt, a
// layout, a command that needs a real key) says so in the comment before it:
// `<!-- not run: why -->`; any other block must have a runner here.

import { execFile } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "./support/gateway.js";
import { ROOT } from "./support/node-child.js";
import { readmeBlocks, type ReadmeBlock } from "./support/readme.js";

const run = promisify(execFile);
const ADMIN_KEY = "gw_admin_" + "R3adm3Examp1eAdm1nKey0123456789xyz".slice(0, 32);
const REQUEST_ID = "4b0c9a52-readme-example";
/** What the fake answers for the models the examples use: reasoning, text and a tool call, streamed in pieces. */
const REPLY = {
  kind: "reply" as const,
  reasoning: "The user wants a greeting.",
  content: "Hello from the README test",
  toolCalls: [{ id: "call_1", name: "get_weather", arguments: '{"city": "Paris"}' }],
};

let gw: TestGateway;
let dir: string;
/** A bin directory first on the PATH: `npx gatewayz` is the source CLI, `npx <tool>` a local dev dependency. */
let bin: string;
const keyIds: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gatewayz-readme-"));
  bin = join(dir, "bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "npx"), [
    "#!/bin/bash",
    `if [ "$1" = gatewayz ]; then shift; exec "${process.execPath}" --import tsx "${ROOT}/src/cli.ts" "$@"; fi`,
    `if [ -x "${ROOT}/node_modules/.bin/$1" ]; then tool="$1"; shift; exec "${ROOT}/node_modules/.bin/$tool" "$@"; fi`,
    `echo "npx $1: not a dev dependency of this repository (the README test runs offline)" >&2; exit 127`,
  ].join("\n") + "\n");
  chmodSync(join(bin, "npx"), 0o755);
  gw = await startTestGateway({ DATABASE_PATH: join(dir, "gatewayz.db"), GATEWAYZ_ADMIN_KEY: ADMIN_KEY, LOG_LEVEL: "warn" });
  for (const model of ["qwen-plus", "qwen-max"]) gw.fake.onModel(model, REPLY);
  // Ids for the `key_...` placeholders, one per occurrence (rotate one, revoke another).
  for (let i = 0; i < 8; i++) keyIds.push(gw.app.accounts.createKey({ user: "alice", name: `readme-${i}` }).record.id);
  // A request for `usage --request-id` to find.
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: gw.authorization, "content-type": "application/json", "x-request-id": REQUEST_ID },
    body: JSON.stringify({ model: "qwen-turbo", messages: [{ role: "user", content: "hi" }] }),
  });
  expect(res.status).toBe(200);
}, 60_000);

afterAll(async () => {
  await gw?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The block with the placeholders filled in. */
function substituted(code: string): string {
  const port = new URL(gw.url).port;
  let next = 0;
  return code
    .replaceAll("127.0.0.1:8000", `127.0.0.1:${port}`)
    .replaceAll("gw_live_...", gw.key)
    .replace(/key_\.\.\./g, () => keyIds[next++]!)
    .replaceAll("4b0c9a52-...", REQUEST_ID);
}

function env(): NodeJS.ProcessEnv {
  const { DATABASE_PATH: _d, GATEWAYZ_KEY: _k, ...inherited } = process.env;
  return {
    ...inherited,
    PATH: `${bin}:${process.env.PATH}`,
    ENV_FILE: "/nonexistent/.env",
    DATABASE_PATH: join(dir, "gatewayz.db"),
    GATEWAYZ_KEY: gw.key,
    GATEWAYZ_ADMIN_KEY: ADMIN_KEY,
  };
}

async function runIt(file: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(file, args, { cwd: ROOT, env: env(), timeout: 60_000 });
  } catch (err) {
    const e = err as { code: unknown; stdout: string; stderr: string };
    throw new Error(`exited ${String(e.code)}\n--- stdout\n${e.stdout}\n--- stderr\n${e.stderr}`);
  }
}

/** A shell block: every command must succeed, curl included (an HTTP error fails it). */
async function runShell(block: ReadmeBlock): Promise<string> {
  const script = [
    "set -euo pipefail",
    'curl() { command curl --silent --show-error --fail-with-body "$@"; echo; }',
    substituted(block.code),
  ].join("\n");
  const { stdout } = await runIt("/bin/bash", ["-c", script]);
  return stdout;
}

/** A JavaScript block, as the README says to run it: saved as a .mjs file and run with node, from the repository's root. */
async function runJs(block: ReadmeBlock): Promise<{ stdout: string; stderr: string }> {
  const cache = join(ROOT, "node_modules/.cache");
  mkdirSync(cache, { recursive: true });
  const jsDir = mkdtempSync(join(cache, "gatewayz-readme-"));
  try {
    const file = join(jsDir, "chat.mjs");
    writeFileSync(file, substituted(block.code));
    return await runIt(process.execPath, [file]);
  } finally {
    rmSync(jsDir, { recursive: true, force: true });
  }
}

const blocks = readmeBlocks();
const title = (b: ReadmeBlock) => `line ${b.line}: ${b.code.split("\n").find((l) => l.trim() && !l.startsWith("//"))!.trim().slice(0, 70)}`;
const shown = blocks.filter((b) => !b.marker?.startsWith("not run"));

describe("README.md", { timeout: 120_000 }, () => {
  it("has only blocks that run here or say why not (<!-- not run: reason -->)", () => {
    for (const b of blocks) {
      if (b.marker?.startsWith("not run")) expect(b.marker, `line ${b.line}`).toMatch(/^not run: \S/);
      else expect(["sh", "js", "python"], `the block at README.md line ${b.line} (\`\`\`${b.lang}) has no runner and no <!-- not run: ... --> marker`).toContain(b.lang);
    }
    expect(shown.length).toBeGreaterThanOrEqual(10);
  });

  for (const block of shown.filter((b) => b.lang === "sh")) {
    it(`sh, ${title(block)}`, async () => {
      const out = await runShell(block);
      // An error is an object; a Response's `"error": null` is a success.
      expect(out).not.toMatch(/"error"\s*:\s*\{/);
      if (block.code.includes("chat/completions") || block.code.includes("/v1/responses")) expect(out).toContain("Hello from the README test");
    });
  }

  for (const block of shown.filter((b) => b.lang === "js")) {
    it(`js, ${title(block)}`, async () => {
      const { stdout, stderr } = await runJs(block);
      expect(stdout).toContain("Hello from the README test");
      if (block.code.includes("@grpc/grpc-js")) {
        // The reasoning apart from the answer, the tool call put together from its fragments, the accounting.
        expect(stderr).toBe(REPLY.reasoning);
        expect(stdout).toContain('tool call call_1: get_weather({"city": "Paris"})');
        expect(stdout).toMatch(/\[alibaba-cloud qwen-plus\] tool_calls, 15 tokens, \$0\.\d+\n$/);
      }
    });
  }

  // No PyPI here and no python3-openai in Debian 12: the Python examples are compiled, not run.
  for (const block of shown.filter((b) => b.lang === "python")) {
    it(`python (compiled only), ${title(block)}`, async () => {
      const file = join(dir, `example-${block.line}.py`);
      writeFileSync(file, substituted(block.code));
      await runIt("python3", ["-m", "py_compile", file]);
    });
  }
});
