// Another commit's gateway, for `npm run bench -- --against <ref>`: a detached git worktree in a
// temporary directory, built with that commit's own `npm run build` (so its dist/ is what its
// `npm start` would run), sharing this tree's node_modules. Removed when the benchmark exits.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;

export interface BuiltRef {
  /** The worktree: its dist/gatewayz.mjs and dist/src/cli.js are built. */
  dir: string;
  /** The short commit the ref names. */
  commit: string;
  /** Its package.json's runtime dependencies differ from this tree's: the shared node_modules are not what it names. */
  depsDiffer: boolean;
  remove(): void;
}

const git = (args: string[]) => execFileSync("git", ["-C", ROOT, ...args], { encoding: "utf8" }).trim();

export function buildRef(ref: string): BuiltRef {
  const commit = git(["rev-parse", "--short", `${ref}^{commit}`]);
  const dir = join(mkdtempSync(join(tmpdir(), "gatewayz-against-")), "tree");
  git(["worktree", "add", "--detach", dir, commit]);
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    // --force: the worktree has untracked files (dist/, the node_modules link).
    try {
      git(["worktree", "remove", "--force", dir]);
    } catch {
      rmSync(dir, { recursive: true, force: true });
      git(["worktree", "prune"]);
    }
    rmSync(join(dir, ".."), { recursive: true, force: true });
  };
  // Synchronous, so that it also runs from the exit handler of an interrupted run.
  process.on("exit", remove);
  try {
    symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
    execFileSync("npm", ["run", "--silent", "build"], { cwd: dir, stdio: ["ignore", "inherit", "inherit"] });
    if (!existsSync(join(dir, "dist/gatewayz.mjs"))) throw new Error(`${ref}: npm run build made no dist/gatewayz.mjs`);
  } catch (err) {
    remove();
    throw err;
  }
  const deps = (json: string) => JSON.stringify((JSON.parse(json) as { dependencies?: object }).dependencies ?? {});
  const depsDiffer = deps(readFileSync(join(dir, "package.json"), "utf8")) !== deps(readFileSync(join(ROOT, "package.json"), "utf8"));
  return { dir, commit, depsDiffer, remove };
}
