import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../log.js";
import type { Req, Res } from "./http-io.js";

/** Where the metrics text comes from: this process's registry, or (--workers) the aggregate of every worker's. */
export interface MetricsSource {
  readonly contentType: string;
  render(): Promise<string>;
}

/**
 * `GET /metrics` (and HEAD), keyless like the probes, a query string
 * ignored; any other method is not this route's. Returns whether the
 * request was it (and is being answered). A scrape that cannot be rendered
 * (a --workers primary that does not answer) gets 503, which Prometheus
 * records as a failed scrape (`up` 0) rather than as zeros.
 */
export function createMetricsRoute(source: MetricsSource, log: Logger): (req: Req, res: Res) => boolean {
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    if ((req.url ?? "/").split("?", 1)[0] !== "/metrics") return false;
    source.render().then((text) => {
      const r = res as http.ServerResponse;
      r.writeHead(200, { "content-type": source.contentType, "content-length": Buffer.byteLength(text) });
      if (req.method === "HEAD") r.end();
      else r.end(text);
    }, (err: unknown) => {
      log.warn(`metrics: could not render: ${err instanceof Error ? err.message : String(err)}`);
      if (!res.headersSent) (res as http.ServerResponse).writeHead(503, { "content-type": "text/plain; charset=utf-8" });
      if (req.method === "HEAD") res.end();
      else res.end("metrics unavailable\n");
    });
    return true;
  };
}

export interface MetricsServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/** METRICS_PORT: a plain HTTP/1 server for the scrapes alone; everything but /metrics is 404. */
export async function startMetricsServer(route: (req: Req, res: Res) => boolean, host: string, port: number): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    if (route(req, res)) return;
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
    res.end("not found: the metrics are at /metrics\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    address: server.address() as AddressInfo,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
