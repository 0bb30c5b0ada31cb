import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { GatewayError, asGatewayError, type ErrorKind, type Refusal } from "../errors.js";
import type { RateLimitSnapshot, Subject } from "../core/limiter.js";

// What workers and the primary say to each other over the cluster IPC channel.
// Bigints travel as decimal strings (IPC is JSON).

export interface TakeRequest { t: "take"; id: number; subject: Subject; tokens: number; pico: string }
export interface SettleRequest { t: "settle"; ticket: number; tokens: number; pico: string }
/** A worker was scraped: it asks for every worker's metrics, aggregated (`id` is the worker's own). */
export interface ScrapeRequest { t: "scrape"; id: number }
/** A worker's answer to `collect`: its registry as prom-client's JSON. */
export interface CollectedMetrics { t: "collected"; scrape: number; metrics: unknown[] }
export type ToPrimary = TakeRequest | SettleRequest | ScrapeRequest | CollectedMetrics;

export type TakeReply =
  | { t: "took"; id: number; ticket: number; snapshot: RateLimitSnapshot }
  | { t: "refused"; id: number; error: WireError };
/** The primary is shutting down: drain (and, when `hurry`, end what is still in flight now). */
export interface ShutdownRequest { t: "shutdown"; hurry: boolean }
/** The primary asks each worker for its metrics (`scrape` numbers the primary's collections). */
export interface CollectRequest { t: "collect"; scrape: number }
/** The aggregate a scraped worker asked for, or why there is none. */
export interface ScrapeReply { t: "scraped"; id: number; text?: string; error?: string }
export type ToWorker = TakeReply | ShutdownRequest | CollectRequest | ScrapeReply;

/** A GatewayError as plain data: kind, message, and what the front doors render from it. */
export interface WireError {
  kind: ErrorKind;
  message: string;
  openaiType?: string | undefined;
  headers: Record<string, string>;
  retryAfterMs?: number | undefined;
  refusal?: Refusal | undefined;
  details: Array<{ type: string; value: string }>;
}

type Detail = { desc: DescMessage; value: MessageShape<DescMessage> } | { type: string; value: Uint8Array };

export function toWire(err: unknown): WireError {
  const e = asGatewayError(err);
  const headers: Record<string, string> = {};
  e.metadata.forEach((v, k) => { headers[k] = v; });
  return {
    kind: e.kind,
    message: e.rawMessage,
    openaiType: e.openaiType,
    headers,
    retryAfterMs: e.retryAfterMs,
    refusal: e.refusal,
    details: (e.details as Detail[]).map((d) => "desc" in d
      ? { type: d.desc.typeName, value: Buffer.from(toBinary(d.desc, d.value)).toString("base64") }
      : { type: d.type, value: Buffer.from(d.value).toString("base64") }),
  };
}

export function fromWire(w: WireError): GatewayError {
  const err = new GatewayError(w.kind, w.message, {
    ...(w.openaiType ? { openaiType: w.openaiType } : {}),
    ...(w.retryAfterMs !== undefined ? { retryAfterMs: w.retryAfterMs } : {}),
    ...(w.refusal ? { refusal: w.refusal } : {}),
    headers: w.headers,
  });
  // Already encoded: Connect sends incoming-style details ({type, value}) as they are.
  err.details = w.details.map((d) => ({ type: d.type, value: new Uint8Array(Buffer.from(d.value, "base64")) }));
  return err;
}
