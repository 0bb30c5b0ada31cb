import type { LimitsView } from "../core/accounts.js";
import { formatUsd } from "../core/money.js";
import type { KeyRecord } from "../storage/keys.js";
import type { BudgetRow, LimitValues } from "../storage/limits.js";

export type Align = "left" | "right";

/**
 * A plain-text table: a header, one line per row, columns padded to their
 * widest cell and separated by two spaces; numbers read best right-aligned.
 */
export function table(headers: readonly string[], cells: readonly (readonly string[])[], align: readonly Align[] = []): string {
  const rows = cells.map((r) => r.map(printable));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (row: readonly string[]) =>
    row.map((c, i) => (align[i] === "right" ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

/**
 * Control characters (C0, DEL, C1), bidirectional overrides and line
 * separators, which a terminal would obey rather than show: a key or user
 * name holding ESC sequences or newlines could otherwise repaint the screen
 * or forge table rows.
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** Text for a terminal: every such character shown as an escape (\n, \x1b, \u202e). */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    return NAMED[c] ?? (code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`);
  });
}

/** One JSON document, one trailing newline. */
export function jsonDocument(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

/** Milliseconds since the epoch → ISO 8601, UTC. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function keyStatus(k: KeyRecord, now = Date.now()): string {
  if (k.replacedBy !== null) return `rotated → ${k.replacedBy}`;
  if (k.revokedAt !== null) return "revoked";
  return expired(k, now) ? "expired" : "active";
}

function expired(k: KeyRecord, now: number): boolean {
  return k.expiresAt !== null && k.expiresAt <= now;
}

/** The models a key may call, for a table: the list, or "all". */
export function modelsText(k: KeyRecord): string {
  return k.models === null ? "all" : k.models.join(",");
}

/** When a key expires, for a table: the instant, or "never". */
export function expiresText(k: KeyRecord): string {
  return k.expiresAt === null ? "never" : iso(k.expiresAt);
}

/** A key's cache setting as the CLI takes it: off, on, or default (the gateway's CACHE). */
export function cacheWord(k: KeyRecord): "off" | "on" | "default" {
  return k.cache ?? "default";
}

export function keyJson(k: KeyRecord) {
  return {
    id: k.id, user: k.userName, name: k.name, kind: k.kind, display: k.display,
    created: iso(k.createdAt),
    status: k.replacedBy !== null ? "rotated" : k.revokedAt !== null ? "revoked" : expired(k, Date.now()) ? "expired" : "active",
    revoked: k.revokedAt === null ? null : iso(k.revokedAt), replacedBy: k.replacedBy,
    cache: cacheWord(k), expires: k.expiresAt === null ? null : iso(k.expiresAt), models: k.models,
  };
}

/** Every field, null where the configured default applies. */
export function limitsJson(row: LimitValues | undefined): Record<keyof LimitValues, number | null> {
  return { rpm: row?.rpm ?? null, tpm: row?.tpm ?? null, rpd: row?.rpd ?? null, concurrent: row?.concurrent ?? null };
}

export function budgetJson(b: BudgetRow | undefined): { usd: string; period: BudgetRow["period"] } | null {
  return b ? { usd: formatUsd(b.limitPico), period: b.period } : null;
}

export function budgetText(b: BudgetRow | undefined): string {
  if (!b) return "none";
  return `${formatUsd(b.limitPico)} USD ${b.period === "month" ? "per calendar month (UTC)" : "in total"}`;
}

/** "60", "unlimited", or "default (600)" when the row leaves the field unset. */
export function limitText(value: number | undefined, fallback: number | undefined): string {
  const show = (n: number) => (n === 0 ? "unlimited" : String(n));
  if (value !== undefined) return show(value);
  return fallback === undefined ? "default" : `default (${show(fallback)})`;
}

export function viewJson(view: LimitsView) {
  return { limits: limitsJson(view.row), budget: budgetJson(view.budget) };
}
