import { randomFillSync } from "node:crypto";

/** Random bytes drawn in blocks: one getrandom call per block, not per id (it showed in the profile). */
const RANDOM = 18;
const BLOCK = RANDOM * 256;
const pool = Buffer.alloc(BLOCK);
let used = BLOCK;

/** What an id names: a response, a conversation item, a tool call. */
export type IdPrefix = "resp" | "msg" | "fc" | "fco" | "rs" | "call";

/**
 * An id in OpenAI's style: a prefix naming what it is and 48 hex digits:
 * the time in ms (12 digits), then 144 random bits. Time first so stored
 * responses are appended at the end of their index, where random ids
 * dirtied a page of it per response, which each commit wrote.
 */
export function newId(prefix: IdPrefix): string {
  if (used === BLOCK) {
    randomFillSync(pool);
    used = 0;
  }
  used += RANDOM;
  return `${prefix}_${Date.now().toString(16).padStart(12, "0")}${pool.toString("hex", used - RANDOM, used)}`;
}

/**
 * Item ids of one response: its 48 digits and a 4-digit counter, so an
 * item_reference finds the response that holds the item without an index
 * of every item (responseOfItem).
 */
export function itemIds(responseId: string): (prefix: IdPrefix) => string {
  const digits = responseId.slice("resp_".length);
  let n = 0;
  return (prefix) => `${prefix}_${digits}${(n++ & 0xffff).toString(16).padStart(4, "0")}`;
}

const ITEM_ID = /^[a-z]+_([0-9a-f]{48})[0-9a-f]{4}$/;

/** The response an item id of ours belongs to; undefined for any other id. */
export function responseOfItem(itemId: string): string | undefined {
  const m = ITEM_ID.exec(itemId);
  return m ? `resp_${m[1]}` : undefined;
}
