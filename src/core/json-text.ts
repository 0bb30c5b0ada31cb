/**
 * One JSON text for an answer object that two parts serialise: on a cache
 * miss the codec stores the completion (cache/codec.ts) and the shim then
 * sends the very same object (server/openai-shim.ts), two identical
 * JSON.stringify calls on every miss's path. The first leaves its text on the
 * object (under a symbol, not enumerable: JSON.stringify, spreads and comparisons ignore it), the
 * second reads it. Only for objects nothing changes once serialised: a
 * completion the core has finished.
 */
const TEXT = Symbol("gatewayz.jsonText");

type WithText = { [TEXT]?: string };

/** JSON.stringify(value), kept on the object for jsonText() to reuse. */
export function keptJsonText(value: object): string {
  const kept = (value as WithText)[TEXT];
  if (kept !== undefined) return kept;
  const text = JSON.stringify(value);
  // Not enumerable: the object still compares and copies as the answer it is.
  Object.defineProperty(value, TEXT, { value: text });
  return text;
}

/** JSON.stringify(value), or the text keptJsonText() left on it. */
export function jsonText(value: object): string {
  return (value as WithText)[TEXT] ?? JSON.stringify(value);
}
