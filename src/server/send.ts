import type { Writable } from "node:stream";
import { GatewayError } from "../errors.js";
import type { Res } from "./http-io.js";
import type { RequestScope } from "./requests.js";

/**
 * Writes one chunk of an answer with backpressure, the same way on every
 * door: when the client's buffers are full it waits for 'drain', but never
 * for a client that has gone (the scope's signal aborts on close, and that
 * abort is latched, so a close that happened before the wait still counts)
 * nor for longer than `timeoutMs` without progress (then the client is
 * treated as gone and its connection cut). Memory per stalled stream is
 * bounded by the socket's buffers, since nothing is pulled from the upstream
 * while this waits. Returns nothing when there is no need to wait.
 */
export function sendChunk(res: Res, data: string | Uint8Array, scope: RequestScope, timeoutMs: number): Promise<void> | void {
  if (scope.signal.aborted) throw scope.signal.reason;
  const out = res as unknown as Writable;
  if (out.destroyed || out.writableEnded) throw new GatewayError("cancelled", "the client closed the connection");
  if (out.write(data)) return;
  return new Promise<void>((resolve, reject) => {
    const finish = () => {
      clearTimeout(timer);
      out.off("drain", onDrain);
      scope.signal.removeEventListener("abort", onAbort);
    };
    const onDrain = () => {
      finish();
      resolve();
    };
    const onAbort = () => {
      finish();
      reject(scope.signal.reason);
    };
    const timer = setTimeout(() => {
      scope.abort(new GatewayError("cancelled", `the client took none of the answer for ${timeoutMs} ms`));
      out.destroy();
    }, timeoutMs);
    out.on("drain", onDrain);
    scope.signal.addEventListener("abort", onAbort);
  });
}

/** Ends a response unless the client has already gone. */
export function endIfOpen(res: Res, data?: string | Uint8Array): void {
  const out = res as unknown as Writable;
  if (out.destroyed || out.writableEnded) return;
  if (data === undefined) out.end();
  else out.end(data);
}
