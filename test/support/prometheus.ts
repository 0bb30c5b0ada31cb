// Debian's Prometheus for the metrics tests: `promtool check metrics` on what
// the gateway serves, and the real server scraping it. `npm test` installs the
// package when it is missing (test/support/ensure-test-tools.sh); a test that
// needs it calls these and fails, never skips, when it is not there.

import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";

/** The promtool binary: PROMTOOL_PATH, else `promtool` on the PATH, else /usr/bin/promtool. */
export function promtoolPath(): string {
  return findTool("promtool", "PROMTOOL_PATH");
}

/** The Prometheus server binary: PROMETHEUS_PATH, else `prometheus` on the PATH, else /usr/bin/prometheus. */
export function prometheusPath(): string {
  return findTool("prometheus", "PROMETHEUS_PATH");
}

export interface ToolSearch {
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Searched after the PATH. */
  readonly fallback?: readonly string[];
}

/** An executable: the override variable's value, else the first `command` on the PATH or in `fallback`. */
export function findTool(command: string, variable: string, { env = process.env, fallback = ["/usr/bin"] }: ToolSearch = {}): string {
  const override = env[variable];
  if (override) {
    if (isExecutable(override)) return override;
    throw new Error(`${variable}=${override} is not an executable file`);
  }
  const dirs = [...(env.PATH ?? "").split(delimiter).filter(Boolean), ...fallback];
  for (const dir of dirs) {
    const path = join(dir, command);
    if (isExecutable(path)) return path;
  }
  throw new Error(`${command} was not found (PATH, ${fallback.join(", ") || "no fallback"}): install Debian's prometheus package ` +
    `('apt-get install -y --no-install-recommends prometheus'; \`npm test\` does it when run as root), or set ${variable}`);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
