// CPU time and memory of another process, read from /proc (Linux only).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second for utime/stime in /proc/<pid>/stat (`getconf CLK_TCK`, almost always 100). */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** `pid` and its descendants (a --workers gateway is a primary and its workers). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        for (const c of readFileSync(`/proc/${out[i]}/task/${t}/children`, "utf8").split(" ")) if (c.trim()) out.push(Number(c));
      } catch {
        // gone
      }
    }
  }
  return out;
}

/** utime + stime of `pid` and its descendants, in clock ticks (fields 14 and 15 of /proc/<pid>/stat). */
export function cpuTicks(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      ticks += ownTicks(p);
    } catch (err) {
      if (p === pid) throw err;
    }
  }
  return ticks;
}

function ownTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state), so field N is fields[N - 3].
  return Number(fields[14 - 3]) + Number(fields[15 - 3]);
}

export function ticksToUs(ticks: number): number {
  return (ticks * 1e6) / CLK_TCK;
}

/**
 * A line of /proc/<pid>/status, in MiB (VmHWM: peak RSS since start; VmRSS: now; RssAnon: the
 * anonymous part of VmRSS, heaps and stacks without the mapped files),
 * summed over the process and its descendants (for VmHWM an upper bound: the peaks may not coincide).
 */
export function vmMiB(pid: number, field: "VmHWM" | "VmRSS" | "RssAnon"): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${p}/status`, "utf8"));
      total += m ? Number(m[1]) / 1024 : NaN;
    } catch (err) {
      if (p === pid) throw err;
    }
  }
  return total;
}

/** Samples VmRSS every `everyMs` until stopped; returns the largest sample. */
export function sampleRss(pid: number, everyMs = 100): { stop(): number } {
  let max = vmMiB(pid, "VmRSS");
  const timer = setInterval(() => {
    try {
      max = Math.max(max, vmMiB(pid, "VmRSS"));
    } catch {
      // the process is gone; keep what we have
    }
  }, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      try {
        max = Math.max(max, vmMiB(pid, "VmRSS"));
      } catch {
        // gone
      }
      return max;
    },
  };
}

/** CPU used by `pid` from now until the returned function is called. */
export function cpuMeter(pid: number): () => { us: number; ticks: number } {
  const before = cpuTicks(pid);
  return () => {
    const ticks = cpuTicks(pid) - before;
    return { ticks, us: ticksToUs(ticks) };
  };
}

export interface CpuSample { at: number; ticks: number }

/** Reads `pid`'s CPU ticks every `everyMs`, with the time (performance.now()) of each read. */
export function sampleCpu(pid: number, everyMs = 100): { stop(): CpuSample[] } {
  const samples: CpuSample[] = [];
  const read = () => {
    try {
      samples.push({ at: performance.now(), ticks: cpuTicks(pid) });
    } catch {
      // the process is gone
    }
  };
  read();
  const timer = setInterval(read, everyMs);
  return {
    stop() {
      clearInterval(timer);
      read();
      return samples;
    },
  };
}

/** CPU ticks at time `at`, interpolated between the samples around it. */
export function ticksAt(samples: CpuSample[], at: number): number {
  const i = samples.findIndex((s) => s.at >= at);
  if (i < 0) return samples.at(-1)!.ticks;
  if (i === 0) return samples[0]!.ticks;
  const a = samples[i - 1]!;
  const b = samples[i]!;
  return a.ticks + ((b.ticks - a.ticks) * (at - a.at)) / (b.at - a.at);
}

/** Waits until `pid` has used at most one tick in 200 ms (or `maxMs` passed); returns the CPU used meanwhile, µs. */
export async function quiesce(pid: number, maxMs = 5000): Promise<number> {
  const start = cpuTicks(pid);
  const until = performance.now() + maxMs;
  let last = start;
  while (performance.now() < until) {
    await new Promise((r) => setTimeout(r, 200));
    const now = cpuTicks(pid);
    if (now - last <= 1) break;
    last = now;
  }
  return ticksToUs(cpuTicks(pid) - start);
}

/**
 * The machine's busy CPU time (the "cpu" line of /proc/stat: everything but idle and iowait,
 * steal included), in clock ticks. Less the benchmark's own processes, it is what others ran
 * meanwhile (other processes, or the hypervisor's other guests): a disturbed run shows there.
 */
export function machineBusyTicks(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user already)
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return user! + nice! + system! + irq! + softirq! + steal!;
}
