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

/**
 * A 200's body as a chat completion. Read here rather than by the SDK, so
 * the first-byte timer can stop at the headers; an unparsable or misshapen
 * body (an HTML page from a proxy, a JSON error sent with 200) is the
 * upstream's failure.
 */
export async function readCompletion(response: Response, name: string, redact: Redact): Promise<ChatCompletion> {
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw notACompletion(name);
  }
  if (isObject(body) && Array.isArray(body.choices) && objectsOnly(body.choices)) return body as unknown as ChatCompletion;
  if (isObject(body) && isObject(body.error)) {
    throw new GatewayError("upstream_error", `${name} answered 200 with an error: ${upstreamMessage(body.error, redact)}`, { retryable: true });
  }
  throw notACompletion(name);
}

/** A stream event the gateway can read: an object whose choices (maybe none, on the usage chunk) are objects. */
export function checkChunk(chunk: unknown, name: string): ChatCompletionChunk {
  if (isObject(chunk) && Array.isArray(chunk.choices) && objectsOnly(chunk.choices)) return chunk as unknown as ChatCompletionChunk;
  throw new GatewayError("upstream_error", `${name} sent a malformed stream event`, { retryable: true });
}
