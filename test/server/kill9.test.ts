// What a kill -9 can lose: no usage row of a request the client saw complete.
// The gateway commits a request's row before it sends the answer's last bytes
// (the JSON body, or a stream's final usage chunk and [DONE]), so once a client
// has its answer the row is in the WAL, which a killed process cannot take
// back. The gateway runs as a child process (src/main.ts through tsx) on a
// database file, under concurrent load from the OpenAI SDK (plain and
// streaming calls mixed), and is SIGKILLed mid-load, with one worker and with
// two; then the rows in its file are counted against the answers clients got.
//
// A kill lands at a random point, so each case runs several rounds, with load
// high enough that many requests finish in each event-loop turn: when rows
// were committed only at the end of the turn, after the answers had been
// written, most rounds lost some.

import Database from "better-sqlite3";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeUpstream, type FakeUpstream } from "../support/fake-upstream.js";
import { startGatewayProcess, type GatewayProcess } from "../support/gateway-process.js";

const CONCURRENCY = 32;
const HI = [{ role: "user" as const, content: "hi" }];

let fake: FakeUpstream;

beforeAll(async () => {
  fake = await startFakeUpstream();
});

afterAll(async () => {
  await fake.close();
});

/**
 * One client request; resolves true only if the client saw it complete: the
 * whole JSON answer, or a stream up to its final usage chunk (which follows
 * the finish_reason chunk, so a stream cut after the answer is not counted).
 */
async function oneRequest(client: OpenAI, streaming: boolean): Promise<boolean> {
  if (!streaming) {
    const c = await client.chat.completions.create({ model: "qwen-plus", messages: HI });
    return c.choices[0]?.finish_reason === "stop";
  }
  const stream = await client.chat.completions.create({ model: "qwen-plus", messages: HI, stream: true, stream_options: { include_usage: true } });
  let usage = false;
  for await (const chunk of stream) if (chunk.usage) usage = true;
  return usage;
}

/** CONCURRENCY loops of back-to-back requests until `stop()`; counts the answers clients saw complete. */
function load(g: GatewayProcess) {
  const client = new OpenAI({ apiKey: g.key, baseURL: `${g.url}/v1`, maxRetries: 0, timeout: 10_000 });
  let answered = 0;
  let stopped = false;
  const loops = Array.from({ length: CONCURRENCY }, async (_, i) => {
    for (let n = 0; !stopped; n++) {
      try {
        if (await oneRequest(client, (i + n) % 2 === 0)) answered++;
      } catch {
        return; // the gateway is gone
      }
    }
  });
  return {
    answered: () => answered,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

function rowsIn(path: string): number {
  const db = new Database(path);
  try {
    return (db.prepare("SELECT COUNT(*) AS n FROM usage").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

interface Round { answered: number; rows: number }

/** Starts the gateway, loads it for `loadMs`, SIGKILLs it mid-load, and counts. */
async function round(args: string[], loadMs: number): Promise<Round> {
  const g = await startGatewayProcess(fake, args);
  try {
    const traffic = load(g);
    await new Promise((r) => setTimeout(r, loadMs));
    await g.kill9();
    // Answers already on their way when the kill landed count too: the gateway sent them.
    await traffic.stop();
    return { answered: traffic.answered(), rows: rowsIn(g.dbPath) };
  } finally {
    await g.kill9();
    g.remove();
  }
}

async function rounds(args: string[], loadMs: number[]): Promise<Round[]> {
  const out: Round[] = [];
  for (const ms of loadMs) out.push(await round(args, ms));
  return out;
}

describe("kill -9 under load", () => {
  it("one process: every answered request has its row on disk", { timeout: 30_000 }, async () => {
    const results = await rounds([], [700, 900, 1_100, 1_300]);
    expect(results.every((r) => r.answered > 100), JSON.stringify(results)).toBe(true);
    expect(results.filter((r) => r.rows < r.answered), JSON.stringify(results)).toEqual([]);
  });

  it("--workers 2: every answered request has its row on disk", { timeout: 30_000 }, async () => {
    const results = await rounds(["--workers", "2"], [900, 1_200, 1_500]);
    expect(results.every((r) => r.answered > 100), JSON.stringify(results)).toBe(true);
    expect(results.filter((r) => r.rows < r.answered), JSON.stringify(results)).toEqual([]);
  });
});
