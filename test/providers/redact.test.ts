import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createLogger, redactingLogger } from "../../src/log.js";
import { createRedactor } from "../../src/providers/redact.js";

const KEY = "sk-dashscope-0123456789abcdef";
const TOKEN = "ya29.vertex-access-token-xyz";
const EXTRA = "xk-extra-credential-42";

/** A configuration as operators write it: keys, a proxy base URL with a port, credential headers. */
function configured(env: Record<string, string> = {}) {
  return loadConfig({
    ENV_FILE: "/nonexistent/.env",
    ALIBABA_CLOUD_API_KEY: KEY,
    ALIBABA_CLOUD_BASE_URL: "http://llm-proxy.internal:8443/compatible-mode/v1",
    ALIBABA_CLOUD_HEADERS: `X-Api-Key: ${EXTRA}; Authorization: Bearer hdr-bearer-token-77; X-Trace: on-purpose-visible`,
    GOOGLE_VERTEX_ACCESS_TOKEN: TOKEN,
    GOOGLE_VERTEX_PROJECT: "acme-prod",
    ...env,
  }).providers;
}

describe("the redactor", () => {
  const redact = createRedactor(configured());

  it("replaces every provider key and access token", () => {
    expect(redact(`key ${KEY} and token ${TOKEN}`)).toBe("key [redacted] and token [redacted]");
  });

  it("replaces the values of credential headers, and the token of a Bearer header on its own", () => {
    expect(redact(`x-api-key: ${EXTRA}`)).toBe("x-api-key: [redacted]");
    expect(redact("authorization: Bearer hdr-bearer-token-77")).toBe("authorization: [redacted]");
    expect(redact("token hdr-bearer-token-77")).toBe("token [redacted]");
    // A header that is not a credential is not a secret.
    expect(redact("x-trace: on-purpose-visible")).toBe("x-trace: on-purpose-visible");
  });

  it("replaces a base URL whole, its origin, and its host:port, naming the provider", () => {
    expect(redact("POST http://llm-proxy.internal:8443/compatible-mode/v1/chat/completions failed"))
      .toBe("POST [alibaba-cloud URL]/chat/completions failed");
    expect(redact("from http://llm-proxy.internal:8443/other")).toBe("from [alibaba-cloud URL]/other");
    expect(redact("Host: LLM-PROXY.internal:8443")).toBe("Host: [alibaba-cloud URL]");
    expect(redact("https://us-central1-aiplatform.googleapis.com/v1/projects/acme-prod/locations/us-central1/endpoints/openapi/x"))
      .toBe("[google-vertex URL]/x");
  });

  it("leaves ordinary text alone, and ignores secrets too short to tell from it", () => {
    const short = createRedactor(configured({ ALIBABA_CLOUD_API_KEY: "abc", ALIBABA_CLOUD_HEADERS: "X-Api-Key: 12345" }));
    const text = "abc 12345: Range of input length should be [1, 30720]";
    expect(short(text)).toBe(text);
    expect(redact(text)).toBe(text);
  });

  it("knows nothing of providers that have no key: they are never called", () => {
    const none = createRedactor(loadConfig({ ENV_FILE: "/nonexistent/.env" }).providers);
    expect(none("https://dashscope-intl.aliyuncs.com/compatible-mode/v1")).toBe("https://dashscope-intl.aliyuncs.com/compatible-mode/v1");
  });
});

describe("the redacting logger", () => {
  it("redacts every line at every level, stack traces included, and keeps the level", () => {
    const lines: string[] = [];
    const log = redactingLogger(createLogger("debug", (l) => lines.push(l)), createRedactor(configured()));
    const err = new Error(`upstream said: bad key ${KEY}`);
    log.debug(`debug ${KEY}`);
    log.info(`info http://llm-proxy.internal:8443/compatible-mode/v1`);
    log.warn(`warn ${EXTRA}`);
    log.error(`internal error: ${err.stack}`);
    expect(lines).toHaveLength(4);
    expect(lines.join("\n")).not.toMatch(/sk-dashscope|llm-proxy|xk-extra/);
    expect(lines[3]).toMatch(/ error internal error: Error: upstream said: bad key \[redacted\]\n\s+at /);
    expect(log.level).toBe("debug");
  });

  it("drops lines below its level before redacting them", () => {
    const lines: string[] = [];
    let calls = 0;
    const log = redactingLogger(createLogger("warn", (l) => lines.push(l)), (t) => (calls++, t));
    log.debug("quiet");
    log.info("quiet");
    log.warn("loud");
    expect(lines).toHaveLength(1);
    expect(calls).toBe(1);
    expect(log.enabled("info")).toBe(false);
  });
});
