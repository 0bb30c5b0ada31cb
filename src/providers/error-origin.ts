/**
 * Which side of the wire an error came from. Every network error carries a
 * code (a system errno, undici's UND_ERR_*, the HTTP parser's HPE_*, a TLS
 * verdict) or is undici's "terminated" body; an error raised while building
 * the request carries a local code or is a plain programming error. The
 * difference decides whether a provider is blamed for it.
 */

/**
 * Codes of errors raised by our side of the request before it was sent:
 * invalid arguments and headers (undici's and Node's), not the network.
 */
const LOCAL_CODES = new Set(["UND_ERR_INVALID_ARG", "UND_ERR_NOT_SUPPORTED", "UND_ERR_INVALID_RETURN_VALUE", "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH", "ERR_OUT_OF_RANGE", "ERR_MISSING_ARGS"]);
const LOCAL_PREFIXES = ["ERR_INVALID_", "ERR_HTTP_INVALID_"];
/** System, undici, HTTP-parser and TLS codes: what the network and the upstream do. */
const NETWORK_CODE = /^(E[A-Z0-9_]+|UND_ERR_[A-Z_]+|HPE_[A-Z_]+|[A-Z_]*CERT[A-Z_]*|UNABLE_TO_[A-Z_]+)$/;

function codeOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

const isLocalCode = (code: string) => LOCAL_CODES.has(code) || LOCAL_PREFIXES.some((p) => code.startsWith(p));

/**
 * Whether an error (or one of its causes) was raised on our side before the
 * request went out: a local code, or a programming error (TypeError,
 * RangeError...) that carries no code at all, as every network error does.
 */
export function isLocal(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 6; depth++) {
    const code = codeOf(e);
    if (code !== undefined) return isLocalCode(code);
    if (e instanceof Error && (e.message === "terminated" || e.message === "other side closed")) return false;
    const next = (e as { cause?: unknown }).cause;
    if (!next) return e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError;
    e = next;
  }
  return false;
}

/** The system or undici error code (ECONNREFUSED, ENOTFOUND, UND_ERR_CONNECT_TIMEOUT...) behind a failure; undefined if it is not a network one. */
export function networkCause(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 6; depth++) {
    const code = codeOf(e);
    if (code === "UND_ERR_SOCKET") return "connection closed";
    if (code !== undefined && !isLocalCode(code) && NETWORK_CODE.test(code)) return code;
    // undici's body stream, cut off mid-read.
    if (e instanceof Error && (e.message === "terminated" || e.message === "other side closed")) return "connection closed";
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
