import type http from "node:http";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import { encodeTextChunk, TEXT_CONTENT_TYPE } from "./grpc-web-text.js";
import { nodeHeaders } from "./grpc-message.js";
import type { Res } from "./http-io.js";
import type { RequestScope } from "./requests.js";
import type { RpcWire } from "./rpc-errors.js";
import { endIfOpen, sendChunk } from "./send.js";

/**
 * Writes Connect's answer to the Node response. Headers go out after the
 * first chunk (or the end), so the handler can still set them; every chunk
 * goes through sendChunk, which waits for a slow client but never for one
 * that has gone or has stalled past SEND_TIMEOUT_MS. When writing fails, the
 * body's iterator is thrown into, so the handler's generator finishes (its
 * `finally` runs: the upstream is aborted and the usage row written).
 */
export async function writeRpcResponse(uRes: UniversalServerResponse, res: Res, wire: RpcWire, scope: RequestScope, sendTimeoutMs: number): Promise<void> {
  const out = res as http.ServerResponse;
  const grpc = wire === "grpc";
  const text = wire === "grpc-web-text";
  const head = () => {
    const headers = uRes.header ? nodeHeaders(uRes.header, grpc) : {};
    if (text) headers["content-type"] = TEXT_CONTENT_TYPE;
    out.writeHead(uRes.status, headers);
  };
  const it = (uRes.body as AsyncIterable<Uint8Array> | undefined)?.[Symbol.asyncIterator]();
  try {
    if (it) {
      let chunk = await it.next();
      head();
      for (; !chunk.done; chunk = await it.next()) {
        try {
          const wait = sendChunk(out, text ? encodeTextChunk(chunk.value) : chunk.value, scope, sendTimeoutMs);
          if (wait) await wait;
        } catch (err) {
          await it.throw?.(err).catch(() => undefined);
          throw err;
        }
      }
    } else {
      head();
    }
    if (uRes.trailer) out.addTrailers(nodeHeaders(uRes.trailer, grpc));
    endIfOpen(out);
  } finally {
    await it?.return?.(undefined).catch(() => undefined);
  }
}
