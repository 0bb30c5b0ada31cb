import { allowsModel, modelNotAllowed } from "../core/model-scope.js";
import type { ChatCompletionChunk } from "openai/resources/chat/completions";
import type { Principal } from "../core/auth.js";
import type { ChatBody, ChatCall } from "../core/chat-request.js";
import type { CatalogModel } from "../core/catalog.js";
import type { Gateway } from "../core/gateway.js";
import { rateLimitHeaders } from "../core/limiter.js";
import { formatPricePerMillion } from "../core/money.js";
import { GatewayError, toOpenAIError } from "../errors.js";
import type { Logger } from "../log.js";
import { logFailure } from "./failure-log.js";
import { embeddings } from "./openai-embeddings.js";
import type { AuthGate } from "./auth-gate.js";
import { jsonText } from "../core/json-text.js";
import { readJsonBody, sendError, sendJson, sendJsonText, stopUnreadBody, type BodyLimits, type Req, type Res } from "./http-io.js";
import { recordRevokedChat } from "./revoked-chats.js";
import { createResponsesDoor, responsesRoute } from "./responses-door.js";
import type { ResponseStore } from "../storage/responses.js";
import type { RequestScope } from "./requests.js";
import { SseWriter } from "./sse.js";
import { cacheControlOf, cacheHeader, headerText } from "../cache/cache-control.js";

// OpenAI's `created` for a model is when it was published; ours is when the
// catalog format began, constant so clients can cache the list.
const CATALOG_CREATED = 1735689600;

export interface ShimOptions extends BodyLimits {
  readonly sendTimeoutMs: number;
}

interface Door {
  gateway: Gateway;
  gate: AuthGate;
  options: ShimOptions;
  log: Logger;
}

/**
 * The OpenAI-compatible front door: `/v1/chat/completions`, `/v1/embeddings` and `/v1/models`,
 * so the official SDKs work with only `baseURL` changed. It checks the key
 * from the headers, parses, calls the same core as the RPC service, and
 * renders OpenAI's wire shapes.
 */
export function createOpenAIShim(gateway: Gateway, gate: AuthGate, options: ShimOptions, log: Logger,
  responseStore: ResponseStore): (req: Req, res: Res, scope: RequestScope) => Promise<void> {
  const door: Door = { gateway, gate, options, log };
  const responses = createResponsesDoor({ gateway, store: responseStore, options, log });
  /** The catalog as this key sees it: only the models it may call. */
  const models = (res: Res, id: string, principal: Principal) => {
    if (!id) {
      const data = gateway.catalog.models.filter((m) => allowsModel(principal.models, m)).map((m) => modelJson(gateway, m));
      sendJson(res, 200, { object: "list", data });
      return;
    }
    const model = gateway.catalog.find(id);
    if (!model) throw new GatewayError("model_not_found", `The model '${id}' does not exist`, { param: "model" });
    if (!allowsModel(principal.models, model)) throw modelNotAllowed(model);
    sendJson(res, 200, modelJson(gateway, model));
  };

  return (req, res, scope) => {
    const path = (req.url ?? "/").split("?", 1)[0]!;
    let bodyRead = false;
    const run = async () => {
      if (path === "/v1/chat/completions") {
        allow(req, "POST");
        let principal: Principal;
        try {
          principal = gate.check(req, "client");
        } catch (err) {
          await recordRevokedChat(gateway, "openai", req.headers.authorization, err);
          throw err;
        }
        bodyRead = true;
        await chatCompletions(door, req, res, scope, principal);
      } else if (path === "/v1/embeddings") {
        allow(req, "POST");
        let principal: Principal;
        try {
          principal = gate.check(req, "client");
        } catch (err) {
          await recordRevokedChat(gateway, "openai", req.headers.authorization, err, "embeddings");
          throw err;
        }
        bodyRead = true;
        await embeddings(gateway, options, req, res, scope, principal);
      } else if (path === "/v1/responses" || path.startsWith("/v1/responses/")) {
        const route = responsesRoute(req.method, path);
        let principal: Principal;
        try {
          principal = gate.check(req, "client");
        } catch (err) {
          if (route.kind === "create") await recordRevokedChat(gateway, "openai", req.headers.authorization, err, "responses");
          throw err;
        }
        bodyRead = route.kind === "create";
        await responses(route, req, res, scope, principal);
      } else if (path === "/v1/models" || path.startsWith("/v1/models/")) {
        allow(req, "GET");
        const principal = gate.check(req, "client");
        models(res, modelIdFromPath(path), principal);
      } else {
        throw new GatewayError("not_found", `Unknown request URL: ${req.method} ${path}`);
      }
    };
    return run().catch((err) => {
      logFailure(log, `${req.method} ${path}`, err, scope.telemetry.requestId);
      if (!bodyRead) stopUnreadBody(req, res);
      if (!res.writableEnded && !(res as { destroyed?: boolean }).destroyed) sendError(res, err);
    });
  };
}

