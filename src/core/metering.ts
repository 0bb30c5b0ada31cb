import type { Logger } from "../log.js";
import type { UsageStore } from "../storage/usage.js";
import type { Principal } from "./auth.js";
import type { CatalogModel } from "./catalog.js";
import { NO_USAGE, type TokenUsage } from "./usage.js";

export type Protocol = "openai" | "grpc" | "grpc-web" | "connect";
export type UsageStatus = "ok" | "error" | "cancelled" | "rejected";

export interface MeterResult {
  status: UsageStatus;
  errorKind?: string | undefined;
  usage?: TokenUsage;
  costPico?: bigint;
  estimated?: boolean;
}

/**
 * The one usage record of one request. Whatever path the request takes,
 * finish() writes exactly one row: the first call wins, later ones are
 * ignored. A failed write is logged, never thrown at the client, whose
 * answer has usually been sent already.
 */
export class RequestMeter {
  principal: Principal | undefined;
  model: CatalogModel | undefined;
  provider: string | undefined;
  upstreamModel: string | undefined;
  attempts = 0;
  private readonly started: number;
  private firstByteAt: number | undefined;
  private done = false;

  constructor(
    private readonly usage: UsageStore,
    private readonly log: Logger,
    readonly protocol: Protocol,
    readonly requestedModel: string,
    private readonly now: () => number = Date.now,
  ) {
    this.started = now();
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
    try {
      this.usage.insert({
        ts: this.started,
        keyId: this.principal?.keyId ?? null,
        userId: this.principal?.userId ?? null,
        protocol: this.protocol,
        requestedModel: this.requestedModel.slice(0, 200),
        model: this.model?.id ?? null,
        upstreamModel: this.upstreamModel ?? null,
        provider: this.provider ?? null,
        promptTokens: u.promptTokens,
        completionTokens: u.completionTokens,
        cachedTokens: u.cachedTokens,
        reasoningTokens: u.reasoningTokens,
        costPico: r.costPico ?? 0n,
        latencyMs: end - this.started,
        ttftMs: this.firstByteAt === undefined ? null : this.firstByteAt - this.started,
        status: r.status,
        errorKind: r.errorKind ?? null,
        estimated: r.estimated ?? false,
        attempts: this.attempts,
        clamped: u.clamped ?? false,
      });
    } catch (err) {
      this.log.error(`usage record lost: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
