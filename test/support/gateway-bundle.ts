import { build } from "esbuild";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./node-child.js";

export interface GatewayBundle {
  /** The bundled entry point, to run with plain `node`. */
  readonly entry: string;
  remove(): void;
}

/**
 * Builds src/main.ts (or another entry point: src/cli.ts) into one ESM file the way `npm run bundle` does (what
 * `npm start` runs), so a test that starts many gateway processes pays a cold
 * start of a fraction of a second each instead of tsx compiling src/ every
 * time. The file goes under node_modules/.cache, inside the repository, so
 * its external packages (better-sqlite3, gpt-tokenizer, @opentelemetry/*) resolve.
 */
export async function bundleGateway(source = "src/main.ts"): Promise<GatewayBundle> {
  const cache = join(ROOT, "node_modules/.cache");
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(join(cache, "gatewayz-test-bundle-"));
  const entry = join(dir, "gatewayz.mjs");
  await build({
    entryPoints: [join(ROOT, source)],
    bundle: true, platform: "node", format: "esm", target: "node20", outfile: entry, logLevel: "warning",
    external: ["better-sqlite3", "gpt-tokenizer", "@opentelemetry/*"],
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  });
  return { entry, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