function modelIdFromPath(path: string): string {
  const raw = path.slice("/v1/models/".length);
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new GatewayError("invalid_request", `the model id in the path is not valid percent-encoding: ${raw.slice(0, 100)}`, { param: "model" });
  }
}

function allow(req: Req, method: string): void {
  if (req.method !== method) {
    throw new GatewayError("not_found", `${req.method} is not supported here; use ${method}`);
  }
}

async function chatCompletions({ gateway, options, log }: Door, req: Req, res: Res, scope: RequestScope, principal: Principal): Promise<void> {
  const authorization = req.headers.authorization;
  let model: unknown;
  let call: ChatCall;
  let streamOptions: unknown;
  let stream: unknown;
  try {
    const raw = await readJsonBody(req, options).catch((err: unknown) => {
      // Refused before the whole body was read (declared too large): the client may still be sending it.
      if (!req.complete) stopUnreadBody(req, res);
      throw err;
    });
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new GatewayError("invalid_request", "the request body must be a JSON object");
    }
    let rest: Record<string, unknown>;
    ({ model, stream, stream_options: streamOptions, ...rest } = raw as Record<string, unknown>);
    if (stream !== undefined && stream !== null && typeof stream !== "boolean") {
      throw new GatewayError("invalid_request", "stream must be a boolean", { param: "stream" });
    }
    if (model !== undefined && typeof model !== "string") {
      throw new GatewayError("invalid_request", "model must be a string such as 'qwen-plus'", { param: "model" });
    }
    // The scope's signal aborts when the client goes away, stalls, or a drain runs out: the upstream call stops at once.
    call = {
      model: model ?? "", body: rest as ChatBody, signal: scope.signal, authorization, principal, protocol: "openai", telemetry: scope.telemetry,
      cache: cacheControlOf(headerText(req.headers["cache-control"]), headerText(req.headers["x-gatewayz-cache-ttl"])),
    };
  } catch (err) {
    // Refused before the core saw it: still one usage record.
    await gateway.refused({ protocol: "openai", model: typeof model === "string" ? model : "", authorization, telemetry: scope.telemetry }, err);
    throw err;
  }

  if (!stream) {
    const { completion, outcome, rateLimit } = await gateway.complete(call);
    // The text the cache stored, when it stored this answer (core/json-text.ts): not serialised twice.
    sendJsonText(res, 200, jsonText(completion), {
      ...rateLimitHeaders(rateLimit), "x-gatewayz-provider": outcome.provider, "x-gatewayz-model": outcome.upstreamModel,
      "x-gatewayz-attempts": String(outcome.attempts), ...cacheHeader(outcome.cache),
    });
    return;
  }

  const includeUsage = (streamOptions as { include_usage?: unknown } | undefined)?.include_usage === true;
  const chat = await gateway.stream(call);
  const sse = new SseWriter(res, scope, options.sendTimeoutMs);
  sse.open({
    ...rateLimitHeaders(chat.rateLimit), "x-gatewayz-provider": chat.provider, "x-gatewayz-model": chat.upstreamModel,
    "x-gatewayz-attempts": String(chat.attempts), ...cacheHeader(chat.cache),
  });
  let last: ChatCompletionChunk | undefined;
  try {
    for await (const chunk of chat) {
      // The gateway always asks upstream for usage; a client that did not
      // ask must not see it, exactly as with OpenAI.
      if (!includeUsage) delete (chunk as { usage?: unknown }).usage;
      last = chunk;
      const wait = sse.send(chunk);
      if (wait) await wait;
    }
    if (includeUsage && last) {
      const { rawUsage } = chat.outcome();
      await sse.send({ id: last.id, object: "chat.completion.chunk", created: last.created, model: last.model, choices: [], usage: rawUsage });
    }
    sse.done();
  } catch (err) {
    logFailure(log, "POST /v1/chat/completions (streaming)", err, scope.telemetry.requestId);
    sse.fail(toOpenAIError(err).body);
  }
}

function modelJson(gateway: Gateway, m: CatalogModel) {
  const price = gateway.prices.priceOf(m);
  return {
    id: m.id,
    object: "model",
    created: CATALOG_CREATED,
    owned_by: m.provider,
    provider: m.provider,
    upstream_id: m.upstreamId,
    context_window: m.contextWindow,
    capabilities: m.capabilities,
    aliases: m.aliases,
    streaming_only: m.streamingOnly,
    kind: m.kind,
    ...(m.embedding ? { dimensions: m.embedding.dimensions, default_dimensions: m.embedding.defaultDimensions } : {}),
    providers: gateway.servedBy(m).map((p) => ({ provider: p.provider, upstream_id: p.upstreamId, state: p.state })),
    pricing: {
      prompt_usd_per_million: formatPricePerMillion(price.promptPico),
      completion_usd_per_million: formatPricePerMillion(price.completionPico),
      cached_prompt_usd_per_million: formatPricePerMillion(price.cachedPromptPico),
    },
  };
}
