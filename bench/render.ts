// `npx tsx bench/render.ts bench/out/results-<timestamp>.json`: rewrites bench/RESULTS.md from a
// run's JSON, after a change to how results are reported, without measuring again.
import { readFileSync } from "node:fs";
import { render, write, type Meta, type ProfileRun, type Row, type RunRecord } from "./report.js";

const file = process.argv[2];
if (!file) {
  process.stderr.write("usage: npx tsx bench/render.ts bench/out/results-<timestamp>.json\n");
  process.exit(2);
}
const { meta, profiles, rows, records } = JSON.parse(readFileSync(file, "utf8")) as { meta: Meta; profiles: ProfileRun[]; rows: Row[]; records: RunRecord[] };
const { doc } = render(meta, rows, profiles, records);
const out = write(doc, { meta, profiles, rows, records });
process.stdout.write(`Wrote ${out.md} (and a copy of the JSON, ${out.json})\n`);
