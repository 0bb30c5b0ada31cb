/**
 * A fake OpenAI-compatible upstream (DashScope "compatible-mode" flavour) for tests.
 *
 * Tests point the real gateway's provider base URL at `fake.baseUrl`. The fake speaks the
 * chat-completions wire format the way OpenAI / DashScope do (JSON bodies, SSE streams ending
 * in `data: [DONE]`, usage only when asked for), enforces DashScope's quirks so tests can prove
 * the gateway hides them, and can fail on demand (errors, hangs, broken streams). `POST /embeddings`
 * is served by test/support/fake-embeddings.ts, with the same queue of behaviours.
 *
 * Bare `node:http` on purpose: a framework could add headers, buffering or error pages that
 * the real upstream would never produce.
 */
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { randomBytes } from "node:crypto";
import { sendJson } from "./fake-json.js";
import { serveEmbeddings } from "./fake-embeddings.js";

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body (undefined if none / not JSON). */
  body: any;
  /** True if the client closed the connection before the response was finished. */
  aborted: boolean;
  /** The client's TCP port: requests sharing one are sharing a pooled connection. */
  clientPort: number;
  /** Arrival order across every fake in this process (one shared counter), for failover order. */
  seq: number;
}

/** Shared by all fakes, so requests to several upstreams can be put in order. */
let sequence = 0;

/**
 * The broken-stream behaviours: the SSE headers, an opening role chunk (unless
 * `role: false`), N content chunks, then the failure. `{ chunks: 0, role: false }`
 * fails after the headers, before any event.
 */
interface BrokenStream {
  chunks: number;
  role?: boolean;
}

export type Behaviour =
  | {
      kind: "reply";
      content?: string;
      reasoning?: string;
      toolCalls?: Array<{ id: string; name: string; arguments: string }>;
      finishReason?: string;
      usage?: { prompt_tokens: number; completion_tokens: number; cached_tokens?: number; reasoning_tokens?: number } | null;
      chunkDelayMs?: number;
      firstByteDelayMs?: number;
      /**
       * Answer at the next multiple of this many ms on the clock (instead of firstByteDelayMs), so
       * the replies to concurrent requests leave together and reach the gateway in one burst.
       */
      alignMs?: number;
    }
  | { kind: "error"; status: number; message?: string; type?: string; code?: string | null; headers?: Record<string, string>; delayMs?: number }
  /** Any status, headers and body, sent verbatim (an HTML error page from a proxy, a plain-text 503, an empty body). */
  | { kind: "raw"; status: number; body: string; headers?: Record<string, string> }
  /** Read the request, never send headers. */
  | { kind: "hang" }
  /** Read the request, then destroy the socket without a response. */
  | { kind: "reset" }
  /** Stream N content chunks then stall forever (connection open). */
  | ({ kind: "stream-then-hang" } & BrokenStream)
  /** Stream N content chunks then destroy the socket. */
  | ({ kind: "stream-then-reset" } & BrokenStream)
  /** N chunks then `data: {"error":{...}}\n\n` and end. */
  | ({ kind: "stream-then-error"; message?: string } & BrokenStream)
  /** N good chunks then `data: {not json\n\n` and end. */
  | ({ kind: "malformed" } & BrokenStream)
  /** N content chunks then a clean `data: [DONE]` and end, but no chunk ever carried a finish_reason. */
  | ({ kind: "stream-then-end" } & BrokenStream)
  /**
   * An upstream that echoes its request (URL, Host, every header, the Authorization one
   * included) in an error message: a JSON error body with `status` (200 too: an error-shaped
   * 200), or with `stream: true` an SSE stream of `chunks` content chunks (default 0) and then
   * `data: {"error": ...}`.
   */
  | { kind: "echo"; status: number; stream?: boolean; chunks?: number }
  /** A non-streaming reply whose 200 headers go out at once and whose body follows `bodyDelayMs` later. */
  | { kind: "headers-then-body"; bodyDelayMs: number; content?: string }
  /**
   * A long stream sent as fast as the reader takes it, honouring backpressure: `chunks`
   * content chunks of `chunkBytes` characters, then a finish and `[DONE]`. `progress.sent`
   * counts the chunks written so far, so a test can see how much of the answer the gateway
   * has pulled (an SSE stream of the non-streaming kind is not served).
   */
  | { kind: "flood"; chunks: number; chunkBytes: number; progress: { sent: number } };

