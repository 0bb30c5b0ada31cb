import OpenAI from "openai";
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
} from "openai/resources/chat/completions";
import type { EmbeddingCreateParams } from "openai/resources/embeddings";
import { Agent } from "undici";
import type { ProviderConfig } from "../config.js";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import { COOL_DOWN_MS, createKeyRing } from "./key-ring.js";
import { createRedactor, type Redact } from "./redact.js";
import { dispatcherFetch } from "./upstream-fetch.js";
import { classifyUpstreamError, type RetryPolicy } from "./upstream-errors.js";
import { checkChunk, headerProblem, readCompletion, readEmbeddings, refuseJsonStream, type UpstreamEmbeddings } from "./upstream-wire.js";

/**
 * One OpenAI-compatible upstream, built from a provider row. The `openai`
 * package does the HTTP over a connection pool of this provider's own
 * (keep-alive, with the connect timeout), so sockets are reused across
 * requests. The SDK's retries are off: retry and failover are the gateway's.
 */
export interface UpstreamClient {
  readonly provider: ProviderConfig;
  /** `headers` go with the upstream request (the trace context). */
  complete(body: ChatCompletionCreateParamsNonStreaming, signal: AbortSignal, headers?: Readonly<Record<string, string>>): Promise<ChatCompletion>;
  /**
   * One embeddings request, as floats: `encoding_format` is always "float"
   * upstream (DashScope supports nothing else; left unset, the SDK would ask
   * for base64), whatever the client wants written.
   */
  embed(body: EmbeddingCreateParams, signal: AbortSignal, headers?: Readonly<Record<string, string>>): Promise<UpstreamEmbeddings>;
  /** Chunks as the upstream sends them; ends only after a clean `[DONE]`-terminated stream. */
  stream(body: ChatCompletionCreateParamsStreaming, signal: AbortSignal, headers?: Readonly<Record<string, string>>): AsyncIterable<ChatCompletionChunk>;
  close(): Promise<void>;
}

const FIRST_BYTE = Symbol("first-byte timeout");
const IDLE = Symbol("idle timeout");
const TOTAL = Symbol("total timeout");

/**
 * `redact` scrubs relayed upstream text: by default of this provider's secrets and address (the provider set's knows all).
 * `log` hears of a key the provider refused (by its number, never the key).
 */
