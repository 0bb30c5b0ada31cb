import { GatewayError } from "../errors.js";

/*
 * The 400s of the Responses door, worded as OpenAI words them ("Invalid
 * type for 'temperature': ...") and naming the field in `param`, so a client
 * can point at what it sent.
 */

export type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

export function invalid(param: string, message: string): GatewayError {
  return new GatewayError("invalid_request", message, { param });
}

export function unsupported(param: string, what: string): GatewayError {
  return invalid(param, `${what} is not supported by this gateway: it serves the Responses API through each provider's chat completions.`);
}

export function wrongType(param: string, expected: string, got: unknown): GatewayError {
  const kind = got === null ? "null" : Array.isArray(got) ? "an array" : typeof got === "object" ? "an object" : `a ${typeof got}`;
  return invalid(param, `Invalid type for '${param}': expected ${expected}, but got ${kind} instead.`);
}

export function missing(param: string): GatewayError {
  return invalid(param, `Missing required parameter: '${param}'.`);
}

export function string(v: unknown, param: string): string {
  if (typeof v !== "string") throw wrongType(param, "a string", v);
  return v;
}

export function object(v: unknown, param: string): Json {
  if (!isObject(v)) throw wrongType(param, "an object", v);
  return v;
}

export function array(v: unknown, param: string): unknown[] {
  if (!Array.isArray(v)) throw wrongType(param, "an array", v);
  return v;
}

export function boolean(v: unknown, param: string): boolean {
  if (typeof v !== "boolean") throw wrongType(param, "a boolean", v);
  return v;
}

export function numberIn(v: unknown, param: string, min: number, max: number, integer = false): number {
  if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isSafeInteger(v))) {
    throw wrongType(param, integer ? "an integer" : "a decimal", v);
  }
  if (v < min) throw invalid(param, `Invalid '${param}': ${integer ? "integer" : "decimal"} below minimum value. Expected a value >= ${min}, but got ${v} instead.`);
  if (v > max) throw invalid(param, `Invalid '${param}': ${integer ? "integer" : "decimal"} above maximum value. Expected a value <= ${max}, but got ${v} instead.`);
  return v;
}

export function oneOf<T extends string>(v: unknown, param: string, values: readonly T[]): T {
  if (typeof v !== "string" || !values.includes(v as T)) {
    const list = values.map((x) => `'${x}'`).join(", ");
    throw invalid(param, `Invalid value: ${JSON.stringify(v)?.slice(0, 100)}. Supported values are: ${list}.`);
  }
  return v as T;
}

/** `undefined` for an absent or null field: OpenAI reads null as unset. */
export function given(body: Json, field: string): unknown {
  const v = body[field];
  return v === null ? undefined : v;
}
