import { allowsModel, modelNotAllowed } from "../core/model-scope.js";
import { cacheControlOf } from "../cache/cache-control.js";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import {
  GatewayService,
  ListModelsResponseSchema,
  GetPricingResponseSchema,
  type ChatRequest,
  type ChatResponse,
  type EmbedRequest,
  type EmbedResponse,
} from "../../gen/gatewayz/v1/gateway_pb.js";
import type { Gateway } from "../core/gateway.js";
import { rateLimitHeaders } from "../core/limiter.js";
import type { Protocol } from "../core/metering.js";
import { formatPricePerMillion } from "../core/money.js";
import { asGatewayError, GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import { principalKey, telemetryKey } from "./context.js";
import { logFailure } from "./failure-log.js";
import { chatBodyFromProto, deltaFromChunk, doneFromOutcome } from "./proto-chat.js";
import { embedBodyFromProto, embedResponseOf } from "./proto-embed.js";
import { protocolOfWire } from "./revoked-chats.js";
import type { RpcAdapterOptions } from "./rpc-adapter.js";
import { refusalOf, serviceReachedKey, unaryError, withError } from "./rpc-unary-refusal.js";

/** GatewayService over gRPC, gRPC-Web and Connect: a thin door onto the core. */
export function registerGatewayService(router: ConnectRouter, gateway: Gateway, log: Logger): void {
  router.service(GatewayService, {
    async *chat(req: ChatRequest, ctx: HandlerContext): AsyncGenerator<ChatResponse> {
      const authorization = ctx.requestHeader.get("authorization");
      const protocol = ctx.protocolName as Protocol;
      try {
        let body;
        let cache;
        try {
          body = chatBodyFromProto(req);
          // The same controls as the OpenAI door's headers, as request metadata.
          cache = cacheControlOf(ctx.requestHeader.get("cache-control"), ctx.requestHeader.get("x-gatewayz-cache-ttl"));
        } catch (err) {
          await gateway.refused({ protocol, model: req.model, authorization, telemetry: ctx.values.get(telemetryKey) }, err);
          throw err;
        }
        const principal = ctx.values.get(principalKey);
        const stream = await gateway.stream({ model: req.model, body, signal: ctx.signal, authorization, principal, protocol, telemetry: ctx.values.get(telemetryKey), cache });
        for (const [name, value] of Object.entries(rateLimitHeaders(stream.rateLimit))) ctx.responseHeader.set(name, value);
        ctx.responseHeader.set("x-gatewayz-provider", stream.provider);
        ctx.responseHeader.set("x-gatewayz-attempts", String(stream.attempts));
        if (stream.cache) ctx.responseHeader.set("x-gatewayz-cache", stream.cache);
        for await (const chunk of stream) {
          const delta = deltaFromChunk(chunk);
          if (delta) yield delta;
        }
        yield doneFromOutcome(stream.outcome());
      } catch (err) {
        logFailure(log, `${ctx.protocolName} Chat`, err, ctx.values.get(telemetryKey)?.requestId);
        throw asGatewayError(err);
      }
    },

    async embed(req: EmbedRequest, ctx: HandlerContext): Promise<EmbedResponse> {
      ctx.values.set(serviceReachedKey, true);
      const authorization = ctx.requestHeader.get("authorization");
      const protocol = ctx.protocolName as Protocol;
      const telemetry = ctx.values.get(telemetryKey);
      try {
        let body;
        let cache;
        try {
          body = embedBodyFromProto(req);
          cache = cacheControlOf(ctx.requestHeader.get("cache-control"), ctx.requestHeader.get("x-gatewayz-cache-ttl"));
        } catch (err) {
          await gateway.refused({ protocol, model: req.model, authorization, telemetry, operation: "embeddings" }, err);
          throw err;
        }
        const principal = ctx.values.get(principalKey);
        const result = await gateway.embed({ model: req.model, body, signal: ctx.signal, authorization, principal, protocol, telemetry, operation: "embeddings", cache });
        for (const [name, value] of Object.entries(rateLimitHeaders(result.rateLimit))) ctx.responseHeader.set(name, value);
        ctx.responseHeader.set("x-gatewayz-provider", result.outcome.provider);
        ctx.responseHeader.set("x-gatewayz-attempts", String(result.outcome.attempts));
        if (result.outcome.cache) ctx.responseHeader.set("x-gatewayz-cache", result.outcome.cache);
        return embedResponseOf(result);
      } catch (err) {
        logFailure(log, `${ctx.protocolName} Embed`, err, telemetry?.requestId);
        throw asGatewayError(err);
      }
    },

    listModels(req, ctx) {
      const principal = ctx.values.get(principalKey) ?? gateway.authenticate(ctx.requestHeader.get("authorization"));
      const models = gateway.catalog.models
        .filter((m) => (!req.provider || m.provider === req.provider) && allowsModel(principal.models, m))
        .map((m) => ({
          id: m.id, provider: m.provider, upstreamId: m.upstreamId, contextWindow: m.contextWindow,
          capabilities: [...m.capabilities], aliases: [...m.aliases], streamingOnly: m.streamingOnly,
          providers: gateway.servedBy(m), kind: m.kind,
          dimensions: [...(m.embedding?.dimensions ?? [])], defaultDimensions: m.embedding?.defaultDimensions ?? 0,
        }));
      return create(ListModelsResponseSchema, { models });
    },

    getPricing(req, ctx) {
      const principal = ctx.values.get(principalKey) ?? gateway.authenticate(ctx.requestHeader.get("authorization"));
      const models = req.model ? [gateway.catalog.resolve(req.model).model] : gateway.catalog.models.filter((m) => allowsModel(principal.models, m));
      for (const m of models) if (!allowsModel(principal.models, m)) throw modelNotAllowed(m);
      const prices = models.map((m) => {
        const p = gateway.prices.priceOf(m);
        return {
          model: m.id,
          promptUsdPerMillion: formatPricePerMillion(p.promptPico),
          completionUsdPerMillion: formatPricePerMillion(p.completionPico),
          cachedPromptUsdPerMillion: formatPricePerMillion(p.cachedPromptPico),
          contextWindow: p.contextWindow,
        };
      });
      return create(GetPricingResponseSchema, { prices });
    },
  });
}

/**
 * A Chat the RPC framework refuses before the service runs (an undecodable
 * or oversized message, an unknown JSON field) still gets its usage record,
 * with its true kind: Connect reports an oversized message as
 * RESOURCE_EXHAUSTED and an undecodable one as INTERNAL, which would read as
 * a rate limit and a bug. For a server-streaming method the request is
 * parsed inside `next`, while the service's own code only runs once the
 * response is iterated, so an error from `next` means the service never saw
 * the request.
 */
export function meterRefusedChats(gateway: Gateway): Interceptor {
  return (next) => async (req) => {
    if (req.method !== GatewayService.method.chat) return next(req);
    try {
      return await next(req);
    } catch (err) {
      const refusal = frameworkRefusal(err);
      const authorization = req.header.get("authorization");
      await gateway.refused({ protocol: protocolOf(req.header.get("content-type")), model: "", authorization, telemetry: req.contextValues.get(telemetryKey) }, refusal);
      throw refusal;
    }
  };
}

/**
 * An Embed the framework refused before the service saw it (Connect decodes
 * a unary request before any interceptor: meterRefusedChats cannot see it)
 * gets its usage row too, and the same corrected kind a Chat would: the
 * refusal is read back from the answer, recorded, and the answer rewritten
 * when its code was misleading.
 */
export function meterUnreadEmbeds(gateway: Gateway): NonNullable<RpcAdapterOptions["answering"]> {
  return (req, wire, method, values, answer) => {
    if (method !== GatewayService.method.embed || values.get(serviceReachedKey)) return undefined;
    return (async () => {
      const { error, response } = await unaryError(answer, wire);
      const refusal = frameworkRefusal(refusalOf(error));
      await gateway.refused({
        protocol: protocolOfWire(wire), model: "", authorization: req.headers.authorization, principal: values.get(principalKey),
        telemetry: values.get(telemetryKey), operation: "embeddings",
      }, refusal);
      return error?.code === refusal.code ? response : withError(response, wire, refusal);
    })();
  };
}

function frameworkRefusal(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = asGatewayError(err);
  const kind = e.code === Code.ResourceExhausted ? "payload_too_large" : e.code === Code.Canceled || e.code === Code.DeadlineExceeded ? e.kind : "invalid_request";
  const message = kind === "invalid_request" && e.kind === "internal" ? rawMessageOf(err) : e.rawMessage;
  return new GatewayError(kind, message, { cause: err });
}

/** Connect's own message for a request it could not decode ("parse binary: ..."): it names no secret. */
function rawMessageOf(err: unknown): string {
  return err instanceof ConnectError ? err.rawMessage : "the request message could not be decoded";
}

function protocolOf(contentType: string | null): Protocol {
  if (contentType?.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType?.startsWith("application/grpc")) return "grpc";
  return "connect";
}
