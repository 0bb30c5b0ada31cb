import type { Principal } from "../core/auth.js";
import type { ChatBody, ChatCall } from "../core/chat-request.js";
import type { ChatOutcome, Gateway } from "../core/gateway.js";
import { rateLimitHeaders, type RateLimitSnapshot } from "../core/limiter.js";
import { GatewayError, toOpenAIError } from "../errors.js";
import type { Logger } from "../log.js";
import { EventText } from "../responses/event-text.js";
import { cacheControlOf, cacheHeader, headerText } from "../cache/cache-control.js";
import { ResponseEvents, type ResponseEvent } from "../responses/events.js";
import { chatMessages, inputItems, referencedIds } from "../responses/input.js";
import { invalid } from "../responses/invalid.js";
import { parseResponsesRequest, type ResponsesRequest } from "../responses/request.js";
import { completedResponse, shell, type ResponseShell } from "../responses/response.js";
import type { ResponseStore, StoredItem } from "../storage/responses.js";
import { logFailure } from "./failure-log.js";
import { readJsonBody, sendJson, sendJsonText, stopUnreadBody, type BodyLimits, type Req, type Res } from "./http-io.js";
import type { RequestScope } from "./requests.js";
import { SseWriter } from "./sse.js";

/** Which Responses endpoint a request is for, from its method and path, known before its key is checked. */
export type ResponsesRoute =
  | { readonly kind: "create" }
  | { readonly kind: "retrieve" | "delete" | "input_items" | "cancel"; readonly id: string };

export interface ResponsesDoorDeps {
  readonly gateway: Gateway;
  readonly store: ResponseStore;
  readonly options: BodyLimits & { readonly sendTimeoutMs: number };
  readonly log: Logger;
}

/** A Responses path's route; not_found for a method or path the API does not have. */
export function responsesRoute(method: string | undefined, path: string): ResponsesRoute {
  const [, id, sub, ...more] = path.slice("/v1/responses".length).split("/");
  const want = (kind: ResponsesRoute["kind"], allowed: string): ResponsesRoute => {
    if (method !== allowed) throw new GatewayError("not_found", `${method} is not supported here; use ${allowed}`);
    return kind === "create" ? { kind } : { kind, id: decodeId(id!) };
  };
  if (id === undefined) return want("create", "POST");
  if (id !== "" && more.length === 0) {
    if (sub === undefined) return want(method === "DELETE" ? "delete" : "retrieve", method === "DELETE" ? "DELETE" : "GET");
    if (sub === "input_items") return want("input_items", "GET");
    if (sub === "cancel") return want("cancel", "POST");
  }
  throw new GatewayError("not_found", `Unknown request URL: ${method} ${path.slice(0, 200)}`);
}

function decodeId(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw invalid("response_id", `the response id in the path is not valid percent-encoding: ${raw.slice(0, 100)}`);
  }
}

const notFound = (id: string) => new GatewayError("not_found", `Response with id '${id.slice(0, 200)}' not found.`);

/**
 * The Responses API (`/v1/responses`), served by translating each request
 * to a chat completion through the same core as `/v1/chat/completions`:
 * admission, limits, budgets, failover and the one usage row (operation
 * "responses") are the core's. Stored responses are the key's user's own.
 */