export interface FakeUpstream {
  /** `http://127.0.0.1:${port}/compatible-mode/v1` */
  readonly baseUrl: string;
  /** Every request, in arrival order (pushed once its body has been read). */
  readonly requests: RecordedRequest[];
  /** Expected bearer key; default "sk-fake". */
  apiKey: string;
  /** More bearer keys accepted besides `apiKey` (a provider configured with several). */
  readonly otherKeys: Set<string>;
  /** Per-key override (matches the bearer key), consulted before the queue: a 429 for one key of several. */
  onKey(key: string, b: Behaviour | undefined): void;
  /**
   * Behaviour for the next request(s): queue consumed FIFO; when empty, the default reply is used.
   * Only requests that pass auth and validation consume the queue (the real upstream rejects
   * those before any model runs).
   */
  enqueue(...b: Behaviour[]): void;
  /** Per-model override (matches body.model), consulted before the default but after the queue. */
  onModel(model: string, b: Behaviour): void;
  /** Resolves when some request has aborted === true (rejects after timeoutMs, default 2000). */
  waitForAbort(timeoutMs?: number): Promise<RecordedRequest>;
  /** Resolves once at least `count` requests have been recorded (rejects after timeoutMs, default 2000). */
  waitForRequests(count: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  /** Clear queue, overrides and requests. */
  reset(): void;
  /** Destroys open sockets (hung ones too) so close never hangs. */
  close(): Promise<void>;
}

type Reply = Extract<Behaviour, { kind: "reply" }>;
type Usage = NonNullable<Reply["usage"]>;

const DEFAULT_USAGE: Usage = { prompt_tokens: 10, completion_tokens: 5 };

/** Content used for the N partial chunks of the `stream-then-*` and `malformed` behaviours. */
export function partialChunk(i: number): string {
  return `chunk${i} `;
}

/** OpenAI's error envelope; every non-2xx body from the real upstream has this shape. */
function errorBody(message: string, type: string, code: string | null, param: string | null = null) {
  return { error: { message, type, param, code } };
}

function newId(): string {
  return `chatcmpl-${randomBytes(15).toString("hex")}`;
}

/** Split text the way a tokenizer-ish stream would: word plus trailing space, so "Hello from x" → 3 pieces. */
function splitWords(text: string): string[] {
  return text.match(/\s*\S+\s*|\s+/g) ?? [];
}

/** Split tool-call arguments into ~3 fragments so clients must concatenate them. */
function splitFragments(text: string, parts = 3): string[] {
  if (text === "") return [];
  const size = Math.max(1, Math.ceil(text.length / parts));
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

/** Usage in the shape OpenAI sends it, including the detail objects. */
function usageBody(u: Usage) {
  return {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: u.completion_tokens,
    total_tokens: u.prompt_tokens + u.completion_tokens,
    prompt_tokens_details: { cached_tokens: u.cached_tokens ?? 0 },
    completion_tokens_details: { reasoning_tokens: u.reasoning_tokens ?? 0 },
  };
}

/**
 * One request/response exchange. Tracks whether the response has closed so that delayed
 * work stops instead of writing into a dead socket, and owns its timers so none outlive it.
 */
class Exchange {
  closed = false;
  /** Set when the fake itself kills the connection, so it is not mistaken for a client abort. */
  killedByServer = false;
  private readonly timers = new Map<NodeJS.Timeout, () => void>();

  constructor(readonly res: ServerResponse) {}

  /** Wait `ms`; resolves early (and the timer is cleared) if the response closes. */
  pause(ms: number): Promise<void> {
    if (ms <= 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.set(t, resolve);
    });
  }

  /** Write unless the response is gone; returns false once writing is pointless. */
  write(text: string): boolean {
    if (this.closed || this.res.destroyed) return false;
    this.res.write(text);
    return true;
  }

  end(): void {
    if (!this.closed && !this.res.destroyed) this.res.end();
  }

  onClose(): void {
    this.closed = true;
    for (const [t, resolve] of this.timers) {
      clearTimeout(t);
      resolve();
    }
    this.timers.clear();
  }
}

function startSse(res: ServerResponse): void {
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "x-request-id": randomBytes(8).toString("hex"),
  });
  // Send headers now: clients (and the gateway) should see the stream open even if no chunk follows.
  res.flushHeaders();
}

