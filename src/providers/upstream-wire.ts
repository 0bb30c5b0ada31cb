import type { ChatCompletion, ChatCompletionChunk } from "openai/resources/chat/completions";
import { GatewayError } from "../errors.js";
import type { Redact } from "./redact.js";
import { upstreamMessage } from "./upstream-errors.js";

/**
 * What crosses the wire to an upstream, checked at the wire: the headers we
 * are configured to send, and the shape of what comes back. Whatever the
 * upstream sends that the gateway cannot use is the upstream's failure
 * (retryable), never a crash further in that would be blamed on us.
 */

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Visible ASCII, tab, space and Latin-1: what a header value may hold (no CR, LF or NUL). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Why a configured header could not be sent, naming it but never its value
 * (it may be a credential); undefined when all can. Checked once, when the
 * client is built, so a bad header stops the provider loading instead of
 * failing every request inside the gateway.
 */
export function headerProblem(headers: Readonly<Record<string, string>>): string | undefined {
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name)) return `header name '${name.replace(/[^\x20-\x7e]/g, "?")}' is not a valid HTTP token`;
    if (!FIELD_VALUE.test(value)) return `the value of header '${name}' holds a character HTTP does not allow (a line break, NUL or non-Latin-1)`;
  }
  return undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function objectsOnly(list: unknown[]): boolean {
  for (const item of list) if (!isObject(item)) return false;
  return true;
}

const notACompletion = (name: string) =>
  new GatewayError("upstream_error", `${name} answered with something that is not a chat completion`, { retryable: true });

/** A body as JSON; undefined if it is not JSON at all. */
async function jsonBody(response: Response): Promise<unknown> {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** An error sent with a 200 (`{"error": {"message": ...}}`), with the upstream's words, redacted. */
function errorShaped(body: unknown, name: string, redact: Redact): GatewayError | undefined {
  if (!isObject(body) || !isObject(body.error)) return undefined;
  return new GatewayError("upstream_error", `${name} answered 200 with an error: ${upstreamMessage(body.error, redact)}`, { retryable: true });
}

/**
 * A 200's body as a chat completion. Read here rather than by the SDK, so
 * the first-byte timer can stop at the headers; an unparsable or misshapen
 * body (an HTML page from a proxy, a JSON error sent with 200) is the
 * upstream's failure.
 */
export async function readCompletion(response: Response, name: string, redact: Redact): Promise<ChatCompletion> {
  const body = await jsonBody(response);
  if (isObject(body) && Array.isArray(body.choices) && objectsOnly(body.choices)) return body as unknown as ChatCompletion;
  throw errorShaped(body, name, redact) ?? notACompletion(name);
}

/** An embeddings answer as the gateway reads it: OpenAI's, with only what it uses checked. */
export interface UpstreamEmbeddings {
  readonly data: ReadonlyArray<{ readonly index: number; readonly embedding: readonly number[] }>;
  readonly model?: string;
  /** Absent when the upstream sent none; the counts are checked where usage is trusted (core/usage.ts). */
  readonly usage?: { readonly prompt_tokens?: unknown; readonly total_tokens?: unknown };
}

function isVector(v: unknown): v is number[] {
  if (!Array.isArray(v) || v.length === 0) return false;
  for (const x of v) if (typeof x !== "number" || !Number.isFinite(x)) return false;
  return true;
}

/**
 * A 200's body as embeddings: a `data` array of objects, each with an
 * integer `index` and a non-empty `embedding` of finite numbers (floats were
 * asked for, so a base64 string is malformed too). Anything else is the
 * upstream's failure, never a crash further in.
 */
export async function readEmbeddings(response: Response, name: string, redact: Redact): Promise<UpstreamEmbeddings> {
  const body = await jsonBody(response);
  if (isObject(body) && Array.isArray(body.data) && (body.usage === undefined || body.usage === null || isObject(body.usage))) {
    const items = body.data as unknown[];
    if (items.every((d) => isObject(d) && Number.isInteger(d.index) && isVector(d.embedding))) {
      return {
        data: items as UpstreamEmbeddings["data"],
        ...(typeof body.model === "string" ? { model: body.model } : {}),
        ...(isObject(body.usage) ? { usage: body.usage } : {}),
      };
    }
  }
  throw errorShaped(body, name, redact) ?? new GatewayError("upstream_error", `${name} answered with something that is not a list of embeddings`, { retryable: true });
}

/**
 * A stream was asked for and a 200 came back as JSON, which no event stream
 * is: typically an error sent with 200. Without this the SDK would find no
 * events in it and the stream would merely seem cut short, after failover.
 */
export async function refuseJsonStream(response: Response, name: string, redact: Redact): Promise<void> {
  if (!response.headers.get("content-type")?.includes("application/json")) return;
  const body = await jsonBody(response);
  throw errorShaped(body, name, redact) ?? new GatewayError("upstream_error", `${name} answered with JSON where an event stream was asked for`, { retryable: true });
}

/** A choice's delta, if any, is an object, and its tool calls, if any, an array of objects. */
function readableChoices(choices: unknown[]): boolean {
  for (const c of choices) {
    if (!isObject(c)) return false;
    const d = c.delta;
    if (d === undefined || d === null) continue;
    if (!isObject(d)) return false;
    const calls = d.tool_calls;
    if (calls !== undefined && calls !== null && !(Array.isArray(calls) && objectsOnly(calls))) return false;
  }
  return true;
}

/**
 * A stream event the gateway can read: an object whose choices (maybe none,
 * on the usage chunk) are objects, with what the core reads of each delta
 * in the shape it reads it.
 */
export function checkChunk(chunk: unknown, name: string): ChatCompletionChunk {
  if (isObject(chunk) && Array.isArray(chunk.choices) && readableChoices(chunk.choices)) return chunk as unknown as ChatCompletionChunk;
  throw new GatewayError("upstream_error", `${name} sent a malformed stream event`, { retryable: true });
}
