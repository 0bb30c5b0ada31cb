import { file_gatewayz_v1_admin } from "../../gen/gatewayz/v1/admin_pb.js";
import { file_gatewayz_v1_gateway } from "../../gen/gatewayz/v1/gateway_pb.js";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.js";
import { file_grpc_reflection_v1_reflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import type { Config } from "../config.js";
import type { Accounts } from "../core/accounts.js";
import type { Authenticator } from "../core/auth.js";
import type { Breakers } from "../core/circuit-breaker.js";
import type { Gateway } from "../core/gateway.js";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import type { ProviderSet } from "../providers/provider-set.js";
import { registerAdminService } from "./admin-service.js";
import { createAuthGate, type AuthGate } from "./auth-gate.js";
import { meterRefusedChats, registerGatewayService } from "./connect-service.js";
import { createCors } from "./cors.js";
import { createHealth } from "./health.js";
import { sendError, sendJson, stopUnreadBody, type Req, type Res } from "./http-io.js";
import type { Listener, RequestHandler } from "./listener.js";
import { createOpenAIShim } from "./openai-shim.js";
import type { Readiness } from "./readiness.js";
import { registerReflection } from "./reflection.js";
import type { Requests } from "./requests.js";
import { createRpcAdapter } from "./rpc-adapter.js";
import { rpcWireOf, sendRpcError, type RpcWire } from "./rpc-errors.js";

export interface HandlerDeps {
  config: Config;
  gateway: Gateway;
  providers: ProviderSet;
  breakers: Breakers;
  log: Logger;
  accounts: Accounts;
  auth: Authenticator;
  /** The connections the requests arrive on (drain state, the connection cap). */
  connections: Pick<Listener, "draining" | "overCapacity">;
  requests: Requests;
  readiness: Readiness;
}

export interface Handler {
  readonly handle: RequestHandler;
  readonly gate: AuthGate;
  /** A drain has begun: health watches end once they have said NOT_SERVING. */
  draining(): void;
}

const SERVICES = ["gatewayz.v1.GatewayService", "gatewayz.v1.AdminService"];

/**
 * The one request handler behind the port: every request is tracked (its
 * lifetime is a RequestScope), CORS first (preflights stop there), then
 * `/healthz`, then the RPC services; what is not an RPC method goes to the
 * OpenAI shim, except gRPC calls of unknown methods, which get UNIMPLEMENTED.
 */
export function createRequestHandler(deps: HandlerDeps): Handler {
  const { config, gateway, providers, breakers, log, accounts, auth, connections, requests, readiness } = deps;
  const limits = config.server;
  const cors = createCors(config.corsOrigins);
  const health = createHealth(SERVICES);
  readiness.onChange((ready) => health.setAll(ready ? "SERVING" : "NOT_SERVING"));
  const gate = createAuthGate(auth, limits.authFailuresPerMinute, log);
  const shim = createOpenAIShim(gateway, gate, { maxBodyBytes: config.maxBodyBytes, maxJsonDepth: limits.maxJsonDepth, sendTimeoutMs: limits.sendTimeoutMs }, log);
  const rpc = createRpcAdapter({
    routes(router) {
      registerGatewayService(router, gateway, log);
      registerAdminService(router, { accounts, auth });
      health.register(router);
      registerReflection(router, [file_gatewayz_v1_gateway, file_gatewayz_v1_admin, file_grpc_health_v1_health, file_grpc_reflection_v1_reflection]);
    },
    keyed: { "gatewayz.v1.GatewayService": "client", "gatewayz.v1.AdminService": "admin" },
    gate,
    sendTimeoutMs: limits.sendTimeoutMs,
    readMaxBytes: config.maxBodyBytes,
    // A misspelt field ("max_token") must fail loudly, not be dropped; provider
    // extras have their own field, extra_body.
    jsonOptions: { ignoreUnknownFields: false },
    interceptors: [meterRefusedChats(gateway)],
  });
  const healthz = (res: Res) => sendJson(res, readiness.ready ? 200 : 503, {
    status: readiness.ready ? "ok" : readiness.reasons[0],
    // "not_configured", or the circuit state: "closed" (healthy), "open" (cooling down), "half_open".
    providers: Object.fromEntries(providers.configs.map((p) => [p.row.id, p.problem ? "not_configured" : breakers.state(p.row.id)])),
  });

  const handle = (req: Req, res: Res) => {
    const scope = requests.start(res);
    // During a drain every HTTP/1 answer closes its connection (HTTP/2 sessions have had GOAWAY).
    if (connections.draining && !("stream" in req)) res.setHeader("connection", "close");
    if (cors(req, res)) return;
    const url = req.url ?? "/";
    if ((url === "/healthz" || url.startsWith("/healthz?")) && (req.method === "GET" || req.method === "HEAD")) {
      healthz(res);
      return;
    }
    if (requests.ending) {
      refuse(req, res, rpc.wireOf(req), new GatewayError("shutting_down", "the gateway is shutting down; retry on another instance"));
      return;
    }
    if (connections.overCapacity(req)) {
      refuse(req, res, rpc.wireOf(req), new GatewayError("too_many_connections", `the gateway has ${limits.maxConnections} connections open (MAX_CONNECTIONS); retry later`));
      return;
    }
    const rpcWork = rpc.serve(req, res, scope);
    if (rpcWork) {
      scope.hold(rpcWork);
      return;
    }
    const wire = rpcWireOf(req.headers["content-type"]);
    if (wire) {
      refuse(req, res, wire, new GatewayError("unimplemented", `unknown method ${url.split("?", 1)[0]}`));
      return;
    }
    scope.hold(shim(req, res, scope));
  };
  return { handle: handle as RequestHandler, gate, draining: () => health.endWatches() };
}

/** Answers without reading the body, in the request's own protocol, and closes what must close. */
function refuse(req: Req, res: Res, wire: RpcWire | undefined, err: GatewayError): void {
  stopUnreadBody(req, res);
  if (err.kind === "too_many_connections") {
    if ("stream" in req) res.once("finish", () => req.stream.session?.close());
    else res.setHeader("connection", "close");
  }
  if (wire) sendRpcError(req, res, wire, err);
  else sendError(res, err);
}