const sse = (data: unknown): string => `data: ${JSON.stringify(data)}\n\n`;

/** Builds `chat.completion.chunk` objects sharing one id/created/model, as OpenAI does. */
function chunkMaker(model: string, includeUsage: boolean) {
  const id = newId();
  const created = Math.floor(Date.now() / 1000);
  return {
    choice(delta: Record<string, unknown>, finishReason: string | null = null) {
      return {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }],
        // With include_usage, OpenAI and DashScope put `"usage": null` on every non-final chunk.
        ...(includeUsage ? { usage: null } : {}),
      };
    },
    usage(u: Usage) {
      return { id, object: "chat.completion.chunk", created, model, choices: [], usage: usageBody(u) };
    },
  };
}

function nonStreamingReply(res: ServerResponse, model: string, b: Reply): void {
  const toolCalls = b.toolCalls ?? [];
  const message: Record<string, unknown> = {
    role: "assistant",
    // OpenAI sends content: null on a pure tool-call turn.
    content: b.content ?? (toolCalls.length > 0 ? null : `Hello from ${model}`),
  };
  if (b.reasoning !== undefined) message.reasoning_content = b.reasoning;
  if (toolCalls.length > 0) {
    message.tool_calls = toolCalls.map((t) => ({ id: t.id, type: "function", function: { name: t.name, arguments: t.arguments } }));
  }
  const body: Record<string, unknown> = {
    id: newId(),
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message, finish_reason: b.finishReason ?? (toolCalls.length > 0 ? "tool_calls" : "stop"), logprobs: null }],
  };
  if (b.usage !== null) body.usage = usageBody(b.usage ?? DEFAULT_USAGE);
  sendJson(res, 200, body);
}

/** How long a reply waits before its first byte: firstByteDelayMs, or until the next alignMs tick. */
function firstByteDelay(b: Reply): number {
  if (b.alignMs) return b.alignMs - (Date.now() % b.alignMs);
  return b.firstByteDelayMs ?? 0;
}

async function streamingReply(x: Exchange, model: string, b: Reply, includeUsage: boolean): Promise<void> {
  const mk = chunkMaker(model, includeUsage);
  const toolCalls = b.toolCalls ?? [];
  const content = b.content ?? (toolCalls.length > 0 ? "" : `Hello from ${model}`);

  // Build the whole event list first; the loop below only deals with pacing and disconnects.
  const events: string[] = [sse(mk.choice({ role: "assistant", content: "" }))];
  for (const piece of splitWords(b.reasoning ?? "")) events.push(sse(mk.choice({ reasoning_content: piece })));
  for (const piece of splitWords(content)) events.push(sse(mk.choice({ content: piece })));
  toolCalls.forEach((t, index) => {
    // OpenAI: first fragment carries id/type/name with empty arguments; later ones only index + arguments.
    events.push(sse(mk.choice({ tool_calls: [{ index, id: t.id, type: "function", function: { name: t.name, arguments: "" } }] })));
    for (const frag of splitFragments(t.arguments)) {
      events.push(sse(mk.choice({ tool_calls: [{ index, function: { arguments: frag } }] })));
    }
  });
  events.push(sse(mk.choice({}, b.finishReason ?? (toolCalls.length > 0 ? "tool_calls" : "stop"))));
  if (includeUsage && b.usage !== null) events.push(sse(mk.usage(b.usage ?? DEFAULT_USAGE)));
  events.push("data: [DONE]\n\n");

  await x.pause(firstByteDelay(b));
  if (x.closed) return;
  startSse(x.res);
  for (let i = 0; i < events.length; i++) {
    if (i > 0) await x.pause(b.chunkDelayMs ?? 0);
    if (!x.write(events[i]!)) return;
  }
  x.end();
}

