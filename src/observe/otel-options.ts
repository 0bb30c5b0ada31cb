/**
 * The standard OTEL_* variables read into the trace exporter's settings: a
 * pure function, so the rules are tested without the SDK. Invalid values do
 * not stop the gateway (the specification says to warn and use the default);
 * they are reported in `problems`. The variables are those of
 * https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/
 * and https://opentelemetry.io/docs/specs/otel/protocol/exporter/.
 */
export type SamplerName = "always_on" | "always_off" | "traceidratio" | "parentbased_always_on" | "parentbased_always_off" | "parentbased_traceidratio";

export interface TraceOptions {
  /** Where spans are POSTed (OTLP/HTTP JSON). */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMillis: number;
  readonly compression: "gzip" | "none";
  readonly sampler: SamplerName;
  /** OTEL_TRACES_SAMPLER_ARG, for the ratio samplers. */
  readonly ratio: number;
  /** The BatchSpanProcessor's OTEL_BSP_* settings; unset ones take the SDK's defaults. */
  readonly batch: Readonly<{ scheduledDelayMillis?: number; maxExportBatchSize?: number; maxQueueSize?: number; exportTimeoutMillis?: number }>;
  /** OTEL_RESOURCE_ATTRIBUTES, with service.name from OTEL_SERVICE_NAME (default "gatewayz"). */
  readonly resource: Readonly<Record<string, string>>;
  /** Values that were ignored, and why: to log at warn. */
  readonly problems: readonly string[];
}

type Env = Readonly<Record<string, string | undefined>>;

const SAMPLERS: readonly SamplerName[] = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"];

export function traceOptions(env: Env): TraceOptions {
  const problems: string[] = [];
  const positive = (name: string): number | undefined => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === "") return undefined;
    const n = Number(raw);
    if (Number.isFinite(n) && n > 0) return n;
    problems.push(`${name}=${raw} is not a positive number; using the default`);
    return undefined;
  };
  const either = (name: string) => (env[`OTEL_EXPORTER_OTLP_TRACES_${name}`] ?? env[`OTEL_EXPORTER_OTLP_${name}`])?.trim() || undefined;

  const protocol = either("PROTOCOL");
  if (protocol !== undefined && protocol !== "http/json") problems.push(`OTEL_EXPORTER_OTLP_PROTOCOL=${protocol}: only http/json is supported; exporting OTLP/HTTP JSON`);
  const exporter = env.OTEL_TRACES_EXPORTER?.trim();
  if (exporter && exporter !== "otlp") problems.push(`OTEL_TRACES_EXPORTER=${exporter}: only otlp is supported`);
  const compression = either("COMPRESSION") ?? "none";
  if (compression !== "gzip" && compression !== "none") problems.push(`OTEL_EXPORTER_OTLP_COMPRESSION=${compression} is not gzip or none; not compressing`);

  const samplerRaw = env.OTEL_TRACES_SAMPLER?.trim() || "parentbased_always_on";
  const sampler = SAMPLERS.find((s) => s === samplerRaw) ?? "parentbased_always_on";
  if (sampler !== samplerRaw) problems.push(`OTEL_TRACES_SAMPLER=${samplerRaw} is not supported; using parentbased_always_on`);
  let ratio = 1;
  const arg = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  if (sampler.endsWith("traceidratio") && arg) {
    const n = Number(arg);
    if (Number.isFinite(n) && n >= 0 && n <= 1) ratio = n;
    else problems.push(`OTEL_TRACES_SAMPLER_ARG=${arg} is not a ratio in [0, 1]; sampling every trace`);
  }

  const resource = keyValues(env.OTEL_RESOURCE_ATTRIBUTES, "OTEL_RESOURCE_ATTRIBUTES", problems);
  resource["service.name"] = env.OTEL_SERVICE_NAME?.trim() || resource["service.name"] || "gatewayz";
  return {
    url: endpoint(env),
    // The signal's own headers win over the shared ones, key by key.
    headers: { ...keyValues(env.OTEL_EXPORTER_OTLP_HEADERS, "OTEL_EXPORTER_OTLP_HEADERS", problems), ...keyValues(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", problems) },
    timeoutMillis: positive("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") ?? positive("OTEL_EXPORTER_OTLP_TIMEOUT") ?? 10_000,
    compression: compression === "gzip" ? "gzip" : "none",
    sampler, ratio, resource, problems,
    batch: defined({
      scheduledDelayMillis: positive("OTEL_BSP_SCHEDULE_DELAY"),
      maxExportBatchSize: positive("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
      maxQueueSize: positive("OTEL_BSP_MAX_QUEUE_SIZE"),
      exportTimeoutMillis: positive("OTEL_BSP_EXPORT_TIMEOUT"),
    }),
  };
}

/**
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is; OTEL_EXPORTER_OTLP_ENDPOINT
 * is a base to which the signal's path, v1/traces, is appended.
 */
function endpoint(env: Env): string {
  const own = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const name = own ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT";
  const raw = own || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || "";
  let url: URL;
  try {
    url = new URL(own ? raw : `${raw.replace(/\/+$/, "")}/v1/traces`);
  } catch {
    throw new Error(`${name} must be an http(s) URL, got '${raw}'`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`${name} must be an http(s) URL, got '${raw}'`);
  return url.href;
}

/** `key1=value1,key2=value2`, percent-decoded (the W3C Baggage form the OTEL_* lists use). */
function keyValues(raw: string | undefined, name: string, problems: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of (raw ?? "").split(",")) {
    if (item.trim() === "") continue;
    const eq = item.indexOf("=");
    try {
      const key = decodeURIComponent(item.slice(0, eq).trim());
      if (eq <= 0 || key === "") throw new Error("no key");
      out[key] = decodeURIComponent(item.slice(eq + 1).trim());
    } catch {
      // Not echoed: a header list may hold a credential.
      problems.push(`${name} has an entry that is not key=value; it is ignored`);
    }
  }
  return out;
}

function defined<T extends Record<string, number | undefined>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The OTEL_* variables when an OTLP endpoint is configured and the SDK is not disabled; else undefined. */
export function otelVariables(env: Readonly<Record<string, string | undefined>>): Record<string, string> | undefined {
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT && !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return undefined;
  if (env.OTEL_SDK_DISABLED === "true" || env.OTEL_TRACES_EXPORTER === "none") return undefined;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (name.startsWith("OTEL_") && value !== undefined) out[name] = value;
  return Object.freeze(out);
}
