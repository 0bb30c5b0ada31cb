/**
 * A real OTLP/HTTP receiver for tests: POST /v1/traces with a JSON export
 * (gzip too), decoded into flat spans. Bare `node:http`, like the fake upstream.
 * https://opentelemetry.io/docs/specs/otlp/#otlphttp
 */
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** "" for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP's SpanKind: 2 SERVER, 3 CLIENT. */
  kind: number;
  attributes: Record<string, unknown>;
  /** OTLP's StatusCode: 0 unset, 1 ok, 2 error. */
  status: { code: number; message?: string };
  resource: Record<string, unknown>;
  scope: string;
}

export interface OtlpReceiver {
  /** `http://127.0.0.1:<port>`: an OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Every export as received (decompressed), to search for what must not be there. */
  readonly bodies: string[];
  readonly headers: IncomingHttpHeaders[];
  /** Resolves with the spans once `match` holds of them (rejects after timeoutMs). */
  waitFor(match: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const bodies: string[] = [];
  const headers: IncomingHttpHeaders[] = [];
  const waiters = new Set<() => void>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces" || !req.headers["content-type"]?.startsWith("application/json")) {
        res.writeHead(404).end();
        return;
      }
      const raw = Buffer.concat(chunks);
      const text = (req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw).toString("utf8");
      bodies.push(text);
      headers.push(req.headers);
      spans.push(...decode(JSON.parse(text)));
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
      for (const w of [...waiters]) w();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, spans, bodies, headers,
    waitFor: (match, timeoutMs = 5_000) => new Promise((resolve, reject) => {
      const check = () => {
        if (!match(spans)) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(spans);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`the spans did not arrive within ${timeoutMs} ms; received: ${JSON.stringify(spans.map((s) => [s.name, s.traceId]))}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    }),
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

interface KeyValue { key: string; value: AnyValue }
interface AnyValue {
  stringValue?: string; boolValue?: boolean; intValue?: number | string; doubleValue?: number;
  arrayValue?: { values?: AnyValue[] };
}
interface Export {
  resourceSpans?: Array<{
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: Array<{ scope?: { name?: string }; spans?: Array<Omit<ReceivedSpan, "attributes" | "resource" | "scope" | "status"> & { attributes?: KeyValue[]; status?: ReceivedSpan["status"] }> }>;
  }>;
}

function decode(body: Export): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const resource = attributesOf(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? "", name: s.name, kind: s.kind,
          attributes: attributesOf(s.attributes), status: s.status ?? { code: 0 }, resource, scope: ss.scope?.name ?? "",
        });
      }
    }
  }
  return out;
}

function attributesOf(list: KeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, valueOf(kv.value)]));
}

function valueOf(v: AnyValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(valueOf);
  return undefined;
}
