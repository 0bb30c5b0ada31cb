import http from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import type { ServerLimits } from "../config.js";
import { watchSessions } from "./h2-sessions.js";
import type { Req } from "./http-io.js";

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export interface Listener {
  listen(port: number, host: string): Promise<AddressInfo>;
  /**
   * The start of a drain: the port stops accepting, HTTP/2 sessions get
   * GOAWAY (their open streams run on), and from now on every HTTP/1 answer
   * closes its connection.
   */
  stopAccepting(): void;
  readonly draining: boolean;
  /** Closes HTTP/1 connections with no request in progress. */
  closeIdle(): void;
  /** Whether the request came on a connection over MAX_CONNECTIONS: it is answered with a refusal. */
  overCapacity(req: Req): boolean;
  /** Open client connections. */
  readonly connections: number;
  /** Destroys every connection left. */
  close(): Promise<void>;
}

// RFC 9113 §3.4: an HTTP/2 prior-knowledge client opens with this preface.
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
// Four bytes separate "PRI " from every HTTP/1 method ("P" also starts POST, PUT, PATCH).
const SNIFF_BYTES = 4;
/** Connections past the cap are refused politely, up to this many at once; beyond, they are cut at once. */
const REFUSAL_SLOTS = 64;
/** A refused connection gets this long to send the request its refusal answers. */
const REFUSAL_MS = 2_000;

/**
 * One TCP port for HTTP/1.1 and cleartext HTTP/2. Node 20's
 * `http2.createServer({ allowHTTP1 })` falls back to HTTP/1 only under TLS,
 * so each connection's first bytes are read here, put back, and the socket is
 * handed to the HTTP/2 or the HTTP/1 server; both run the same handler.
 *
 * Every phase a client controls is bounded (config `server`): the first
 * bytes and the headers (HEADERS_TIMEOUT_MS), the whole request
 * (REQUEST_TIMEOUT_MS), an idle keep-alive connection (KEEP_ALIVE_TIMEOUT_MS),
 * an idle HTTP/2 session (HTTP2_IDLE_TIMEOUT_MS), and the number of open
 * connections (MAX_CONNECTIONS, past which a connection gets a refusal in its
 * own protocol and is closed).
 */
export function createListener(handler: RequestHandler, limits: ServerLimits): Listener {
  const headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  const h1 = http.createServer({
    headersTimeout, requestTimeout: limits.requestTimeoutMs, keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Node checks the two timeouts above on this interval; its 30 s default would let a slow client run 30 s over.
    connectionsCheckingInterval: Math.min(1_000, headersTimeout),
  }, handler as http.RequestListener);
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: limits.http2MaxStreams } },
    handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  const sockets = new Set<net.Socket>();
  const refused = new WeakSet<object>();
  let refuseNextSession = false;
  const sessions = watchSessions(h2, limits, (session) => {
    if (!refuseNextSession) return;
    refuseNextSession = false;
    refused.add(session);
  });
  let draining = false;

  const tcp = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    if (draining || sockets.size > limits.maxConnections + REFUSAL_SLOTS) {
      socket.destroy();
      return;
    }
    const refuse = sockets.size > limits.maxConnections;
    // Until the first bytes arrive, the socket is ours to time out; the
    // servers take over once it is handed to them.
    socket.setTimeout(refuse ? REFUSAL_MS : headersTimeout, () => socket.destroy());
    let head: Buffer = Buffer.alloc(0);
    const onData = (data: Buffer) => {
      head = head.length ? Buffer.concat([head, data]) : data;
      const n = Math.min(head.length, SNIFF_BYTES);
      const isH2 = head.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (isH2 && head.length < SNIFF_BYTES) return; // not enough to tell yet
      socket.removeListener("data", onData);
      socket.pause();
      socket.unshift(head);
      if (refuse) {
        // The refusal is an answer in the client's own protocol (a 503, or
        // UNAVAILABLE), so it needs the request; the timer still bounds it.
        socket.setTimeout(REFUSAL_MS, () => socket.destroy());
      } else {
        socket.setTimeout(0);
      }
      if (isH2) {
        refuseNextSession = refuse;
        // http2 reads the paused stream itself; resuming here would lose the preface.
        h2.emit("connection", socket);
        refuseNextSession = false;
      } else {
        if (refuse) refused.add(socket);
        // The HTTP/1 parser reads the socket's handle directly once attached;
        // resuming delivers the bytes we put back through its data listener.
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  });

  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen(port, host, () => {
          tcp.removeListener("error", reject);
          // The HTTP/1 server never listens itself (it is handed sockets), and
          // Node starts enforcing headersTimeout and requestTimeout only on its
          // 'listening' event: without this, neither would ever fire.
          h1.emit("listening");
          resolve(tcp.address() as AddressInfo);
        });
      });
    },
    stopAccepting() {
      if (draining) return;
      draining = true;
      tcp.close();
      sessions.closeAll();
    },
    get draining() {
      return draining;
    },
    closeIdle: () => h1.closeIdleConnections(),
    overCapacity(req) {
      return "stream" in req ? refused.has(req.stream.session ?? req) : refused.has(req.socket);
    },
    get connections() {
      return sockets.size;
    },
    async close() {
      const closed = new Promise<void>((resolve) => (tcp.listening ? tcp.close(() => resolve()) : resolve()));
      draining = true;
      sessions.destroyAll();
      for (const s of sockets) s.destroy();
      // Stops Node's timeout checks for the HTTP/1 server; it was never listening, so ignore that complaint.
      h1.close(() => {});
      await closed;
    },
  };
}
