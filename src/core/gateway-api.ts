import type { ChatCompletion, ChatCompletionChunk } from "openai/resources/chat/completions";
import type { CompletionUsage } from "openai/resources/completions";
import type { RequestTelemetry } from "../observe/telemetry.js";
import type { ProviderSet } from "../providers/provider-set.js";
import type { Operation } from "../storage/usage.js";
import type { Principal } from "./auth.js";
import type { CacheAnswer } from "./cache-flow.js";
import type { Catalog, CatalogModel } from "./catalog.js";
import type { ChatCall } from "./chat-request.js";
import type { BreakerState } from "./circuit-breaker.js";
import type { EmbedCall } from "./embed-request.js";
import type { EmbedResult } from "./embedding.js";
import type { RateLimitSnapshot } from "./limiter.js";
import type { Protocol } from "./metering.js";
import type { CostBreakdown, PriceBook } from "./pricing.js";
import type { TokenUsage } from "./usage.js";

// The core's face, as the front doors see it; core/gateway.ts builds it.

/** What a finished request amounted to; the same for every front door. */
export interface ChatOutcome {
  readonly id: string;
  readonly provider: string;
  readonly catalogModel: CatalogModel;
  /** The model id the provider was asked for. */
  readonly upstreamModel: string;
  /** Upstream attempts it took, failovers and retries included. */
  readonly attempts: number;
  readonly finishReason: string;
  readonly usage: TokenUsage;
  /**
   * The usage object front doors relay: the upstream's as sent, or when it
   * sent none our estimate in OpenAI's shape, so a client always gets one.
   */
  readonly rawUsage: CompletionUsage;
  readonly cost: CostBreakdown;
  /** Token counts came from our tokenizer because the upstream sent none. */
  readonly estimated: boolean;
  /** What the response cache did (x-gatewayz-cache); undefined with CACHE=off. */
  readonly cache?: CacheAnswer | undefined;
}

/**
 * A started stream of upstream chunks: a provider has answered and its first
 * chunk is in hand, so failover is over. Usage-only chunks are taken out and
 * summed into outcome(); iteration throws a GatewayError if the upstream
 * fails or ends without finishing, so a cut answer never looks complete.
 * Front doors must iterate it (or call return()): that is what records it.
 */
export interface ChatStream extends AsyncIterable<ChatCompletionChunk> {
  readonly provider: string;
  readonly upstreamModel: string;
  readonly attempts: number;
  readonly catalogModel: CatalogModel;
  readonly rateLimit: RateLimitSnapshot;
  /** What the response cache did, known before the first chunk (x-gatewayz-cache); undefined with CACHE=off. */
  readonly cache?: CacheAnswer | undefined;
  /** Available once iteration has ended normally. */
  outcome(): ChatOutcome;
}

export interface Gateway {
  readonly catalog: Catalog;
  readonly prices: PriceBook;
  readonly providers: ProviderSet;
  /**
   * One JSON answer (aggregated from a stream where the provider requires
   * it); resolves, or rejects, only once the request's usage row is committed.
   */
  complete(call: ChatCall): Promise<{ completion: ChatCompletion; outcome: ChatOutcome; rateLimit: RateLimitSnapshot }>;
  /**
   * Resolves once a provider's first chunk has arrived, so errors before it
   * are still a status (rejecting after the row is committed); iteration
   * ends, or throws, after the row is committed.
   */
  stream(call: ChatCall): Promise<ChatStream>;
  /**
   * Embeddings for every input, in order, however many upstream batches
   * they take (core/embedding.ts); resolves, or rejects, only once the
   * request's one usage row is committed.
   */
  embed(call: EmbedCall): Promise<EmbedResult>;
  /** A client key's principal, for the calls that are not chats (model lists, prices). */
  authenticate(authorization: string | null | undefined): Principal;
  /**
   * Records a chat request a front door refused before it reached the core
   * (bad JSON, too large, a revoked key: then `principal` is whose it was);
   * resolves once the row is durable, so the door answers after it.
   */
  refused(request: {
    protocol: Protocol; model: string; authorization: string | null | undefined; principal?: Principal; telemetry?: RequestTelemetry | undefined;
    operation?: Operation;
  }, error: unknown): Promise<void>;
  /** The providers that can serve a model here, in failover order, with their circuit state. */
  servedBy(model: CatalogModel): Array<{ provider: string; upstreamId: string; state: BreakerState }>;
}
