import type { ChatCompletion, ChatCompletionChunk } from "openai/resources/chat/completions";
import type { AnswerCache } from "../cache/answer-cache.js";
import type { CachedChat } from "../cache/codec.js";
import { asGatewayError } from "../errors.js";
import type { Observer } from "../observe/observer.js";
import type { Route } from "../providers/provider-set.js";
import type { UsageStore } from "../storage/usage.js";
import type { Admitted } from "./admission.js";
import type { ChatCall } from "./chat-request.js";
import { CompletionAggregator } from "./aggregate.js";
import { CacheLookup, countLookup, recordCached, throughCache, type CacheAnswer } from "./cache-flow.js";
import type { ChatOutcome, ChatStream } from "./gateway.js";
import type { RateLimitSnapshot } from "./limiter.js";
import type { RequestMeter } from "./metering.js";
import type { PriceBook } from "./pricing.js";
import { fromOpenAIUsage } from "./usage.js";

export type ChatLookup = CacheLookup<"chat">;

/** A chat's look into the cache: its key is its whole body (key.ts drops what does not change the answer). */
export function chatLookup(cache: AnswerCache | undefined, call: ChatCall): ChatLookup {
  return new CacheLookup(cache, "chat", call, () => ({ operation: "chat", body: call.body }));
}

/** Answers worth keeping: complete ones. A cut, failed or filtered answer is never replayed. */
const CACHEABLE_FINISH = new Set(["stop", "length", "tool_calls"]);

/** The entry a finished answer makes, if it may be kept. */
export function cacheableAnswer(completion: ChatCompletion, facts: { provider: string; upstreamModel: string; model: string; costPico: bigint }): CachedChat | undefined {
  if (!completion.usage || completion.choices.length === 0) return undefined;
  if (!completion.choices.every((c) => CACHEABLE_FINISH.has(c.finish_reason ?? ""))) return undefined;
  return { operation: "chat", completion, ...facts, createdAt: Date.now() };
}

/**
 * A cached answer as the chunks of a stream: one chunk with each choice's
 * whole message (role, reasoning, content, tool calls), then one with its
 * finish reason. Usage travels apart (ChatStream.outcome), as the core's
 * streams give it; the front door adds the usage chunk if the client asked.
 */
export function replayChunks(completion: ChatCompletion): ChatCompletionChunk[] {
  const base = { id: completion.id, object: "chat.completion.chunk" as const, created: completion.created, model: completion.model };
  const deltas = completion.choices.map((c) => {
    const m = c.message as ChatCompletion.Choice["message"] & { reasoning_content?: string };
    const delta: ChatCompletionChunk.Choice.Delta & { reasoning_content?: string } = { role: "assistant", content: m.content ?? "" };
    if (m.reasoning_content) delta.reasoning_content = m.reasoning_content;
    if (m.tool_calls?.length) {
      delta.tool_calls = m.tool_calls.filter((t) => t.type === "function").map((t, index) => ({
        index, id: t.id, type: "function" as const, function: { name: t.function.name, arguments: t.function.arguments },
      }));
    }
    return { index: c.index, delta, finish_reason: null, logprobs: null };
  });
  const finishes = completion.choices.map((c) => ({ index: c.index, delta: {}, finish_reason: c.finish_reason, logprobs: null }));
  return [{ ...base, choices: deltas }, { ...base, choices: finishes }] as ChatCompletionChunk[];
}

/** What the cache flow borrows from the gateway. */
export interface CacheFlowDeps {
  readonly cache: AnswerCache | undefined;
  readonly observer: Pick<Observer, "cacheLookup">;
  readonly usage: Pick<UsageStore, "committed">;
  readonly prices: PriceBook;
}

type Entry = { admitted: Admitted; routes: Route[] };
type Completed = { completion: ChatCompletion; outcome: ChatOutcome; rateLimit: RateLimitSnapshot };

/** A chat answered from an entry (recordCached), as the JSON answer it was. */
async function serve(d: CacheFlowDeps, meter: RequestMeter, admitted: Admitted, answer: CachedChat, how: CacheAnswer): Promise<Completed> {
  const { completion } = answer;
  const tokens = fromOpenAIUsage(completion.usage!);
  const finishReason = completion.choices[0]?.finish_reason ?? "stop";
  await recordCached(() => d.usage.committed(), meter, admitted, answer, { tokens, finishReason, responseModel: completion.model });
  const outcome: ChatOutcome = {
    id: completion.id, provider: answer.provider, catalogModel: admitted.model, upstreamModel: answer.upstreamModel, attempts: 0,
    finishReason, usage: tokens, rawUsage: completion.usage!, cost: d.prices.costOf(admitted.model, { promptTokens: 0, completionTokens: 0 }),
    estimated: false, cache: how,
  };
  return { completion, outcome, rateLimit: admitted.rateLimit };
}

