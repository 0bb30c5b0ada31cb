import type { TokenUsage } from "../core/usage.js";

/**
 * Events the core reports for metrics, behind an interface so the core
 * never imports prom-client and METRICS=off costs nothing but a call to an
 * empty function. Every label is bounded: catalog model ids, provider ids,
 * protocols, outcomes; never a key, a user, a prompt or a request id.
 */
export type Outcome = "ok" | "client_error" | "rate_limited" | "budget_exhausted" | "upstream_error" | "cancelled" | "timeout" | "server_error";

export interface FinishedChat {
  readonly protocol: string;
  /** chat, responses or embeddings. */
  readonly operation: string;
  /** Catalog model id, or "unknown" when the request named no model we serve. */
  readonly model: string;
  /** The provider that answered (or was tried last), or "none". */
  readonly provider: string;
  readonly outcome: Outcome;
  readonly latencyMs: number;
  readonly ttftMs: number | undefined;
  readonly usage: TokenUsage;
  readonly costPico: bigint;
  /** Answered from the cache: what the replayed answer cost when it was made. */
  readonly savedPico?: bigint | undefined;
  readonly streamed: boolean;
}

/** What a cache lookup came to: served from it, not found, skipped (CACHE=off, no-store, no-cache), served from an identical request in flight, or the store failed (a miss). */
export type CacheOutcome = "hit" | "miss" | "bypass" | "coalesced" | "error";

export interface Observer {
  /** A chat request's usage row was written. */
  chatFinished(chat: FinishedChat): void;
  /** One upstream attempt ended (`outcome` is ok or the error kind). */
  attemptFinished(provider: string, seconds: number, outcome: string): void;
  /** A request moved on from one provider to the next. */
  failover(from: string, to: string): void;
  /** The limiter or a budget refused a request: which dimension (rpm, tpm, rpd, concurrent, budget) at which scope (key, user, system). */
  limiterRefused(dimension: string, scope: string): void;
  /** A stream to a client began; the returned function ends it (streams in flight). */
  streamStarted(): () => void;
  /** A request's cache lookup (src/cache/), by operation (chat, embeddings). */
  cacheLookup(operation: string, outcome: CacheOutcome): void;
}

const NOTHING = () => {};

export const NO_OBSERVER: Observer = {
  chatFinished: NOTHING,
  attemptFinished: NOTHING,
  failover: NOTHING,
  limiterRefused: NOTHING,
  streamStarted: () => NOTHING,
  cacheLookup: NOTHING,
};
