import type { ProviderConfig } from "../config.js";

/** Replaces every configured provider secret and upstream address in a text. */
export type Redact = (text: string) => string;

/** Shorter values are left alone: they would match ordinary words and numbers. */
export const MIN_SECRET_LENGTH = 6;

/** Extra headers whose values are credentials (Authorization, api-key, x-api-key, x-auth-token...). */
const CREDENTIAL_HEADER = /auth|key|token|secret|password|cookie|signature/i;

const SECRET = "[redacted]";

/**
 * One redactor for the whole process, built once from the providers'
 * configuration: their keys and access tokens, the values of credential
 * headers, and their base URLs (the full URL, its origin and its host:port),
 * so an upstream that echoes its request tells neither clients nor the log
 * where it lives or what the gateway authenticates with. A single
 * case-insensitive alternation of literals, longest first, so a base URL is
 * replaced whole before its origin or host could be, and redacting costs one
 * regex pass with nothing allocated unless something matches.
 */
export function createRedactor(configs: readonly ProviderConfig[]): Redact {
  const replacement = new Map<string, string>();
  const add = (value: string | undefined, as: string) => {
    const v = value?.trim();
    if (v && v.length >= MIN_SECRET_LENGTH && !replacement.has(v.toLowerCase())) replacement.set(v.toLowerCase(), as);
  };
  for (const c of configs) {
    if (!c.apiKey) continue; // never used, so it can never be echoed back
    for (const k of c.apiKeys ?? [c.apiKey]) add(k, SECRET);
    for (const [name, value] of Object.entries(c.headers)) {
      if (!CREDENTIAL_HEADER.test(name)) continue;
      add(value, SECRET);
      add(value.split(/\s+/).at(-1), SECRET); // the token of "Bearer <token>"
    }
    const where = `[${c.row.id} URL]`;
    add(c.baseUrl, where);
    if (URL.canParse(c.baseUrl)) {
      const url = new URL(c.baseUrl);
      add(url.origin, where);
      add(url.host, where);
    }
  }
  if (replacement.size === 0) return (text) => text;
  const literals = [...replacement.keys()].sort((a, b) => b.length - a.length);
  const pattern = new RegExp(literals.map(escapeRegExp).join("|"), "gi");
  const replace = (match: string) => replacement.get(match.toLowerCase()) ?? SECRET;
  return (text) => text.replace(pattern, replace);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
