import { describe, expect, it } from "vitest";
import { createBreakers } from "../../src/core/circuit-breaker.js";
import { createLogger } from "../../src/log.js";

const COOLDOWN = 30_000;

/** Breakers on a clock the test moves by hand, with every log line kept. */
function setup(threshold = 3) {
  let clock = 1_000_000;
  const lines: string[] = [];
  const breakers = createBreakers(threshold, COOLDOWN, createLogger("debug", (l) => lines.push(l)), () => clock);
  return { breakers, lines, advance: (ms: number) => { clock += ms; } };
}

/** Opens a's circuit with `threshold` failures and lets the cool-down pass: a is half-open. */
function halfOpen(threshold = 3) {
  const s = setup(threshold);
  for (let i = 0; i < threshold; i++) s.breakers.failure("a");
  s.advance(COOLDOWN);
  return s;
}

describe("circuit breaker", () => {
  it("is closed by default: every provider is eligible from the first request", () => {
    const { breakers, lines } = setup();
    for (const p of ["huggingface", "alibaba-cloud", "openrouter"]) {
      expect(breakers.state(p)).toBe("closed");
      expect(breakers.tryAcquire(p)).toBe(true);
      expect(breakers.tryAcquire(p)).toBe(true);
      expect(breakers.retryInMs(p)).toBe(0);
    }
    expect(lines).toEqual([]);
  });

  it("opens after `threshold` consecutive failures, not before", () => {
    const { breakers } = setup(3);
    breakers.failure("a");
    breakers.failure("a");
    expect(breakers.state("a")).toBe("closed");
    expect(breakers.tryAcquire("a")).toBe(true);
    breakers.failure("a");
    expect(breakers.state("a")).toBe("open");
    expect(breakers.tryAcquire("a")).toBe(false);
  });

  it("opens on the first failure with a threshold of 1", () => {
    const { breakers } = setup(1);
    breakers.failure("a");
    expect(breakers.state("a")).toBe("open");
  });

  it("resets the count on a success: failures must be consecutive", () => {
    const { breakers } = setup(3);
    breakers.failure("a");
    breakers.failure("a");
    breakers.success("a");
    breakers.failure("a");
    breakers.failure("a");
    expect(breakers.state("a")).toBe("closed");
    breakers.failure("a");
    expect(breakers.state("a")).toBe("open");
  });

  it("refuses an open circuit until the cool-down ends, counting down retryInMs", () => {
    const { breakers, advance } = setup(1);
    breakers.failure("a");
    expect(breakers.retryInMs("a")).toBe(COOLDOWN);
    advance(COOLDOWN - 1);
    expect(breakers.state("a")).toBe("open");
    expect(breakers.tryAcquire("a")).toBe(false);
    expect(breakers.retryInMs("a")).toBe(1);
    advance(1);
    expect(breakers.state("a")).toBe("half_open");
    expect(breakers.retryInMs("a")).toBe(0);
  });

  it("lets exactly one probe through a half-open circuit at a time", () => {
    const { breakers } = halfOpen();
    expect(breakers.tryAcquire("a")).toBe(true);
    expect(breakers.tryAcquire("a")).toBe(false);
    expect(breakers.tryAcquire("a")).toBe(false);
    expect(breakers.state("a")).toBe("half_open");
  });

  it("closes the circuit when the probe succeeds", () => {
    const { breakers } = halfOpen(2);
    expect(breakers.tryAcquire("a")).toBe(true);
    breakers.success("a");
    expect(breakers.state("a")).toBe("closed");
    expect(breakers.tryAcquire("a")).toBe(true);
    expect(breakers.tryAcquire("a")).toBe(true);
    // The count starts again from zero.
    breakers.failure("a");
    expect(breakers.state("a")).toBe("closed");
    breakers.failure("a");
    expect(breakers.state("a")).toBe("open");
  });

  it("reopens the circuit for a new cool-down when the probe fails", () => {
    const { breakers, advance } = halfOpen();
    expect(breakers.tryAcquire("a")).toBe(true);
    breakers.failure("a");
    expect(breakers.state("a")).toBe("open");
    expect(breakers.tryAcquire("a")).toBe(false);
    expect(breakers.retryInMs("a")).toBe(COOLDOWN);
    advance(COOLDOWN - 1);
    expect(breakers.tryAcquire("a")).toBe(false);
    advance(1);
    expect(breakers.state("a")).toBe("half_open");
    expect(breakers.tryAcquire("a")).toBe(true);
  });

  it("frees the probe slot on neutral() without closing or reopening", () => {
    const { breakers } = halfOpen();
    expect(breakers.tryAcquire("a")).toBe(true);
    breakers.neutral("a");
    expect(breakers.state("a")).toBe("half_open");
    expect(breakers.tryAcquire("a")).toBe(true);
    expect(breakers.tryAcquire("a")).toBe(false);
  });

  it("treats neutral() on a closed circuit as nothing", () => {
    const { breakers } = setup(2);
    breakers.neutral("a");
    breakers.failure("a");
    breakers.neutral("a");
    expect(breakers.state("a")).toBe("closed");
    breakers.failure("a");
    expect(breakers.state("a")).toBe("open");
  });

  it("logs when a circuit opens, turns half-open, reopens and closes", () => {
    const { breakers, lines, advance } = setup(2);
    breakers.failure("together");
    expect(lines).toEqual([]);
    breakers.failure("together");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ warn +circuit for together opened after 2 consecutive failures; skipping it for 30 s$/);

    advance(COOLDOWN);
    breakers.tryAcquire("together");
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/ info +circuit for together is half-open: probing it with one request$/);

    breakers.failure("together");
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(/ warn +circuit for together opened again: the probe failed/);

    advance(COOLDOWN);
    breakers.tryAcquire("together");
    breakers.success("together");
    expect(lines).toHaveLength(5);
    expect(lines[4]).toMatch(/ info +circuit for together closed: it answered again$/);
  });

  it("does not log a close for a success on a circuit that was never open", () => {
    const { breakers, lines } = setup(3);
    breakers.success("a");
    breakers.failure("a");
    breakers.success("a");
    expect(lines).toEqual([]);
  });

  it("keeps each provider's circuit independent", () => {
    const { breakers, advance } = setup(2);
    breakers.failure("a");
    breakers.failure("b");
    breakers.failure("a");
    expect(breakers.state("a")).toBe("open");
    expect(breakers.state("b")).toBe("closed");
    expect(breakers.tryAcquire("b")).toBe(true);
    expect(breakers.retryInMs("b")).toBe(0);

    breakers.failure("b");
    advance(COOLDOWN);
    expect(breakers.tryAcquire("a")).toBe(true);
    // a's probe does not take b's slot, and b's outcome does not touch a.
    expect(breakers.tryAcquire("b")).toBe(true);
    breakers.success("b");
    expect(breakers.state("b")).toBe("closed");
    expect(breakers.state("a")).toBe("half_open");
    expect(breakers.tryAcquire("a")).toBe(false);
  });

  it("tells listeners of each change once: open, half-open when the cool-down ends (on a timer, no request needed), closed", async () => {
    const breakers = createBreakers(2, 50, createLogger("silent"));
    const changes: string[] = [];
    breakers.onChange((p, state) => changes.push(`${p}:${state}`));
    breakers.failure("a");
    breakers.success("a"); // never opened: no change
    breakers.failure("a");
    breakers.failure("a");
    breakers.failure("a"); // already open
    expect(changes).toEqual(["a:open"]);
    await new Promise((r) => setTimeout(r, 120));
    expect(changes).toEqual(["a:open", "a:half_open"]);
    expect(breakers.tryAcquire("a")).toBe(true);
    breakers.failure("a"); // the probe failed
    expect(changes).toEqual(["a:open", "a:half_open", "a:open"]);
    await new Promise((r) => setTimeout(r, 120));
    breakers.tryAcquire("a");
    breakers.success("a");
    expect(changes).toEqual(["a:open", "a:half_open", "a:open", "a:half_open", "a:closed"]);
  });
});
