// A fast fake OpenAI-compatible upstream for the benchmark, run in its own process
// (bench/run.ts forks it) so that its CPU is neither the gateway's nor the load
// generator's. Bare node:http with keep-alive; every response's bytes are built once
// at start, and the request body is only searched for `"stream":true` and
// `"include_usage":true`, never parsed. (One exception: a request whose text contains
// `#tag<N>` (bench/soak.ts numbers its requests so) gets responses built for it, whose usage
// reports N prompt tokens, so that each usage row can be matched to its request.)
//
// Profiles (switched at run time by an IPC message { profile }):
//   zero  answers at once: the JSON completion, or the whole SSE stream in one write.
//   llm   streams: 100 ms to the first byte (the role chunk), then 20 content chunks
//         10 ms apart, the last one followed by the finish, usage and [DONE] events;
//         non-streaming: the JSON after 100 ms + 200 ms.
//   fast  llm's shape, quicker (for bench/soak.ts: many requests, still streamed in
//         pieces): 5 ms to the first byte, then 10 content chunks 2 ms apart;
//         non-streaming: the JSON after 25 ms.
//   slow  answers of a few seconds, as long generations are (bench/soak.ts: a shutdown
//         while they run): 100 ms to the first byte, then 20 chunks 100 ms apart;
//         non-streaming: the JSON after 2.1 s.
//
// POST /embeddings answers EMBED_INPUTS vectors of 1024 floats (bench/paths.ts always sends that
// many inputs), at once or after the profile's JSON delay.
//
// Run alone: `tsx bench/fake-upstream.ts [port] [profile]` (prints the port).
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";

export type Profile = "zero" | "llm" | "fast" | "slow";

const ID = "chatcmpl-bench0000000000000000000000";
const CREATED = 1_700_000_000;
const MODEL = "qwen-max";
const ZERO_CHUNKS = 4;
/** The profiles that stream in pieces: chunks, ms to the first byte, ms between chunks, ms to the JSON. */
interface Paced { chunks: number; firstByteMs: number; gapMs: number; jsonMs: number }
const PACED: Record<Exclude<Profile, "zero">, Paced> = {
  llm: { chunks: 20, firstByteMs: 100, gapMs: 10, jsonMs: 100 + 200 },
  fast: { chunks: 10, firstByteMs: 5, gapMs: 2, jsonMs: 25 },
  slow: { chunks: 20, firstByteMs: 100, gapMs: 100, jsonMs: 2100 },
};

const usage = (completion: number, prompt: number) => ({
  prompt_tokens: prompt,
  completion_tokens: completion,
  total_tokens: prompt + completion,
  prompt_tokens_details: { cached_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0 },
});

/** One SSE event exactly as OpenAI frames it. */
const event = (data: unknown) => `data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`;
const chunk = (delta: object, finish: string | null = null) => event({
  id: ID, object: "chat.completion.chunk", created: CREATED, model: MODEL, system_fingerprint: null,
  choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
});
const word = (i: number) => `tok${i} `;

/** Precomputed bytes of one profile's responses. */
interface Bytes {
  json: Buffer;
  /** Role chunk. */
  head: Buffer;
  /** Content chunks, one Buffer each. */
  body: Buffer[];
  /** Finish chunk, then [DONE] (tailUsage: finish, usage chunk, [DONE]). */
  tail: Buffer;
  tailUsage: Buffer;
  /** The whole stream in one Buffer, without and with the usage chunk. */
  whole: Buffer;
  wholeUsage: Buffer;
}

function bytes(chunks: number, prompt = 12): Bytes {
  const text = Array.from({ length: chunks }, (_, i) => word(i));
  const json = Buffer.from(JSON.stringify({
    id: ID, object: "chat.completion", created: CREATED, model: MODEL, system_fingerprint: null,
    choices: [{ index: 0, message: { role: "assistant", content: text.join("") }, logprobs: null, finish_reason: "stop" }],
    usage: usage(chunks, prompt),
  }));
  const head = Buffer.from(chunk({ role: "assistant", content: "" }));
  const body = text.map((t) => Buffer.from(chunk({ content: t })));
  const finish = chunk({}, "stop");
  const usageEvent = event({ id: ID, object: "chat.completion.chunk", created: CREATED, model: MODEL, system_fingerprint: null, choices: [], usage: usage(chunks, prompt) });
  const done = event("[DONE]");
  const tail = Buffer.from(finish + done);
  const tailUsage = Buffer.from(finish + usageEvent + done);
  return {
    json, head, body, tail, tailUsage,
    whole: Buffer.concat([head, ...body, tail]),
    wholeUsage: Buffer.concat([head, ...body, tailUsage]),
  };
}

