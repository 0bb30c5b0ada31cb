// `npx tsx bench/cache-miss.ts`: what a cache miss costs in CPU, without HTTP around it.
// The real AnswerCache (embedded SQLite store, memory front) and the core's throughCache, 64
// requests in flight as in the cache profile, each a distinct chat whose "upstream" answers on
// the next turn of the event loop, against the same requests with no cache, interleaved. The difference is
// the miss's own cost (key, lookup, single flight, encode, store write, GC), which `npm run bench`
// can only see diluted in a whole request and behind ±10% of noise. Nothing here is timed by tests.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openAnswerCache } from "../src/cache/answer-cache.js";
import { CacheLookup, throughCache } from "../src/core/cache-flow.js";
import { cacheableAnswer } from "../src/core/cached-chat.js";
import { createLogger } from "../src/log.js";
let mode = "on";
const cache = openAnswerCache({ enabled: true, ttlMs: 3600_000, scope: "user", maxBytes: 256 * 1024 * 1024, maxEntryBytes: 1 << 20,
  path: join(mkdtempSync(join(tmpdir(), "fb-")), "c.sqlite"), redisUrl: undefined, redisTimeoutMs: 50 } as any, createLogger("warn"));
const model = { id: "qwen-max", embedding: undefined } as any;
const observer = { cacheLookup() {} };
const makeCompletion = (i: number) => ({ id: "chatcmpl-" + i, object: "chat.completion", created: 1, model: "qwen-max",
  choices: [{ index: 0, message: { role: "assistant", content: "Hello! How can I help you today? ".repeat(8) }, finish_reason: "stop", logprobs: null }],
  usage: { prompt_tokens: 10, completion_tokens: 100, total_tokens: 110 } });
let n = 0;
async function one(i: number) {
  const body = JSON.parse(JSON.stringify({ messages: [{ role: "user", content: `Hello nonce ${i}` }] }));
  const call = { body, signal: new AbortController().signal, cache: undefined };
  const upstream = () => new Promise<any>((r) => setImmediate(() => r({ completion: makeCompletion(i), outcome: { provider: "a", upstreamModel: "qwen-max", catalogModel: model, cost: { totalPico: 5n } } })));
  if (mode === "off") return upstream();
  const lookup = new CacheLookup(cache, "chat", call, () => ({ operation: "chat", body }));
  await lookup.find(model, { userId: "u", keyId: "k", cache: "default" } as any);
  return throughCache(observer, lookup, {
    upstream,
    keep: (d: any) => cacheableAnswer(d.completion, { provider: "a", upstreamModel: "qwen-max", model: "qwen-max", costPico: 5n }),
    serve: async () => { throw new Error("no hits here"); },
    tag: (d: any, how) => ({ ...d, outcome: { ...d.outcome, cache: how } }),
  });
}
async function worker(count: number) { for (let k = 0; k < count; k++) await one(n++); }
/** CPU µs per request of `rounds` rounds of 64 × 300 requests in `m`, interleaved by the caller. */
async function round(m: string): Promise<number> {
  mode = m;
  const c0 = process.cpuUsage();
  await Promise.all(Array.from({ length: 64 }, () => worker(300)));
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / (64 * 300);
}
await round("on");
await round("off"); // warm-up
const results: Record<string, number[]> = { off: [], on: [] };
for (let r = 0; r < 7; r++) for (const m of r % 2 ? ["on", "off"] : ["off", "on"]) results[m]!.push(await round(m));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
for (const [m, xs] of Object.entries(results)) console.log(`${m.padEnd(4)} median ${median(xs).toFixed(1)} µs a request  (${xs.map((x) => x.toFixed(0)).join(", ")})`);
console.log(`a miss costs ${(median(results.on!) - median(results.off!)).toFixed(1)} µs`);
await cache.close();
