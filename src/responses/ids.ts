import { randomBytes } from "node:crypto";

/** An id in OpenAI's style: a prefix naming what it is (resp, msg, fc, rs) and 48 random hex digits. */
export function newId(prefix: "resp" | "msg" | "fc" | "fco" | "rs" | "call"): string {
  return `${prefix}_${randomBytes(24).toString("hex")}`;
}
