import type { ChatCompletion } from "openai/resources/chat/completions";
import { keptJsonText } from "../core/json-text.js";
import type { TokenUsage } from "../core/usage.js";

/**
 * A cached answer as bytes, and back. A store keeps opaque bytes (Redis and
 * SQLite alike, possibly from another gateway version on another host), so
 * the bytes start with a magic byte and a format version: anything else, or
 * anything that does not read back as a whole answer, decodes to undefined
 * and the caller counts a miss and drops the entry. decode() never throws.
 *
 * Layout: MAGIC, VERSION, then the answer as UTF-8 JSON. Costs are bigints,
 * written as decimal strings; vectors are written compactly (see below).
 * There is no checksum: a store hands back what it was given or nothing, and
 * what goes wrong in practice (a truncated value, another program's bytes
 * under the key, an older format) fails the structural checks here.
 */

export const MAGIC = 0x47; // "G"
/** Bump when the JSON below changes incompatibly: old entries then read as misses. */
export const VERSION = 1;

interface Answer {
  /** The provider that answered, and the model id it answered with. */
  readonly provider: string;
  readonly upstreamModel: string;
  /** The resolved catalog model id. */
  readonly model: string;
  /** What the original answer cost, in pico-USD: what a hit saves. */
  readonly costPico: bigint;
  /** When the original answer was made (ms since the epoch). */
  readonly createdAt: number;
}

export interface CachedChat extends Answer {
  readonly operation: "chat";
  /** The complete answer in OpenAI's non-streamed form, with its usage; a stream is replayed from it. */
  readonly completion: ChatCompletion;
}

export interface CachedEmbeddings extends Answer {
  readonly operation: "embeddings";
  /** One vector per input, in input order, exactly the numbers the upstream sent. */
  readonly vectors: ReadonlyArray<readonly number[]>;
  readonly usage: TokenUsage;
}

export type CachedAnswer = CachedChat | CachedEmbeddings;

/**
 * Vectors as little-endian floats in one base64 string, with each vector's
 * length. Float32 when every value is a float32 exactly, else float64: the
 * upstream sends JSON numbers, and the float door writes them back as
 * received, so a replay must hold the very same doubles (a float32 rounding
 * of 0.1 would be written as 0.10000000149011612). The base64 door and the
 * RPC doors write float32 either way, so they cannot tell. Float64 is still
 * about half the size of the numbers as JSON text, float32 a quarter.
 */
interface PackedVectors {
  readonly width: 4 | 8;
  readonly lengths: number[];
  readonly data: string;
}

export function encode(answer: CachedAnswer): Uint8Array {
  // Object literals of one fixed shape, not a spread of the answer: JSON.stringify's fast
  // path, on a miss's path (a spread made it three times slower).
  const { provider, upstreamModel, model, createdAt } = answer;
  const costPico = answer.costPico.toString();
  // A chat's completion is serialised apart and kept on it (core/json-text.ts): the shim sends that same text.
  const json = answer.operation === "chat"
    ? `${JSON.stringify({ operation: "chat", provider, upstreamModel, model, costPico, createdAt }).slice(0, -1)},"completion":${keptJsonText(answer.completion)}}`
    : JSON.stringify({ operation: "embeddings", provider, upstreamModel, model, costPico, createdAt, vectors: pack(answer.vectors), usage: answer.usage });
  // MAGIC and VERSION are ASCII, so they are their own UTF-8: one encoding, one buffer.
  return Buffer.from(HEADER + json);
}

const HEADER = String.fromCharCode(MAGIC, VERSION);

/** The answer these bytes hold; undefined for anything else (corrupt, truncated, another version). */
export function decode(bytes: Uint8Array): CachedAnswer | undefined {
  if (bytes.length < 3 || bytes[0] !== MAGIC || bytes[1] !== VERSION) return undefined;
  let json: unknown;
  try {
    // fatal: a cut multi-byte character is corruption, not U+FFFD in an answer.
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(2)));
  } catch {
    return undefined;
  }
  return answerOf(json);
}

function answerOf(json: unknown): CachedAnswer | undefined {
  if (!isObject(json)) return undefined;
  const { provider, upstreamModel, model, costPico, createdAt } = json;
  if (typeof provider !== "string" || typeof upstreamModel !== "string" || typeof model !== "string") return undefined;
  if (typeof costPico !== "string" || !/^\d+$/.test(costPico) || typeof createdAt !== "number" || !Number.isFinite(createdAt)) return undefined;
  const common = { provider, upstreamModel, model, costPico: BigInt(costPico), createdAt };
  if (json.operation === "chat") {
    // The replay reads choices and usage; an entry without them is no answer.
    const c = json.completion;
    if (!isObject(c) || !Array.isArray(c.choices) || !c.choices.every(isObject) || !isObject(c.usage)) return undefined;
    return { operation: "chat", ...common, completion: c as unknown as ChatCompletion };
  }
  if (json.operation === "embeddings") {
    const vectors = unpack(json.vectors);
    const usage = usageOf(json.usage);
    if (!vectors || !usage) return undefined;
    return { operation: "embeddings", ...common, vectors, usage };
  }
  return undefined;
}

function pack(vectors: ReadonlyArray<readonly number[]>): PackedVectors {
  const width = vectors.every((v) => v.every((x) => Math.fround(x) === x)) ? 4 : 8;
  const lengths = vectors.map((v) => v.length);
  const buffer = Buffer.alloc(lengths.reduce((a, b) => a + b, 0) * width);
  let at = 0;
  for (const vector of vectors) {
    for (const x of vector) {
      if (width === 4) buffer.writeFloatLE(x, at);
      else buffer.writeDoubleLE(x, at);
      at += width;
    }
  }
  return { width, lengths, data: buffer.toString("base64") };
}

function unpack(packed: unknown): number[][] | undefined {
  if (!isObject(packed)) return undefined;
  const { width, lengths, data } = packed;
  if ((width !== 4 && width !== 8) || typeof data !== "string" || !Array.isArray(lengths)) return undefined;
  if (!lengths.every((n) => Number.isInteger(n) && n >= 0)) return undefined;
  // Node's base64 decoder silently skips what is not base64, so the text is
  // checked first: only base64 characters, exactly as many as the lengths need.
  const total = (lengths as number[]).reduce((a, b) => a + b, 0);
  if (data.length !== Math.ceil((total * width) / 3) * 4 || !BASE64.test(data)) return undefined;
  const buffer = Buffer.from(data, "base64");
  if (buffer.length !== total * width) return undefined;
  let at = 0;
  return (lengths as number[]).map((n) => {
    const vector = new Array<number>(n);
    for (let i = 0; i < n; i++, at += width) vector[i] = width === 4 ? buffer.readFloatLE(at) : buffer.readDoubleLE(at);
    return vector;
  });
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function usageOf(value: unknown): TokenUsage | undefined {
  if (!isObject(value)) return undefined;
  const counts = ["promptTokens", "completionTokens", "totalTokens", "cachedTokens", "reasoningTokens"] as const;
  if (!counts.every((name) => Number.isInteger(value[name]) && (value[name] as number) >= 0)) return undefined;
  return value as unknown as TokenUsage;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
