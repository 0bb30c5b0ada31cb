import type { ChatCompletion, ChatCompletionChunk } from "openai/resources/chat/completions";
import { CACHE_DEFAULT, type AnswerCache, type CacheControl } from "../cache/answer-cache.js";
import type { CachedChat } from "../cache/codec.js";
import { cacheKey } from "../cache/key.js";
import { asGatewayError } from "../errors.js";
import type { CacheOutcome, Observer } from "../observe/observer.js";
import type { Route } from "../providers/provider-set.js";
import type { UsageStore } from "../storage/usage.js";
import type { Admitted } from "./admission.js";
import type { Principal } from "./auth.js";
import type { CatalogModel } from "./catalog.js";
import type { ChatCall } from "./chat-request.js";
import { CompletionAggregator } from "./aggregate.js";
import type { ChatOutcome, ChatStream } from "./gateway.js";
import type { RateLimitSnapshot } from "./limiter.js";
import type { RequestMeter } from "./metering.js";
import type { PriceBook } from "./pricing.js";
import { fromOpenAIUsage } from "./usage.js";

/** Answers worth keeping: complete ones. A cut, failed or filtered answer is never replayed. */
const CACHEABLE_FINISH = new Set(["stop", "length", "tool_calls"]);

/** How one chat uses the cache: its key, and what its request allows. */
export interface CachePlan {
  readonly key: string;
  readonly control: CacheControl;
}

/**
 * The plan for a chat, or undefined when the cache is off for it (CACHE=off,
 * the key's own setting, or Cache-Control: no-store): the lookup is a bypass.
 */
function planCache(cache: AnswerCache | undefined, call: ChatCall, model: CatalogModel, principal: Principal): CachePlan | undefined {
  if (!cache || principal.cache === "off") return undefined;
  const control = call.cache ?? CACHE_DEFAULT;
  if (!control.read && !control.write) return undefined;
  const key = cacheKey({
    operation: "chat", model: model.id, scope: cache.config.scope,
    principal: { userId: principal.userId, keyId: principal.keyId }, body: call.body,
  });
  return { key, control };
}

/**
 * One chat's look into the cache, made during admission once the key and
 * the model are known and before the rate limits are asked: a hit reserves
 * no tokens and no cost (it counts against rpm, not tpm or the budget).
 */
export class CacheLookup {
  plan: CachePlan | undefined;
  found: Awaited<ReturnType<AnswerCache["get"]>> | undefined;

  constructor(private readonly cache: AnswerCache | undefined, readonly call: ChatCall) {}

  /** True when the answer is in the cache. */
  readonly find = async (model: CatalogModel, principal: Principal): Promise<boolean> => {
    this.plan = planCache(this.cache, this.call, model, principal);
    if (!this.cache || !this.plan?.control.read) return false;
    this.found = await this.cache.get(this.plan.key);
    return this.found.answer?.operation === "chat";
  };
}

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

/** What a served request says about the cache: the header value of x-gatewayz-cache. */
export type CacheAnswer = Exclude<CacheOutcome, "error">;

/** What the cache flow borrows from the gateway. */
export interface CacheFlowDeps {
  readonly cache: AnswerCache | undefined;
  readonly observer: Pick<Observer, "cacheLookup">;
  readonly usage: Pick<UsageStore, "committed">;
  readonly prices: PriceBook;
}

type Entry = { admitted: Admitted; routes: Route[] };
type Completed = { completion: ChatCompletion; outcome: ChatOutcome; rateLimit: RateLimitSnapshot };

/**
 * A request answered from a cached answer: its own usage row (status
 * cached, the answer's tokens, cost 0, the cost it saved), its rate-limit
 * share settled at no tokens and no cost (a hit counts against rpm, not tpm
 * or the budget), committed before the answer goes out.
 */
