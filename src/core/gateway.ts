import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
} from "openai/resources/chat/completions";
import type { CompletionUsage } from "openai/resources/completions";
import { asGatewayError } from "../errors.js";
import type { ChatOutcome, ChatStream, Gateway } from "./gateway-api.js";
import type { Logger } from "../log.js";
import type { ProviderSet, Route } from "../providers/provider-set.js";
import type { UsageStore } from "../storage/usage.js";
import { chatTerms, createAdmission, type Admitted, type AdmissionDeps, type AdmissionTerms } from "./admission.js";
import { CompletionAggregator } from "./aggregate.js";
import type { CoreCall } from "./call.js";
import type { ChatBody, ChatCall } from "./chat-request.js";
import { trackChunks, type StreamEnd } from "./chat-stream.js";
import { embed } from "./embedding.js";
import type { FailoverDeps } from "./failover.js";
import { observedFailover, type ObservedAttempt, type UpstreamHeaders } from "./observed-failover.js";
import { RequestMeter, type UsageStatus } from "./metering.js";
import type { CostBreakdown } from "./pricing.js";
import { planUpstream } from "./quirks.js";
import { countPromptTokens, countTokens } from "./tokens.js";
import { fromOpenAIUsage, NO_USAGE, toOpenAIUsage, type TokenUsage } from "./usage.js";
import type { Observer } from "../observe/observer.js";
import type { AnswerCache } from "../cache/answer-cache.js";
import { cachedComplete, cachedStream, chatLookup, type CacheFlowDeps } from "./cached-chat.js";

export type { ChatOutcome, ChatStream, Gateway } from "./gateway-api.js";

export interface GatewayDeps extends AdmissionDeps {
  providers: ProviderSet;
  usage: UsageStore;
  log: Logger;
  failover: FailoverDeps;
  /** Metrics; NO_OBSERVER when they are off. */
  observer: Observer;
  /** The response cache; absent with CACHE=off. */
  cache?: AnswerCache | undefined;
}

type Entry = { admitted: Admitted; routes: Route[] };

/** A provider's first chunk and the rest of its stream. */
interface Opened {
  first: IteratorResult<ChatCompletionChunk>;
  rest: AsyncIterator<ChatCompletionChunk>;
}

