import { CACHE_DEFAULT, type AnswerCache, type CacheControl, type Found } from "../cache/answer-cache.js";
import type { CachedAnswer } from "../cache/codec.js";
import { cacheKey, type ChatKeyInput, type EmbeddingsKeyInput } from "../cache/key.js";
import { asGatewayError } from "../errors.js";
import type { CacheOutcome, Observer } from "../observe/observer.js";
import type { Admitted } from "./admission.js";
import type { Principal } from "./auth.js";
import type { CatalogModel } from "./catalog.js";
import type { RequestMeter } from "./metering.js";
import type { TokenUsage } from "./usage.js";

/**
 * What every operation the cache serves (a chat, embeddings) does the same
 * way: the look into the cache during admission, and the hit / miss /
 * single-flight decision after it. What differs (how an answer is served,
 * what a result keeps) comes in as CacheOps.
 */

/** What a served request says about the cache: the header value of x-gatewayz-cache. */
export type CacheAnswer = Exclude<CacheOutcome, "error">;

/** How one request uses the cache: its key, and what its request allows. */
export interface CachePlan {
  readonly key: string;
  readonly control: CacheControl;
}

/** The operation's own part of a key, a fresh object each call; the lookup adds the model, the scope and who asks. */
export type KeyBody = Pick<ChatKeyInput, "operation" | "body"> | Pick<EmbeddingsKeyInput, "operation" | "inputs" | "dimensions" | "passThrough">;

type Mutable<T> = { -readonly [P in keyof T]: T[P] };

type AnswerOf<O extends CachedAnswer["operation"]> = Extract<CachedAnswer, { operation: O }>;

/**
 * One request's look into the cache, made during admission once the key and
 * the model are known and before the rate limits are asked: a hit reserves
 * no tokens and no cost (it counts against rpm, not tpm or the budget).
 */
export class CacheLookup<O extends CachedAnswer["operation"]> {
  plan: CachePlan | undefined;
  found: Found | undefined;

  constructor(
    readonly cache: AnswerCache | undefined,
    readonly operation: O,
    /** The request's own controls (Cache-Control...) and its client's signal. */
    readonly request: { readonly cache?: CacheControl | undefined; readonly signal: AbortSignal },
    private readonly keyBody: (model: CatalogModel) => KeyBody,
  ) {}

  /** True when the answer is in the cache: at once when the store answers in this thread (the embedded file), else a promise. */
  readonly find = (model: CatalogModel, principal: Principal): boolean | Promise<boolean> => {
    this.plan = this.planFor(model, principal);
    if (!this.cache || !this.plan?.control.read) return false;
    const found = this.cache.get(this.plan.key);
    if (!(found instanceof Promise)) return this.settle(found);
    return found.then(this.settle);
  };

  private readonly settle = (found: Found): boolean => {
    this.found = found;
    return this.hit !== undefined;
  };

  /** The answer found, if it is one of this operation's. */
  get hit(): AnswerOf<O> | undefined {
    const answer = this.found?.answer;
    return answer?.operation === this.operation ? (answer as AnswerOf<O>) : undefined;
  }

  /**
   * The plan, or undefined when the cache is off for this request (CACHE=off,
   * the key's own setting, or Cache-Control: no-store): the lookup is a bypass.
   */
  private planFor(model: CatalogModel, principal: Principal): CachePlan | undefined {
    const { cache } = this;
    if (!cache || principal.cache === "off") return undefined;
    const control = this.request.cache ?? CACHE_DEFAULT;
    if (!control.read && !control.write) return undefined;
    // The operation's part, completed in place (it is made for this call): no copy on every request's path.
    const input = this.keyBody(model) as Mutable<ChatKeyInput | EmbeddingsKeyInput>;
    input.model = model.id;
    input.scope = cache.config.scope;
    input.principal = principal; // only its userId and keyId are read
    const key = cacheKey(input);
    return { key, control };
  }
}

