import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface Installation {
  /** The directory holding Gatewayz's package.json. */
  readonly root: string;
  readonly version: string;
}

let found: Installation | undefined;

/**
 * Where Gatewayz is installed, found from this module's own file: src/ under
 * tsx, dist/src/ after `npm run build`, dist/ in the esbuild bundle
 * (dist/gatewayz.mjs), each below the package.json. Defaults that must not
 * depend on the working directory (the database file) are anchored here, so
 * the server and the CLI find the same files whichever directory they run in.
 */
export function installation(): Installation {
  return (found ??= findInstallation(import.meta.url));
}

/** The nearest directory at or above the module's holding a package.json named gatewayz. */
export function findInstallation(moduleUrl: string): Installation {
  const start = dirname(fileURLToPath(moduleUrl));
  for (let dir = start; ; dir = dirname(dir)) {
    const manifest = readManifest(join(dir, "package.json"));
    if (manifest?.name === "gatewayz") return Object.freeze({ root: dir, version: String(manifest.version) });
    if (dirname(dir) === dir) throw new Error(`Gatewayz's package.json is not in ${start} or above it; set DATABASE_PATH`);
  }
}

function readManifest(path: string): { name?: unknown; version?: unknown } | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as { name?: unknown; version?: unknown };
  } catch {
    return undefined;
  }
}
