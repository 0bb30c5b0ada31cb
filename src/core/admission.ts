import { GatewayError } from "../errors.js";
import type { Observer } from "../observe/observer.js";
import type { UsageStore } from "../storage/usage.js";
import type { Authenticator, Principal } from "./auth.js";
import type { Catalog, CatalogModel } from "./catalog.js";
import { validateChat, type ChatCall } from "./chat-request.js";
import type { RateLimitSnapshot } from "./limiter.js";
import type { RequestMeter } from "./metering.js";
import type { PriceBook } from "./pricing.js";
import type { Quota } from "./quota.js";
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
 * The checks every front door's chat goes through, once, in this order:
 * the usage store (503 usage_store_unavailable: a chat that could not be
 * billed is not started; such a refusal has no row, it is counted), the key
 * (401), the request's shape (400), the model (404), the rate limits (429
 * rate_limit_exceeded) and the budget (429 insufficient_quota). What is
 * learnt on the way goes on the request's meter, so a refused request is
 * recorded with as much as is known.
 */
export function createAdmission({ catalog, prices, auth, quota, usage, observer }: AdmissionDeps) {
  return {
    async admit(call: ChatCall, meter: RequestMeter): Promise<Admitted> {
      if (!usage.available()) {
        meter.discard();
        usage.countUnrecorded();
        throw new GatewayError("usage_store_unavailable",
          "the gateway cannot record usage right now (its database refuses writes), so it accepts no new chat request; retry later");
      }
      const principal = call.principal ?? auth.authenticate(call.authorization, "client");
      meter.principal = principal;
      validateChat(call.model, call.body);
      const { model } = catalog.resolve(call.model);
      if (model.kind !== "chat") {
        throw new GatewayError("invalid_request",
          `'${model.id}' is an embedding model: it does not chat. Send it to POST /v1/embeddings (the Embed RPC), or pick a chat model from GET /v1/models`, { param: "model" });
      }
      meter.model = model;
      meter.provider = model.provider;
      meter.upstreamModel = model.upstreamId;
      // Reserve the worst case: the prompt estimate plus every token max_tokens allows.
      const promptTokens = estimatePromptTokens(call.body);
      const completionTokens = completionReserve(call.body);
      let ticket;
      try {
        ticket = await quota.take(principal, promptTokens + completionTokens, prices.picoOf(model, { promptTokens, completionTokens }));
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
