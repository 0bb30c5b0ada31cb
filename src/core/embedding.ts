import type { EmbeddingCreateParams } from "openai/resources/embeddings";
import type { AnswerCache } from "../cache/answer-cache.js";
import type { CachedEmbeddings } from "../cache/codec.js";
import { GatewayError } from "../errors.js";
import type { Observer } from "../observe/observer.js";
import type { Route } from "../providers/provider-set.js";
import type { UpstreamEmbeddings } from "../providers/upstream-wire.js";
import type { Admitted, AdmissionTerms } from "./admission.js";
import { CacheLookup, recordCached, throughCache, type CacheAnswer } from "./cache-flow.js";
import type { CoreCall } from "./call.js";
import type { CatalogModel } from "./catalog.js";
import { embedTerms, type EmbedCall, type EmbedRequest, type EncodingFormat } from "./embed-request.js";
import type { Succeeded } from "./failover.js";
import type { RateLimitSnapshot } from "./limiter.js";
import type { RequestMeter } from "./metering.js";
import type { ObservedAttempt, UpstreamHeaders } from "./observed-failover.js";
import type { CostBreakdown } from "./pricing.js";
import { countTokens } from "./tokens.js";
import { fromOpenAIUsage, type TokenUsage } from "./usage.js";

/** Upstream batch requests one client request may have in flight at once. */
export const MAX_BATCHES_IN_FLIGHT = 4;

/** What an embeddings request amounted to; the same for every front door. */
export interface EmbedOutcome {
  readonly provider: string;
  readonly catalogModel: CatalogModel;
  /** The model id the provider answered with (or was asked for). */
  readonly upstreamModel: string;
  /** Upstream attempts it took, failovers and retries included; an attempt sends every batch. */
  readonly attempts: number;
  /** Upstream requests the inputs were split into, on the attempt that succeeded. */
  readonly batches: number;
  readonly usage: TokenUsage;
  readonly cost: CostBreakdown;
  /** Token counts came (in part) from our tokenizer because the upstream sent none. */
  readonly estimated: boolean;
  /** What the response cache did (x-gatewayz-cache); undefined with CACHE=off. */
  readonly cache?: CacheAnswer | undefined;
}

export interface EmbedResult {
  /** One vector per input, in the client's order: vectors[i] is input i's. */
  readonly vectors: ReadonlyArray<readonly number[]>;
  readonly encodingFormat: EncodingFormat;
  readonly outcome: EmbedOutcome;
  readonly rateLimit: RateLimitSnapshot;
}

/** What the flow borrows from the gateway, so admission, metering and failover stay those of chat. */
export interface EmbedFlow {
  metered<T>(call: CoreCall, terms: AdmissionTerms, work: (meter: RequestMeter, entry: { admitted: Admitted; routes: Route[] }) => Promise<T>): Promise<T>;
  /** Settles limits and budget and writes the row of a request that succeeded. */
  succeeded(meter: RequestMeter, admitted: Admitted, tokens: TokenUsage, estimated: boolean, responseModel: string): CostBreakdown;
  failover<T>(call: CoreCall, meter: RequestMeter, routes: Route[], attempt: ObservedAttempt<T>): Promise<Succeeded<T>>;
  /** Resolves once every row so far is durable. */
  committed(): Promise<void>;
  /** The response cache (absent with CACHE=off), and where its lookups are counted. */
  readonly cache: AnswerCache | undefined;
  readonly observer: Pick<Observer, "cacheLookup">;
  /** The cost breakdown of a request that cost nothing (served from the cache). */
  free(model: CatalogModel): CostBreakdown;
}

interface Joined {
  vectors: Array<readonly number[]>;
  usage: TokenUsage;
  estimated: boolean;
  model: string | undefined;
  batches: number;
}

/**
 * One embeddings request, admitted, metered and failed over like a chat.
 * Inputs beyond the model's batch limit go upstream as consecutive batches
 * and are joined in the client's order with their usage summed, so the
 * client sees one answer and the usage table one row. An attempt is every
 * batch on one provider: if one fails the others are aborted and failover
 * tries the next provider with them all, so the vectors of one answer
 * always come from one provider (a provider's vectors are not comparable
 * with another's, even for the same model name).
 */
export function embed(call: EmbedCall, flow: EmbedFlow): Promise<EmbedResult> {
  // The key holds the validated inputs ("a" and ["a"] are one request) and the size the model will make.
  const lookup = new CacheLookup(flow.cache, "embeddings", call, (model) => {
    const { inputs, dimensions, passThrough } = request();
    return { operation: "embeddings", inputs, dimensions: dimensions ?? model.embedding!.defaultDimensions, passThrough };
  });
  const { terms, request } = embedTerms(call, flow.cache && lookup.find);
  const embedCall: CoreCall = { ...call, operation: "embeddings" };
  return flow.metered(embedCall, terms, (meter, { admitted, routes }) => throughCache<EmbedResult, CachedEmbeddings>(flow.observer, lookup, {
    upstream: () => embedUpstream(embedCall, flow, meter, admitted, routes, request()),
    keep: ({ vectors, outcome }) => ({
      operation: "embeddings", provider: outcome.provider, upstreamModel: outcome.upstreamModel, model: outcome.catalogModel.id,
      costPico: outcome.cost.totalPico, createdAt: Date.now(), vectors, usage: outcome.usage,
    }),
    async serve(answer, how) {
      await recordCached(flow.committed, meter, admitted, answer, { tokens: answer.usage, responseModel: answer.upstreamModel });
      return {
        vectors: answer.vectors, encodingFormat: request().encodingFormat, rateLimit: admitted.rateLimit,
        outcome: {
          provider: answer.provider, catalogModel: admitted.model, upstreamModel: answer.upstreamModel, attempts: 0, batches: 0,
          usage: answer.usage, cost: flow.free(admitted.model), estimated: false, cache: how,
        },
      };
    },
    tag: (result, cache) => ({ ...result, outcome: { ...result.outcome, cache } }),
  }));
}

