// The V8 heap of a process started with `node --trace-gc`, from the lines it prints: after each
// full (mark-compact) collection, the heap left is what is still reachable, so a leak shows as
// that figure growing, where RSS also moves with the allocator and the young generation.

/** `[pid:0x…]   1234 ms: Mark-Compact 59.8 (77.8) -> 43.0 (77.7) MB, …` (also "Mark-Compact (reduce)", "Scavenge"). */
const LINE = /\[(\d+):0x[0-9a-f]+\]\s+[\d.]+ ms: (Mark-Compact(?: \(reduce\))?|Scavenge|Minor Mark-Sweep)\s+([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/;

export interface GcTrace {
  /** Feed it the process's output as it comes (lines may be split across chunks). */
  feed(text: string): void;
  /** Full collections so far, per process. */
  fullGcs(): number;
  /** The heap after the latest full collection of each process, summed (MiB); NaN before the first. */
  liveHeapMiB(): number;
  /** The heap reserved (the figure in parentheses) after the latest collection of any kind, summed (MiB). */
  heapTotalMiB(): number;
}

export function gcTrace(): GcTrace {
  let partial = "";
  let full = 0;
  const live = new Map<string, number>();
  const total = new Map<string, number>();
  const sum = (m: Map<string, number>) => (m.size ? [...m.values()].reduce((a, b) => a + b, 0) : NaN);
  return {
    feed(text) {
      const lines = (partial + text).split("\n");
      partial = lines.pop()!;
      for (const line of lines) {
        const m = LINE.exec(line);
        if (!m) continue;
        const [, pid, kind, , , after, reserved] = m;
        total.set(pid!, Number(reserved));
        if (kind!.startsWith("Mark-Compact")) {
          full++;
          live.set(pid!, Number(after));
        }
      }
    },
    fullGcs: () => full,
    liveHeapMiB: () => sum(live),
    heapTotalMiB: () => sum(total),
  };
}
