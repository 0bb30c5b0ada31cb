import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import { createAsyncIterable, encodeEnvelope, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeFromHttpStatus, codeToHttpStatus, errorFromJsonBytes, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import type { RpcWire } from "./rpc-errors.js";

/**
 * Connect decodes a unary request before any interceptor or service code
 * runs, so a unary call whose message cannot be read (it does not decode, it
 * has an unknown JSON field, it is over MAX_BODY_BYTES) is answered by the
 * framework alone. A service that must see such refusals (Embed leaves a
 * usage row for every call) marks the calls it reached with this key; for
 * the others the answer's error is read back here, and may be rewritten.
 */
export const serviceReachedKey = createContextKey<boolean>(false, { description: "gatewayz: the service saw the request" });

/**
 * The error a unary answer carries (undefined if it carries none, or one in
 * a shape not read here, such as a compressed gRPC-Web trailer), with the
 * answer itself, its body read and put back.
 */
export async function unaryError(uRes: UniversalServerResponse, wire: RpcWire): Promise<{ error: ConnectError | undefined; response: UniversalServerResponse }> {
  const chunks: Uint8Array[] = [];
  if (uRes.body) for await (const chunk of uRes.body as AsyncIterable<Uint8Array>) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  const response = { ...uRes, body: createAsyncIterable([new Uint8Array(bytes)]) };
  switch (wire) {
    case "grpc":
      return { error: uRes.trailer ? findTrailerError(uRes.trailer) : undefined, response };
    case "grpc-web":
    case "grpc-web-text":
      return { error: grpcWebTrailerError(bytes), response };
    case "connect": {
      if (uRes.status === 200) return { error: undefined, response };
      const fallback = new ConnectError("the request could not be read", codeFromHttpStatus(uRes.status));
      return { error: errorFromJsonBytes(new Uint8Array(bytes), undefined, fallback), response };
    }
    case "connect-stream":
      return { error: undefined, response };
  }
}

/** The status in a gRPC-Web body's uncompressed trailer frame (flag 0x80). */
function grpcWebTrailerError(bytes: Buffer): ConnectError | undefined {
  for (let at = 0; at + 5 <= bytes.length;) {
    const flags = bytes[at]!;
    const length = bytes.readUInt32BE(at + 1);
    if (flags === trailerFlag) return findTrailerError(trailerParse(bytes.subarray(at + 5, at + 5 + length)));
    at += 5 + length;
  }
  return undefined;
}

/** The same answer with `error` in place of the one it carried, in the wire's own shape. */
export function withError(response: UniversalServerResponse, wire: RpcWire, error: ConnectError): UniversalServerResponse {
  switch (wire) {
    case "grpc":
      return { ...response, trailer: setTrailerStatus(new Headers(), error) };
    case "grpc-web":
    case "grpc-web-text":
      return { ...response, body: createAsyncIterable([encodeEnvelope(trailerFlag, trailerSerialize(setTrailerStatus(new Headers(), error)))]) };
    case "connect": {
      const body = errorToJsonBytes(error, {});
      const header = new Headers(response.header);
      header.set("content-length", String(body.byteLength));
      return { ...response, status: codeToHttpStatus(error.code), header, body: createAsyncIterable([body]) };
    }
    case "connect-stream":
      return response;
  }
}

/** An answer's error, or, when it could not be read, a refusal of the request as unreadable. */
export function refusalOf(error: ConnectError | undefined): ConnectError {
  return error ?? new ConnectError("the request message could not be read", Code.InvalidArgument);
}