/** The request sent upstream, failed over and accounted. */
async function embedUpstream(call: CoreCall, flow: EmbedFlow, meter: RequestMeter, admitted: Admitted, routes: Route[], req: EmbedRequest): Promise<EmbedResult> {
  const won = await flow.failover(call, meter, routes, (route, signal, headers) => embedOnRoute(route, admitted.model, req, signal, headers));
  meter.markFirstByte();
  const joined = won.value;
  const upstreamModel = joined.model || won.route.upstreamId;
  const cost = flow.succeeded(meter, admitted, joined.usage, joined.estimated, upstreamModel);
  await flow.committed(); // the answer goes out only once its row is durable
  return {
    vectors: joined.vectors,
    encodingFormat: req.encodingFormat,
    rateLimit: admitted.rateLimit,
    outcome: {
      provider: won.route.provider, catalogModel: admitted.model, upstreamModel, attempts: won.attempts, batches: joined.batches,
      usage: joined.usage, cost, estimated: joined.estimated,
    },
  };
}

/** Every batch on one route, at most MAX_BATCHES_IN_FLIGHT at a time; the first failure aborts the rest and is the attempt's. */
async function embedOnRoute(route: Route, model: CatalogModel, req: EmbedRequest, signal: AbortSignal, headers: UpstreamHeaders): Promise<Joined> {
  const size = model.embedding!.maxBatch;
  const batches: Array<EmbedRequest["inputs"]> = [];
  for (let i = 0; i < req.inputs.length; i += size) batches.push(req.inputs.slice(i, i + size));
  const controller = new AbortController();
  const follow = () => controller.abort(signal.reason);
  if (signal.aborted) follow();
  else signal.addEventListener("abort", follow, { once: true });
  const results: Batch[] = new Array(batches.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < batches.length && !failure) {
      const i = next++;
      try {
        results[i] = await embedBatch(route, req, batches[i]!, controller.signal, headers);
      } catch (error) {
        if (!failure) {
          failure = { error };
          controller.abort(error);
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(MAX_BATCHES_IN_FLIGHT, batches.length) }, worker));
  } finally {
    signal.removeEventListener("abort", follow);
  }
  if (failure) throw failure.error;
  return join(results, route, req);
}

interface Batch {
  vectors: Array<readonly number[]>;
  usage: TokenUsage;
  estimated: boolean;
  model: string | undefined;
}

async function embedBatch(route: Route, req: EmbedRequest, inputs: EmbedRequest["inputs"], signal: AbortSignal, headers: UpstreamHeaders): Promise<Batch> {
  const body = {
    ...req.passThrough, model: route.upstreamId, input: inputs,
    ...(req.dimensions === undefined ? {} : { dimensions: req.dimensions }),
  } as unknown as EmbeddingCreateParams;
  const answer = await route.client.embed(body, signal, headers);
  const vectors = inOrder(answer, inputs.length, route);
  if (answer.usage) {
    const { prompt_tokens, total_tokens } = answer.usage;
    const usage = fromOpenAIUsage({ prompt_tokens, completion_tokens: 0, total_tokens } as Parameters<typeof fromOpenAIUsage>[0]);
    return { vectors, usage, estimated: false, model: answer.model };
  }
  // No usage sent: our tokenizer counts the texts (token ids count themselves).
  let prompt = 0;
  for (const input of inputs) prompt += typeof input === "string" ? await countTokens(input) : input.length;
  return { vectors, usage: { promptTokens: prompt, completionTokens: 0, totalTokens: prompt, cachedTokens: 0, reasoningTokens: 0 }, estimated: true, model: answer.model };
}

/** The batch's vectors by their `index`, which must name each input exactly once. */
function inOrder(answer: UpstreamEmbeddings, count: number, route: Route): Array<readonly number[]> {
  const vectors: Array<readonly number[]> = new Array(count);
  for (const d of answer.data) {
    if (d.index < 0 || d.index >= count || vectors[d.index]) return malformed(route, `${answer.data.length} embeddings that do not match the ${count} inputs sent`);
    vectors[d.index] = d.embedding;
  }
  if (answer.data.length !== count) return malformed(route, `${answer.data.length} embeddings for ${count} inputs`);
  return vectors;
}

function join(results: Batch[], route: Route, req: EmbedRequest): Joined {
  const vectors = results.flatMap((b) => b.vectors);
  const length = vectors[0]!.length;
  if (req.dimensions !== undefined && length !== req.dimensions) return malformed(route, `vectors of ${length} dimensions where ${req.dimensions} were asked for`);
  if (vectors.some((v) => v.length !== length)) return malformed(route, "vectors of different sizes in one answer");
  let prompt = 0;
  let total = 0;
  let clamped = false;
  for (const b of results) {
    prompt += b.usage.promptTokens;
    total += b.usage.totalTokens;
    clamped ||= b.usage.clamped === true;
  }
  const usage: TokenUsage = { promptTokens: prompt, completionTokens: 0, totalTokens: total, cachedTokens: 0, reasoningTokens: 0, ...(clamped ? { clamped } : {}) };
  return { vectors, usage, estimated: results.some((b) => b.estimated), model: results[0]!.model, batches: results.length };
}

/** The upstream's answer cannot be used: its failure, and another provider may do better. */
function malformed(route: Route, what: string): never {
  throw new GatewayError("upstream_error", `${route.client.provider.row.name} answered with ${what}`, { retryable: true });
}
