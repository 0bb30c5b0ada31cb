import { shippedCatalog } from "../core/shipped-catalog.js";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { loadConfig, type Config } from "../config.js";
import { createAccounts } from "../core/accounts.js";
import { GatewayError } from "../errors.js";
import { storageErrorOf } from "../storage/sqlite-errors.js";
import { installation } from "../install-root.js";
import { redactPgUrl } from "../storage/pg/sync-pg.js";
import { openStores, type StoreTarget, type Stores } from "../storage/stores.js";
import { parseArgv } from "./args.js";
import { COMMANDS, helpText, usageLine } from "./commands.js";
import { jsonDocument } from "./format.js";
import { UsageError, type CommandSpec, type Context, type Output } from "./spec.js";

export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export const EXIT_OK = 0;
/** A refusal or failure: a GatewayError (unknown key, bad amount), the database, the configuration. */
export const EXIT_FAILED = 1;
/** The command line itself is wrong. */
export const EXIT_USAGE = 2;

/**
 * Runs one `gatewayz` command. Everything the outside world gives it comes
 * in `argv` and `io`; it returns the exit status instead of exiting, and
 * never lets a stack trace reach the operator.
 */
export function main(argv: readonly string[], io: CliIo): number {
  try {
    const inv = parseArgv(argv, COMMANDS);
    if (inv.kind === "help") {
      io.out(helpText(inv.topic));
      return EXIT_OK;
    }
    if (inv.kind === "version") {
      io.out(`gatewayz ${installation().version}\n`);
      return EXIT_OK;
    }
    const work = withCommand(inv.command, () => inv.command.parse({ values: inv.values, args: inv.args }));
    const output = withDatabase(inv.command, inv.values.db, io.env, work);
    io.out(inv.values.json ? jsonDocument(output.json) : output.text);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`gatewayz: ${err.message}\n${err.command ? usageLine(err.command) : "run 'gatewayz help' for the commands"}\n`);
      return EXIT_USAGE;
    }
    io.err(`gatewayz: ${describe(err)}\n`);
    return EXIT_FAILED;
  }
}

function withCommand<T>(command: CommandSpec, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof UsageError && !err.command) throw new UsageError(err.message, command);
    throw err;
  }
}

function withDatabase(command: CommandSpec, dbFlag: unknown, env: CliIo["env"], work: (ctx: Context) => Output): Output {
  let config: Config | undefined;
  const configOnce = (): Config => (config ??= configured(env));
  // --db names either engine; without it DATABASE_URL wins over DATABASE_PATH, as in the gateway.
  const target: StoreTarget = typeof dbFlag === "string"
    ? (/^postgres(ql)?:\/\//i.test(dbFlag) ? { databasePath: "", databaseUrl: dbFlag } : { databasePath: dbFlag })
    : { databasePath: configOnce().databasePath, databaseUrl: configOnce().database.url, databaseTimeoutMs: configOnce().database.timeoutMs };
  const path = target.databasePath;
  if (!target.databaseUrl && command.existingDatabase && path !== ":memory:" && !existsSync(path)) {
    throw new Error(`no database at ${resolve(path)} ('${command.words.join(" ")}' does not create one). ` +
      "Create it by starting the gateway or with 'gatewayz keys create --user NAME --name NAME', " +
      "or point --db or DATABASE_PATH at the gateway's database");
  }
  let stores: Stores;
  try {
    stores = openStores(target, { listen: false, log: { warn: () => {}, error: () => {} } });
  } catch (err) {
    throw new Error(`${target.databaseUrl ? redactPgUrl(target.databaseUrl) : path}: ${describe(err)}`);
  }
  try {
    const accounts = createAccounts(stores.keys, stores.limits, stores.usage, shippedCatalog());
    return work({ accounts, defaults: (scope) => configOnce().limits[scope], usageRows: stores.usageRows });
  } finally {
    // The CLI writes no usage rows: nothing is left to wait for (a PostgreSQL bridge's worker ends with the process).
    void stores.close();
  }
}

function configured(env: CliIo["env"]): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    throw new Error(`configuration error: ${describe(err)}`);
  }
}

/**
 * The operator's message: a GatewayError's own text, what the database
 * refused and why (SQLITE_FULL...), an Error's message, nothing more.
 */
function describe(err: unknown): string {
  if (err instanceof GatewayError) return err.rawMessage;
  const storage = storageErrorOf(err);
  if (storage) return storage.rawMessage;
  if (err instanceof Error) return err.message;
  return String(err);
}
