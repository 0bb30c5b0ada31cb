// Commit before answer: the core hands a front door its answer only once the
// request's usage row is committed, so whatever the door sends next (the JSON
// body, a stream's usage chunk and [DONE], the RPC's done message and status,
// an error) follows a row that a kill -9 cannot take back. Checked on the real
// gateway's core, at the moment each call settles, through a second connection
// to its database file, which sees only committed rows. (test/server/kill9.test.ts
// checks the same end to end, killing a loaded gateway process.)

import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import type { ChatCall } from "../../src/core/chat-request.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

let dir: string;
let gw: TestGateway;
let other: Database.Database;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "gatewayz-commit-first-"));
  gw = await startTestGateway({ DATABASE_PATH: join(dir, "g.db") });
  other = new Database(join(dir, "g.db"), { readonly: true });
});

afterEach(async () => {
  other.close();
  await gw.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Rows committed, as another connection (another process, a crash's survivor) sees them. */
const committed = () => (other.prepare("SELECT COUNT(*) AS n FROM usage").get() as { n: number }).n;

function call(over: Partial<ChatCall> = {}): ChatCall {
  return {
    model: "qwen-plus", body: { messages: [{ role: "user", content: "hi" }] }, signal: new AbortController().signal,
    authorization: gw.authorization, protocol: "openai", ...over,
  };
}

it("complete(): its row is committed when the answer is handed over", async () => {
  const { completion } = await gw.app.gateway.complete(call());
  expect(committed()).toBe(1);
  expect(completion.choices[0]!.finish_reason).toBe("stop");
});

it("complete() on a stream-only model (aggregated from a stream): committed when the answer is handed over", async () => {
  await gw.app.gateway.complete(call({ model: "qwq-plus" }));
  expect(committed()).toBe(1);
});

it("stream(): iteration ends only once the row is committed, so the door's final bytes follow it", async () => {
  const stream = await gw.app.gateway.stream(call());
  let chunks = 0;
  for await (const _ of stream) {
    chunks++;
    expect(committed()).toBe(0); // still answering: not recorded yet
  }
  expect(chunks).toBeGreaterThan(0);
  expect(committed()).toBe(1);
  expect(stream.outcome().finishReason).toBe("stop");
});

it("a failed request (upstream 500): the error is thrown once the row is committed", async () => {
  gw.fake.enqueue({ kind: "error", status: 500 });
  const err = await gw.app.gateway.complete(call()).then(() => undefined, (e: unknown) => e);
  expect(err).toBeDefined();
  expect(committed()).toBe(1);
});

it("a stream the upstream cuts: the error comes out of iteration once the row is committed", async () => {
  gw.fake.enqueue({ kind: "stream-then-reset", chunks: 2 });
  const stream = await gw.app.gateway.stream(call());
  const err = await (async () => {
    for await (const _ of stream) { /* drain */ }
  })().then(() => undefined, (e: unknown) => e);
  expect(err).toBeDefined();
  expect(committed()).toBe(1);
});

it("a refusal at admission (unknown key) and one at the door (refused()): each settles after its row is committed", async () => {
  const err = await gw.app.gateway.complete(call({ authorization: `Bearer gw_live_${"x".repeat(32)}` })).then(() => undefined, (e: unknown) => e);
  expect(err).toBeDefined();
  expect(committed()).toBe(1);
  await gw.app.gateway.refused({ protocol: "openai", model: "qwen-plus", authorization: gw.authorization }, new Error("bad JSON"));
  expect(committed()).toBe(2);
});