const CHUNKS: Record<Profile, number> = { zero: ZERO_CHUNKS, llm: PACED.llm.chunks, fast: PACED.fast.chunks, slow: PACED.slow.chunks };
const BYTES: Record<Profile, Bytes> = { zero: bytes(CHUNKS.zero), llm: bytes(CHUNKS.llm), fast: bytes(CHUNKS.fast), slow: bytes(CHUNKS.slow) };

/** Inputs per embeddings request in the benchmark, and the vectors the fake answers with. */
export const EMBED_INPUTS = 4;
const EMBEDDINGS = Buffer.from(JSON.stringify({
  object: "list",
  data: Array.from({ length: EMBED_INPUTS }, (_, index) => ({
    object: "embedding", index, embedding: Array.from({ length: 1024 }, (_, i) => Math.fround(Math.sin(index + i) / 32)),
  })),
  model: "text-embedding-v4",
  usage: { prompt_tokens: 8 * EMBED_INPUTS, total_tokens: 8 * EMBED_INPUTS },
}));

const JSON_HEADERS = (length: number) => ({ "content-type": "application/json", "content-length": String(length) });
const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache" };
const STREAM_RE = /"stream"\s*:\s*true/;
const USAGE_RE = /"include_usage"\s*:\s*true/;
const TAG_RE = /#tag(\d+)/;

export function createFakeUpstream(initial: Profile = "zero") {
  let profile: Profile = initial;

  const streamPaced = (res: ServerResponse, b: Bytes, withUsage: boolean, pace: Paced) => {
    let i = 0;
    let timer: NodeJS.Timeout | undefined;
    res.once("close", () => clearTimeout(timer));
    const next = () => {
      if (res.destroyed) return;
      if (i === 0) {
        res.writeHead(200, SSE_HEADERS);
        res.write(b.head);
      } else if (i < b.body.length) {
        res.write(b.body[i - 1]);
      } else {
        res.write(b.body[i - 1]);
        res.end(withUsage ? b.tailUsage : b.tail);
        return;
      }
      i++;
      timer = setTimeout(next, pace.gapMs);
    };
    timer = setTimeout(next, pace.firstByteMs);
  };

  const embeddings = (res: ServerResponse) => {
    const send = () => { if (!res.destroyed) res.writeHead(200, JSON_HEADERS(EMBEDDINGS.length)).end(EMBEDDINGS); };
    if (profile === "zero") return send();
    const t = setTimeout(send, PACED[profile].jsonMs);
    res.once("close", () => clearTimeout(t));
  };

  const answer = (req: IncomingMessage, res: ServerResponse, text: string) => {
    if (req.method === "POST" && req.url?.endsWith("/embeddings")) return embeddings(res);
    if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
      res.writeHead(404, JSON_HEADERS(2)).end("{}");
      return;
    }
    const tag = TAG_RE.exec(text);
    const b = tag ? bytes(CHUNKS[profile], Number(tag[1])) : BYTES[profile];
    const stream = STREAM_RE.test(text);
    if (!stream) {
      const send = () => { if (!res.destroyed) res.writeHead(200, JSON_HEADERS(b.json.length)).end(b.json); };
      if (profile === "zero") send();
      else {
        const t = setTimeout(send, PACED[profile].jsonMs);
        res.once("close", () => clearTimeout(t));
      }
      return;
    }
    const withUsage = USAGE_RE.test(text);
    if (profile === "zero") res.writeHead(200, SSE_HEADERS).end(withUsage ? b.wholeUsage : b.whole);
    else streamPaced(res, b, withUsage, PACED[profile]);
  };

  const server = createServer({ keepAliveTimeout: 120_000, noDelay: true }, (req, res) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (s: string) => { text += s; });
    req.on("end", () => answer(req, res, text));
  });
  server.headersTimeout = 0;
  server.requestTimeout = 0;

  return {
    server,
    setProfile(p: Profile) { profile = p; },
    listen(port = 0): Promise<number> {
      return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
    },
  };
}

// Child-process entry: report the port over IPC, take profile switches, and die with the parent.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const fake = createFakeUpstream((process.argv[3] as Profile | undefined) ?? "zero");
  const port = await fake.listen(Number(process.argv[2] ?? 0));
  if (process.send) {
    process.on("message", (m: { profile?: Profile }) => {
      if (m.profile) {
        fake.setProfile(m.profile);
        process.send!({ profile: m.profile });
      }
    });
    process.on("disconnect", () => process.exit(0));
    process.send({ port });
  } else {
    process.stdout.write(`fake upstream on http://127.0.0.1:${port}/v1\n`);
  }
}
