import { GatewayError } from "../errors.js";
import { parseModelScope, splitModels } from "../core/model-scope.js";
import { shippedCatalog } from "../core/shipped-catalog.js";
import { parseArgs } from "node:util";
import type { Target } from "../core/accounts.js";
import { UsageError, type CommandSpec, type OptionValues } from "./spec.js";

const GLOBAL_OPTIONS = {
  db: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

export type Invocation =
  | { readonly kind: "help"; readonly topic: readonly string[] }
  | { readonly kind: "version" }
  | { readonly kind: "run"; readonly command: CommandSpec; readonly values: OptionValues; readonly args: readonly string[] };

/**
 * Finds the command named by the leading words, then parses strictly with
 * that command's flags only, so `keys list --usd 5` is an error rather than
 * a flag silently ignored. Flags may come before or after the words.
 */
export function parseArgv(argv: readonly string[], commands: readonly CommandSpec[]): Invocation {
  const words = wordsOf(argv, commands);
  if (words.length === 0 && argv.includes("--version")) return { kind: "version" };
  if (words.length === 0 || words[0] === "help") return { kind: "help", topic: words.slice(1) };
  const command = commands.find((c) => c.words.every((w, i) => words[i] === w));
  if (!command) {
    const group = commands.filter((c) => c.words[0] === words[0]);
    if (group.length === 0) throw new UsageError(`unknown command '${words[0]}'`);
    if (words.length === 1) {
      if (hasHelp(argv)) return { kind: "help", topic: words };
      throw new UsageError(`'${words[0]}' needs a subcommand: ${group.map((c) => c.words[1]).join(", ")}`);
    }
    throw new UsageError(`unknown command '${words.slice(0, 2).join(" ")}'`);
  }
  if (hasHelp(argv)) return { kind: "help", topic: command.words };
  const { values, positionals } = strictParse(argv, command);
  const args = positionals.slice(command.words.length);
  if (args.length < command.args.length) throw new UsageError(`missing <${command.args[args.length]}>`, command);
  if (args.length > command.args.length) throw new UsageError(`unexpected argument '${args[command.args.length]}'`, command);
  return { kind: "run", command, values, args };
}

/** The positionals, read leniently with every known flag so that `--db x keys list` finds "keys". */
function wordsOf(argv: readonly string[], commands: readonly CommandSpec[]): string[] {
  const options = Object.assign({}, GLOBAL_OPTIONS, ...commands.map((c) => c.options));
  return parseArgs({ args: [...argv], options, strict: false, allowPositionals: true }).positionals;
}

function hasHelp(argv: readonly string[]): boolean {
  return argv.includes("--help") || argv.includes("-h");
}

function strictParse(argv: readonly string[], command: CommandSpec): { values: OptionValues; positionals: string[] } {
  try {
    return parseArgs({ args: [...argv], options: { ...GLOBAL_OPTIONS, ...command.options }, strict: true, allowPositionals: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      const name = /'([^']+)'/.exec(e.message)?.[1] ?? "?";
      throw new UsageError(`unknown option '${name}' for '${command.words.join(" ")}'`, command);
    }
    if (e.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && /argument (missing|is ambiguous)/.test(e.message)) {
      const name = /'(--?[\w-]+)/.exec(e.message)?.[1] ?? "the option";
      throw new UsageError(`${name} needs a value`, command);
    }
    if (e.code?.startsWith("ERR_PARSE_ARGS_")) throw new UsageError(e.message.split("\n")[0]!, command);
    throw err;
  }
}

/** The flag's string value, or a usage error naming it. */
export function required(values: OptionValues, name: string): string {
  const v = values[name];
  if (typeof v !== "string") throw new UsageError(`--${name} is required`);
  return v;
}

