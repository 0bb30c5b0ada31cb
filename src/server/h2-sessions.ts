import http2 from "node:http2";
import type { ServerLimits } from "../config.js";

export interface Sessions {
  /** GOAWAY to every session: open streams run to their end, new ones are refused. */
  closeAll(): void;
  destroyAll(): void;
}

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/**
 * Node's HTTP/2 server has no timeouts of its own, so they are kept here,
 * per session and per stream:
 * - a session must open its first stream within HEADERS_TIMEOUT_MS, and a
 *   session with no open stream is closed with GOAWAY after
 *   HTTP2_IDLE_TIMEOUT_MS (gRPC clients reconnect on their next call);
 * - a stream's request (headers and body) must have arrived within
 *   REQUEST_TIMEOUT_MS, or the stream is reset, as HTTP/1's requestTimeout does.
 */
export function watchSessions(h2: http2.Http2Server, limits: ServerLimits, onSession: (s: http2.ServerHttp2Session) => void): Sessions {
  const sessions = new Set<http2.ServerHttp2Session>();

  h2.on("session", (session) => {
    sessions.add(session);
    onSession(session);
    let open = 0;
    let idle: NodeJS.Timeout | undefined = setTimeout(() => session.close(), Math.min(limits.headersTimeoutMs, limits.http2IdleTimeoutMs));
    session.on("stream", (stream, _headers, flags) => {
      open++;
      clearTimeout(idle);
      idle = undefined;
      // A request whose headers carried END_STREAM has no body to wait for.
      const timer = (flags & NGHTTP2_FLAG_END_STREAM) === 0
        ? setTimeout(() => { if (!stream.readableEnded) stream.close(NGHTTP2_CANCEL); }, limits.requestTimeoutMs)
        : undefined;
      stream.once("end", () => clearTimeout(timer));
      stream.once("close", () => {
        clearTimeout(timer);
        if (--open === 0 && !session.closed) idle = setTimeout(() => session.close(), limits.http2IdleTimeoutMs);
      });
    });
    session.once("close", () => {
      clearTimeout(idle);
      sessions.delete(session);
    });
    // A session error (a protocol violation, a reset socket) ends that session only.
    session.on("error", () => session.destroy());
  });

  return {
    closeAll() {
      for (const s of sessions) s.close();
    },
    destroyAll() {
      for (const s of sessions) s.destroy();
    },
  };
}
