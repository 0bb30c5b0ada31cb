/**
 * The keys of one provider (`ALIBABA_CLOUD_API_KEY=k1,k2,…`), each with what
 * it serves: requests take them in turn, a key the provider answered 429
 * cools down for its Retry-After (or COOL_DOWN_MS) while the others carry
 * the load, and a key it refused (401, 403) is set aside until the gateway
 * restarts. With one key the ring only hands it out: its 429 is the
 * request's, as before.
 */
export interface KeyRing<T> {
  readonly size: number;
  /** The next key to use (round robin over the usable ones), or undefined when none is usable now. */
  next(): Slot<T> | undefined;
  /** The provider asked this key to slow down: unused for `ms`. */
  coolDown(slot: Slot<T>, ms: number): void;
  /** The provider refused this key: unused from now on. */
  setAside(slot: Slot<T>): void;
  /** When the first cooling key is usable again, ms from now (0 if one is usable now, undefined if every key is set aside). */
  readyInMs(): number | undefined;
}

export interface Slot<T> {
  /** 1-based, for messages ("key 2 of 3"): never the key itself. */
  readonly number: number;
  readonly value: T;
}

/** How long a key rests after a 429 that said nothing of when to come back. */
export const COOL_DOWN_MS = 5_000;

export function createKeyRing<T>(values: readonly T[], now: () => number = Date.now): KeyRing<T> {
  const slots = values.map((value, i) => ({ number: i + 1, value, until: 0, aside: false }));
  let turn = 0;
  return {
    size: slots.length,
    next() {
      const t = now();
      for (let i = 0; i < slots.length; i++) {
        const s = slots[(turn + i) % slots.length]!;
        if (s.aside || s.until > t) continue;
        turn = (turn + i + 1) % slots.length;
        return s;
      }
      return undefined;
    },
    coolDown(slot, ms) {
      const s = slots[slot.number - 1]!;
      s.until = Math.max(s.until, now() + Math.max(0, ms));
    },
    setAside(slot) {
      slots[slot.number - 1]!.aside = true;
    },
    readyInMs() {
      const t = now();
      const waits = slots.filter((s) => !s.aside).map((s) => Math.max(0, s.until - t));
      return waits.length ? Math.min(...waits) : undefined;
    },
  };
}
