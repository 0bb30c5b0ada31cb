import type { Logger } from "../log.js";
import { formatUsd } from "./money.js";
import type { Observer, Outcome } from "../observe/observer.js";
import type { RequestTelemetry } from "../observe/telemetry.js";
import type { AttemptSpan } from "../observe/trace.js";
import type { Operation, UsageStore } from "../storage/usage.js";
import type { Principal } from "./auth.js";
import type { CatalogModel } from "./catalog.js";
import { NO_USAGE, type TokenUsage } from "./usage.js";

export type Protocol = "openai" | "grpc" | "grpc-web" | "connect";
/** cached: answered from the response cache (src/cache/), no upstream call. */
export type UsageStatus = "ok" | "cached" | "error" | "cancelled" | "rejected";

export interface MeterResult {
  status: UsageStatus;
  errorKind?: string | undefined;
  usage?: TokenUsage;
  costPico?: bigint;
  estimated?: boolean;
  /** Status cached: what the replayed answer cost when it was made. */
  savedPico?: bigint;
  /** The upstream's finish reason and model, for the trace. */
  finishReason?: string;
  responseModel?: string;
}

/** How an error kind reads on a dashboard: the outcome label of the request metrics. */
const OUTCOME_OF_KIND: Readonly<Record<string, Outcome>> = {
  rate_limited: "rate_limited",
  insufficient_quota: "budget_exhausted",
  upstream_rate_limited: "upstream_error",
  upstream_error: "upstream_error",
  upstream_unavailable: "upstream_error",
  provider_not_configured: "upstream_error",
  upstream_timeout: "timeout",
  cancelled: "cancelled",
  internal: "server_error",
  limiter_unavailable: "server_error",
  usage_store_unavailable: "server_error",
  storage_unavailable: "server_error",
  shutting_down: "server_error",
  too_many_connections: "server_error",
};

export function outcomeOf(status: UsageStatus, errorKind: string | undefined): Outcome {
  if (status === "ok" || status === "cached") return "ok";
  if (status === "cancelled") return "cancelled";
  return (errorKind && OUTCOME_OF_KIND[errorKind]) || "client_error";
}

/** What a meter needs to know of its request. */
export interface MeterRequest {
  readonly protocol: Protocol;
  /** The model as the client named it. */
  readonly model: string;
  readonly telemetry?: RequestTelemetry | undefined;
  readonly streamed: boolean;
  /** Chat unless said otherwise. */
  readonly operation?: Operation | undefined;
}

/**
 * The one usage record of one request. Whatever path the request takes,
 * finish() writes exactly one row: the first call wins, later ones are
 * ignored. A failed write is logged, never thrown at the client, whose
 * answer has usually been sent already. The same moment feeds the metrics
 * (observer), the request's log line and its span (telemetry).
 */
export class RequestMeter {
  principal: Principal | undefined;
  model: CatalogModel | undefined;
  provider: string | undefined;
  upstreamModel: string | undefined;
  attempts = 0;
  /** The span of the attempt that won, ended with the request's outcome. */
  attemptSpan: AttemptSpan | undefined;
  private readonly started: number;
  private firstByteAt: number | undefined;
  private done = false;

  constructor(
    private readonly usage: UsageStore,
    private readonly log: Logger,
    private readonly observer: Observer,
    readonly request: MeterRequest,
    private readonly now: () => number = Date.now,
  ) {
    this.started = now();
  }

  get protocol(): Protocol {
    return this.request.protocol;
  }

  get finished(): boolean {
    return this.done;
  }

  markFirstByte(): void {
    this.firstByteAt ??= this.now();
  }

  /**
   * Ends the meter without a row: for a request refused because usage rows
   * cannot be kept (the store counts those instead).
   */
  discard(): void {
    this.done = true;
  }

  finish(r: MeterResult): void {
    if (this.done) return;
    this.done = true;
    const u = r.usage ?? NO_USAGE;
    const end = this.now();
    const latencyMs = end - this.started;
    const ttftMs = this.firstByteAt === undefined ? undefined : this.firstByteAt - this.started;
    const costPico = r.costPico ?? 0n;
    const telemetry = this.request.telemetry;
    try {
      this.usage.insert({
        ts: this.started,
        keyId: this.principal?.keyId ?? null,
        userId: this.principal?.userId ?? null,
        protocol: this.protocol,
        requestedModel: this.request.model.slice(0, 200),
        model: this.model?.id ?? null,
        upstreamModel: this.upstreamModel ?? null,
        provider: this.provider ?? null,
        promptTokens: u.promptTokens,
        completionTokens: u.completionTokens,
        cachedTokens: u.cachedTokens,
        reasoningTokens: u.reasoningTokens,
        costPico,
        latencyMs,
        ttftMs: ttftMs ?? null,
        status: r.status,
        errorKind: r.errorKind ?? null,
        estimated: r.estimated ?? false,
        attempts: this.attempts,
        clamped: u.clamped ?? false,
        requestId: telemetry?.requestId ?? null,
        operation: this.request.operation ?? "chat",
        savedPico: r.savedPico ?? 0n,
      });
    } catch (err) {
      this.log.error(`usage record lost: ${err instanceof Error ? err.message : String(err)}`);
    }
    const model = this.model?.id ?? "unknown";
    const provider = this.provider ?? "none";
    this.observer.chatFinished({
      protocol: this.protocol, operation: this.request.operation ?? "chat", model, provider, outcome: outcomeOf(r.status, r.errorKind),
      latencyMs, ttftMs, usage: u, costPico, savedPico: r.savedPico, streamed: this.request.streamed,
    });
    if (!telemetry) return;
    const f = telemetry.facts;
    f.model = model;
    f.provider = provider;
    f.keyId = this.principal?.keyId;
    f.status = r.status;
    f.errorKind = r.errorKind;
    f.attempts = this.attempts;
    f.promptTokens = u.promptTokens;
    f.completionTokens = u.completionTokens;
    f.costUsd = formatUsd(costPico);
    f.ttftMs = ttftMs;
    const trace = telemetry.trace;
    if (!trace.recording) return;
    const usageAttributes = {
      "gen_ai.response.model": r.responseModel ?? this.upstreamModel,
      "gen_ai.usage.input_tokens": u.promptTokens,
      "gen_ai.usage.output_tokens": u.completionTokens,
      "gen_ai.response.finish_reasons": r.finishReason ? [r.finishReason] : undefined,
    };
    this.attemptSpan?.end(usageAttributes, r.status === "ok" ? undefined : r.errorKind);
    trace.set({
      ...usageAttributes,
      "gen_ai.provider.name": this.provider,
      "gatewayz.model": this.model?.id,
      "gatewayz.cost_usd": f.costUsd,
      "gatewayz.attempts": this.attempts,
      "gatewayz.key_id": this.principal?.keyId,
      "gatewayz.status": r.status,
      "gatewayz.usage.estimated": r.estimated ?? false,
    });
    if (r.status !== "ok") trace.set({ "error.type": r.errorKind ?? "error" });
  }
}