export function optional(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

export function choice<T extends string>(values: OptionValues, name: string, allowed: readonly T[]): T | undefined {
  const v = optional(values, name);
  if (v !== undefined && !allowed.includes(v as T)) throw new UsageError(`--${name} must be one of ${allowed.join(", ")}, got '${v}'`);
  return v as T | undefined;
}

export const LIMIT_FIELDS = ["rpm", "tpm", "rpd", "concurrent"] as const;
export type LimitField = (typeof LIMIT_FIELDS)[number];
export const LIMIT_OPTIONS = Object.fromEntries(LIMIT_FIELDS.map((f) => [f, { type: "string" as const }]));

/**
 * The limit flags given: a number, or null for `default`. Only the syntax is
 * checked here; whether a number is an acceptable limit is for the accounts
 * layer to say, so the CLI and the admin API give the same answer.
 */
export function limitValues(values: OptionValues): { [F in LimitField]?: number | null } {
  const out: { [F in LimitField]?: number | null } = {};
  for (const field of LIMIT_FIELDS) {
    const raw = optional(values, field);
    if (raw === undefined) continue;
    if (raw === "default") out[field] = null;
    else if (/^-?\d+(\.\d+)?$/.test(raw)) out[field] = Number(raw);
    else throw new UsageError(`--${field} takes a number (0 = unlimited) or 'default', got '${raw}'`);
  }
  return out;
}

export type TargetFlag = "system" | "user" | "key";

/** Exactly one of --system, --user NAME, --key ID. */
export function target<F extends TargetFlag>(values: OptionValues, allowed: readonly F[]): Extract<Target, { scope: F }> {
  const given = allowed.filter((f) => values[f] !== undefined);
  if (given.length !== 1) throw new UsageError(`give exactly one of ${allowed.map((f) => (f === "system" ? "--system" : `--${f} ${f === "user" ? "NAME" : "ID"}`)).join(", ")}`);
  const scope = given[0]!;
  const t: Target = scope === "system" ? { scope } : scope === "user" ? { scope, user: required(values, "user") } : { scope, keyId: required(values, "key") };
  return t as Extract<Target, { scope: F }>;
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A UTC day, YYYY-MM-DD, as the epoch milliseconds of its first instant. */
export function day(values: OptionValues, name: string): number | undefined {
  const raw = optional(values, name);
  if (raw === undefined) return undefined;
  const m = DAY.exec(raw);
  const ms = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : NaN;
  if (!m || new Date(ms).toISOString().slice(0, 10) !== raw) throw new UsageError(`--${name} must be a date YYYY-MM-DD, got '${raw}'`);
  return ms;
}

/**
 * `--models` as keys create and keys update take it: the scope's entries,
 * checked against the shipped catalog now, so a typo is exit 2, not a key
 * that can call nothing. "all": every model.
 */
export function modelsFlag(raw: string): string[] {
  const entries = splitModels(raw);
  try {
    parseModelScope(entries, shippedCatalog());
  } catch (err) {
    throw new UsageError(`--${err instanceof GatewayError ? err.rawMessage : String(err)}`);
  }
  return entries;
}

const DURATION = /^(\d+)([smhd])$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;
/** A hundred years: a longer expiry is a typo, and "never" says never. */
const LONGEST_MS = 36_500 * UNIT_MS.d;

/**
 * A key's expiry as the CLI takes it: a UTC day (2027-01-01, its first
 * instant), an RFC 3339 instant (2027-01-01T12:00:00Z), or a duration from
 * now (90s, 45m, 12h, 30d); "never" where `never` is allowed (null). It must
 * be in the future.
 */
export function expiry(raw: string, now: number, never: boolean): number | null {
  const rule = `a date (2027-01-01), an instant (2027-01-01T12:00:00Z) or a duration (90s, 45m, 12h, 30d)${never ? ", or never" : ""}, in the future`;
  if (never && raw === "never") return null;
  const bad = (why: string) => new UsageError(`--expires '${raw}' ${why}: give ${rule}`);
  const d = DURATION.exec(raw);
  let at: number;
  if (d) {
    const ms = Number(d[1]) * UNIT_MS[d[2] as keyof typeof UNIT_MS];
    if (ms <= 0) throw bad("is no time at all");
    if (ms > LONGEST_MS) throw bad("is over a hundred years");
    at = now + ms;
  } else if (DAY.test(raw)) {
    const m = DAY.exec(raw)!;
    at = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
    if (Number.isNaN(at) || new Date(at).toISOString().slice(0, 10) !== raw) throw bad("is not a calendar date");
  } else if (STAMP.test(raw)) {
    at = Date.parse(raw);
    if (Number.isNaN(at)) throw bad("is not a valid instant");
  } else {
    throw bad("is not understood");
  }
  if (at <= now) throw bad("is not in the future");
  if (at - now > LONGEST_MS) throw bad("is over a hundred years away");
  return at;
}
