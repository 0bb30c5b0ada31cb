import { create } from "@bufbuild/protobuf";
import { EmbedResponseSchema, type EmbedRequest, type EmbedResponse } from "../../gen/gatewayz/v1/gateway_pb.js";
import type { EmbedBody } from "../core/embed-request.js";
import type { EmbedResult } from "../core/embedding.js";
import { GatewayError } from "../errors.js";

/**
 * Translation between the Embed RPC and the OpenAI body the core validates,
 * so both doors refuse the same requests with the same words. Only set
 * fields are copied; vectors travel as the proto's floats, so there is no
 * encoding_format to choose.
 */
export function embedBodyFromProto(req: EmbedRequest): EmbedBody {
  if (req.input.length && req.tokens.length) {
    throw new GatewayError("invalid_request", "set input (texts) or tokens (token ids), not both", { param: "input" });
  }
  const body: EmbedBody = {};
  if (req.input.length) body.input = req.input;
  else if (req.tokens.length) body.input = req.tokens.map((t) => t.ids);
  if (req.dimensions !== undefined) body.dimensions = req.dimensions;
  if (req.user) body.user = req.user;
  return body;
}

const UINT32_MAX = 0xffff_ffff;

/** A count as the proto's uint32 carries it (core usage is clamped far below this already). */
function uint32(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.min(Math.floor(n), UINT32_MAX) : 0;
}

export function embedResponseOf({ vectors, outcome }: EmbedResult): EmbedResponse {
  return create(EmbedResponseSchema, {
    embeddings: vectors.map((values, index) => ({ index, values: values as number[] })),
    model: outcome.upstreamModel,
    usage: { promptTokens: uint32(outcome.usage.promptTokens), totalTokens: uint32(outcome.usage.totalTokens) },
    cost: { promptUsd: outcome.cost.promptUsd, completionUsd: outcome.cost.completionUsd, totalUsd: outcome.cost.totalUsd },
    provider: outcome.provider,
    catalogModel: outcome.catalogModel.id,
    attempts: outcome.attempts,
    cached: outcome.cache === "hit" || outcome.cache === "coalesced",
  });
}
