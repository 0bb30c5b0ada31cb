import { KEY_COMMANDS } from "./keys.js";
import { LIMIT_COMMANDS } from "./limits.js";
import { UsageError, type CommandSpec } from "./spec.js";
import { USAGE_COMMANDS } from "./usage.js";

/** Every command, in the order help lists them. */
export const COMMANDS: readonly CommandSpec[] = [...KEY_COMMANDS, ...LIMIT_COMMANDS, ...USAGE_COMMANDS];

export function usageLine(c: CommandSpec): string {
  return `usage: gatewayz ${c.words.join(" ")} ${c.usage} [--db PATH] [--json]`.replace(/ +/g, " ");
}

/** Help for everything, or for the commands under `topic` ("keys", "keys create"). */
export function helpText(topic: readonly string[]): string {
  const chosen = COMMANDS.filter((c) => topic.every((w, i) => c.words[i] === w));
  if (chosen.length === 0) throw new UsageError(`unknown command '${topic.join(" ")}'`);
  const lines = chosen.flatMap((c) => [`  gatewayz ${c.words.join(" ")} ${c.usage}`.trimEnd(), `      ${c.summary}`]);
  return [
    "gatewayz: manage Gatewayz keys, limits, budgets and usage in its SQLite database",
    "",
    "commands:",
    ...lines,
    "  gatewayz help [COMMAND]",
    "  gatewayz --version",
    "",
    "every command takes:",
    "  --db PATH   the database: a SQLite file, or a postgres:// URL (default: DATABASE_URL, else DATABASE_PATH,",
    "              else data/gatewayz.db in the installation directory, the one the gateway uses; commands that",
    "              only read refuse a SQLite file that does not exist)",
    "  --json      print one JSON document instead of text",
    "",
    "Limits are per window (rpm: minute, tpm: tokens per minute, rpd: day; concurrent: in flight);",
    "0 means unlimited, and a limit never set falls back to the configured default.",
    "Exit status: 0 done, 1 refused or failed (the message says why), 2 bad command line.",
  ].join("\n") + "\n";
}
