// `npx tsx bench/soak.ts [--minutes 5] [--kills 3] [--parts soak,kill,term] [--concurrency 32]`
// (`npm run soak -- ...`): the gateway under a long mixed load (no error, flat memory, one usage
// row per answered request, exit 0 on SIGTERM), killed with SIGKILL under load (no row lost of an
// answer the client saw), and stopped with SIGTERM under load (full answers, explicit errors or
// refused connections only; rows == accepted requests; exit 0), with 1 worker and WORKERS=2.
// Writes bench/SOAK.md (see bench/soak-report.ts) and bench/out/soak-<timestamp>.json.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Profile } from "./fake-upstream.js";
import { ensureBuilt, installCleanup, startFake } from "./processes.js";
import { git, machine } from "./report.js";
import { killMarkdown, soakMarkdown, termMarkdown, writeSoak, type SoakMeta } from "./soak-report.js";
import { killUnderLoad, soak, termUnderLoad, type KillResult, type KillTarget, type SoakContext, type TermResult } from "./soak-trials.js";

const PARTS = ["soak", "kill", "term"] as const;
/** Load before each kill -9, and before each SIGTERM, s. */
const KILL_LOAD_S = 10;
const TERM_LOAD_S = 5;
const TERMS = 2;

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "5" },
    kills: { type: "string", default: "3" },
    parts: { type: "string", default: PARTS.join(",") },
    concurrency: { type: "string", default: "32" },
  },
});
const minutes = Number(values.minutes);
const kills = Number(values.kills);
const concurrency = Number(values.concurrency);
const parts = values.parts.split(",").map((p) => p.trim());
if (!(minutes > 0) || !(kills >= 1) || !(concurrency >= 1) || parts.some((p) => !PARTS.includes(p as (typeof PARTS)[number]))) {
  process.stderr.write(`usage: npx tsx bench/soak.ts [--minutes 5] [--kills 3] [--parts ${PARTS.join(",")}] [--concurrency 32]\n`);
  process.exit(2);
}

installCleanup();
ensureBuilt();
const tmp = mkdtempSync(join(tmpdir(), "gatewayz-soak-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
const fake = await startFake();
await fake.setProfile("fast");
const ctx: SoakContext = { fake, tmp, concurrency };
const npm = process.env.npm_lifecycle_event === "soak";
const argv = process.argv.slice(2);
const meta = (): SoakMeta => ({
  date: new Date().toISOString(), machine: machine(), commit: git(), concurrency,
  command: (npm ? `npm run soak${argv.length ? ` -- ${argv.join(" ")}` : ""}` : `npx tsx bench/soak.ts ${argv.join(" ")}`).trim(),
});

const sections: Record<string, string> = {};
const json: Record<string, unknown> = {};
const out = join(new URL(".", import.meta.url).pathname, "out");
mkdirSync(out, { recursive: true });
const jsonFile = join(out, `soak-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
/** Written after each part, before its markdown: minutes of measurement are not lost to a rendering bug. */
const saveJson = () => writeFileSync(jsonFile, JSON.stringify(json, (_k, v: unknown) => (v instanceof Map ? v.size : v), 2) + "\n");

if (parts.includes("soak")) {
  process.stderr.write(`soak: a. ${minutes} min of mixed load at c=${concurrency}\n`);
  const r = await soak(ctx, minutes);
  // The requests themselves are many: only those not answered complete are kept.
  json.soak = { ...r, requests: r.finished.length, finished: r.finished.filter((f) => f.outcome !== "ok") };
  saveJson();
  sections.a = soakMarkdown(meta(), minutes, r);
}

if (parts.includes("kill")) {
  const trials: KillResult[] = [];
  const plan: Array<[number, KillTarget]> = [[1, "primary"], [2, "every process"], [2, "primary"]];
  for (const [workers, target] of plan) {
    for (let i = 0; i < kills; i++) {
      const k = await killUnderLoad(ctx, workers, target, KILL_LOAD_S);
      trials.push(k);
      process.stderr.write(`soak: b. kill -9 (${target}), workers ${workers}: answered ${k.finished.filter((f) => f.outcome === "ok").length}, rows ${k.rows.total}, lost ${k.match.lost.length}\n`);
    }
  }
  json.kill = trials.map((k) => ({ ...k, finished: k.finished.filter((f) => f.outcome !== "ok") }));
  saveJson();
  sections.b = killMarkdown(meta(), trials);
}

if (parts.includes("term")) {
  const trials: TermResult[] = [];
  // Answers that end within the drain's first moments, and answers still running seconds into it.
  const plan: Array<[Profile, number]> = [["fast", 1], ["fast", 2], ["slow", 1], ["slow", 2]];
  for (const [profile, workers] of plan) {
    for (let i = 0; i < TERMS; i++) {
      const t = await termUnderLoad(ctx, workers, TERM_LOAD_S, profile);
      trials.push(t);
      process.stderr.write(`soak: c. SIGTERM, ${profile} upstream, workers ${workers}: exit ${t.exit?.code}, in flight ${t.inFlightAtSignal} → ${JSON.stringify(t.inFlightOutcomes)}, rows ${t.rows.total}\n`);
    }
  }
  json.term = trials.map((t) => ({ ...t, finished: t.finished.filter((f) => f.outcome !== "ok") }));
  saveJson();
  sections.c = termMarkdown(meta(), trials);
}

await fake.stop();
const file = writeSoak(sections);
process.stdout.write(`${Object.values(sections).join("\n")}\nWrote ${file} and ${jsonFile}\n`);
process.exit(0);
