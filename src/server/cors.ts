import { cors as connectCors } from "@connectrpc/connect";
import type { Req, Res } from "./http-io.js";

const ALLOW_METHODS = [...connectCors.allowedMethods, "OPTIONS"].join(", ");
const ALLOW_HEADERS = [...connectCors.allowedHeaders, "Authorization", "OpenAI-Organization", "OpenAI-Project", "X-Request-Id", "Traceparent", "Tracestate", "Cache-Control", "X-Gatewayz-Cache-Ttl"].join(", ");
const EXPOSE_HEADERS = [...connectCors.exposedHeaders, "X-Request-Id", "X-Gatewayz-Provider", "X-Gatewayz-Model", "X-Gatewayz-Attempts", "X-Gatewayz-Cache", "Retry-After", "X-Should-Retry",
  ...["limit", "remaining", "reset"].flatMap((w) => [`X-RateLimit-${w}-Requests`, `X-RateLimit-${w}-Tokens`])].join(", ");

/**
 * CORS for browsers on allowed origins, covering the headers gRPC-Web,
 * Connect and the OpenAI SDK send and read. Returns true when it answered
 * a preflight, so the caller stops there.
 */
export function createCors(origins: readonly string[]): (req: Req, res: Res) => boolean {
  const any = origins.includes("*");
  const allowed = new Set(origins);
  return (req, res) => {
    const origin = req.headers.origin;
    if (!origin || !(any || allowed.has(origin))) {
      if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
        res.writeHead(204);
        res.end(); // no CORS headers: the browser refuses
        return true;
      }
      return false;
    }
    res.setHeader("Access-Control-Allow-Origin", any ? "*" : origin);
    if (!any) res.setHeader("Vary", "Origin");
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
      res.setHeader("Access-Control-Allow-Methods", ALLOW_METHODS);
      const asked = req.headers["access-control-request-headers"];
      res.setHeader("Access-Control-Allow-Headers", typeof asked === "string" && asked ? asked : ALLOW_HEADERS);
      res.setHeader("Access-Control-Max-Age", "7200");
      res.writeHead(204);
      res.end();
      return true;
    }
    res.setHeader("Access-Control-Expose-Headers", EXPOSE_HEADERS);
    return false;
  };
}
