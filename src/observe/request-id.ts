import { randomUUID } from "node:crypto";

/** Printable ASCII, at most 128 characters, not starting or ending with a space: safe in a header, a log line and a column. */
const ACCEPTABLE = /^(?=[\x21-\x7e])[\x20-\x7e]{0,127}[\x21-\x7e]$|^[\x21-\x7e]$/;

/**
 * The request's id: the client's `x-request-id` when it is acceptable
 * (so a caller's id follows its request through our logs, rows and spans),
 * else a new UUID.
 */
export function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === "string" && ACCEPTABLE.test(header) ? header : randomUUID();
}