function answerOf(done: Completed): CachedChat | undefined {
  const { outcome } = done;
  return cacheableAnswer(done.completion, {
    provider: outcome.provider, upstreamModel: outcome.upstreamModel, model: outcome.catalogModel.id, costPico: outcome.cost.totalPico,
  });
}

/** One JSON answer through the cache (cache-flow.ts throughCache). */
export function cachedComplete(d: CacheFlowDeps, lookup: ChatLookup, meter: RequestMeter, entry: Entry, upstream: () => Promise<Completed>): Promise<Completed> {
  return throughCache(d.observer, lookup, {
    upstream,
    keep: answerOf,
    serve: (answer, how) => serve(d, meter, entry.admitted, answer, how),
    tag: (done, cache) => ({ ...done, outcome: { ...done.outcome, cache } }),
  });
}

/** A cached answer as a stream, its row already committed (serve). */
function replayStream(done: Completed): ChatStream {
  const chunks = replayChunks(done.completion);
  const { outcome } = done;
  return {
    async *[Symbol.asyncIterator]() {
      yield* chunks;
    },
    provider: outcome.provider, upstreamModel: outcome.upstreamModel, attempts: 0, catalogModel: outcome.catalogModel,
    rateLimit: done.rateLimit, cache: outcome.cache, outcome: () => outcome,
  };
}

/**
 * The stream as it is, folding its chunks into the answer it makes: `keep`
 * gets that answer once the stream has ended well, or undefined once it ends
 * any other way (failed, cut, left by its consumer).
 */
function keeping(stream: ChatStream, cache: CacheAnswer, keep: (done: Completed | undefined) => void): ChatStream {
  const aggregator = new CompletionAggregator();
  return {
    ...stream,
    cache,
    outcome: () => ({ ...stream.outcome(), cache }),
    async *[Symbol.asyncIterator]() {
      let done: Completed | undefined;
      try {
        for await (const chunk of stream) {
          aggregator.add(chunk);
          yield chunk;
        }
        const outcome = stream.outcome();
        done = { completion: aggregator.result(outcome.rawUsage), outcome, rateLimit: stream.rateLimit };
      } finally {
        keep(done);
      }
    },
  };
}

/**
 * A streamed answer through the cache. A hit is replayed as a stream (a
 * streamed request may be answered from a non-streamed one and the other
 * way round: the entry is the same). A miss leads a flight: it streams from
 * upstream, and identical requests arriving meanwhile, streamed or not,
 * wait for its answer and are served from it once it has ended complete. A
 * leader whose stream fails before it opens fails its followers the same
 * way; one whose stream is cut, or whose client goes away, leaves them to go
 * upstream themselves (there is no complete answer to give them).
 */
export async function cachedStream(d: CacheFlowDeps, lookup: ChatLookup, meter: RequestMeter, entry: Entry, upstream: () => Promise<ChatStream>): Promise<ChatStream> {
  const { cache, plan } = lookup;
  if (!cache) return upstream();
  const how = countLookup(d.observer, lookup);
  if (lookup.hit) return replayStream(await serve(d, meter, entry.admitted, lookup.hit, "hit"));
  if (!plan) return { ...(await upstream()), cache: "bypass" };
  const { signal } = lookup.request;
  let opened: Promise<ChatStream> | undefined;
  // run() calls the work at once when this request leads, so `opened` is set before it returns.
  const flight = cache.flight.run(plan.key, () => new Promise<CachedChat | undefined>((resolve, reject) => {
    // The leader's client gone before its stream ends: nothing complete is coming.
    signal.addEventListener("abort", () => resolve(undefined), { once: true });
    opened = upstream().then(
      (stream) => keeping(stream, how, (done) => {
        const answer = done && answerOf(done);
        if (answer && plan.control.write) cache.put(plan.key, answer, plan.control.ttlMs);
        resolve(answer);
      }),
      (err: unknown) => {
        reject(err);
        throw err;
      },
    );
  }), signal);
  if (opened) {
    flight.catch(() => {}); // the leader learns its failure from `opened`
    return opened;
  }
  try {
    const shared = await flight;
    d.observer.cacheLookup("chat", "coalesced");
    // The first request's answer could not be kept (a filtered or cut one): this one asks for its own.
    if (shared.value?.operation !== "chat") return { ...(await upstream()), cache: "miss" };
    return replayStream(await serve(d, meter, entry.admitted, shared.value, "coalesced"));
  } catch (err) {
    if (signal.aborted || asGatewayError(err).kind !== "cancelled") throw err;
    // The request this one waited on was cancelled by its client: this one goes itself.
    return { ...(await upstream()), cache: "miss" };
  }
}