async function serve(d: CacheFlowDeps, meter: RequestMeter, admitted: Admitted, answer: CachedChat, how: CacheAnswer): Promise<Completed> {
  const { completion } = answer;
  meter.provider = answer.provider;
  meter.upstreamModel = answer.upstreamModel;
  meter.markFirstByte();
  const tokens = fromOpenAIUsage(completion.usage!);
  const finishReason = completion.choices[0]?.finish_reason ?? "stop";
  admitted.settle(0, 0n);
  meter.finish({ status: "cached", usage: tokens, costPico: 0n, savedPico: answer.costPico, estimated: false, finishReason, responseModel: completion.model });
  await d.usage.committed();
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

/**
 * One JSON answer through the cache: a hit is served from it; otherwise the
 * request goes upstream (`upstream`), unless an identical one is already on
 * its way, whose answer it then shares (coalesced). A complete answer is
 * kept for the next. If the first request's client goes away, those waiting
 * on it go upstream themselves; any other failure is theirs too.
 */
export async function cachedComplete(d: CacheFlowDeps, lookup: CacheLookup, meter: RequestMeter, entry: Entry, upstream: () => Promise<Completed>): Promise<Completed> {
  const { cache } = d;
  const { plan, found } = lookup;
  const call = lookup.call;
  if (!cache || !plan) {
    if (cache) d.observer.cacheLookup("chat", "bypass");
    return withCache(await upstream(), cache ? "bypass" : undefined);
  }
  if (found?.answer?.operation === "chat") {
    d.observer.cacheLookup("chat", "hit");
    return serve(d, meter, entry.admitted, found.answer, "hit");
  }
  d.observer.cacheLookup("chat", found === undefined ? "bypass" : found.outcome === "error" ? "error" : "miss");
  let mine: Completed | undefined;
  try {
    const flight = await cache.flight.run(plan.key, async () => {
      mine = await upstream();
      const answer = answerOf(mine);
      if (answer && plan.control.write) cache.put(plan.key, answer, plan.control.ttlMs);
      return answer;
    }, call.signal);
    if (!flight.coalesced) return withCache(mine!, plan.control.read ? "miss" : "bypass");
    d.observer.cacheLookup("chat", "coalesced");
    // The first request's answer could not be kept (a filtered or cut one): this one asks for its own.
    if (flight.value?.operation !== "chat") return withCache(await upstream(), "miss");
    return serve(d, meter, entry.admitted, flight.value, "coalesced");
  } catch (err) {
    if (mine || call.signal.aborted || asGatewayError(err).kind !== "cancelled") throw err;
    // The request this one waited on was cancelled by its client: this one goes itself.
    return withCache(await upstream(), "miss");
  }
}

function withCache(done: Completed, cache: CacheAnswer | undefined): Completed {
  return cache === undefined ? done : { ...done, outcome: { ...done.outcome, cache } };
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

/** The stream as it is, folding its chunks into the answer it makes; a stream that ends well gives it to `keep`. */
function keeping(stream: ChatStream, cache: CacheAnswer, keep: (done: Completed) => void): ChatStream {
  const aggregator = new CompletionAggregator();
  return {
    ...stream,
    cache,
    outcome: () => ({ ...stream.outcome(), cache }),
    async *[Symbol.asyncIterator]() {
      for await (const chunk of stream) {
        aggregator.add(chunk);
        yield chunk;
      }
      const outcome = stream.outcome();
      keep({ completion: aggregator.result(outcome.rawUsage), outcome, rateLimit: stream.rateLimit });
    },
  };
}

/**
 * A streamed answer through the cache: a hit is replayed as a stream (a
 * streamed request may be answered from a non-streamed one and the other
 * way round: the entry is the same); a miss streams from upstream and, if
 * it ends complete, is kept. Streamed requests do not coalesce.
 */
export async function cachedStream(d: CacheFlowDeps, lookup: CacheLookup, meter: RequestMeter, entry: Entry, upstream: () => Promise<ChatStream>): Promise<ChatStream> {
  const { cache } = d;
  const { plan, found } = lookup;
  if (!cache || !plan) {
    if (!cache) return upstream();
    d.observer.cacheLookup("chat", "bypass");
    return { ...(await upstream()), cache: "bypass" };
  }
  if (found?.answer?.operation === "chat") {
    d.observer.cacheLookup("chat", "hit");
    return replayStream(await serve(d, meter, entry.admitted, found.answer, "hit"));
  }
  d.observer.cacheLookup("chat", found === undefined ? "bypass" : found.outcome === "error" ? "error" : "miss");
  const how: CacheAnswer = found === undefined ? "bypass" : "miss";
  const stream = await upstream();
  if (!plan.control.write) return { ...stream, cache: how };
  return keeping(stream, how, (done) => {
    const answer = answerOf(done);
    if (answer) cache.put(plan.key, answer, plan.control.ttlMs);
  });
}
