import { asGatewayError } from "../errors.js";
import type { Observer } from "../observe/observer.js";
import { NO_TRACE } from "../observe/trace.js";
import type { Route } from "../providers/provider-set.js";
import type { CoreCall } from "./call.js";
import { withFailover, type FailoverDeps, type Succeeded } from "./failover.js";
import type { RequestMeter } from "./metering.js";

/** Headers an upstream request carries (the trace context), if any. */
export type UpstreamHeaders = Readonly<Record<string, string>> | undefined;

/** One attempt on one route; `headers` go with its upstream request. */
export type ObservedAttempt<T> = (route: Route, signal: AbortSignal, headers: UpstreamHeaders) => Promise<T>;

/**
 * withFailover for one request (a chat, embeddings), seen from outside: the
 * meter follows the route being tried; each attempt is timed for the metrics
 * (and a move to another provider counted), and traced as a child span whose
 * context the upstream request carries (traceparent). A failed attempt's
 * span ends with its error; the winner's stays open until the request ends
 * (the meter ends it).
 */
export function observedFailover<T>(call: Pick<CoreCall, "signal" | "telemetry" | "operation">, meter: RequestMeter, routes: readonly Route[],
  deps: { failover: FailoverDeps; observer: Observer }, attempt: ObservedAttempt<T>): Promise<Succeeded<T>> {
  const { observer } = deps;
  const trace = call.telemetry?.trace ?? NO_TRACE;
  // OpenTelemetry's GenAI operation names: a Responses call is a chat upstream.
  const operation = call.operation === "embeddings" ? "embeddings" : "chat";
  let previous: string | undefined;
  return withFailover(routes, call.signal, deps.failover, async (route, signal, n) => {
    meter.attempts = n;
    meter.provider = route.provider;
    meter.upstreamModel = route.upstreamId;
    if (previous !== undefined && previous !== route.provider) observer.failover(previous, route.provider);
    previous = route.provider;
    const span = trace.recording ? trace.attempt(`${operation} ${route.upstreamId}`, {
      "gen_ai.operation.name": operation, "gen_ai.provider.name": route.provider, "gen_ai.request.model": route.upstreamId,
      "server.address": new URL(route.client.provider.baseUrl).host, "gatewayz.attempt": n,
    }) : undefined;
    const started = performance.now();
    try {
      const value = await attempt(route, signal, span?.headers);
      observer.attemptFinished(route.provider, (performance.now() - started) / 1000, "ok");
      meter.attemptSpan = span;
      return value;
    } catch (err) {
      const kind = asGatewayError(err).kind;
      observer.attemptFinished(route.provider, (performance.now() - started) / 1000, kind);
      span?.end({}, kind);
      throw err;
    }
  }, call.telemetry?.requestId);
}
