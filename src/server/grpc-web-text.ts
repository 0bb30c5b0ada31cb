/**
 * gRPC-Web's text mode (`application/grpc-web-text`, the default of Google's
 * grpc-web client): the same frames as binary gRPC-Web, base64-encoded both
 * ways. Connect serves only the binary mode, so the gateway decodes the
 * request body and encodes the answer around it.
 * https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md
 */

/**
 * The request body as bytes. A client may send several base64 chunks, each
 * padded ("AAA=BBBB"), and Node's decoder stops at the first "=", so the
 * text is decoded in four-character groups wherever padding appears.
 */
export async function* decodeTextBody(body: AsyncIterable<Buffer | string>): AsyncGenerator<Uint8Array> {
  let pending = "";
  for await (const chunk of body) {
    pending += (typeof chunk === "string" ? chunk : chunk.toString("latin1")).replace(/\s+/g, "");
    const whole = pending.length - (pending.length % 4);
    if (whole === 0) continue;
    yield decode(pending.slice(0, whole));
    pending = pending.slice(whole);
  }
  if (pending.length) throw new Error("the grpc-web-text body is not valid base64");
}

function decode(text: string): Uint8Array {
  if (!text.includes("=")) return Buffer.from(text, "base64");
  const parts: Buffer[] = [];
  let from = 0;
  for (let at = text.indexOf("="); at >= 0; at = text.indexOf("=", from)) {
    const end = Math.min(text.length, at + 4 - (at % 4)); // the end of the padded group
    parts.push(Buffer.from(text.slice(from, end), "base64"));
    from = end;
  }
  if (from < text.length) parts.push(Buffer.from(text.slice(from), "base64"));
  return Buffer.concat(parts);
}

/**
 * Each frame of the answer is encoded on its own, padding included, as
 * Envoy's grpc_web filter does: the client decodes whole four-character
 * groups, so padding between frames is read correctly, and no byte of a
 * frame waits for the next one.
 */
export function encodeTextChunk(chunk: Uint8Array): string {
  return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString("base64");
}

export const TEXT_CONTENT_TYPE = "application/grpc-web-text+proto";
/** What Connect is told the request is: the binary mode of the same message encoding. */
export const BINARY_CONTENT_TYPE = "application/grpc-web+proto";
