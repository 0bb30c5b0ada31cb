import type http from "node:http";
import type { ConnectError } from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, endStreamFlag, endStreamToJson, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { nodeHeaders } from "./grpc-message.js";
import type { Req, Res } from "./http-io.js";

/** The RPC wire a request speaks, from its content type (and, for Connect, its path). */
export type RpcWire = "grpc" | "grpc-web" | "grpc-web-text" | "connect" | "connect-stream";

export function rpcWireOf(contentType: string | undefined): RpcWire | undefined {
  const type = contentType?.toLowerCase() ?? "";
  if (type.startsWith("application/grpc-web-text")) return "grpc-web-text";
  if (type.startsWith("application/grpc-web")) return "grpc-web";
  if (type.startsWith("application/grpc")) return "grpc";
  if (type.startsWith("application/connect+")) return "connect-stream";
  return undefined;
}

/**
 * Answers a request with an error before Connect has seen it (a key refused
 * before the body was read, an unknown method, a connection over the cap),
 * in the shape its client expects: gRPC trailers, a gRPC-Web trailer frame,
 * a Connect end-stream message, or a Connect unary error with its HTTP status.
 */
export function sendRpcError(req: Req, res: Res, wire: RpcWire, err: ConnectError): void {
  const out = res as http.ServerResponse;
  switch (wire) {
    case "grpc": {
      out.writeHead(200, { "content-type": "application/grpc+proto" });
      out.addTrailers(nodeHeaders(setTrailerStatus(new Headers(), err), true));
      out.end();
      return;
    }
    case "grpc-web":
    case "grpc-web-text": {
      const frame = encodeEnvelope(trailerFlag, trailerSerialize(setTrailerStatus(new Headers(), err)));
      const text = wire === "grpc-web-text";
      out.writeHead(200, { "content-type": text ? "application/grpc-web-text+proto" : "application/grpc-web+proto" });
      out.end(text ? Buffer.from(frame).toString("base64") : frame);
      return;
    }
    case "connect-stream": {
      const json = Buffer.from(JSON.stringify(endStreamToJson(new Headers(), err, {})));
      const type = req.headers["content-type"]?.toLowerCase().includes("proto") ? "application/connect+proto" : "application/connect+json";
      out.writeHead(200, { "content-type": type });
      out.end(encodeEnvelope(endStreamFlag, json));
      return;
    }
    case "connect": {
      const headers: Record<string, string> = { "content-type": "application/json" };
      err.metadata.forEach((value, name) => { headers[name] = value; });
      out.writeHead(codeToHttpStatus(err.code), headers);
      out.end(errorToJsonBytes(err, {}));
    }
  }
}
