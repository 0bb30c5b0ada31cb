// `node --import ./test/support/record-imports.mjs ...`: appends the URL of
// every module the ESM loader resolves (static imports and import() alike) to
// the file named by RECORD_IMPORTS_FILE. Register it after tsx's hooks, so
// that it runs first and sees what tsx resolves too.
import { appendFileSync } from "node:fs";
import { register } from "node:module";
import { isMainThread } from "node:worker_threads";

// The hooks themselves run in a loader thread, where this module is loaded again.
if (isMainThread) register(import.meta.url);

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  if (process.env.RECORD_IMPORTS_FILE) appendFileSync(process.env.RECORD_IMPORTS_FILE, `${result.url}\n`);
  return result;
}