/** The `stream-then-*` / `malformed` behaviours: role chunk + N content chunks, then the failure. */
async function brokenStream(x: Exchange, model: string, b: Exclude<Behaviour, Reply | { kind: "error" | "raw" | "hang" | "reset" | "echo" | "headers-then-body" | "flood" }>, includeUsage: boolean): Promise<void> {
  const mk = chunkMaker(model, includeUsage);
  startSse(x.res);
  if (b.role !== false) x.write(sse(mk.choice({ role: "assistant", content: "" })));
  for (let i = 0; i < b.chunks; i++) x.write(sse(mk.choice({ content: partialChunk(i) })));
  switch (b.kind) {
    case "stream-then-hang":
      return; // leave the connection open; close() or the client ends it
    case "stream-then-error":
      x.write(sse(errorBody(b.message ?? "fake upstream stream error", "server_error", null)));
      x.end();
      return;
    case "malformed":
      x.write("data: {not json\n\n");
      x.end();
      return;
    case "stream-then-end":
      x.write("data: [DONE]\n\n");
      x.end();
      return;
    case "stream-then-reset":
      return resetAfterFlush(x);
  }
}

async function flood(x: Exchange, model: string, b: Extract<Behaviour, { kind: "flood" }>, includeUsage: boolean): Promise<void> {
  const mk = chunkMaker(model, includeUsage);
  const text = "x".repeat(b.chunkBytes);
  startSse(x.res);
  for (let i = 0; i < b.chunks; i++) {
    if (x.closed || x.res.destroyed) return;
    const more = x.res.write(sse(mk.choice(i === 0 ? { role: "assistant", content: text } : { content: text })));
    b.progress.sent = i + 1;
    if (!more) await new Promise<void>((resolve) => {
      const done = () => { x.res.off("drain", done); x.res.off("close", done); resolve(); };
      x.res.on("drain", done);
      x.res.on("close", done);
    });
  }
  x.write(sse(mk.choice({}, "stop")));
  if (includeUsage) x.write(sse(mk.usage(DEFAULT_USAGE)));
  x.write("data: [DONE]\n\n");
  x.end();
}

/** Destroys the connection once what was written reached the kernel (destroy() could discard it). */
async function resetAfterFlush(x: Exchange): Promise<void> {
  await new Promise<void>((resolve) => (x.closed ? resolve() : x.res.write("", () => resolve())));
  x.killedByServer = true;
  x.res.socket?.destroy();
}

/** Kills the connection before any response byte. */
function resetNow(x: Exchange): void {
  x.killedByServer = true;
  x.res.socket?.destroy();
}

/** What an upstream that echoes its request would say: the URL it was called on, its Host, every header. */
function echoOf(req: IncomingMessage): string {
  const url = `http://${req.headers.host}${req.url}`;
  return `cannot serve ${req.method} ${url} (Host: ${req.headers.host}; Authorization: ${req.headers.authorization}; headers ${JSON.stringify(req.headers)})`;
}

function echoRequest(x: Exchange, req: IncomingMessage, model: string, b: Extract<Behaviour, { kind: "echo" }>): void {
  const error = errorBody(echoOf(req), b.status >= 500 || b.stream ? "server_error" : "invalid_request_error", null);
  if (!b.stream) return sendJson(x.res, b.status, error);
  const mk = chunkMaker(model, false);
  startSse(x.res);
  for (let i = 0; i < (b.chunks ?? 0); i++) x.write(sse(mk.choice(i === 0 ? { role: "assistant", content: partialChunk(i) } : { content: partialChunk(i) })));
  x.write(sse(error));
  x.end();
}