export function createGateway(deps: GatewayDeps): Gateway {
  const { catalog, prices, providers, usage, log, observer } = deps;
  const admission = createAdmission(deps);
  const transformsLogged = new Set<string>();

  const admit = async (call: CoreCall, terms: AdmissionTerms, meter: RequestMeter): Promise<{ admitted: Admitted; routes: Route[] }> => {
    const admitted = await admission.admit(call, terms, meter);
    try {
      const routes = providers.routes(admitted.model);
      // Each mapping is logged at info the first time it is seen, then at debug:
      // a line per request was measurable CPU on the hot path for no news.
      if (log.enabled("info")) {
        const seenKey = `${call.model}\u0000${routes[0]!.provider}`;
        const level = transformsLogged.has(seenKey) ? "debug" : "info";
        if (level === "info") {
          if (transformsLogged.size >= 1_000) transformsLogged.clear();
          transformsLogged.add(seenKey);
        }
        const m = admitted.model;
        if (log.enabled(level)) {
          log[level](`Transformed model ID from '${call.model}' to '${m.id}' for provider ${routes[0]!.provider}` +
            (routes[0]!.upstreamId !== m.id || m.id !== call.model ? ` (upstream '${routes[0]!.upstreamId}')` : ""));
        }
      }
      return { admitted, routes };
    } catch (err) {
      admitted.release();
      throw err;
    }
  };

  /** Settles limits and budget and writes the usage row, exactly once per request. */
  const account = (meter: RequestMeter, admitted: Admitted | undefined, status: UsageStatus,
    tokens: TokenUsage, estimated: boolean, error?: unknown, finishReason?: string, responseModel?: string): CostBreakdown | undefined => {
    const cost = admitted ? prices.costOf(admitted.model, tokens) : undefined;
    admitted?.settle(tokens.totalTokens, cost?.totalPico ?? 0n);
    meter.finish({
      status, errorKind: error === undefined ? undefined : asGatewayError(error).kind, usage: tokens, costPico: cost?.totalPico ?? 0n, estimated,
      finishReason, responseModel,
    });
    return cost;
  };

  const failed = (meter: RequestMeter, admitted: Admitted | undefined, err: unknown, tokens: TokenUsage = NO_USAGE, estimated = false) => {
    const kind = asGatewayError(err).kind;
    const status: UsageStatus = kind === "cancelled" ? "cancelled" : meter.attempts === 0 ? "rejected" : "error";
    account(meter, admitted, status, tokens, estimated, err);
  };

  /**
   * Usage as the upstream reported it, or counted by our tokenizer when it
   * reported none; `raw` is what the client is told (the estimate, then).
   */
  const usageOf = async (raw: CompletionUsage | null | undefined, call: ChatCall, text: string[]): Promise<{ tokens: TokenUsage; estimated: boolean; raw: CompletionUsage }> => {
    if (raw) return { tokens: fromOpenAIUsage(raw), estimated: false, raw };
    const [prompt, completion] = await Promise.all([countPromptTokens(call.body), countTokens(text.join(""))]);
    const tokens = { ...NO_USAGE, promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion };
    return { tokens, estimated: true, raw: toOpenAIUsage(tokens) };
  };

  /** One attempt at a stream: done once the provider's first chunk is in. */
  const openUpstream = async (route: Route, body: ChatBody, signal: AbortSignal, headers: UpstreamHeaders): Promise<Opened> => {
    const params = { ...body, model: route.upstreamId, stream: true, stream_options: { include_usage: true } } as ChatCompletionCreateParamsStreaming;
    const rest = route.client.stream(params, signal, headers)[Symbol.asyncIterator]();
    return { first: await rest.next(), rest };
  };

  /**
   * Wraps an opened upstream stream; its end, however it comes, settles and
   * records the request, and iteration finishes only once the row is
   * committed, so a front door's final bytes (the usage chunk, [DONE], the
   * RPC's done message and status) follow it.
   */
  const chatStream = (call: ChatCall, meter: RequestMeter, admitted: Admitted, route: Route, attempts: number, opened: Opened): ChatStream => {
    let outcome: ChatOutcome | undefined;
    const streamEnded = meter.request.streamed ? observer.streamStarted() : undefined;
    const onEnd = async (end: StreamEnd) => {
      streamEnded?.();
      const { tokens, estimated, raw } = await usageOf(end.usage, call, end.text);
      if (!end.ok) {
        failed(meter, admitted, end.error, tokens, estimated);
        return usage.committed();
      }
      const cost = account(meter, admitted, "ok", tokens, estimated, undefined, end.finishReason, end.model)!;
      outcome = {
        id: end.id, provider: route.provider, catalogModel: admitted.model, upstreamModel: end.model || route.upstreamId, attempts,
        finishReason: end.finishReason, usage: tokens, rawUsage: raw, cost, estimated,
      };
      await usage.committed();
    };
    const chunks = trackChunks(opened.first, opened.rest, route.client.provider.row.name, () => meter.markFirstByte(), onEnd);
    return {
      [Symbol.asyncIterator]: () => chunks,
      provider: route.provider,
      upstreamModel: route.upstreamId,
      attempts,
      catalogModel: admitted.model,
      rateLimit: admitted.rateLimit,
      outcome() {
        if (!outcome) throw new Error("outcome() called before the stream ended");
        return outcome;
      },
    };
  };

  const failover = <T>(call: CoreCall, meter: RequestMeter, routes: Route[], attempt: ObservedAttempt<T>) =>
    observedFailover(call, meter, routes, { failover: deps.failover, observer }, attempt);

  /**
   * One request (a chat, embeddings): a meter, admission on `terms`, then
   * `work`. A failure the work has not already recorded (a stream records
   * its own end) is recorded here, so every path leaves exactly one usage
   * row, and it is thrown only once the row is committed: commit before
   * answer, on every path.
   */
  const metered = async <T>(call: CoreCall, terms: AdmissionTerms, streamed: boolean, work: (meter: RequestMeter, entry: { admitted: Admitted; routes: Route[] }) => Promise<T>): Promise<T> => {
    const operation = call.operation ?? "chat";
    const meter = new RequestMeter(usage, log, observer, { protocol: call.protocol, model: call.model, telemetry: call.telemetry, streamed, operation });
    const trace = call.telemetry?.trace;
    if (trace?.recording) {
      trace.rename(`${operation} ${call.model.slice(0, 200)}`);
      trace.set({ "gen_ai.operation.name": operation, "gen_ai.request.model": call.model.slice(0, 200) });
    }
    let admitted: Admitted | undefined;
    try {
      const entry = await admit(call, terms, meter);
      admitted = entry.admitted;
      return await work(meter, entry);
    } catch (err) {
      if (!meter.finished) failed(meter, admitted, err);
      await usage.committed();
      throw err;
    }
  };

  const cacheFlow: CacheFlowDeps = { cache: deps.cache, observer, usage, prices };

  return {
    catalog,
    prices,
    providers,
    authenticate: (authorization) => admission.authenticate(authorization),
    servedBy: (model) => providers.eligible(model).map((r) => ({
      provider: r.provider, upstreamId: r.upstreamId, state: deps.failover.breakers.state(r.provider),
    })),
    async refused(request, error) {
      // No room for its row either: counted, like the chats admission turns away.
      if (!usage.available()) return usage.countUnrecorded();
      const meter = new RequestMeter(usage, log, observer, {
        protocol: request.protocol, model: request.model, telemetry: request.telemetry, streamed: false, operation: request.operation,
      });
      meter.principal = request.principal ?? admission.identify(request.authorization);
      failed(meter, undefined, error);
      await usage.committed();
    },

    complete: (call) => {
      const lookup = chatLookup(deps.cache, call);
      return metered(call, chatTerms(call, deps.cache && lookup.find), false, (meter, entry) =>
        cachedComplete(cacheFlow, lookup, meter, entry, () => completeUpstream(call, meter, entry)));
    },

    stream: (call) => {
      const lookup = chatLookup(deps.cache, call);
      return metered(call, chatTerms(call, deps.cache && lookup.find), true, (meter, entry) =>
        cachedStream(cacheFlow, lookup, meter, entry, () => streamUpstream(call, meter, entry)));
    },

    embed: (call) => embed(call, {
      metered: (c, terms, work) => metered(c, terms, false, work),
      succeeded: (meter, admitted, tokens, estimated, responseModel) => account(meter, admitted, "ok", tokens, estimated, undefined, undefined, responseModel)!,
      failover,
      committed: () => usage.committed(),
      cache: deps.cache,
      observer,
      free: (model) => prices.costOf(model, { promptTokens: 0, completionTokens: 0 }),
    }),
  };

  /** One JSON answer from upstream, accounted. */
  async function completeUpstream(call: ChatCall, meter: RequestMeter, { admitted, routes }: Entry) {
      const model = admitted.model;
      const won = await failover(call, meter, routes, async (route, signal, headers): Promise<{ opened: Opened } | { completion: ChatCompletion }> => {
        const plan = planUpstream(model, call.body, false, route.client.provider.row.dialect);
        if (plan.streamUpstream) return { opened: await openUpstream(route, plan.body, signal, headers) };
        const params = { ...plan.body, model: route.upstreamId } as ChatCompletionCreateParamsNonStreaming;
        return { completion: await route.client.complete(params, signal, headers) };
      });
      const { route, attempts } = won;
      if ("opened" in won.value) {
        // A provider that only streams: the stream accounts for itself when it ends.
        const stream = chatStream(call, meter, admitted, route, attempts, won.value.opened);
        const aggregator = new CompletionAggregator();
        for await (const chunk of stream) aggregator.add(chunk);
        const outcome = stream.outcome();
        return { completion: aggregator.result(outcome.rawUsage), outcome, rateLimit: admitted.rateLimit };
      }
      const completion = won.value.completion;
      meter.markFirstByte();
      const answer = completion.choices.map((c) => c.message?.content ?? "");
      const { tokens, estimated, raw } = await usageOf(completion.usage, call, answer);
      const cost = account(meter, admitted, "ok", tokens, estimated, undefined, completion.choices[0]?.finish_reason ?? undefined, completion.model)!;
      await usage.committed(); // the answer goes out only once its row is durable
      const outcome: ChatOutcome = {
        id: completion.id, provider: route.provider, catalogModel: model, upstreamModel: completion.model || route.upstreamId, attempts,
        finishReason: completion.choices[0]?.finish_reason ?? "stop", usage: tokens, rawUsage: raw, cost, estimated,
      };
      return { completion: completion.usage ? completion : { ...completion, usage: raw }, outcome, rateLimit: admitted.rateLimit };
  }

  /** A stream from upstream, accounted when it ends. */
  async function streamUpstream(call: ChatCall, meter: RequestMeter, { admitted, routes }: Entry): Promise<ChatStream> {
    const won = await failover(call, meter, routes, (route, signal, headers) =>
      openUpstream(route, planUpstream(admitted.model, call.body, true, route.client.provider.row.dialect).body, signal, headers));
    return chatStream(call, meter, admitted, won.route, won.attempts, won.value);
  }
}
