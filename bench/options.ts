// Command-line flags of `npm run bench -- [flags]`.
import { parseArgs } from "node:util";
import type { Profile } from "./fake-upstream.js";
import { PATH_IDS, type PathId } from "./paths.js";

export interface Options {
  quick: boolean;
  paths: PathId[];
  concurrency: number[];
  seconds: number;
  rounds: number;
  profiles: Profile[];
  coldStarts: number;
  /** Workers for the --workers comparison (llm and zero at the largest concurrency); 1 skips it. */
  workers: number;
  /** Run the usage recording on/off comparison. */
  recording: boolean;
  /** Run the Prometheus metrics on/off comparison (METRICS=off). */
  metrics: boolean;
  /** Run every path once more with V8's heap capped, for peak RSS. */
  memoryCap: boolean;
  /** Run the response cache profile: cache off / miss / hit (bench/cache-compare.ts). */
  cache: boolean;
  /** Only that profile, into its own section of RESULTS.md. */
  onlyCache: boolean;
  /** Run the replicated profile: limits local / in Redis / two replicas (bench/replicas-compare.ts). */
  replicas: boolean;
  /** Only that profile, into its own section of RESULTS.md. */
  onlyReplicas: boolean;
  /** Also measure this tree's gateway against the one built from this git ref (bench/against.ts). */
  against?: string;
  /** Only that comparison: no direct runs, cold starts or other comparisons. */
  onlyAgainst: boolean;
  /** The title of its section in RESULTS.md: "<label>: this tree against <commit>". */
  againstLabel: string;
}

export const USAGE = `usage: npm run bench -- [--quick] [--paths ${PATH_IDS.join(",")}] [--concurrency 1,16,64,256]
                          [--seconds S] [--rounds N] [--profiles zero,llm] [--cold-starts N]
                          [--workers N] [--no-recording] [--no-metrics] [--no-memory-cap]
                          [--no-cache | --only-cache] [--no-replicas | --only-replicas]
                          [--against REF [--only-against] [--against-label TEXT]]

  --quick         concurrency 1 and 256, 1 s per run: about two minutes
  --paths         which paths to measure (default: all of them)
  --concurrency   concurrent connections / callers (default 1,16,64,256)
  --seconds       length of each run, direct and gateway alike (default 2.5; quick 1)
  --rounds        direct/gateway pairs per measurement, interleaved (default 2, at least 2)
  --profiles      fake upstream profiles (default zero,llm)
  --cold-starts   gateway cold starts to take the median of (default 3)
  --workers       also measure a gateway started with WORKERS=N at the largest concurrency (default 2; 1 skips)
  --no-recording  skip the usage recording on/off comparison (zero profile, shim non-streaming)
  --no-metrics    skip the Prometheus metrics on/off comparison (METRICS=off; zero profile, shim non-streaming)
  --no-memory-cap skip the run with V8's heap capped (--max-old-space-size=96), for peak RSS
  --no-cache      skip the response cache profile (cache off / miss / hit, zero profile, shim, c=64)
  --only-cache    that profile alone, into its own section of RESULTS.md (rounds default to 5)
  --no-replicas   skip the replicated profile (limits local / in Redis at c=1 and 64, two replicas on one Redis)
  --only-replicas that profile alone, into its own section of RESULTS.md (rounds default to 5)
  --against       also build REF (a commit, tag or branch) in a temporary git worktree and run the same
                  load through its gateway and this tree's, interleaved: zero at c=64 on every path, llm
                  at c=256 on the streaming ones (its own section of RESULTS.md)
  --only-against  that comparison alone (about 5 min; its rounds default to 5, its runs to 3 s)
  --against-label the title of that section, "<label>: this tree against <commit>" (default "Cost")
`;

function list<T extends string>(value: string, allowed: readonly T[], flag: string): T[] {
  const items = value.split(",").map((s) => s.trim()).filter(Boolean);
  for (const i of items) if (!allowed.includes(i as T)) throw new Error(`--${flag}: unknown "${i}" (one of ${allowed.join(", ")})`);
  return items as T[];
}

function positive(value: string, flag: string, integer = true): number {
  const n = Number(value);
  if (!(n > 0) || (integer && !Number.isInteger(n))) throw new Error(`--${flag}: expected a positive ${integer ? "integer" : "number"}, got "${value}"`);
  return n;
}

export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean" },
      paths: { type: "string" },
      concurrency: { type: "string" },
      seconds: { type: "string" },
      rounds: { type: "string" },
      profiles: { type: "string" },
      "cold-starts": { type: "string" },
      workers: { type: "string" },
      "no-recording": { type: "boolean" },
      "no-metrics": { type: "boolean" },
      "no-memory-cap": { type: "boolean" },
      "no-cache": { type: "boolean" },
      "only-cache": { type: "boolean" },
      "no-replicas": { type: "boolean" },
      "only-replicas": { type: "boolean" },
      against: { type: "string" },
      "only-against": { type: "boolean" },
      "against-label": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const quick = values.quick === true;
  const onlyAgainst = values["only-against"] === true;
  if (onlyAgainst && !values.against) throw new Error("--only-against: needs --against REF");
  // The comparison alone affords more rounds: its spread is what says whether a difference is real.
  const onlyCache = values["only-cache"] === true;
  if (onlyCache && (onlyAgainst || values["no-cache"])) throw new Error("--only-cache: not with --only-against or --no-cache");
  const onlyReplicas = values["only-replicas"] === true;
  if (onlyReplicas && (onlyAgainst || onlyCache || values["no-replicas"])) throw new Error("--only-replicas: not with --only-against, --only-cache or --no-replicas");
  const alone = onlyAgainst || onlyCache || onlyReplicas;
  const rounds = values.rounds ? positive(values.rounds, "rounds") : alone ? 5 : 2;
  if (rounds < 2) throw new Error("--rounds: at least 2 (direct and gateway are interleaved, at least twice)");
  return {
    quick,
    paths: values.paths ? list(values.paths, PATH_IDS, "paths") : [...PATH_IDS],
    concurrency: values.concurrency ? values.concurrency.split(",").map((c) => positive(c, "concurrency")) : quick ? [1, 256] : [1, 16, 64, 256],
    seconds: values.seconds ? positive(values.seconds, "seconds", false) : alone ? 3 : quick ? 1 : 2.5,
    rounds,
    profiles: values.profiles ? list(values.profiles, ["zero", "llm"] as const, "profiles") : ["zero", "llm"],
    coldStarts: values["cold-starts"] ? positive(values["cold-starts"], "cold-starts") : 3,
    workers: values.workers ? positive(values.workers, "workers") : 2,
    recording: values["no-recording"] !== true,
    metrics: values["no-metrics"] !== true,
    memoryCap: values["no-memory-cap"] !== true,
    cache: values["no-cache"] !== true,
    onlyCache,
    replicas: values["no-replicas"] !== true,
    onlyReplicas,
    ...(values.against ? { against: values.against } : {}),
    onlyAgainst,
    againstLabel: values["against-label"] ?? "Cost",
  };
}
