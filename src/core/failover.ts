import { ConnectError } from "@connectrpc/connect";
import { asGatewayError, GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Route } from "../providers/provider-set.js";
import type { Breakers } from "./circuit-breaker.js";

export interface FailoverDeps {
  readonly breakers: Breakers;
  /** The most time a request may spend before an attempt succeeds. */
  readonly budgetMs: number;
  /** A Retry-After up to this long is waited out once on the same provider. */
  readonly retryAfterCapMs: number;
  readonly log: Logger;
}

export interface Succeeded<T> {
  readonly value: T;
  readonly route: Route;
  /** Attempts made, this one included. */
  readonly attempts: number;
  /** Follows the client's signal; the attempt's upstream request keeps using it. */
  readonly signal: AbortSignal;
}

interface Tried { provider: string; error?: GatewayError; skipped?: string }

/**
 * Tries routes in order until one attempt succeeds. An attempt is whatever
 * must succeed before the client sees a byte (response headers and the first
 * chunk); after that the caller owns the outcome, and nothing fails over.
 * Only errors classified `retryable` move on to the next route; a client's
 * error (400, 404, 413) or its cancel ends the request at once. The whole
 * search is bounded by `budgetMs`.
 */
export async function withFailover<T>(routes: readonly Route[], clientSignal: AbortSignal, deps: FailoverDeps,
  attempt: (route: Route, signal: AbortSignal, n: number) => Promise<T>, requestId?: string): Promise<Succeeded<T>> {
  const { breakers, log } = deps;
  const controller = new AbortController();
  const follow = () => controller.abort(clientSignal.reason);
  if (clientSignal.aborted) follow();
  else clientSignal.addEventListener("abort", follow, { once: true });
  const started = Date.now();
  const budget = setTimeout(() => controller.abort(outOfTime(deps.budgetMs)), deps.budgetMs);
  const tried: Tried[] = [];
  let attempts = 0;
  /**
   * The budget ran out or the client cancelled: no more attempts. An attempt
   * in flight has classified its own abort; a wait between attempts has not.
   */
  const stopped = (route: Route, err: GatewayError, inAttempt: boolean): GatewayError => {
    breakers.neutral(route.provider);
    const reason: unknown = controller.signal.reason;
    if (reason instanceof GatewayError && reason.kind !== "cancelled") {
      return exhausted([...tried, { provider: route.provider, error: err }], reason);
    }
    if (inAttempt) return err;
    return reason instanceof ConnectError ? asGatewayError(reason) : new GatewayError("cancelled", "the client cancelled the request");
  };
  try {
    for (const route of routes) {
      if (!breakers.tryAcquire(route.provider)) {
        tried.push({ provider: route.provider, skipped: `circuit open, retry in ${Math.ceil(breakers.retryInMs(route.provider) / 1000)} s` });
        continue;
      }
      for (let retry = 0; ; retry++) {
        attempts++;
        try {
          const value = await attempt(route, controller.signal, attempts);
          breakers.success(route.provider);
          clearTimeout(budget);
          return { value, route, attempts, signal: controller.signal };
        } catch (e) {
          const err = asGatewayError(e);
          if (controller.signal.aborted) throw stopped(route, err, true);
          if (!err.retryable) {
            // An upstream status means it answered and the request was at
            // fault; without one (our own failure, before any byte was sent)
            // the attempt says nothing about the provider.
            if (err.upstreamStatus !== undefined) breakers.success(route.provider);
            else breakers.neutral(route.provider);
            throw err;
          }
          breakers.failure(route.provider);
          tried.push({ provider: route.provider, error: err });
          log.warn(`attempt ${attempts} on ${route.provider} failed: ${err.kind}${err.upstreamStatus ? ` (${err.upstreamStatus})` : ""}: ${err.rawMessage}` +
            (requestId === undefined ? "" : ` [request ${requestId}]`));
          const wait = err.retryAfterMs;
          const left = deps.budgetMs - (Date.now() - started);
          if (retry === 0 && wait !== undefined && wait <= deps.retryAfterCapMs && wait < left && breakers.tryAcquire(route.provider)) {
            await sleep(wait, controller.signal);
            if (controller.signal.aborted) throw stopped(route, err, false);
            continue;
          }
          break;
        }
      }
    }
    throw exhausted(tried);
  } finally {
    clearTimeout(budget);
    if (tried.length) log.debug(`failover tried ${tried.map(describe).join("; ")}`);
  }
}

function outOfTime(budgetMs: number): GatewayError {
  return new GatewayError("upstream_timeout", `no provider answered within the failover budget of ${budgetMs} ms`);
}

/**
 * The most meaningful error once every route failed: a lone failure as it
 * was; failures all of one kind as that kind; otherwise 503 naming each
 * provider tried and how it failed (statuses only, never upstream secrets).
 */
function exhausted(tried: Tried[], cause?: GatewayError): GatewayError {
  const failures = tried.filter((t) => t.error).map((t) => t.error!);
  const providers = new Set(tried.map((t) => t.provider)).size;
  // One provider (perhaps retried once) and nothing skipped: its own failure says it best.
  if (!cause && providers === 1 && failures.length === tried.length && failures.length) return failures.at(-1)!;
  const list = tried.map(describe).join("; ");
  if (cause) return new GatewayError(cause.kind, `${cause.rawMessage} (tried ${list})`);
  if (!failures.length) {
    return new GatewayError("upstream_unavailable", `every provider for this model is cooling down after failures (${list})`);
  }
  const kinds = new Set(failures.map((f) => f.kind));
  const kind = kinds.size === 1 ? failures[0]!.kind : "upstream_unavailable";
  return new GatewayError(kind, `all ${providers} providers failed: ${list}`, {
    upstreamStatus: failures.at(-1)!.upstreamStatus,
    retryAfterMs: failures.at(-1)!.retryAfterMs,
  });
}

function describe(t: Tried): string {
  if (t.skipped) return `${t.provider} (${t.skipped})`;
  const e = t.error!;
  return `${t.provider} (${e.upstreamStatus ?? e.kind.replace(/_/g, " ")})`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
