// `npm run demo`: Gatewayz to try in a minute, with no DashScope key. A fake
// DashScope (the test suite's, test/support/fake-upstream.ts) on 127.0.0.1, a
// real gateway in front of it (port 8000, or PORT) on a database in a
// temporary directory, a client key and an admin key; it prints what to paste
// into another terminal. Ctrl-C stops both and deletes the database.

import { randomInt } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { startFakeUpstream, type FakeUpstream } from "./fake-upstream.js";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** An admin key of the GATEWAYZ_ADMIN_KEY form: gw_admin_ and 32 random base62 characters. */
function adminKey(): string {
  return "gw_admin_" + Array.from({ length: 32 }, () => BASE62[randomInt(62)]).join("");
}

function banner(app: App, fake: FakeUpstream, key: string, admin: string, dbPath: string): string {
  const base = `${app.url}/v1`;
  const body = `{"model": "qwen-plus", "messages": [{"role": "user", "content": "Hello"}]}`;
  return [
    "",
    `Gatewayz demo: the gateway on ${app.url}, in front of a fake DashScope on ${new URL(fake.baseUrl).origin}`,
    `(it answers "Hello from <model>": no real model, no DashScope key). Database, deleted on exit: ${dbPath}`,
    "",
    "Chat through it (paste into another terminal):",
    "",
    `  curl ${base}/chat/completions -H "Authorization: Bearer ${key}" -H "Content-Type: application/json" -d '${body}'`,
    "",
    "For the OpenAI SDKs, and the README's examples:",
    "",
    `  export OPENAI_BASE_URL=${base}`,
    `  export OPENAI_API_KEY=${key}`,
    `  export GATEWAYZ_KEY=${key}`,
    `  export GATEWAYZ_ADMIN_KEY=${admin}`,
    `  export DATABASE_PATH=${dbPath}   # so that \`npx gatewayz\` uses this database`,
    "",
    "Ctrl-C stops the gateway and the fake.",
    "",
  ].join("\n");
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "gatewayz-demo-"));
  const dbPath = join(dir, "gatewayz.db");
  const fake = await startFakeUpstream();
  const admin = adminKey();
  const config = loadConfig({
    ENV_FILE: "/nonexistent/.env",
    HOST: "127.0.0.1",
    PORT: process.env.PORT || "8000",
    LOG_LEVEL: process.env.LOG_LEVEL || "info",
    DATABASE_PATH: dbPath,
    DRAIN_TIMEOUT_MS: "1000",
    GATEWAYZ_ADMIN_KEY: admin,
    ALIBABA_CLOUD_API_KEY: fake.apiKey,
    ALIBABA_CLOUD_BASE_URL: fake.baseUrl,
  });
  const log = createLogger(config.logLevel);
  const cleanUp = async () => {
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  };
  let app: App;
  try {
    app = await startApp(config, log);
  } catch (err) {
    await cleanUp();
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(e.code === "EADDRINUSE"
      ? `gatewayz demo: port ${config.port} is in use; pick another: PORT=8001 npm run demo\n`
      : `gatewayz demo: could not start: ${e.message}\n`);
    process.exit(1);
  }
  const { key } = app.accounts.createKey({ user: "demo", name: "demo" });
  process.stdout.write(banner(app, fake, key, admin, dbPath));

  let stopping = false;
  const stop = () => {
    if (stopping) return app.hurry();
    stopping = true;
    process.stderr.write("stopping the demo...\n");
    app.close().then(cleanUp).then(() => process.exit(0), (err: Error) => {
      process.stderr.write(`gatewayz demo: ${err.message}\n`);
      process.exit(1);
    });
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

void main();
