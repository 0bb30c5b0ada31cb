import type { Attributes, Context, Span, TextMapPropagator, Tracer as OtelTracer } from "@opentelemetry/api";
import type { SpanExporter } from "@opentelemetry/sdk-trace-node";
import type { Logger } from "../log.js";
import { traceOptions, type TraceOptions } from "./otel-options.js";
import type { AttemptSpan, RequestTrace, SpanAttributes, Tracer } from "./trace.js";

type Api = typeof import("@opentelemetry/api");
type Sdk = typeof import("@opentelemetry/sdk-trace-node");
type ExporterConfig = NonNullable<ConstructorParameters<typeof import("@opentelemetry/exporter-trace-otlp-http").OTLPTraceExporter>[0]>;

/**
 * OpenTelemetry traces over OTLP/HTTP JSON, from the OTEL_* variables
 * (config.otel). The SDK is loaded here, with import(), and nowhere else: a
 * gateway without an OTLP endpoint never loads it. The provider is the
 * gateway's own, never registered globally, so gateways with different
 * endpoints can share a process. Spans carry metadata only (models, tokens,
 * cost, errors); prompts and answers are never recorded.
 */
export async function startTracing(env: Readonly<Record<string, string>>, log: Logger): Promise<Tracer> {
  const options = traceOptions(env);
  for (const problem of options.problems) log.warn(`tracing: ${problem}`);
  const [api, core, sdk, otlp, resources] = await Promise.all([
    import("@opentelemetry/api"), import("@opentelemetry/core"), import("@opentelemetry/sdk-trace-node"),
    import("@opentelemetry/exporter-trace-otlp-http"), import("@opentelemetry/resources"),
  ]);
  const provider = withOtelEnv(env, () => {
    const exporter = new otlp.OTLPTraceExporter({
      url: options.url, headers: { ...options.headers }, timeoutMillis: options.timeoutMillis,
      compression: options.compression as ExporterConfig["compression"],
    });
    return new sdk.BasicTracerProvider({
      resource: resources.defaultResource().merge(resources.resourceFromAttributes(options.resource)),
      sampler: samplerOf(sdk, options),
      spanProcessors: [new sdk.BatchSpanProcessor(warnOnFailure(exporter, log, options.url, core.ExportResultCode.SUCCESS), options.batch)],
    });
  });
  const tracer = provider.getTracer("gatewayz");
  const propagator = new core.W3CTraceContextPropagator();
  log.info(`tracing: exporting spans to ${where(options.url)} (OTLP/HTTP JSON, sampler ${options.sampler})`);
  return {
    start: (name, headers, attributes) => requestTrace(api, tracer, propagator, { name, headers, attributes }),
    async shutdown() {
      // Flushes what is buffered; bounded, in case the collector does not answer.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, options.timeoutMillis + 1_000)));
      await Promise.race([provider.shutdown().catch(() => {}), late]);
      clearTimeout(timer);
    },
  };
}

interface Start {
  name: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  attributes: SpanAttributes;
}

/** The request's SERVER span, continuing the caller's traceparent; each attempt is a CLIENT child whose context goes upstream. */
function requestTrace(api: Api, tracer: OtelTracer, propagator: TextMapPropagator, start: Start): RequestTrace {
  const parent = propagator.extract(api.ROOT_CONTEXT, start.headers, api.defaultTextMapGetter);
  const span = tracer.startSpan(start.name, { kind: api.SpanKind.SERVER, attributes: attributesOf(start.attributes) }, parent);
  const context: Context = api.trace.setSpan(parent, span);
  const open = new Set<AttemptSpan>();
  let ended = false;
  return {
    // Also when not sampled: the attempts still pass the (unsampled) context upstream.
    recording: true,
    rename: (name) => span.updateName(name),
    set: (attributes) => span.setAttributes(attributesOf(attributes)),
    attempt(name, attributes) {
      const child = tracer.startSpan(name, { kind: api.SpanKind.CLIENT, attributes: attributesOf(attributes) }, context);
      const headers: Record<string, string> = {};
      propagator.inject(api.trace.setSpan(context, child), headers, api.defaultTextMapSetter);
      let done = false;
      const attempt: AttemptSpan = {
        headers,
        end(attributes, errorType) {
          if (done) return;
          done = true;
          open.delete(attempt);
          finish(api, child, attributes, errorType);
        },
      };
      open.add(attempt);
      return attempt;
    },
    end(errorType) {
      if (ended) return;
      ended = true;
      // An attempt nobody ended (a path that forgot it) still ends within its request.
      for (const attempt of open) attempt.end({});
      finish(api, span, {}, errorType);
    },
  };
}

/** Ends a span; a failure sets error.type and the ERROR status (OpenTelemetry's recording-errors convention). */
function finish(api: Api, span: Span, attributes: SpanAttributes, errorType: string | undefined): void {
  span.setAttributes(attributesOf(attributes));
  if (errorType !== undefined) {
    span.setAttribute("error.type", errorType);
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: errorType });
  }
  span.end();
}

/** Undefined values left out (the SDK would warn about each). */
function attributesOf(attributes: SpanAttributes): Attributes {
  const out: Attributes = {};
  for (const [key, value] of Object.entries(attributes)) if (value !== undefined) out[key] = value;
  return out;
}

function samplerOf(sdk: Sdk, o: TraceOptions) {
  const root = o.sampler.endsWith("always_off") ? new sdk.AlwaysOffSampler()
    : o.sampler.endsWith("traceidratio") ? new sdk.TraceIdRatioBasedSampler(o.ratio)
    : new sdk.AlwaysOnSampler();
  return o.sampler.startsWith("parentbased_") ? new sdk.ParentBasedSampler({ root }) : root;
}

/**
 * The exporter as is, but its first failed export is logged at warn (and
 * only the first: a collector that is down would otherwise log every few
 * seconds). Spans of failed exports are dropped; the request path never
 * waits on an export.
 */
function warnOnFailure(exporter: SpanExporter, log: Logger, url: string, success: number): SpanExporter {
  let warned = false;
  return {
    export(spans, done) {
      exporter.export(spans, (result) => {
        if (result.code !== success && !warned) {
          warned = true;
          const why = (result.error?.message ?? "unknown error").slice(0, 200);
          log.warn(`tracing: exporting spans to ${where(url)} failed (${why}); the spans of failed exports are dropped, and further failures are not logged`);
        }
        done(result);
      });
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
}

/** The endpoint without credentials or query, for logs. */
function where(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/**
 * The SDK also reads process.env itself, as fallbacks to what it is given:
 * the exporter merges OTEL_EXPORTER_OTLP_HEADERS into the headers, and
 * certificate files, span limits and OTEL_BSP_* come from there too. While
 * it is built (synchronously), process.env's OTEL_* variables are exactly the
 * gateway's (environment or .env), so those win and nothing else leaks in.
 */
function withOtelEnv<T>(env: Readonly<Record<string, string>>, build: () => T): T {
  const saved = Object.entries(process.env).filter(([name]) => name.startsWith("OTEL_"));
  const clear = () => {
    for (const name of Object.keys(process.env)) if (name.startsWith("OTEL_")) delete process.env[name];
  };
  clear();
  Object.assign(process.env, env);
  try {
    return build();
  } finally {
    clear();
    for (const [name, value] of saved) process.env[name] = value;
  }
}
