import { GatewayError } from "../errors.js";
import type { Observer } from "../observe/observer.js";
import type { UsageStore } from "../storage/usage.js";
import type { Authenticator, Principal } from "./auth.js";
import type { CoreCall } from "./call.js";
import type { Catalog, CatalogModel, ModelKind } from "./catalog.js";
import { validateChat, type ChatCall } from "./chat-request.js";
import type { RateLimitSnapshot } from "./limiter.js";
import type { RequestMeter } from "./metering.js";
import type { PriceBook, TokenCounts } from "./pricing.js";
import type { Quota } from "./quota.js";
import { allowsModel, modelNotAllowed } from "./model-scope.js";
import { completionReserve, estimatePromptTokens } from "./tokens.js";

export interface AdmissionDeps {
  catalog: Catalog;
  prices: PriceBook;
  auth: Authenticator;
  quota: Quota;
  /** Asked first: while it cannot keep usage rows, no chat is admitted. */
  usage: Pick<UsageStore, "available" | "countUnrecorded">;
  /** Told which limit refused a request (the refusal travels on the error, from the primary too with --workers). */
  observer: Pick<Observer, "limiterRefused">;
}

/** A request that passed every check, holding its share of limits and budget until settled. */
export interface Admitted {
  readonly principal: Principal;
  readonly model: CatalogModel;
  readonly rateLimit: RateLimitSnapshot;
  /** Replaces the reservations by what the request used. Once. */
  settle(tokens: number, costPico: bigint): void;
  /** Gives the reservations back unused. */
  release(): void;
}

/**
 * What differs between the requests admission takes (a chat, embeddings):
 * everything else about admitting them is the same, and exists once.
 */
export interface AdmissionTerms {
  /** The kind of model the request needs; a model of the other kind is a 400 naming the door that serves it. */
  readonly kind: ModelKind;
  /** The request's shape (400), checked before its model is looked up, so a malformed request is a 400 even for an unknown model. */
  validate(): void;
  /**
   * The worst case the request may cost on this model, reserved against the
   * rate limits and the budget until it settles; throws invalid_request when
   * the request does not fit the model (an embedding size it does not make).
   */
  reserve(model: CatalogModel, principal: Principal): TokenCounts | Promise<TokenCounts>;
}

/** A chat's terms: its body validated, and its prompt estimate plus every token max_tokens allows reserved. */
export function chatTerms(call: Pick<ChatCall, "model" | "body">, cached?: CacheFind): AdmissionTerms {
  const worstCase = () => ({ promptTokens: estimatePromptTokens(call.body), completionTokens: completionReserve(call.body) });
  return {
    kind: "chat",
    validate: () => validateChat(call.model, call.body),
    // An answer in the cache costs no tokens and nothing: only the request is counted (rpm, concurrency).
    reserve: cached ? (model, principal) => {
      const hit = cached(model, principal);
      return typeof hit === "boolean" ? (hit ? NOTHING : worstCase()) : hit.then((h) => (h ? NOTHING : worstCase()));
    } : worstCase,
  };
}

/** Whether the request's answer is in the response cache: at once from the embedded store, a promise from Redis. */
export type CacheFind = (model: CatalogModel, principal: Principal) => boolean | Promise<boolean>;

const NOTHING: TokenCounts = Object.freeze({ promptTokens: 0, completionTokens: 0 });

/** Why a model of the wrong kind cannot serve the request, and where to send it instead. */
function wrongKind(model: CatalogModel, wanted: ModelKind): GatewayError {
  const message = wanted === "chat"
    ? `'${model.id}' is an embedding model: it does not chat. Send it to POST /v1/embeddings (the Embed RPC), or pick a chat model from GET /v1/models`
    : `'${model.id}' is a chat model: it does not make embeddings. Send it to POST /v1/chat/completions (the Chat RPC), or pick an embedding model (kind "embedding") from GET /v1/models`;
  return new GatewayError("invalid_request", message, { param: "model" });
}

/**
 * The checks every front door's request goes through, once, in this order:
 * the usage store (503 usage_store_unavailable: a request that could not be
 * billed is not started; such a refusal has no row, it is counted), the key
 * (401), the request's shape (400), the model (404), whether the key may
 * use it (403 model_not_allowed) and its kind (400), the
 * rate limits (429 rate_limit_exceeded) and the budget (429
 * insufficient_quota). What is learnt on the way goes on the request's
 * meter, so a refused request is recorded with as much as is known.
 */
export function createAdmission({ catalog, prices, auth, quota, usage, observer }: AdmissionDeps) {
  return {
    async admit(call: Pick<CoreCall, "model" | "authorization" | "principal">, terms: AdmissionTerms, meter: RequestMeter): Promise<Admitted> {
      if (!usage.available()) {
        meter.discard();
        usage.countUnrecorded();
        throw new GatewayError("usage_store_unavailable",
          "the gateway cannot record usage right now (its database refuses writes), so it accepts no new request; retry later");
      }
      const principal = call.principal ?? auth.authenticate(call.authorization, "client");
      meter.principal = principal;
      terms.validate();
      const { model } = catalog.resolve(call.model);
      // The resolved id is checked, so an alias or a provider-prefixed name is the same model here.
      if (!allowsModel(principal.models, model)) throw modelNotAllowed(model);
      if (model.kind !== terms.kind) throw wrongKind(model, terms.kind);
      meter.model = model;
      meter.provider = model.provider;
      meter.upstreamModel = model.upstreamId;
      // Awaited only when a promise (Redis): an await of a plain value still costs a turn of the microtask queue.
      const reserving = terms.reserve(model, principal);
      const reserved = reserving instanceof Promise ? await reserving : reserving;
      let ticket;
      try {
        const taking = quota.take(principal, reserved.promptTokens + reserved.completionTokens, prices.picoOf(model, reserved));
        ticket = taking instanceof Promise ? await taking : taking;
      } catch (err) {
        if (err instanceof GatewayError && err.refusal) observer.limiterRefused(err.refusal.dimension, err.refusal.scope);
        throw err;
      }
      return {
        principal,
        model,
        rateLimit: ticket.snapshot,
        settle: (tokens, costPico) => ticket.settle(tokens, costPico),
        release: () => ticket.settle(0, 0n),
      };
    },
    authenticate: (authorization: string | null | undefined): Principal => auth.authenticate(authorization, "client"),
    /** Who sent a refused request, if their key is good; never throws. */
    identify(authorization: string | null | undefined): Principal | undefined {
      try {
        return auth.authenticate(authorization, "client");
      } catch {
        return undefined;
      }
    },
  };
}
