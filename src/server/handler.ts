import { file_gatewayz_v1_admin } from "../../gen/gatewayz/v1/admin_pb.js";
import { file_gatewayz_v1_gateway, GatewayService } from "../../gen/gatewayz/v1/gateway_pb.js";
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
import type { ResponseStore } from "../storage/responses.js";
import { registerAdminService } from "./admin-service.js";
import { createAuthGate, type AuthGate } from "./auth-gate.js";
import { meterRefusedChats, meterUnreadEmbeds, registerGatewayService } from "./connect-service.js";
import { createCors } from "./cors.js";
import { createHealth } from "./health.js";
import { sendError, stopUnreadBody, type Req, type Res } from "./http-io.js";
import type { Listener, RequestHandler } from "./listener.js";
import { createOpenAIShim } from "./openai-shim.js";
import { createProbes } from "./probes.js";
import { HEALTH_SERVICES, serviceStatuses, type Readiness } from "./readiness.js";
import { requestIdOf } from "../observe/request-id.js";
import type { RequestTelemetry } from "../observe/telemetry.js";
import { NO_TRACE, type Tracer } from "../observe/trace.js";
import { registerReflection } from "./reflection.js";
import { protocolOfWire, recordRevokedChat } from "./revoked-chats.js";
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
  /** Request spans; NO_TRACER unless OTEL_EXPORTER_OTLP_ENDPOINT is set. */
  tracer: Tracer;
  /** Stored Responses API responses (previous_response_id, GET /v1/responses/{id}). */
  responses: ResponseStore;
  /** `GET /metrics` on this port (server/metrics-route.ts); absent with METRICS=off or METRICS_PORT set. */
  metrics?: ((req: Req, res: Res) => boolean) | undefined;
}

export interface Handler {
  readonly handle: RequestHandler;
  readonly gate: AuthGate;
  /** A drain has begun: health watches end once they have said NOT_SERVING. */
  draining(): void;
}

/** Paths probed by load balancers and scrapers: their log lines are at debug. */
const PROBES = new Set(["/healthz", "/livez", "/readyz", "/metrics"]);

/**
 * The one request handler behind the port: every request is tracked (its
 * lifetime is a RequestScope), CORS first (preflights stop there), then
 * the probes (`/livez`, `/readyz`, `/healthz`), then the RPC services; what is not an RPC method goes to the
 * OpenAI shim, except gRPC calls of unknown methods, which get UNIMPLEMENTED.
 */
export function createRequestHandler(deps: HandlerDeps): Handler {
  const { config, gateway, providers, breakers, log, accounts, auth, connections, requests, readiness, tracer, responses } = deps;
  const limits = config.server;
  const cors = createCors(config.corsOrigins);
  const health = createHealth(HEALTH_SERVICES, { refresh: () => readiness.refresh() });
  // Each service follows the reasons that concern it (readiness.ts), from the start and on every change.
  const followReadiness = () => { for (const [service, status] of serviceStatuses(readiness.reasons)) health.setStatus(service, status); };
  followReadiness();
  readiness.onChange(followReadiness);
  const probes = createProbes({ readiness, providers, breakers });
  const gate = createAuthGate(auth, limits.authFailuresPerMinute, log);
  const shim = createOpenAIShim(gateway, gate, { maxBodyBytes: config.maxBodyBytes, maxJsonDepth: limits.maxJsonDepth, sendTimeoutMs: limits.sendTimeoutMs }, log, responses);
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
    answering: meterUnreadEmbeds(gateway),
    refusedAtDoor: (req, wire, method, err) => method === GatewayService.method.chat || method === GatewayService.method.embed
      ? recordRevokedChat(gateway, protocolOfWire(wire), req.headers.authorization, err, method === GatewayService.method.embed ? "embeddings" : "chat")
      : undefined,
  });

  /** The request's one log line (probes at debug: a load balancer's would drown the rest) and the end of its span. */
  const finished = (req: Req, res: Res, telemetry: RequestTelemetry, started: number) => {
    const path = (req.url ?? "/").split("?", 1)[0]!;
    const level = PROBES.has(path) ? "debug" : "info";
    const trace = telemetry.trace;
    if (!log.enabled(level) && !trace.recording) return;
    const wire = rpc.wireOf(req);
    const protocol = wire === "grpc-web-text" ? "grpc-web" : wire ?? (path.startsWith("/v1/") ? "openai" : "http");
    const f = telemetry.facts;
    const status = res.statusCode;
    if (trace.recording) {
      trace.set({ "http.response.status_code": status, "gatewayz.protocol": protocol });
      trace.end(f.status !== undefined && f.status !== "ok" ? f.errorKind ?? "error" : status >= 500 ? String(status) : undefined);
    }
    if (!log.enabled(level)) return;
    log.event(level, "request", {
      request_id: telemetry.requestId, protocol, method: req.method, path: path.slice(0, 200), status,
      result: f.status, error: f.errorKind, model: f.model, provider: f.provider, key_id: f.keyId, attempts: f.attempts,
      latency_ms: Math.round((performance.now() - started) * 10) / 10, ttft_ms: f.ttftMs,
      prompt_tokens: f.promptTokens, completion_tokens: f.completionTokens, cost_usd: f.costUsd,
    });
  };

  const handle = (req: Req, res: Res) => {
    const started = performance.now();
    const requestId = requestIdOf(req.headers["x-request-id"]);
    // Every answer says which request it was, errors included, on every door (gRPC: response metadata).
    res.setHeader("x-request-id", requestId);
    // Probes are not traced: a load balancer's would bury the requests.
    const path = (req.url ?? "/").split("?", 1)[0]!.slice(0, 200);
    const trace = PROBES.has(path) ? NO_TRACE : tracer.start(`${req.method ?? "GET"} ${path}`, req.headers, {
      "http.request.method": req.method, "url.path": path, "gatewayz.request_id": requestId,
    });
    const telemetry: RequestTelemetry = { requestId, trace, facts: {} };
    const scope = requests.start(res, telemetry, () => finished(req, res, telemetry, started));
    // During a drain every HTTP/1 answer closes its connection (HTTP/2 sessions have had GOAWAY).
    if (connections.draining && !("stream" in req)) res.setHeader("connection", "close");
    if (cors(req, res)) return;
    const url = req.url ?? "/";
    if (probes(req, res)) return;
    if (deps.metrics?.(req, res)) return;
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