export function createResponsesDoor({ gateway, store, options, log }: ResponsesDoorDeps) {
  const stored = async (id: string, userId: string): Promise<unknown> => {
    const body = await store.get(id, userId);
    if (body === undefined) throw notFound(id);
    return body;
  };

  /** Resolves once the response is committed (or could not be: the answer still goes out). */
  const save = async (s: ResponseShell, userId: string, input: StoredItem[], body: string): Promise<void> => {
    if (!s.store) return;
    try {
      await store.save({ id: s.id, userId, createdAt: s.createdAt * 1000, previousId: s.previousResponseId ?? null, body, input });
    } catch (err) {
      // The answer is paid for and goes out; only continuing from it will fail (its id is unknown).
      log.error(`response ${s.id} could not be stored: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  /** The request checked and turned into a chat call, or refused with its usage row written. */
  const prepare = async (req: Req, res: Res, scope: RequestScope, principal: Principal) => {
    const authorization = req.headers.authorization;
    let model = "";
    try {
      const raw = await readJsonBody(req, options).catch((err: unknown) => {
        if (!req.complete) stopUnreadBody(req, res);
        throw err;
      });
      const named = (raw as { model?: unknown } | null)?.model;
      if (typeof named === "string") model = named;
      const found = gateway.catalog.find(model);
      const parsed = parseResponsesRequest(raw, found);
      const s = shell(found?.id ?? model, parsed.previousResponseId, parsed.store, parsed.echo);
      const input = await conversation(parsed, principal.userId, s);
      const messages = chatMessages(parsed.instructions, input);
      if (messages.length === 0) throw invalid("input", "input has nothing to send to the model: give at least one message");
      const call: ChatCall = {
        model, body: { ...parsed.chat, messages } as ChatBody, signal: scope.signal, authorization, principal,
        protocol: "openai", telemetry: scope.telemetry, operation: "responses",
        cache: cacheControlOf(headerText(req.headers["cache-control"]), headerText(req.headers["x-gatewayz-cache-ttl"])),
      };
      // An unknown model is refused by the core (404 model_not_found, with its usage row).
      return { parsed, input, call, shell: s };
    } catch (err) {
      await gateway.refused({ protocol: "openai", model, authorization, principal, telemetry: scope.telemetry, operation: "responses" }, err);
      throw err;
    }
  };

  /** The previous response's conversation, then this request's input. */
  const conversation = async (parsed: ResponsesRequest, userId: string, s: ResponseShell): Promise<StoredItem[]> => {
    const before = parsed.previousResponseId === undefined ? [] : await store.conversation(parsed.previousResponseId, userId);
    if (!before) {
      // OpenAI answers an unknown previous_response_id with a 400 naming it.
      throw invalid("previous_response_id", `Previous response with id '${parsed.previousResponseId!.slice(0, 200)}' not found.`);
    }
    // Looked up first: the store may answer later (PostgreSQL), and the input's parsing is synchronous.
    const referenced = new Map<string, StoredItem>();
    for (const id of referencedIds(parsed.input)) {
      const item = await store.item(id, userId);
      if (item) referenced.set(id, item);
    }
    return [...before, ...inputItems(parsed.input, (id) => referenced.get(id), s.itemId)];
  };

  const create = async (req: Req, res: Res, scope: RequestScope, principal: Principal) => {
    const { parsed, input, call, shell: s } = await prepare(req, res, scope, principal);
    if (!parsed.stream) {
      const { completion, outcome, rateLimit } = await gateway.complete(call);
      // Serialised once, for the client and the store.
      const body = JSON.stringify(completedResponse(s, completion, outcome.rawUsage));
      await save(s, principal.userId, input, body);
      sendJsonText(res, 200, body, answerHeaders(rateLimit, outcome));
      return;
    }
    const chat = await gateway.stream(call);
    const sse = new SseWriter(res, scope, options.sendTimeoutMs);
    sse.open(answerHeaders(chat.rateLimit, chat));
    const machine = new ResponseEvents(s);
    const text = new EventText();
    // A chunk's events go out in one write.
    const send = (events: ResponseEvent[]) => sse.events(events, text.event);
    const chunks = chat[Symbol.asyncIterator]();
    let ended = false;
    try {
      // Started before anything else can throw: however it ends now, the core records it.
      let next = await chunks.next();
      await send(machine.start());
      for (; !next.done; next = await chunks.next()) {
        const wait = send(machine.push(next.value));
        if (wait) await wait;
      }
      ended = true;
      const { events, response } = machine.finish(chat.outcome().rawUsage);
      // Stored before the client hears it is complete, so it can continue from it at once.
      if (s.store) await save(s, principal.userId, input, text.response(response));
      await send(events);
      sse.endWith();
    } catch (err) {
      // The client went away mid-stream: stopping the iteration records it (cancelled) and aborts the upstream.
      if (!ended) await chunks.return?.();
      logFailure(log, "POST /v1/responses (streaming)", err, scope.telemetry.requestId);
      const events = machine.fail(toOpenAIError(err).body.error);
      // Kept as it ended, as OpenAI keeps a failed response (retrievable, with its error and partial output).
      const failed = (events[0] as { response?: object }).response;
      if (s.store && failed) await save(s, principal.userId, input, text.response(failed));
      sse.endWith(events, text.event);
    }
  };

  return async (route: ResponsesRoute, req: Req, res: Res, scope: RequestScope, principal: Principal): Promise<void> => {
    switch (route.kind) {
      case "create":
        return create(req, res, scope, principal);
      case "retrieve":
        if (new URL(req.url ?? "/", "http://x").searchParams.get("stream") === "true") {
          throw invalid("stream", "Streaming a stored response again (stream=true) is not supported by this gateway: only background responses can be, and there are none here.");
        }
        return sendJson(res, 200, await stored(route.id, principal.userId));
      case "delete":
        if (!(await store.delete(route.id, principal.userId))) throw notFound(route.id);
        return sendJson(res, 200, { id: route.id, object: "response", deleted: true });
      case "cancel":
        await stored(route.id, principal.userId);
        throw invalid("response_id", "Only responses created with background=true can be cancelled, and this gateway runs none in the background.");
      case "input_items":
        return sendJson(res, 200, await listItems(store, route.id, principal.userId, req.url ?? "/"));
    }
  };
}

function answerHeaders(rateLimit: RateLimitSnapshot, served: Pick<ChatOutcome, "provider" | "upstreamModel" | "attempts" | "cache">): Record<string, string> {
  return {
    ...rateLimitHeaders(rateLimit), "x-gatewayz-provider": served.provider, "x-gatewayz-model": served.upstreamModel,
    "x-gatewayz-attempts": String(served.attempts), ...cacheHeader(served.cache),
  };
}

/** GET /v1/responses/{id}/input_items: OpenAI's list, newest first unless order=asc, `limit` 1..100 (20), after an item id. */
async function listItems(store: ResponseStore, id: string, userId: string, url: string) {
  const q = new URL(url, "http://x").searchParams;
  const limitText = q.get("limit") ?? "20";
  const limit = Number(limitText);
  if (!/^\d+$/.test(limitText) || limit < 1 || limit > 100) {
    throw invalid("limit", `Invalid 'limit': expected an integer from 1 to 100, but got '${limitText.slice(0, 20)}' instead.`);
  }
  const order = q.get("order") ?? "desc";
  if (order !== "asc" && order !== "desc") throw invalid("order", `Invalid value: '${order.slice(0, 20)}'. Supported values are: 'asc' and 'desc'.`);
  const page = await store.inputItems(id, userId, { after: q.get("after") ?? undefined, limit, order });
  if (!page) throw notFound(id);
  return { object: "list", data: page.data, first_id: page.data[0]?.id ?? null, last_id: page.data.at(-1)?.id ?? null, has_more: page.hasMore };
}
