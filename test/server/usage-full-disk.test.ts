// The gateway on a full disk (a real SQLITE_FULL: its database file may not
// grow, test/support/full-disk.ts). Usage rows the database refuses are held
// in memory, USAGE_BUFFER_ROWS of them (8 here), and chats go on being
// answered while there is room; with the buffer full, new chats are refused
// with 503 usage_store_unavailable (gRPC UNAVAILABLE), since they could not be
// billed; once the disk has room again the held rows are committed, one per
// answered request, and chats are accepted again. Admin calls that cannot
// write say so: storage_unavailable, with SQLite's reason and code.

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { APIError } from "openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/gatewayz/v1/admin_pb.js";
import { fillDisk, freeDisk, usageRows } from "../support/full-disk.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { grpcChat } from "../support/grpc-chat.js";

const BUFFER = 8;
const ADMIN_KEY = "gw_admin_" + "FullDisk0123456789abcdefghijklmn".slice(0, 32);
const HI = [{ role: "user" as const, content: "hi" }];

let dir: string;
let gw: TestGateway;
let client: OpenAI;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "gatewayz-full-disk-"));
  gw = await startTestGateway({ DATABASE_PATH: join(dir, "g.db"), USAGE_BUFFER_ROWS: String(BUFFER), GATEWAYZ_ADMIN_KEY: ADMIN_KEY });
  client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  // One row on disk first: the disk fills up with copies of it.
  await chat(0);
  fillDisk(gw.app.db);
});

afterEach(async () => {
  freeDisk(gw.app.db);
  await gw.close();
  rmSync(dir, { recursive: true, force: true });
});

/** One chat, plain or streaming by `i`; resolves with 200 or the HTTP status of its error. */
async function chat(i: number): Promise<number> {
  try {
    if (i % 2 === 0) {
      await client.chat.completions.create({ model: "qwen-plus", messages: HI });
    } else {
      for await (const _ of await client.chat.completions.create({ model: "qwen-plus", messages: HI, stream: true })) { /* drain */ }
    }
    return 200;
  } catch (err) {
    if (err instanceof APIError && err.status !== undefined) return err.status;
    throw err;
  }
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const log = () => gw.logs.join("\n");

describe("chats while the disk is full", () => {
  it("are answered while the buffer has room; once the disk has room again, every answered request has its row", async () => {
    const answered = [];
    for (let i = 1; i < BUFFER; i++) answered.push(await chat(i));
    expect(answered).toEqual(Array(BUFFER - 1).fill(200));
    expect(usageRows(gw.app.db)).toBe(1);
    expect(log()).toMatch(/warn\s+usage: the database refuses writes \(database or disk is full \(SQLITE_FULL\)\); holding usage rows in memory \(up to 8\)/);

    freeDisk(gw.app.db);
    await until(() => usageRows(gw.app.db) === BUFFER, "the held rows to be committed");
    expect(log()).toMatch(/usage: the database accepts writes again; 7 held usage row\(s\) committed/);
    expect(await chat(0)).toBe(200);
    expect(usageRows(gw.app.db)).toBe(BUFFER + 1);
  });

  it("with the buffer full, new chats get 503 usage_store_unavailable (gRPC UNAVAILABLE) and leave no row; after the disk is freed they are accepted again", async () => {
    for (let i = 1; i <= BUFFER; i++) expect(await chat(i)).toBe(200);

    const refused = await client.chat.completions.create({ model: "qwen-plus", messages: HI }).then(() => undefined, (e: unknown) => e);
    expect(refused).toBeInstanceOf(APIError);
    expect((refused as APIError).status).toBe(503);
    expect((refused as APIError).code).toBe("usage_store_unavailable");
    expect(await chat(1)).toBe(503);
    const rpc = await grpcChat(gw.url, gw.authorization, { model: "qwen-plus", messages: HI });
    expect(rpc.status.code).toBe(14); // UNAVAILABLE
    expect(rpc.done).toBeUndefined();
    expect(gw.fake.requests).toHaveLength(1 + BUFFER); // the refused ones never reached the upstream
    expect(log()).toMatch(/error\s+usage: 8 usage rows are held and the database still refuses writes \(database or disk is full \(SQLITE_FULL\)\): new chat requests are refused/);
    expect(log()).toMatch(/error\s+usage: 1 request\(s\) refused without a usage row/);

    // Readiness follows: a load balancer stops sending chats here (database_unwritable too, once the write check has run).
    const health = await fetch(`${gw.url}/healthz`);
    expect(health.status).toBe(503);
    expect(((await health.json()) as { reasons: string[] }).reasons).toContain("usage_store_unavailable");
    expect(gw.app.readiness.ready).toBe(false);

    freeDisk(gw.app.db);
    await until(async () => (await chat(0)) === 200, "a chat to be accepted again");
    // The write check's result stands for a second.
    await until(async () => (await fetch(`${gw.url}/healthz`)).status === 200, "ready again");
    // The warm-up, the 8 held ones and the one accepted now: refusals have no row.
    expect(usageRows(gw.app.db)).toBe(1 + BUFFER + 1);
  });
});

describe("admin calls on a full disk", () => {
  it("CreateKey says storage_unavailable, with SQLite's reason and SQLITE_FULL, instead of internal error", async () => {
    const admin = createClient(AdminService, createConnectTransport({ baseUrl: gw.url }));
    const asAdmin = { headers: { authorization: `Bearer ${ADMIN_KEY}` } };
    // A full disk refuses what needs a new page: the key tables' pages fill up within a few keys.
    let failure: unknown;
    for (let i = 0; i < 200 && failure === undefined; i++) {
      failure = await admin.createKey({ user: `full-${i}`, name: "k" }, asAdmin).then(() => undefined, (e: unknown) => e);
    }
    expect(failure).toBeInstanceOf(ConnectError);
    expect((failure as ConnectError).code).toBe(Code.Unavailable);
    expect((failure as ConnectError).rawMessage).toBe("the database refused the write: database or disk is full (SQLITE_FULL)");
  });
});
