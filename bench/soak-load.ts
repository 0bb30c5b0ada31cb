// The soak's load: a closed loop of requests to the OpenAI door through undici, half streamed
// (with include_usage) and half not, each tagged with its number (`#tag<N>`: the fake reports N
// prompt tokens, so every usage row names its request) and each outcome sorted: a complete
// answer; an error the gateway answered (by its code); a connection refused (the request never
// reached the gateway); a connection that failed before any answer; an answer cut off.
import { Pool } from "undici";

export interface Finished {
  tag: number;
  stream: boolean;
  /** performance.now() at the start and the end, ms. */
  startedAt: number;
  endedAt: number;
  outcome: "ok" | "error" | "refused" | "closed" | "cut";
  /** error: the answer's `code` (HTTP status when none); closed and cut: what the client saw. */
  detail?: string;
}

export interface MixedLoad {
  /** Requests started and not finished. */
  inFlight(): number;
  /** The tags in flight now (taken when a signal is sent). */
  inFlightTags(): number[];
  /** Every request finished so far. */
  readonly finished: readonly Finished[];
  /** Stops starting requests and waits for those in flight. */
  stop(): Promise<Finished[]>;
}

export interface LoadOptions {
  origin: string;
  key: string;
  concurrency: number;
  /** The first tag: every load of one run numbers its requests apart. */
  firstTag?: number;
}

const STREAM_END = "data: [DONE]\n\n";
const TIMEOUT_MS = 30_000;

/** The `code` of an OpenAI-shaped error, in a JSON body or a stream's final `data: {"error": ...}` event. */
function errorCode(text: string, status: number): string | undefined {
  const m = /"error"\s*:\s*\{[^]*?"code"\s*:\s*"([^"]+)"/.exec(text);
  return m ? m[1] : status >= 400 ? String(status) : undefined;
}

export function startMixedLoad(o: LoadOptions): MixedLoad {
  const pool = new Pool(o.origin, { connections: o.concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
  const headers = { authorization: `Bearer ${o.key}`, "content-type": "application/json" };
  const finished: Finished[] = [];
  const inFlight = new Set<number>();
  let nextTag = o.firstTag ?? 1;
  let stopping = false;

  const once = async (tag: number): Promise<Finished> => {
    const stream = tag % 2 === 0;
    const body = JSON.stringify({
      model: "qwen-max",
      messages: [{ role: "user", content: `soak #tag${tag}` }],
      ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
    });
    const startedAt = performance.now();
    const end = (outcome: Finished["outcome"], detail?: string): Finished =>
      ({ tag, stream, startedAt, endedAt: performance.now(), outcome, ...(detail ? { detail } : {}) });
    let res;
    try {
      res = await pool.request({ path: "/v1/chat/completions", method: "POST", headers, body, headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).name;
      return end(code === "ECONNREFUSED" ? "refused" : "closed", code);
    }
    let text = "";
    try {
      text = await res.body.text();
    } catch (err) {
      return end("cut", (err as NodeJS.ErrnoException).code ?? (err as Error).name);
    }
    const code = errorCode(text, res.statusCode);
    if (res.statusCode !== 200 || code) return end("error", code);
    if (stream) {
      // Complete: ends with [DONE], after the usage chunk the gateway relays (this request's own).
      return text.endsWith(STREAM_END) && text.includes(`"prompt_tokens":${tag},`) ? end("ok") : end("cut", "incomplete stream");
    }
    try {
      const json = JSON.parse(text) as { choices?: Array<{ message?: { content?: string } }>; usage?: { prompt_tokens?: number } };
      return json.choices?.[0]?.message?.content && json.usage?.prompt_tokens === tag ? end("ok") : end("cut", "incomplete JSON");
    } catch {
      return end("cut", "malformed JSON");
    }
  };

  const caller = async () => {
    while (!stopping) {
      const tag = nextTag++;
      inFlight.add(tag);
      const f = await once(tag);
      inFlight.delete(tag);
      finished.push(f);
      // The gateway stopped accepting: this caller's later requests would be refused too.
      if (f.outcome === "refused") return;
    }
  };
  const callers = Promise.all(Array.from({ length: o.concurrency }, caller));

  return {
    inFlight: () => inFlight.size,
    inFlightTags: () => [...inFlight],
    finished,
    async stop() {
      stopping = true;
      await callers;
      await pool.destroy();
      return finished;
    },
  };
}

/** Counts by outcome (and detail). */
export function tally(fs: readonly Finished[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of fs) {
    const k = f.detail ? `${f.outcome} (${f.detail})` : f.outcome;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
