// `npm run bench -- --against <ref>`: this tree's gateway against another commit's. The ref is
// built in a temporary worktree (bench/worktree.ts); both gateways run at once, each on its own
// database and key (an older build refuses a newer schema), against the same fake upstream, and
// the same load goes through each in turn, the order swapped every round so that a drift of the
// machine falls on both alike. Only gateway runs: the question is this tree over the ref, not
// over direct. Rendered by bench/against-report.ts.
import { join } from "node:path";
import type { Profile } from "./fake-upstream.js";
import { measure } from "./measure.js";
import { paths, type Part, type PathId } from "./paths.js";
import { quiesce } from "./process-stats.js";
import { createKey, startGateway, type Fake, type Gateway, type GatewayEnv } from "./processes.js";
import type { RunRecord } from "./report.js";
import { buildRef } from "./worktree.js";

/** What is compared: every path with the gateway's own cost dominating, and the streaming paths at the realistic load. */
export const AGAINST_PLAN: ReadonlyArray<{ profile: Profile; concurrency: number; paths: readonly PathId[] }> = [
  { profile: "zero", concurrency: 64, paths: ["shim", "shim-stream", "grpc", "connect"] },
  { profile: "llm", concurrency: 256, paths: ["shim-stream", "grpc", "connect"] },
];

export type Side = "this" | "ref";

export interface AgainstRun {
  ref: string;
  refCommit: string;
  /** The ref's runtime dependencies differ from this tree's, whose node_modules it was built with. */
  depsDiffer: boolean;
  /** variant is "this" or "ref"; side is always "gateway". */
  records: RunRecord[];
}

export interface AgainstOptions {
  ref: string;
  fake: Fake;
  /** A temporary directory for the two databases. */
  tmp: string;
  rounds: number;
  seconds: number;
  /** Restricts the plan (bench's --paths and --profiles). */
  paths: readonly PathId[];
  profiles: readonly Profile[];
  warmupS: Record<Profile, number>;
}

export async function compareAgainst(o: AgainstOptions): Promise<AgainstRun> {
  process.stderr.write(`bench: --against ${o.ref}: building it in a temporary worktree\n`);
  const built = buildRef(o.ref);
  const envOf = (name: string): GatewayEnv => ({ dbPath: join(o.tmp, `${name}.db`), fakePort: o.fake.port, envFile: join(o.tmp, "none.env") });
  const envs: Record<Side, GatewayEnv> = { this: envOf("against-this"), ref: envOf("against-ref") };
  const keys: Record<Side, string> = { this: createKey(envs.this.dbPath), ref: createKey(envs.ref.dbPath, built.dir) };
  const gws: Record<Side, Gateway> = {
    this: await startGateway(envs.this, keys.this),
    ref: await startGateway(envs.ref, keys.ref, { root: built.dir }),
  };
  process.stderr.write(`bench: --against ${o.ref} (${built.commit}): this tree's gateway pid ${gws.this.pid}, the ref's pid ${gws.ref.pid}\n`);
  const partOf = (side: Side, path: PathId): Part => paths({
    fake: `http://127.0.0.1:${o.fake.port}`, gateway: `http://127.0.0.1:${gws[side].port}`, gatewayPort: gws[side].port, key: keys[side],
  })[path][0]!; // the load part: shim streaming's TTFB probe is left out

  const records: RunRecord[] = [];
  for (const stage of AGAINST_PLAN) {
    const stagePaths = stage.paths.filter((p) => o.paths.includes(p));
    if (!o.profiles.includes(stage.profile) || !stagePaths.length) continue;
    await o.fake.setProfile(stage.profile);
    for (const side of ["this", "ref"] as const) {
      for (const path of stagePaths) await partOf(side, path).gateway(stage.concurrency, o.warmupS[stage.profile]);
      await quiesce(gws[side].pid);
    }
    for (let round = 1; round <= o.rounds; round++) {
      for (const path of stagePaths) {
        for (const side of round % 2 ? (["this", "ref"] as const) : (["ref", "this"] as const)) {
          records.push(await measure({
            profile: stage.profile, round, path, part: partOf(side, path), side: "gateway",
            concurrency: stage.concurrency, seconds: o.seconds, gw: gws[side], fake: o.fake, variant: side,
          }));
        }
      }
    }
  }
  await gws.this.stop();
  await gws.ref.stop();
  built.remove();
  return { ref: o.ref, refCommit: built.commit, depsDiffer: built.depsDiffer, records };
}
