import type { LimitDefaults } from "../config.js";
import type { Accounts } from "../core/accounts.js";
import type { LimitScope } from "../storage/limits.js";
import type { UsageLookup } from "../storage/usage-lookup.js";

/** What a command may use: the account operations, and the configured limit defaults when it asks. */
export interface Context {
  readonly accounts: Accounts;
  /** Read lazily: only commands that show defaults need the configuration. */
  readonly defaults: (scope: LimitScope) => LimitDefaults;
  /** Single usage rows, by request id. */
  readonly usageRows: UsageLookup;
}

export type OptionValues = Readonly<Record<string, string | boolean | undefined>>;

export interface Input {
  readonly values: OptionValues;
  /** The command's positional arguments, in the order `CommandSpec.args` names them. */
  readonly args: readonly string[];
}

/** Every command answers both ways; `--json` picks which one is printed. */
export interface Output {
  readonly text: string;
  readonly json: unknown;
}

export interface CommandSpec {
  /** The words that name the command: ["keys", "create"]. */
  readonly words: readonly string[];
  /** Positional arguments after the words, e.g. ["key-id"]; all required. */
  readonly args: readonly string[];
  /** The flags part of the usage line. */
  readonly usage: string;
  readonly summary: string;
  /**
   * Works on an existing database only: it reads, or changes a key that must
   * already exist. Such a command refuses a missing file rather than create an
   * empty one (a mistyped path, or another installation's default, would
   * otherwise answer "no keys" and leave a stray database behind).
   */
  readonly existingDatabase?: boolean;
  /** The command's own flags; --db, --json and --help are added to every command. */
  readonly options: Readonly<Record<string, { readonly type: "string" | "boolean" }>>;
  /**
   * Checks the command line and returns the work to do. Every usage error is
   * thrown here, before the database is opened (opening may create it).
   */
  parse(input: Input): (ctx: Context) => Output;
}

/** A mistake on the command line: exit 2 with the command's usage line. */
export class UsageError extends Error {
  constructor(message: string, readonly command?: CommandSpec) {
    super(message);
  }
}
