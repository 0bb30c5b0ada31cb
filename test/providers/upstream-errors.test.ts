// How an error raised on the way to or from an upstream is classified: the
// provider's (a network or HTTP outcome, retryable) or the gateway's own
// (`internal`, never retryable, no upstream status, so no provider's circuit
// is charged with it). The errors are the real classes the SDK, undici and
// Node raise.
import OpenAI from "openai";
import { errors as undici } from "undici";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { GatewayError } from "../../src/errors.js";
import { createRedactor } from "../../src/providers/redact.js";
import { classifyUpstreamError } from "../../src/providers/upstream-errors.js";

const KEY = "sk-dashscope-0123456789abcdef";
const config = loadConfig({ ENV_FILE: "/nonexistent/.env", ALIBABA_CLOUD_API_KEY: KEY, ALIBABA_CLOUD_BASE_URL: "http://proxy.internal:8443/v1" });
const provider = config.providers.find((p) => p.row.id === "alibaba-cloud")!;
const classify = (err: unknown) => classifyUpstreamError(err, provider, new AbortController().signal, config.failover, createRedactor(config.providers));

const coded = <E extends Error>(err: E, code: string): E => Object.assign(err, { code });
const connectionError = (cause: Error) => new OpenAI.APIConnectionError({ cause });

describe("errors raised before a byte left the process are the gateway's own", () => {
  const cases: Array<[string, unknown]> = [
    ["the SDK's JSON.stringify of a body nested too deep", new RangeError("Maximum call stack size exceeded")],
    ["a circular body", new TypeError("Converting circular structure to JSON")],
    ["a BigInt in the body", new TypeError("Do not know how to serialize a BigInt")],
    ["a bug of ours", new Error("cannot read properties of undefined")],
    ["undici refusing a header value", connectionError(new undici.InvalidArgumentError("invalid x-bad header"))],
    ["Node refusing a URL", connectionError(coded(new TypeError("Invalid URL"), "ERR_INVALID_URL"))],
    ["a programming error inside our fetch adapter", connectionError(new TypeError("flatHeaders is not iterable"))],
  ];
  it.each(cases)("%s: internal, not retryable, no upstream status, the cause kept for the log", (_, err) => {
    const e = classify(err);
    expect(e).toBeInstanceOf(GatewayError);
    expect(e).toMatchObject({ kind: "internal", retryable: false, upstreamStatus: undefined, rawMessage: "internal error" });
    expect(e.cause).toBe(err);
  });
});

describe("network and HTTP outcomes are the provider's", () => {
  const cases: Array<[string, unknown, string, RegExp]> = [
    ["connection refused", connectionError(coded(new Error("connect ECONNREFUSED 127.0.0.1:1"), "ECONNREFUSED")), "upstream_error", /ECONNREFUSED/],
    ["a reset before the answer", connectionError(new undici.SocketError("other side closed")), "upstream_error", /connection closed/],
    ["a DNS failure", connectionError(coded(new Error("getaddrinfo ENOTFOUND x.invalid"), "ENOTFOUND")), "upstream_error", /ENOTFOUND/],
    ["undici's connect timeout", connectionError(new undici.ConnectTimeoutError()), "upstream_timeout", /UND_ERR_CONNECT_TIMEOUT/],
    ["the SDK's connection timeout", new OpenAI.APIConnectionTimeoutError(), "upstream_timeout", /could not connect/],
    ["a socket closed while reading the body", new undici.SocketError("other side closed"), "upstream_error", /connection closed/],
    ["undici's 'terminated' body", Object.assign(new TypeError("terminated"), { cause: new undici.SocketError("other side closed") }), "upstream_error", /connection closed/],
    ["an expired certificate", coded(new Error("certificate has expired"), "CERT_HAS_EXPIRED"), "upstream_error", /CERT_HAS_EXPIRED/],
    ["a response HTTP cannot parse", coded(new Error("Parse Error: Invalid header value char"), "HPE_INVALID_HEADER_TOKEN"), "upstream_error", /HPE_/],
    ["an unparsable stream event", new SyntaxError("Unexpected token n in JSON"), "upstream_error", /malformed stream event/],
    ["an error event mid-stream", new OpenAI.APIError(undefined, { message: "overloaded" }, undefined, undefined), "upstream_error", /mid-stream: overloaded/],
  ];
  it.each(cases)("%s is the provider's: retryable", (_, err, kind, message) => {
    const e = classify(err);
    expect(e).toMatchObject({ kind, retryable: true });
    expect(e.rawMessage).toMatch(message);
  });

  it("an HTTP status carries it, and a client error keeps the upstream's words", () => {
    const e = classify(OpenAI.APIError.generate(400, { error: { message: "Range of input length should be [1, 30720]" } }, undefined, new Headers()));
    expect(e).toMatchObject({ kind: "invalid_request", retryable: false, upstreamStatus: 400 });
    expect(e.rawMessage).toBe("Alibaba Cloud rejected the request (400): Range of input length should be [1, 30720]");
  });
});

describe("upstream words relayed to the client", () => {
  it("are redacted before they are cut, so a key at the cut is not half shown", () => {
    const echo = `${"x".repeat(480)} ${KEY} at http://proxy.internal:8443/v1/chat/completions`;
    const e = classify(OpenAI.APIError.generate(422, { error: { message: echo } }, undefined, new Headers()));
    expect(e.rawMessage).toContain("[redacted]");
    expect(e.rawMessage).not.toMatch(/sk-dash|proxy\.internal/);
  });
});
