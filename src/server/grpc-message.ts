/**
 * Response headers for Node from Connect's web Headers. For gRPC,
 * `grpc-message` is re-encoded: Connect writes it with encodeURIComponent,
 * escaping ":", "$", ";", "/" and more, while the gRPC spec asks to
 * percent-encode only "%" and bytes outside 0x20-0x7E, and grpc-js decodes
 * with decodeURI, which leaves "%3A" and friends escaped: its users would
 * read "rate limit reached%3A 5 requests...". Re-encoding minimally is
 * correct for every client. gRPC-Web carries its status in the body.
 * https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md#responses
 */
export function nodeHeaders(headers: Headers, grpc: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    out[name] = grpc && name === "grpc-message" ? reencode(value) : value;
  });
  return out;
}

function reencode(value: string): string {
  let text: string;
  try {
    text = decodeURIComponent(value);
  } catch {
    return value;
  }
  let out = "";
  for (const b of Buffer.from(text, "utf8")) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
