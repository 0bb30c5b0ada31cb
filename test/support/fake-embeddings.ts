/**
 * The fake upstream's `POST /embeddings`, speaking OpenAI's wire as DashScope's compatible mode
 * does: vectors as JSON floats only (DashScope supports no base64, so the fake refuses it, proving
 * the gateway always asks for floats), at most 10 inputs per request (more is DashScope's 400, so
 * tests prove the gateway splits), usage as `prompt_tokens` and `total_tokens`. Vectors are
 * deterministic, derived from each input, so a test can tell which input a vector belongs to.
 */
import { createHash, randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import { sendJson } from "./fake-json.js";
import type { Behaviour } from "./fake-upstream.js";

/** DashScope's batch limit for text-embedding-v3/v4. */
export const FAKE_MAX_BATCH = 10;
export const FAKE_DEFAULT_DIMENSIONS = 1024;

/** The part of the fake's exchange this route needs. */
interface Exchange {
  readonly res: ServerResponse;
  readonly closed: boolean;
  killedByServer: boolean;
  pause(ms: number): Promise<void>;
}

/** The tokens the fake says an input has: about four characters each for text, the ids themselves for token arrays. */
export function fakeTokens(input: string | readonly number[]): number {
  return typeof input === "string" ? Math.max(1, Math.ceil(input.length / 4)) : input.length;
}

/**
 * The vector the fake makes for an input: `dimensions` float32 values (so they survive base64
 * exactly) from a hash of the input, of length about 1.
 */
export function fakeEmbedding(input: string | readonly number[], dimensions = FAKE_DEFAULT_DIMENSIONS): number[] {
  const seed = createHash("sha256").update(typeof input === "string" ? `t:${input}` : `i:${input.join(",")}`).digest();
  const out: number[] = new Array(dimensions);
  const scale = 1 / Math.sqrt(dimensions);
  for (let i = 0; i < dimensions; i++) {
    const byte = seed[i % seed.length]!;
    out[i] = Math.fround(Math.sin(byte * 0.37 + i * 1.3) * scale);
  }
  return out;
}

const invalid = (message: string, param: string | null = null) =>
  ({ error: { message, type: "invalid_request_error", param, code: "InvalidParameter" } });

/** Why DashScope would refuse this body, if it would. */
function refusal(body: any): ReturnType<typeof invalid> | undefined {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return invalid("We could not parse the JSON body of your request.");
  if (typeof body.model !== "string" || body.model === "") return invalid("you must provide a model parameter");
  const input = body.input;
  const items = typeof input === "string" ? [input] : input;
  if (!Array.isArray(items) || items.length === 0) return invalid("Missing required parameter: 'input'.", "input");
  if (items.length > FAKE_MAX_BATCH) {
    return invalid(`<400> InternalError.Algo.InvalidParameter: Value error, batch size is invalid, it should not be larger than ${FAKE_MAX_BATCH}.: input.contents`, "input");
  }
  if (body.encoding_format !== undefined && body.encoding_format !== "float") {
    return invalid("encoding_format only supports float", "encoding_format");
  }
  if (body.dimensions !== undefined && !(Number.isInteger(body.dimensions) && body.dimensions > 0)) return invalid("dimensions is invalid", "dimensions");
  return undefined;
}

/**
 * Serves one embeddings request. `next` hands out the test's behaviour for it (the fake's queue,
 * then per-model overrides), consumed only by a request DashScope would accept: `reply` (with
 * `firstByteDelayMs`, and `usage: null` for an answer without usage), `error`, `raw`, `hang`,
 * `reset`; a streaming behaviour makes no sense here and hangs.
 */
export async function serveEmbeddings(x: Exchange, body: any, next: (model: string) => Behaviour): Promise<void> {
  const refused = refusal(body);
  if (refused) return sendJson(x.res, 400, refused);
  const b = next(body.model);
  const inputs: Array<string | number[]> = typeof body.input === "string" || typeof body.input[0] === "number" ? [body.input] : body.input;
  switch (b.kind) {
    case "reply": {
      await x.pause(b.firstByteDelayMs ?? 0);
      if (x.closed) return;
      const dimensions: number = body.dimensions ?? FAKE_DEFAULT_DIMENSIONS;
      const tokens = inputs.reduce((n: number, input) => n + fakeTokens(input), 0);
      return sendJson(x.res, 200, {
        object: "list",
        data: inputs.map((input, index) => ({ object: "embedding", index, embedding: fakeEmbedding(input, dimensions) })),
        model: body.model,
        ...(b.usage === null ? {} : { usage: { prompt_tokens: tokens, total_tokens: tokens } }),
        id: randomBytes(16).toString("hex"),
      });
    }
    case "error": {
      const type = b.type ?? (b.status >= 500 ? "server_error" : "invalid_request_error");
      return sendJson(x.res, b.status, { error: { message: b.message ?? `fake upstream error ${b.status}`, type, param: null, code: b.code ?? null } }, b.headers);
    }
    case "raw":
      if (x.res.destroyed) return;
      x.res.writeHead(b.status, { "content-length": String(Buffer.byteLength(b.body)), ...b.headers });
      return void x.res.end(b.body);
    case "reset":
      x.killedByServer = true;
      x.res.socket?.destroy();
      return;
    default:
      return; // hang: the close handler records the client's abort
  }
}
