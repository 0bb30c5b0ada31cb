// What a kill -9 can lose: no usage row of a request the client saw complete.
// The gateway commits a request's row before it sends the answer's last bytes
// (the JSON body, or a stream's final usage chunk and [DONE]), so once a client
// has its answer the row is in the WAL, which a killed process cannot take
// back. The gateway runs as a child process (src/main.ts, bundled as for
// `npm start`) on a database file, under concurrent load from the OpenAI SDK
// (plain and streaming calls mixed), and is SIGKILLed mid-load, with one
// process and with `--workers 2`; then the rows in its file are counted
// against the answers clients got.
//
// Where a kill lands is chance, so each case runs several rounds, and the odds
// are stacked against the gateway: the upstream's replies are bunched on a
// beat, so many requests finish in the same event-loop turn, and each kill
// lands a few ms into a beat, while the gateway is busy with its replies.
// When rows were committed at the end of the turn, after the answers had been
// written, that is exactly when answered requests had no row yet.

import Database from "better-sqlite3";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeUpstream, type FakeUpstream } from "../support/fake-upstream.js";
import { bundleGateway, type GatewayBundle } from "../support/gateway-bundle.js";
import { startGatewayChild, type GatewayChild } from "../support/gateway-child.js";

const CONCURRENCY = 32;
/** The upstream's beat: every reply leaves on a multiple of it. */
const BEAT_MS = 20;
const HI = [{ role: "user" as const, content: "hi" }];

let fake: FakeUpstream;
let bundle: GatewayBundle;

beforeAll(async () => {
  // Built once from src/ and started afresh each round: a cold start of ~0.2 s, not tsx's ~2 s.
  bundle = await bundleGateway();
  fake = await startFakeUpstream();
  // Replies leave on a 20 ms beat, so each reaches the gateway in a burst with
  // the others and many requests finish in the same event-loop turn: the
  // widest window there was between answers written and rows committed.
  fake.onModel("qwen-plus", { kind: "reply", alignMs: BEAT_MS });
});

afterAll(async () => {
  await fake.close();
  bundle.remove();
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
function load(g: GatewayChild) {
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

/** Resolves `offsetMs` after a beat of the upstream's clock: while the gateway is busy with that beat's replies. */
function afterBeat(offsetMs: number): Promise<void> {
  return new Promise((r) => setTimeout(r, BEAT_MS - (Date.now() % BEAT_MS) + offsetMs));
}

/** Starts the gateway, loads it for about `loadMs`, SIGKILLs it `offsetMs` into a burst of replies, and counts. */
async function round(args: string[], loadMs: number, offsetMs: number): Promise<Round> {
  const g = await startGatewayChild(fake, { command: [process.execPath, bundle.entry, ...args] });
  const kill9 = async () => {
    g.kill(); // the whole process group: the primary and its workers
    await g.exited;
  };
  try {
    const traffic = load(g);
    await new Promise((r) => setTimeout(r, loadMs));
    await afterBeat(offsetMs);
    await kill9();
    // Answers already on their way when the kill landed count too: the gateway sent them.
    await traffic.stop();
    return { answered: traffic.answered(), rows: rowsIn(g.dbPath) };
  } finally {
    await kill9();
    g.dispose();
  }
}

/** One round per kill offset into a burst, so the kills sweep the time the gateway spends on one. */
async function rounds(args: string[], loadMs: number, offsetsMs: number[]): Promise<Round[]> {
  const out: Round[] = [];
  for (const offset of offsetsMs) out.push(await round(args, loadMs, offset));
  return out;
}

const total = (results: Round[]) => results.reduce((n, r) => n + r.answered, 0);

describe("kill -9 under load", () => {
  it("one process: every answered request has its row on disk", { timeout: 30_000 }, async () => {
    const results = await rounds([], 800, [1, 2, 3, 4, 5, 6, 8, 10]);
    expect(total(results), JSON.stringify(results)).toBeGreaterThan(50); // the load did run
    expect(results.filter((r) => r.rows < r.answered), JSON.stringify(results)).toEqual([]);
  });

  it("--workers 2: every answered request has its row on disk", { timeout: 30_000 }, async () => {
    const results = await rounds(["--workers", "2"], 800, [1, 2, 3, 5, 7, 9]);
    expect(total(results), JSON.stringify(results)).toBeGreaterThan(50); // the load did run
    expect(results.filter((r) => r.rows < r.answered), JSON.stringify(results)).toEqual([]);
  });
});
