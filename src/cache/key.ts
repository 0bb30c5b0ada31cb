import { hash } from "node:crypto";

/**
 * The response cache's key: the sha256 (hex) of a canonical serialisation of
 * everything that affects the answer, and of nothing that does not. Two
 * requests with the same key must be answerable by the same bytes, whatever
 * door they came through (the doors all hand the core an OpenAI ChatBody or
 * an EmbedRequest) and whatever order their JSON keys were in.
 */

/**
 * Part of every key, so that a change to what the key covers (or how it is
 * serialised) makes old entries unreachable instead of wrongly reused. Bump
 * it whenever canonical(), the exclusions or the envelope below change.
 */
export const KEY_VERSION = "gatewayz-cache-key/1";

/** Whose answers a hit may be served from (`CACHE_SCOPE`); `user` by default. */
export type CacheScope = "user" | "key" | "global";
export type CacheOperation = "chat" | "embeddings";

/** Who asks: the ids of the authenticated key's user and of the key itself. */
export interface CachePrincipal {
  readonly userId: string;
  readonly keyId: string;
}

interface Common {
  /** The resolved catalog model id (never the alias or prefixed name the client used). */
  readonly model: string;
  readonly scope: CacheScope;
  readonly principal: CachePrincipal;
}

export interface ChatKeyInput extends Common {
  readonly operation: "chat";
  /** The OpenAI chat body as the core has it (any door's); excluded fields are dropped here. */
  readonly body: Readonly<Record<string, unknown>>;
}

export interface EmbeddingsKeyInput extends Common {
  readonly operation: "embeddings";
  /** The validated inputs (EmbedRequest.inputs): "a" and ["a"] are the same request. */
  readonly inputs: readonly string[] | ReadonlyArray<readonly number[]>;
  /** The vector size resolved against the model: its default when the client sent none. */
  readonly dimensions: number;
  /** The body's other fields (EmbedRequest.passThrough): a provider's extras can change the vectors. */
  readonly passThrough?: Readonly<Record<string, unknown>> | undefined;
}

export type CacheKeyInput = ChatKeyInput | EmbeddingsKeyInput;

/**
 * Body fields that never change the answer, so are left out of the key:
 * - `stream`, `stream_options`: a cached answer replays as a stream or not,
 *   with a usage chunk or not, so how it is delivered is the door's business;
 * - `user`, `metadata`: the caller's labels for its own tracking, not read by
 *   the model (isolation between tenants is the scope's job, not `user`'s);
 * - `store`: whether OpenAI keeps a copy, not what it answers;
 * - `model`: replaced by the resolved catalog id, so an alias and its target
 *   share entries;
 * - for embeddings, `encoding_format`: upstreams are always asked for floats
 *   and the door writes them as the client asks, so the vectors are the same.
 * Everything else (messages, temperature, tools, response_format, seed, n,
 * unknown provider extras...) is kept: when in doubt, a field is part of the
 * key, since a needless miss costs a call and a wrong hit is a wrong answer.
 */
export const EXCLUDED_CHAT_FIELDS: ReadonlySet<string> = new Set(["stream", "stream_options", "user", "metadata", "store", "model"]);
export const EXCLUDED_EMBEDDINGS_FIELDS: ReadonlySet<string> = new Set([
  ...EXCLUDED_CHAT_FIELDS, "encoding_format", "input", "dimensions",
]);

/** The cache key of a request: 64 hex characters. */
export function cacheKey(input: CacheKeyInput): string {
  return hash("sha256", canonicalRequest(input), "hex");
}

/** The text that is hashed; exported so tests (and a debugging operator) can see what a key covers. */
export function canonicalRequest(input: CacheKeyInput): string {
  const request = input.operation === "chat"
    ? canonicalObject(input.body, EXCLUDED_CHAT_FIELDS)
    : canonical({ ...without(input.passThrough ?? {}, EXCLUDED_EMBEDDINGS_FIELDS), input: input.inputs, dimensions: input.dimensions })!;
  // The envelope, written out in its sorted key order (what canonical() would
  // make of it, without building the object): this is on every request's path.
  // The operation is part of it, so a chat and an embeddings request never
  // share a key even if their bodies serialised alike.
  return `{"model":${JSON.stringify(input.model)},"operation":${JSON.stringify(input.operation)},"request":${request},` +
    `"scope":${JSON.stringify(subject(input.scope, input.principal))},"v":${JSON.stringify(KEY_VERSION)}}`;
}

/**
 * Who may share answers. The scope's name is part of the subject, so user id
 * "x" under `user` and key id "x" under `key` are different subjects, and
 * `global` (one subject for everyone) never meets either.
 */
function subject(scope: CacheScope, principal: CachePrincipal): string {
  switch (scope) {
    case "user": return `user:${principal.userId}`;
    case "key": return `key:${principal.keyId}`;
    case "global": return "global";
    // A scope from bad configuration must never fall through to sharing.
    default: throw new Error(`unknown cache scope ${JSON.stringify(scope)}`);
  }
}

function without(body: Readonly<Record<string, unknown>>, excluded: ReadonlySet<string>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(body)) if (!excluded.has(name)) kept[name] = value;
  return kept;
}

/**
 * JSON.stringify's output with every object's keys sorted (by UTF-16 code
 * units, as Array.prototype.sort does), recursively, so key order does not
 * matter; arrays keep their order, because in messages and tools it does.
 * Otherwise exactly JSON's rules, so a body that went through JSON (every
 * door's did) keys the same as the object it was parsed into: undefined,
 * functions and symbols are dropped from objects and become null in arrays,
 * numbers are written as JSON writes them (1.0 is 1, NaN and ±Infinity null),
 * toJSON() is honoured, and a bigint throws as JSON.stringify would (no door
 * produces one). undefined is returned only for a value JSON would drop.
 */
export function canonical(value: unknown): string | undefined {
  // Written with string concatenation, not arrays joined: this runs on every
  // request the cache sees, and is a third of what a miss costs it.
  switch (typeof value) {
    case "string":
    case "number":
    case "boolean":
    case "bigint":
      return JSON.stringify(value);
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
  }
  if (value === null) return "null";
  const object = value as { toJSON?: unknown };
  if (typeof object.toJSON === "function") return canonical((object.toJSON as () => unknown)());
  if (Array.isArray(value)) {
    let text = "[";
    for (let i = 0; i < value.length; i++) {
      if (i > 0) text += ",";
      text += canonical(value[i]) ?? "null";
    }
    return text + "]";
  }
  return canonicalObject(value as Record<string, unknown>);
}

/**
 * An object's canonical text, leaving out the `excluded` names: for the chat
 * body that is key.ts's exclusions, applied while writing rather than on a
 * copy. There, `stop: "x"` is written as `stop: ["x"]` (OpenAI reads them
 * alike, and the RPC doors can only send the list), so the two share an entry.
 */
function canonicalObject(value: Readonly<Record<string, unknown>>, excluded?: ReadonlySet<string>): string {
  const names = Object.keys(value);
  // Most objects are small and many already in order: sorted only when not.
  for (let i = 1; i < names.length; i++) {
    if (names[i - 1]! > names[i]!) {
      names.sort();
      break;
    }
  }
  let text = "{";
  for (const name of names) {
    if (excluded?.has(name)) continue;
    const field = value[name];
    const member = excluded && name === "stop" && typeof field === "string" ? canonical([field]) : canonical(field);
    if (member === undefined) continue;
    if (text.length > 1) text += ",";
    text += JSON.stringify(name) + ":" + member;
  }
  return text + "}";
}
