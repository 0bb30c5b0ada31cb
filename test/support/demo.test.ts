// `npm run demo`, as the README tells a newcomer to run it: a child process
// whose printed key and URLs must be enough to chat, with the real `openai`
// package and with the curl command it prints; Ctrl-C stops everything.

import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { promisify } from "node:util";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { tryConnect } from "./gateway-child.js";
import { ROOT } from "./node-child.js";

const run = promisify(execFile);

describe("npm run demo", { timeout: 60_000 }, () => {
  it("prints a key and a base URL that chat through the gateway, and a curl command that works; Ctrl-C stops both servers", async () => {
    const child = spawn("npm", ["run", "demo"], {
      cwd: ROOT,
      detached: true, // its own process group, so a test's SIGINT reaches npm and node as Ctrl-C does
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: `${dirname(process.execPath)}:${process.env.PATH}`, HOME: process.env.HOME ?? ROOT, PORT: "0" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no banner within 30 s:\n${stdout}\n${stderr}`)), 30_000);
        const check = () => {
          if (stdout.includes("Ctrl-C stops")) {
            clearTimeout(timer);
            resolve();
          }
        };
        child.stdout.on("data", check);
        void exited.then(() => reject(new Error(`the demo exited:\n${stdout}\n${stderr}`)));
      });
      const exported = (name: string) => new RegExp(`^  export ${name}=(\\S+)`, "m").exec(stdout)?.[1];
      const baseURL = exported("OPENAI_BASE_URL")!;
      const apiKey = exported("OPENAI_API_KEY")!;
      expect(baseURL).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      expect(apiKey).toMatch(/^gw_live_[0-9A-Za-z]{32}$/);
      expect(exported("GATEWAYZ_KEY")).toBe(apiKey);
      expect(exported("GATEWAYZ_ADMIN_KEY")).toMatch(/^gw_admin_[0-9A-Za-z]{32}$/);
      const dbPath = exported("DATABASE_PATH")!;
      expect(existsSync(dbPath)).toBe(true);
      const fakeOrigin = /fake DashScope on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)![1]!;

      const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
      const reply = await client.chat.completions.create({ model: "qwen-plus", messages: [{ role: "user", content: "Hello" }] });
      expect(reply.choices[0]!.message.content).toBe("Hello from qwen-plus");
      let streamed = "";
      for await (const chunk of await client.chat.completions.create({ model: "qwen-max", messages: [{ role: "user", content: "Hi" }], stream: true })) {
        streamed += chunk.choices[0]?.delta?.content ?? "";
      }
      expect(streamed).toBe("Hello from qwen-max");

      const curl = /^ {2}(curl .*)$/m.exec(stdout)![1]!;
      const { stdout: answer } = await run("bash", ["-c", `${curl} --silent --show-error --fail-with-body`]);
      expect(JSON.parse(answer).choices[0].message.content).toBe("Hello from qwen-plus");

      process.kill(-child.pid!, "SIGINT");
      expect(await exited).toBe(0);
      expect(await tryConnect(Number(new URL(baseURL).port))).toBe("refused");
      expect(await tryConnect(Number(new URL(fakeOrigin).port))).toBe("refused");
      expect(existsSync(dbPath)).toBe(false);
    } finally {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });
});