/** What an operation brings to throughCache. */
export interface CacheOps<R, A extends CachedAnswer> {
  /** The request sent upstream (accounted there). */
  upstream(): Promise<R>;
  /** The entry a result makes, if it may be kept. */
  keep(result: R): A | undefined;
  /** The request answered from an entry (its own usage row, committed). */
  serve(answer: A, how: "hit" | "coalesced"): Promise<R>;
  /** The result marked with what the cache did. */
  tag(result: R, how: CacheAnswer): R;
}

/** The lookup's outcome, counted once per request. */
export function countLookup<O extends CachedAnswer["operation"]>(observer: Pick<Observer, "cacheLookup">, lookup: CacheLookup<O>): CacheAnswer {
  const { found, operation } = lookup;
  if (!lookup.cache) return "bypass";
  if (lookup.hit) {
    observer.cacheLookup(operation, "hit");
    return "hit";
  }
  const outcome = found === undefined ? "bypass" : found.outcome === "error" ? "error" : "miss";
  observer.cacheLookup(operation, outcome);
  return outcome === "error" ? "miss" : outcome;
}

/**
 * One answer through the cache: a hit is served from it; otherwise the
 * request goes upstream (`upstream`), unless an identical one is already on
 * its way, whose answer it then shares (coalesced). A complete answer is
 * kept for the next. If the first request's client goes away, those waiting
 * on it go upstream themselves; any other failure is theirs too.
 */
export async function throughCache<R, A extends CachedAnswer>(
  observer: Pick<Observer, "cacheLookup">, lookup: CacheLookup<A["operation"]>, ops: CacheOps<R, A>,
): Promise<R> {
  const { cache, plan } = lookup;
  const { signal } = lookup.request;
  if (!cache) return ops.upstream();
  const how = countLookup(observer, lookup);
  const hit = lookup.hit as A | undefined;
  if (hit) return ops.serve(hit, "hit");
  if (!plan) return ops.tag(await ops.upstream(), "bypass");
  let mine: R | undefined;
  try {
    const flight = await cache.flight.run(plan.key, async () => {
      mine = await ops.upstream();
      const answer = ops.keep(mine);
      if (answer && plan.control.write) cache.put(plan.key, answer, plan.control.ttlMs);
      return answer;
    }, signal);
    if (!flight.coalesced) return ops.tag(mine!, how);
    observer.cacheLookup(lookup.operation, "coalesced");
    // The first request's answer could not be kept (a filtered or cut one): this one asks for its own.
    if (flight.value?.operation !== lookup.operation) return ops.tag(await ops.upstream(), "miss");
    return ops.serve(flight.value as A, "coalesced");
  } catch (err) {
    if (mine !== undefined || signal.aborted || asGatewayError(err).kind !== "cancelled") throw err;
    // The request this one waited on was cancelled by its client: this one goes itself.
    return ops.tag(await ops.upstream(), "miss");
  }
}

/**
 * A request answered from an entry: its own usage row (status cached, the
 * answer's tokens, cost 0, the cost it saved), its rate-limit share settled
 * at no tokens and no cost (a hit counts against rpm, not tpm or the
 * budget); resolves once the row is committed, before the answer goes out.
 */
export async function recordCached(
  committed: () => Promise<void>, meter: RequestMeter, admitted: Admitted, answer: CachedAnswer,
  row: { readonly tokens: TokenUsage; readonly finishReason?: string; readonly responseModel: string },
): Promise<void> {
  meter.provider = answer.provider;
  meter.upstreamModel = answer.upstreamModel;
  meter.markFirstByte();
  admitted.settle(0, 0n);
  meter.finish({
    status: "cached", usage: row.tokens, costPico: 0n, savedPico: answer.costPico, estimated: false,
    ...(row.finishReason === undefined ? {} : { finishReason: row.finishReason }), responseModel: row.responseModel,
  });
  await committed();
}
