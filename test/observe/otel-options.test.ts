// The OTEL_* variables read into the trace exporter's settings (no SDK involved).
import { describe, expect, it } from "vitest";
import { traceOptions } from "../../src/observe/otel-options.js";

const BASE = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" };

describe("traceOptions", () => {
  it("appends v1/traces to OTEL_EXPORTER_OTLP_ENDPOINT and uses the traces endpoint as is", () => {
    expect(traceOptions(BASE).url).toBe("http://collector:4318/v1/traces");
    expect(traceOptions({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://otel.example/base/" }).url).toBe("https://otel.example/base/v1/traces");
    expect(traceOptions({ ...BASE, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://other:9999/custom" }).url).toBe("http://other:9999/custom");
  });

  it("refuses an endpoint that is not an http(s) URL, naming the variable", () => {
    expect(() => traceOptions({ OTEL_EXPORTER_OTLP_ENDPOINT: "localhost:4318" })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/);
    expect(() => traceOptions({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "not a url" })).toThrow(/OTEL_EXPORTER_OTLP_TRACES_ENDPOINT/);
  });

  it("merges the headers, the traces ones winning key by key, percent-decoded", () => {
    const o = traceOptions({ ...BASE, OTEL_EXPORTER_OTLP_HEADERS: "a=1, b=two%20words", OTEL_EXPORTER_OTLP_TRACES_HEADERS: "b=3" });
    expect(o.headers).toEqual({ a: "1", b: "3" });
  });

  it("reports a malformed header entry without echoing it (it may be a credential)", () => {
    const o = traceOptions({ ...BASE, OTEL_EXPORTER_OTLP_HEADERS: "authorization-secret-value" });
    expect(o.headers).toEqual({});
    expect(o.problems.join()).not.toContain("secret");
    expect(o.problems).toHaveLength(1);
  });

  it("defaults: 10 s timeout, no compression, parentbased_always_on, service.name gatewayz", () => {
    const o = traceOptions(BASE);
    expect(o).toMatchObject({ timeoutMillis: 10_000, compression: "none", sampler: "parentbased_always_on", ratio: 1, batch: {}, problems: [] });
    expect(o.resource).toEqual({ "service.name": "gatewayz" });
  });

  it("reads timeouts, compression, the sampler, the batch settings and the resource", () => {
    const o = traceOptions({
      ...BASE, OTEL_EXPORTER_OTLP_TIMEOUT: "5000", OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: "2500", OTEL_EXPORTER_OTLP_COMPRESSION: "gzip",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.25",
      OTEL_BSP_SCHEDULE_DELAY: "200", OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "64", OTEL_BSP_MAX_QUEUE_SIZE: "1000", OTEL_BSP_EXPORT_TIMEOUT: "3000",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=prod,service.name=from-attributes", OTEL_SERVICE_NAME: "edge-gw",
    });
    expect(o).toMatchObject({ timeoutMillis: 2500, compression: "gzip", sampler: "parentbased_traceidratio", ratio: 0.25, problems: [] });
    expect(o.batch).toEqual({ scheduledDelayMillis: 200, maxExportBatchSize: 64, maxQueueSize: 1000, exportTimeoutMillis: 3000 });
    expect(o.resource).toEqual({ "deployment.environment.name": "prod", "service.name": "edge-gw" });
  });

  it("takes service.name from OTEL_RESOURCE_ATTRIBUTES when OTEL_SERVICE_NAME is unset", () => {
    expect(traceOptions({ ...BASE, OTEL_RESOURCE_ATTRIBUTES: "service.name=billing" }).resource["service.name"]).toBe("billing");
  });

  it("warns about and ignores what it cannot honour", () => {
    const o = traceOptions({
      ...BASE, OTEL_TRACES_SAMPLER: "jaeger_remote", OTEL_BSP_SCHEDULE_DELAY: "soon", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
      OTEL_EXPORTER_OTLP_COMPRESSION: "zstd",
    });
    expect(o).toMatchObject({ sampler: "parentbased_always_on", compression: "none", batch: {} });
    expect(o.problems).toHaveLength(4);
    expect(traceOptions({ ...BASE, OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "2" })).toMatchObject({ ratio: 1, problems: [expect.stringContaining("OTEL_TRACES_SAMPLER_ARG")] });
  });
});
