import type { Readable } from "node:stream";
import type { Dispatcher } from "undici";

/**
 * The `fetch` the openai SDK is given: undici's dispatcher API under the
 * fetch signature. WHATWG fetch builds a Request, a Headers list, a web
 * ReadableStream and a chain of AbortSignals for every call, and that
 * machinery was a third of the gateway's CPU per request (bench/profile.ts).
 * The SDK only reads `ok`, `status`, `url`, `headers.get/has/entries`,
 * `json()`, `text()` and iterates `body` as an async iterable, so a Node
 * stream with a small headers view serves it with none of that work.
 */
export function dispatcherFetch(dispatcher: Dispatcher): typeof fetch {
  const call = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = typeof input === "string" ? new URL(input) : input instanceof URL ? input : new URL(input.url);
    const res = await dispatcher.request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: (init.method ?? "GET") as Dispatcher.HttpMethod,
      headers: flatHeaders(init.headers),
      body: init.body as string | Buffer | null | undefined,
      signal: init.signal ?? undefined,
    });
    return new UpstreamResponse(url.href, res.statusCode, res.headers, res.body) as unknown as Response;
  };
  return call as typeof fetch;
}

/** undici's flat [name, value, name, value...] form, straight from whatever the SDK built. */
function flatHeaders(h: HeadersInit | undefined): string[] {
  const out: string[] = [];
  if (!h) return out;
  if (Array.isArray(h)) {
    for (const [k, v] of h) out.push(k!, v!);
  } else if (typeof (h as Headers).forEach === "function") {
    (h as Headers).forEach((v, k) => out.push(k, v));
  } else {
    for (const [k, v] of Object.entries(h as Record<string, string>)) out.push(k, v);
  }
  return out;
}

type RawHeaders = Record<string, string | string[] | undefined>;

/** The read side of `Headers` over undici's lower-cased header object. */
class UpstreamHeaders {
  constructor(private readonly raw: RawHeaders) {}
  get(name: string): string | null {
    const v = this.raw[name.toLowerCase()];
    return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
  }
  has(name: string): boolean {
    return this.raw[name.toLowerCase()] !== undefined;
  }
  *entries(): IterableIterator<[string, string]> {
    for (const k of Object.keys(this.raw).sort()) {
      const v = this.get(k);
      if (v !== null) yield [k, v];
    }
  }
  keys(): IterableIterator<string> {
    return [...this.entries()].map(([k]) => k)[Symbol.iterator]();
  }
  values(): IterableIterator<string> {
    return [...this.entries()].map(([, v]) => v)[Symbol.iterator]();
  }
  forEach(fn: (value: string, key: string, parent: UpstreamHeaders) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}

type Body = Readable & { text(): Promise<string>; json(): Promise<unknown>; arrayBuffer(): Promise<ArrayBuffer> };

class UpstreamResponse {
  readonly ok: boolean;
  readonly headers: UpstreamHeaders;
  readonly statusText = "";
  readonly redirected = false;
  readonly type = "basic";
  constructor(readonly url: string, readonly status: number, headers: RawHeaders, readonly body: Body) {
    this.ok = status >= 200 && status < 300;
    this.headers = new UpstreamHeaders(headers);
  }
  get bodyUsed(): boolean {
    return this.body.readableDidRead;
  }
  text(): Promise<string> {
    return this.body.text();
  }
  json(): Promise<unknown> {
    return this.body.json();
  }
  arrayBuffer(): Promise<ArrayBuffer> {
    return this.body.arrayBuffer();
  }
}
