/**
 * What the core asks of tracing, so it never imports OpenTelemetry: with
 * tracing off every request gets NO_TRACE, and the SDK is never loaded
 * (src/observe/tracing.ts loads it when OTEL_EXPORTER_OTLP_ENDPOINT is set).
 */
export type SpanAttributes = Record<string, string | number | boolean | string[] | undefined>;

export interface AttemptSpan {
  /** Headers for the upstream request that carry this span's context (W3C traceparent, tracestate). */
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** Ends the attempt's span; `errorType` marks it failed (OpenTelemetry's error.type). */
  end(attributes: SpanAttributes, errorType?: string): void;
}

export interface RequestTrace {
  /** False for NO_TRACE: callers skip building attributes. */
  readonly recording: boolean;
  /** Names the request's span once its operation is known ("chat qwen-plus"). */
  rename(name: string): void;
  set(attributes: SpanAttributes): void;
  /** A child span for one upstream attempt. */
  attempt(name: string, attributes: SpanAttributes): AttemptSpan;
  /** Ends the request's span; `errorType` marks it failed. Idempotent. */
  end(errorType?: string): void;
}

const NO_ATTEMPT: AttemptSpan = { headers: undefined, end() {} };

export const NO_TRACE: RequestTrace = {
  recording: false,
  rename() {},
  set() {},
  attempt: () => NO_ATTEMPT,
  end() {},
};

/** Starts request spans: one per request on every door, continuing an incoming traceparent. */
export interface Tracer {
  start(name: string, headers: Readonly<Record<string, string | string[] | undefined>>, attributes: SpanAttributes): RequestTrace;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

export const NO_TRACER: Tracer = {
  start: () => NO_TRACE,
  shutdown: () => Promise.resolve(),
};
