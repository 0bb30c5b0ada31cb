import { cacheControlOf, cacheHeader, headerText } from "../cache/cache-control.js";
import type { Principal } from "../core/auth.js";
import type { EmbedCall } from "../core/embed-request.js";
import type { EmbedResult } from "../core/embedding.js";
import type { Gateway } from "../core/gateway.js";
import { rateLimitHeaders } from "../core/limiter.js";
import { GatewayError } from "../errors.js";
import { readJsonBody, sendJson, stopUnreadBody, type BodyLimits, type Req, type Res } from "./http-io.js";
import type { RequestScope } from "./requests.js";

/**
 * `POST /v1/embeddings`, OpenAI's shape in and out, onto the same core as
 * the Embed RPC. The key was checked from the headers already; here the
 * body is read and rendered. A body refused before the core saw it still
 * leaves its usage row.
 */
export async function embeddings(gateway: Gateway, limits: BodyLimits, req: Req, res: Res, scope: RequestScope, principal: Principal): Promise<void> {
  const authorization = req.headers.authorization;
  let model: unknown;
  let call: EmbedCall;
  try {
    const raw = await readJsonBody(req, limits).catch((err: unknown) => {
      // Refused before the whole body was read (declared too large): the client may still be sending it.
      if (!req.complete) stopUnreadBody(req, res);
      throw err;
    });
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new GatewayError("invalid_request", "the request body must be a JSON object");
    }
    let body: Record<string, unknown>;
    ({ model, ...body } = raw as Record<string, unknown>);
    if (model !== undefined && typeof model !== "string") {
      throw new GatewayError("invalid_request", "model must be a string such as 'text-embedding-v4'", { param: "model" });
    }
    // The scope's signal aborts when the client goes away: every upstream batch stops at once.
    const cache = cacheControlOf(headerText(req.headers["cache-control"]), headerText(req.headers["x-gatewayz-cache-ttl"]));
    call = { model: model ?? "", body, signal: scope.signal, authorization, principal, protocol: "openai", telemetry: scope.telemetry, operation: "embeddings", cache };
  } catch (err) {
    await gateway.refused({ protocol: "openai", model: typeof model === "string" ? model : "", authorization, telemetry: scope.telemetry, operation: "embeddings" }, err);
    throw err;
  }
  const result = await gateway.embed(call);
  const { outcome } = result;
  sendJson(res, 200, embeddingList(result), {
    ...rateLimitHeaders(result.rateLimit), "x-gatewayz-provider": outcome.provider, "x-gatewayz-model": outcome.upstreamModel,
    "x-gatewayz-attempts": String(outcome.attempts), ...cacheHeader(outcome.cache),
  });
}

/** OpenAI's CreateEmbeddingResponse, exactly. */
function embeddingList({ vectors, encodingFormat, outcome }: EmbedResult) {
  return {
    object: "list",
    data: vectors.map((v, index) => ({ object: "embedding", index, embedding: encodingFormat === "base64" ? base64Of(v) : v })),
    model: outcome.upstreamModel,
    usage: { prompt_tokens: outcome.usage.promptTokens, total_tokens: outcome.usage.totalTokens },
  };
}

/** As OpenAI encodes a vector: its float32 values, little-endian, in base64. */
export function base64Of(vector: readonly number[]): string {
  const bytes = Buffer.alloc(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i]!, i * 4);
  return bytes.toString("base64");
}