async function headersThenBody(x: Exchange, model: string, b: Extract<Behaviour, { kind: "headers-then-body" }>): Promise<void> {
  x.res.writeHead(200, { "content-type": "application/json", "x-request-id": randomBytes(8).toString("hex") });
  x.res.flushHeaders();
  await x.pause(b.bodyDelayMs);
  const body = {
    id: newId(), object: "chat.completion", created: Math.floor(Date.now() / 1000), model,
    choices: [{ index: 0, message: { role: "assistant", content: b.content ?? `Hello from ${model}` }, finish_reason: "stop", logprobs: null }],
    usage: usageBody(DEFAULT_USAGE),
  };
  if (x.write(JSON.stringify(body))) x.end();
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    // A client that disconnects mid-upload gives us whatever arrived; the close handler marks it aborted.
    req.on("error", () => resolve(Buffer.concat(parts).toString("utf8")));
  });
}

export async function startFakeUpstream(
  opts: { apiKey?: string; streamOnlyModels?: string[]; hybridThinkingModels?: string[] } = {},
): Promise<FakeUpstream> {
  const streamOnly = new Set(opts.streamOnlyModels ?? []);
  const hybridThinking = new Set(opts.hybridThinkingModels ?? []);
  const queue: Behaviour[] = [];
  const overrides = new Map<string, Behaviour>();
  const byKey = new Map<string, Behaviour>();
  const requests: RecordedRequest[] = [];
  const seenModels = new Set<string>();
  const sockets = new Set<Socket>();
  // Waiters are re-checked whenever a request is recorded or aborts.
  const waiters = new Set<() => boolean>();
  let closing = false;

  const notify = () => {
    for (const w of [...waiters]) if (w()) waiters.delete(w);
  };

  /** Poll-free wait: `check` returns a value when satisfied, undefined otherwise. */
  function waitFor<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const now = check();
      if (now !== undefined) return resolve(now);
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`fake upstream: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const waiter = () => {
        const v = check();
        if (v === undefined) return false;
        clearTimeout(timer);
        resolve(v);
        return true;
      };
      waiters.add(waiter);
    });
  }

  const fake: FakeUpstream = {
    baseUrl: "", // filled in once listening
    requests,
    apiKey: opts.apiKey ?? "sk-fake",
    otherKeys: new Set(),
    onKey: (key, b) => void (b ? byKey.set(key, b) : byKey.delete(key)),
    enqueue: (...b) => void queue.push(...b),
    onModel: (model, b) => void overrides.set(model, b),
    waitForAbort: (timeoutMs = 2000) => waitFor(() => requests.find((r) => r.aborted), timeoutMs, "an aborted request"),
    waitForRequests: (count, timeoutMs = 2000) =>
      waitFor(() => (requests.length >= count ? [...requests] : undefined), timeoutMs, `${count} request(s)`),
    reset() {
      queue.length = 0;
      overrides.clear();
      byKey.clear();
      fake.otherKeys.clear();
      requests.length = 0;
      seenModels.clear();
    },
    close() {
      closing = true;
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rec: RecordedRequest = {
      method: req.method ?? "GET",
      path: req.url ?? "/",
      headers: { ...req.headers },
      body: undefined,
      aborted: false,
      clientPort: req.socket.remotePort ?? 0,
      seq: 0,
    };
    let recorded = false;
    const record = () => {
      if (recorded) return;
      recorded = true;
      rec.seq = ++sequence;
      requests.push(rec);
      notify();
    };
    const x = new Exchange(res);
    res.on("close", () => {
      x.onClose();
      // Closed before we finished: the client went away (not us resetting, not close()).
      if (!res.writableEnded && !x.killedByServer && !closing) {
        rec.aborted = true;
        record();
        notify();
      }
    });

    const raw = await readBody(req);
    let parsed: any;
    let badJson = false;
    if (raw.length > 0) {
      try {
        parsed = JSON.parse(raw);
      } catch {
        badJson = true;
      }
    }
    rec.body = parsed;
    record();
    if (x.closed) return;

    // Auth first, like OpenAI: an unauthenticated caller learns nothing else.
    const auth = req.headers.authorization;
    const m = typeof auth === "string" ? /^Bearer\s+(.+)$/i.exec(auth) : null;
    if (!m || (m[1] !== fake.apiKey && !fake.otherKeys.has(m[1]!))) {
      return sendJson(res, 401, errorBody("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"));
    }

    const path = (req.url ?? "/").split("?")[0]!;
    if (req.method === "GET" && path.endsWith("/models")) {
      const ids = new Set([...seenModels, ...streamOnly, ...hybridThinking, ...overrides.keys()]);
      return sendJson(res, 200, {
        object: "list",
        data: [...ids].map((id) => ({ id, object: "model", created: 0, owned_by: "system" })),
      });
    }
    if (req.method === "POST" && path.endsWith("/embeddings")) {
      return serveEmbeddings(x, badJson ? undefined : parsed, (model) => queue.shift() ?? overrides.get(model) ?? { kind: "reply" });
    }
    if (!(req.method === "POST" && path.endsWith("/chat/completions"))) {
      return sendJson(res, 404, errorBody(`Invalid URL (${req.method} ${path})`, "invalid_request_error", null));
    }

    if (badJson || parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      return sendJson(
        res,
        400,
        errorBody("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)", "invalid_request_error", null),
      );
    }
    const body = parsed as Record<string, any>;
    if (typeof body.model !== "string" || body.model === "") {
      return sendJson(res, 400, errorBody("you must provide a model parameter", "invalid_request_error", null));
    }
    if (!Array.isArray(body.messages)) {
      return sendJson(res, 400, errorBody("Missing required parameter: 'messages'.", "invalid_request_error", "missing_required_parameter", "messages"));
    }
    const model: string = body.model;
    seenModels.add(model);
    const stream = body.stream === true;

    // DashScope quirks, enforced so tests prove the gateway papers over them.
    if (streamOnly.has(model) && !stream) {
      return sendJson(
        res,
        400,
        errorBody(
          "This model only support stream mode, please enable the stream parameter to access the model. ",
          "invalid_request_error",
          "invalid_parameter_error",
        ),
      );
    }
    if (hybridThinking.has(model) && !stream && body.enable_thinking !== false) {
      return sendJson(
        res,
        400,
        errorBody("parameter.enable_thinking must be set to false for non-streaming calls", "invalid_request_error", "invalid_parameter_error"),
      );
    }

    const b: Behaviour = byKey.get(m[1]!) ?? queue.shift() ?? overrides.get(model) ?? { kind: "reply" };
    const includeUsage = body.stream_options?.include_usage === true;
    switch (b.kind) {
      case "error":
        if (b.delayMs) await x.pause(b.delayMs);
        if (x.closed) return;
        return sendJson(
          res,
          b.status,
          errorBody(
            b.message ?? `fake upstream error ${b.status}`,
            b.type ?? (b.status >= 500 ? "server_error" : "invalid_request_error"),
            b.code ?? null,
          ),
          b.headers,
        );
      case "raw":
        if (res.destroyed) return;
        res.writeHead(b.status, { "content-length": String(Buffer.byteLength(b.body)), ...b.headers });
        return void res.end(b.body);
      case "reply":
        if (stream) return streamingReply(x, model, b, includeUsage);
        await x.pause(firstByteDelay(b));
        if (!x.closed) nonStreamingReply(res, model, b);
        return;
      case "echo":
        return echoRequest(x, req, model, b);
      case "headers-then-body":
        return headersThenBody(x, model, b);
      case "flood":
        return flood(x, model, b, includeUsage);
      case "hang":
        return; // never respond; the close handler records the client's abort
      case "reset":
        return resetNow(x);
      default:
        // Broken-stream behaviours only make sense for streams; a non-streaming caller just hangs.
        if (stream) return brokenStream(x, model, b, includeUsage);
        return;
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // A bug in the fake should surface as a 500, not an unhandled rejection that kills vitest.
      sendJson(res, 500, errorBody(`fake upstream crashed: ${String(err)}`, "server_error", null));
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  (fake as { baseUrl: string }).baseUrl = `http://127.0.0.1:${port}/compatible-mode/v1`;
  return fake;
}
