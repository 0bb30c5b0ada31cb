// The fenced code blocks of README.md, for the tests that keep it true
// (test/readme.test.ts runs them; others compare excerpts with the real thing).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./node-child.js";

export interface ReadmeBlock {
  /** The fence's language ("sh", "js", "python"), "" for none. */
  readonly lang: string;
  readonly code: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The text of an HTML comment on the line just before the fence (`<!-- not run: log excerpt -->`), if any. */
  readonly marker: string | undefined;
}

export function readmeBlocks(path = join(ROOT, "README.md")): ReadmeBlock[] {
  const lines = readFileSync(path, "utf8").split("\n");
  const blocks: ReadmeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]!); i++) body.push(lines[i]!.slice(open[1]!.length));
    let before = start - 1;
    while (before >= 0 && lines[before]!.trim() === "") before--;
    const marker = before >= 0 ? /^\s*<!--\s*(.*?)\s*-->\s*$/.exec(lines[before]!)?.[1] : undefined;
    blocks.push({ lang: open[2]!, code: body.join("\n") + "\n", line: start + 1, marker });
  }
  return blocks;
}
