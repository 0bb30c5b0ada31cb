import type { DescMethod } from "@bufbuild/protobuf";
import { createConnectRouter, createContextValues, type ConnectRouter, type ConnectRouterOptions, type ContextValues } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { principalKey, telemetryKey } from "./context.js";
import type { AuthGate } from "./auth-gate.js";
import { asGatewayError } from "../errors.js";
import type { KeyKind } from "../storage/keys.js";
import { BINARY_CONTENT_TYPE, decodeTextBody } from "./grpc-web-text.js";
import { stopUnreadBody, type Req, type Res } from "./http-io.js";
import type { RequestScope } from "./requests.js";
import { rpcWireOf, sendRpcError, type RpcWire } from "./rpc-errors.js";
import { writeRpcResponse } from "./rpc-response.js";

export interface RpcAdapterOptions extends ConnectRouterOptions {
  routes(router: ConnectRouter): void;
  /** Services whose every method needs a key, and of which kind. */
  keyed: Readonly<Record<string, KeyKind>>;
  gate: AuthGate;
  sendTimeoutMs: number;
  /**
   * Told of a request the gate refused, before the refusal is sent: what it
   * returns (a usage row's commit) is awaited first, so the answer follows it.
   */
  refusedAtDoor?(req: Req, wire: RpcWire, method: DescMethod, err: unknown): Promise<void> | undefined;
  /**
   * Sees each answer before it is written, and may replace it: Connect
   * answers an unreadable unary request before any interceptor runs
   * (server/rpc-unary-refusal.ts). What it returns is awaited first.
   */
  answering?(req: Req, wire: RpcWire, method: DescMethod, values: ContextValues, answer: UniversalServerResponse): Promise<UniversalServerResponse> | undefined;
}

export interface RpcAdapter {
  /** Serves the request if its path is one of the router's methods (settling when it is done); false otherwise. */
  serve(req: Req, res: Res, scope: RequestScope): Promise<void> | false;
  /** The RPC wire of a request for one of the router's methods (Connect unary has no telltale content type). */
  wireOf(req: Req): RpcWire | undefined;
}

// setTimeout (Connect's deadline timer) fires at once for delays past 2^31-1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1;
const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * The RPC doors (gRPC, gRPC-Web in both modes, Connect) on Connect's
 * router, with the Node glue written here rather than taken from
 * connect-node's adapter, because the gateway needs what that glue does not
 * do: check the key from the headers before the body is read (the principal
 * then travels as a context value), serve gRPC-Web's text mode, read
 * over-long deadlines as none, take the request's lifetime (client gone,
 * drain deadline) from its RequestScope, and write answers with
 * backpressure that notices a client that has gone (src/server/send.ts).
 */
export function createRpcAdapter(options: RpcAdapterOptions): RpcAdapter {
  const router = createConnectRouter(options);
  options.routes(router);
  const paths = new Map<string, UniversalHandler>();
  for (const h of router.handlers) paths.set(h.requestPath, h);

  const handlerOf = (req: Req) => paths.get((req.url ?? "").split("?", 1)[0]!);
  return {
    wireOf(req) {
      return rpcWireOf(req.headers["content-type"]) ?? (handlerOf(req) ? "connect" : undefined);
    },
    serve(req, res, scope) {
      const handler = handlerOf(req);
      if (!handler) return false;
      const wire = rpcWireOf(req.headers["content-type"]) ?? "connect";
      const values = createContextValues();
      values.set(telemetryKey, scope.telemetry);
      const need = options.keyed[handler.service.typeName];
      if (need) {
        try {
          values.set(principalKey, options.gate.check(req, need));
        } catch (err) {
          stopUnreadBody(req, res);
          const refuse = () => sendRpcError(req, res, wire, asGatewayError(err));
          const recorded = options.refusedAtDoor?.(req, wire, handler.method, err);
          if (recorded) return recorded.then(refuse, refuse);
          refuse();
          return Promise.resolve();
        }
      }
      clampDeadlines(req);
      return handler(universalRequest(req, wire, scope, values))
        .then((uRes) => options.answering?.(req, wire, handler.method, values, uRes) ?? uRes)
        .then((uRes) => writeRpcResponse(uRes, res, wire, scope, options.sendTimeoutMs))
        .catch(() => {
          // The client went away or the answer could not be written: the
          // handler has been told (its signal aborted), nothing is left to say.
          if (!res.writableEnded) res.destroy();
        });
    },
  };
}

function universalRequest(req: Req, wire: RpcWire, scope: RequestScope, contextValues: ReturnType<typeof createContextValues>): UniversalServerRequest {
  const header = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) header.append(name, v);
    else header.set(name, value);
  }
  const text = wire === "grpc-web-text";
  if (text) header.set("content-type", BINARY_CONTENT_TYPE);
  const authority = ("authority" in req ? req.authority : undefined) ?? req.headers.host ?? "localhost";
  return {
    httpVersion: req.httpVersion,
    method: req.method ?? "",
    url: `http://${authority}${req.url ?? "/"}`,
    header,
    body: text ? decodeTextBody(req as AsyncIterable<Buffer>) : (req as AsyncIterable<Uint8Array>),
    signal: scope.signal,
    contextValues,
  };
}

/**
 * A deadline beyond what a timer can hold (`grpc-timeout: 597H`,
 * `connect-timeout-ms: 9999999999`) means "wait as long as it takes":
 * read it as no deadline rather than one that expires at once.
 */
function clampDeadlines(req: Req): void {
  const grpc = req.headers["grpc-timeout"];
  if (typeof grpc === "string") {
    const m = GRPC_TIMEOUT.exec(grpc);
    if (m && Number(m[1]) * UNIT_MS[m[2]!]! > MAX_TIMER_MS) delete req.headers["grpc-timeout"];
  }
  const connect = req.headers["connect-timeout-ms"];
  if (typeof connect === "string" && /^\d{1,10}$/.test(connect) && Number(connect) > MAX_TIMER_MS) {
    delete req.headers["connect-timeout-ms"];
  }
}