export function createUpstreamClient(provider: ProviderConfig, policy: RetryPolicy, redact: Redact = createRedactor([provider]),
  log?: Pick<Logger, "warn">): UpstreamClient {
  // A provider with any configuration problem (no key, no Vertex project, a bad
  // region or URL, a header HTTP cannot carry) is not loaded, not used half-configured.
  if (provider.problem || !provider.apiKey) throw new Error(provider.problem ?? `${provider.keyVar} is not set`);
  const badHeader = headerProblem(provider.headers);
  if (badHeader) throw new Error(`${provider.row.envPrefix}_HEADERS: ${badHeader}`);
  const t = provider.timeouts;
  const pool = new Agent({ connect: { timeout: t.connectMs }, keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 });
  const fetch = dispatcherFetch(pool);
  // One SDK client per key, all on the one connection pool.
  const sdkFor = (apiKey: string) => new OpenAI({
    apiKey,
    baseURL: provider.baseUrl,
    defaultHeaders: { ...provider.headers },
    // Our own timers tell the phases apart (first byte, idle, total); the
    // SDK's is only a backstop. Its timeout error then means a connect timeout.
    timeout: t.totalMs + 1_000,
    maxRetries: 0,
    fetch,
    // The SDK would print malformed chunks (model output) to the console.
    logLevel: "off",
  });
  const keys = createKeyRing((provider.apiKeys?.length ? provider.apiKeys : [provider.apiKey]).map(sdkFor));
  const name = provider.row.name;

  /**
   * An attempt's own abort signal: it follows the caller's, and fires on the
   * total timeout. Its reason tells the timeouts apart from the client's cancel.
   */
  const attempt = (signal: AbortSignal) => {
    const controller = new AbortController();
    const follow = () => controller.abort(signal.reason);
    if (signal.aborted) follow();
    else signal.addEventListener("abort", follow, { once: true });
    const total = setTimeout(() => controller.abort(TOTAL), t.totalMs);
    const firstByte = setTimeout(() => controller.abort(FIRST_BYTE), t.firstByteMs);
    const classify = (err: unknown): GatewayError => {
      const reason = controller.signal.reason;
      const timeout = (message: string) => new GatewayError("upstream_timeout", message, { retryable: true, cause: err });
      if (reason === FIRST_BYTE) return timeout(`${name} did not answer within ${t.firstByteMs} ms`);
      if (reason === IDLE) return timeout(`${name} sent nothing for ${t.idleMs} ms`);
      if (reason === TOTAL) return timeout(`${name} took longer than ${t.totalMs} ms`);
      return classifyUpstreamError(err, provider, signal, policy, redact);
    };
    return {
      signal: controller.signal,
      abort: (reason: unknown) => controller.abort(reason),
      /** The response headers are in: the first-byte phase is over. */
      answered: () => clearTimeout(firstByte),
      classify,
      fail(err: unknown): never {
        throw classify(err);
      },
      done() {
        clearTimeout(total);
        clearTimeout(firstByte);
        signal.removeEventListener("abort", follow);
      },
    };
  };

  /**
   * `call` with the next usable key. With several keys, a 429 cools that key
   * down (its Retry-After, else COOL_DOWN_MS) and a 401 or 403 sets it aside
   * (logged once), and the call goes again at once with the next key, while
   * one is usable; then the last refusal is the attempt's. Only the request
   * up to the response headers is retried: nothing has reached the client.
   */
  const withKey = async <R>(a: ReturnType<typeof attempt>, call: (sdk: OpenAI) => Promise<R>): Promise<R> => {
    let last: GatewayError | undefined;
    for (;;) {
      const slot = keys.next();
      if (!slot) throw last ?? restingKeys();
      try {
        return await call(slot.value);
      } catch (err) {
        const e = a.classify(err);
        if (keys.size === 1 || a.signal.aborted) throw e;
        if (e.upstreamStatus === 429) keys.coolDown(slot, e.retryAfterMs ?? COOL_DOWN_MS);
        else if (e.upstreamStatus === 401 || e.upstreamStatus === 403) {
          keys.setAside(slot);
          log?.warn(`${name} refused key ${slot.number} of ${keys.size} in ${provider.keyVar} (${e.upstreamStatus}): set aside until restart; the others carry on`);
        } else throw e;
        last = e;
      }
    }
  };
  /** Every key is cooling down or set aside, before this request tried one. */
  const restingKeys = (): GatewayError => {
    const wait = keys.readyInMs();
    if (wait === undefined) {
      return new GatewayError("upstream_error", `${name} refused every key in ${provider.keyVar}; they are set aside until restart`, { retryable: true });
    }
    return new GatewayError("upstream_rate_limited", `every key in ${provider.keyVar} is cooling down after ${name}'s 429s`, {
      retryable: policy.on429, retryAfterMs: wait, upstreamStatus: 429, headers: { "retry-after": String(Math.max(1, Math.ceil(wait / 1000))) },
    });
  };

  return {
    provider,
    async complete(body, signal, headers) {
      const a = attempt(signal);
      try {
        // asResponse() resolves at the headers (and still throws APIError
        // for a non-2xx), so the first-byte phase ends there; the total
        // timer bounds reading the body, as it does a stream.
        const response = await withKey(a, (sdk) => sdk.chat.completions.create(body, { signal: a.signal, headers }).asResponse());
        a.answered();
        return await readCompletion(response, provider.row.name, redact);
      } catch (err) {
        return a.fail(err);
      } finally {
        a.done();
      }
    },
    async embed(body, signal, headers) {
      const a = attempt(signal);
      try {
        // As complete(): the headers end the first-byte phase, the total timer bounds the body.
        const response = await withKey(a, (sdk) => sdk.embeddings.create({ ...body, encoding_format: "float" }, { signal: a.signal, headers }).asResponse());
        a.answered();
        return await readEmbeddings(response, provider.row.name, redact);
      } catch (err) {
        return a.fail(err);
      } finally {
        a.done();
      }
    },
    async *stream(body, signal, headers) {
      const a = attempt(signal);
      let idle: NodeJS.Timeout | undefined;
      try {
        let stream: AsyncIterable<ChatCompletionChunk>;
        try {
          const { data, response } = await withKey(a, (sdk) => sdk.chat.completions.create(body, { signal: a.signal, headers }).withResponse());
          a.answered();
          await refuseJsonStream(response, provider.row.name, redact);
          stream = data;
        } catch (err) {
          return a.fail(err);
        }
        // From then on the idle timer bounds every gap between chunks. Only
        // time spent waiting on the upstream counts: while a slow client
        // holds a chunk, the timer just re-arms.
        let consumerHasIt = false;
        const timer: NodeJS.Timeout = setTimeout(() => (consumerHasIt ? timer.refresh() : a.abort(IDLE)), t.idleMs);
        idle = timer;
        try {
          for await (const event of stream) {
            const chunk = checkChunk(event, provider.row.name);
            consumerHasIt = true;
            yield chunk;
            consumerHasIt = false;
            timer.refresh();
          }
        } catch (err) {
          a.fail(err);
        }
        // The SDK ends iteration quietly when its signal aborts; a stream cut
        // short must not look finished to the caller.
        if (a.signal.aborted) a.fail(a.signal.reason);
      } finally {
        clearTimeout(idle);
        a.done();
      }
    },
    close: () => pool.close(),
  };
}

/** Thrown when a request needs a provider that has no usable configuration. */
export function providerNotConfigured(provider: ProviderConfig): GatewayError {
  return new GatewayError("provider_not_configured", `${provider.row.name} API key not configured`);
}
