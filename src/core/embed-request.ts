import { GatewayError } from "../errors.js";
import type { AdmissionTerms, CacheFind } from "./admission.js";
import type { CoreCall } from "./call.js";
import type { CatalogModel } from "./catalog.js";

/**
 * The core speaks OpenAI's embeddings body, as it speaks OpenAI's chat body:
 * the HTTP door receives one, the Embed RPC converts its message into one,
 * so validation exists once. Fields the gateway does not read (`user`, a
 * provider's extras) pass through to the provider untouched.
 */
export type EmbedBody = Record<string, unknown>;

export interface EmbedCall extends CoreCall {
  /** The OpenAI body without model. */
  readonly body: EmbedBody;
}

export type EncodingFormat = "float" | "base64";

/** An embeddings request once validated: what the core acts on. */
export interface EmbedRequest {
  /** The inputs in the client's order: texts, or (`tokens`) arrays of token ids. */
  readonly inputs: readonly string[] | ReadonlyArray<readonly number[]>;
  readonly tokens: boolean;
  /** The vector size asked for; the model's default when undefined. */
  readonly dimensions: number | undefined;
  /** How the client wants vectors written; upstreams are always asked for floats. */
  readonly encodingFormat: EncodingFormat;
  /** Every other field of the body, for the upstream. */
  readonly passThrough: Readonly<Record<string, unknown>>;
}

/** OpenAI's own limit on inputs per request. */
export const MAX_INPUTS = 2048;
/** Token ids travel as the proto's uint32. */
const MAX_TOKEN_ID = 0xffff_ffff;

const SHAPE = "input must be a string, an array of strings, an array of token ids, or an array of token-id arrays";

const invalid = (message: string, param: string) => new GatewayError("invalid_request", message, { param });

/** Checks what needs no model: the request's shape, each field's type and range. */
export function parseEmbed(model: unknown, body: EmbedBody): EmbedRequest {
  if (typeof model !== "string" || model.trim() === "") {
    throw invalid("model is required: an embedding model id such as 'text-embedding-v4'", "model");
  }
  const { input, dimensions, encoding_format: format, ...passThrough } = body;
  if (passThrough.user !== undefined && passThrough.user !== null && typeof passThrough.user !== "string") {
    throw invalid("user must be a string", "user");
  }
  return { ...parseInput(input), dimensions: parseDimensions(dimensions), encodingFormat: parseFormat(format), passThrough };
}

function parseInput(input: unknown): Pick<EmbedRequest, "inputs" | "tokens"> {
  if (input === undefined || input === null) throw invalid(`input is required: ${SHAPE}`, "input");
  if (typeof input === "string") {
    if (input === "") throw invalid("input must not be an empty string", "input");
    return { inputs: [input], tokens: false };
  }
  if (!Array.isArray(input)) throw invalid(SHAPE, "input");
  if (input.length === 0) throw invalid("input must not be an empty array", "input");
  // A flat array of numbers is one input, already tokenized.
  if (typeof input[0] === "number") return { inputs: [tokenIds(input, "input")], tokens: true };
  if (input.length > MAX_INPUTS) throw invalid(`input holds ${input.length} items; at most ${MAX_INPUTS} are allowed per request`, "input");
  if (typeof input[0] === "string") {
    input.forEach((text, i) => {
      if (typeof text !== "string") throw invalid(`${SHAPE}; input[${i}] is not a string like input[0]`, "input");
      if (text === "") throw invalid(`input[${i}] must not be an empty string`, "input");
    });
    return { inputs: input as string[], tokens: false };
  }
  return { inputs: input.map((ids, i) => tokenIds(ids, `input[${i}]`)), tokens: true };
}

/** A non-empty array of token ids (integers from 0 to 2^32-1). */
function tokenIds(ids: unknown, where: string): number[] {
  if (!Array.isArray(ids)) throw invalid(`${SHAPE}; ${where} is neither`, "input");
  if (ids.length === 0) throw invalid(`${where} must not be an empty array of token ids`, "input");
  for (const id of ids) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > MAX_TOKEN_ID) {
      throw invalid(`${where} must hold token ids: integers from 0 to ${MAX_TOKEN_ID}`, "input");
    }
  }
  return ids as number[];
}

function parseDimensions(dimensions: unknown): number | undefined {
  if (dimensions === undefined || dimensions === null) return undefined;
  if (typeof dimensions !== "number" || !Number.isInteger(dimensions) || dimensions < 1) {
    throw invalid("dimensions must be a positive integer", "dimensions");
  }
  return dimensions;
}

function parseFormat(format: unknown): EncodingFormat {
  if (format === undefined || format === null || format === "float") return "float";
  if (format === "base64") return "base64";
  throw invalid(`encoding_format must be 'float' or 'base64', got ${JSON.stringify(format).slice(0, 50)}`, "encoding_format");
}

/** Checks what depends on the model: the vector size, token input, each input's length in tokens. */
export function checkEmbedFor(request: EmbedRequest, model: CatalogModel): void {
  const spec = model.embedding!;
  if (request.dimensions !== undefined && !spec.dimensions.includes(request.dimensions)) {
    throw invalid(`'${model.id}' makes vectors of ${spec.dimensions.join(", ")} dimensions (default ${spec.defaultDimensions}); ` +
      `dimensions ${request.dimensions} is not one of them`, "dimensions");
  }
  if (!request.tokens) return;
  if (!spec.tokenInput) {
    throw invalid(`'${model.id}' takes text only: send input as a string or an array of strings, not token ids`, "input");
  }
  request.inputs.forEach((ids, i) => {
    if (ids.length > spec.maxInputTokens) {
      throw invalid(`input[${i}] has ${ids.length} tokens; '${model.id}' takes at most ${spec.maxInputTokens} per input`, "input");
    }
  });
}

/** A quick upper-bound guess of the input tokens, for reservations: text at about 3 characters a token. */
export function estimateEmbedTokens(request: EmbedRequest): number {
  let tokens = 0;
  for (const input of request.inputs) tokens += request.tokens ? input.length : Math.ceil(input.length / 3);
  return tokens;
}

const NO_TOKENS = Object.freeze({ promptTokens: 0, completionTokens: 0 });

/**
 * Admission's terms for an embeddings call: validation, the model's checks,
 * and a reservation of the input tokens (embeddings produce none). The
 * validated request is kept for the flow that follows admission.
 */
export function embedTerms(
  call: Pick<EmbedCall, "model" | "body">, cached?: CacheFind,
): { terms: AdmissionTerms; request(): EmbedRequest } {
  let request: EmbedRequest | undefined;
  const parsed = () => request ?? (request = parseEmbed(call.model, call.body));
  return {
    terms: {
      kind: "embedding",
      validate: () => void parsed(),
      // Checked against the model before the cache is asked: a request the model cannot serve is a 400, cached or not.
      // An answer in the cache costs no tokens and nothing: only the request is counted (rpm, concurrency).
      // Synchronous without a cache (CACHE=off): no promise on that path.
      reserve(model, principal) {
        checkEmbedFor(parsed(), model);
        const estimate = () => ({ promptTokens: estimateEmbedTokens(parsed()), completionTokens: 0 });
        if (!cached) return estimate();
        const hit = cached(model, principal);
        if (typeof hit === "boolean") return hit ? NO_TOKENS : estimate();
        return hit.then((h) => (h ? NO_TOKENS : estimate()));
      },
    },
    request: parsed,
  };
}
