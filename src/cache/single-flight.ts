/**
 * Identical requests in flight at the same moment make one upstream call:
 * the first caller of a key runs the work, the callers that arrive while it
 * runs wait for the same outcome, its value or its error, and hear that they
 * were coalesced (x-gatewayz-cache: coalesced). Once the work settles the key
 * is free, so the next caller looks in the cache (where the work's answer now
 * is, or is not if it failed) instead of joining a finished flight.
 *
 * Cancellation is reference-counted. Every caller brings its own signal (its
 * client's), and the work gets a signal of the flight's own, not the
 * leader's: when one caller's signal aborts, only that caller stops waiting
 * (it rejects with its own signal's reason, as it would without the cache);
 * the work goes on for the others, leader or not. Only when every caller has
 * gone is the work's signal aborted (with the last leaver's reason), since
 * nobody is left to answer, and the key is freed at that moment, so a caller
 * arriving just after starts a fresh call instead of joining a doomed one.
 * Hence the work must be bound to the signal it is given, never to the
 * leader's request: that is what lets followers outlive the leader's client.
 */

/** What a caller of run() receives. */
export interface Flight<T> {
  /** The work's value: the very same object for every caller, so treat it as read-only. */
  readonly value: T;
  /** False for the caller whose run() started the work, true for those that joined it. */
  readonly coalesced: boolean;
}

export interface SingleFlight<T> {
  /**
   * Runs `work` for the first caller of `key`, or joins the run in progress.
   * Rejects with the work's error (the same error for every caller), or with
   * this caller's `signal.reason` if it aborts first (at once if already aborted).
   * A `work` declared with no parameter gets no signal (none is made), and its
   * leader's `signal` is not listened to: the leader gets the work's outcome.
   */
  run(key: string, work: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<Flight<T>>;
  /** Keys in flight now: zero whenever nothing runs (for tests and a gauge). */
  readonly size: number;
}

interface InFlight<T> {
  /** Made only for a work that takes a signal: an AbortController is costly on a miss's path. */
  readonly controller: AbortController | undefined;
  /** Callers still waiting; the work is aborted when the last one leaves. */
  waiters: number;
  readonly outcome: Promise<T>;
}

export function createSingleFlight<T>(): SingleFlight<T> {
  const flights = new Map<string, InFlight<T>>();
  const free = (key: string, flight: InFlight<T>) => {
    // Identity check: a flight abandoned by all its callers may settle after a newer one took its key.
    if (flights.get(key) === flight) flights.delete(key);
  };

  function start(key: string, work: (signal: AbortSignal) => Promise<T>): InFlight<T> {
    // A work declared without a parameter cannot read a signal, so none is made for it.
    const controller = work.length > 0 ? new AbortController() : undefined;
    let begin!: () => void;
    const outcome = new Promise<T>((resolve, reject) => {
      begin = () => {
        try {
          resolve(work(controller?.signal as AbortSignal));
        } catch (error) {
          reject(error); // a synchronous throw fails the flight like an async work's rejection
        }
      };
    }).finally(() => free(key, flight)); // freed before any caller is told, so each sees the key free
    const flight: InFlight<T> = { controller, waiters: 0, outcome };
    flights.set(key, flight); // before work runs: whatever work sets off sees this key in flight
    begin();
    return flight;
  }

  function wait(key: string, flight: InFlight<T>, coalesced: boolean, signal: AbortSignal | undefined): Promise<Flight<T>> {
    flight.waiters++;
    return new Promise<Flight<T>>((resolve, reject) => {
      let done = false;
      const finish = () => {
        done = true;
        signal?.removeEventListener("abort", leave);
      };
      function leave() {
        if (done) return;
        finish();
        reject(signal!.reason);
        if (--flight.waiters === 0) {
          free(key, flight);
          flight.controller?.abort(signal!.reason);
        }
      }
      signal?.addEventListener("abort", leave, { once: true });
      // Attached at once and kept after the caller leaves: so a work rejected
      // after everyone left (aborted) is still handled, never "unhandled".
      flight.outcome.then(
        (value) => {
          if (done) return;
          finish();
          resolve({ value, coalesced });
        },
        (error: unknown) => {
          if (done) return;
          finish();
          reject(error);
        },
      );
    });
  }

  return {
    run(key, work, signal) {
      if (signal?.aborted) return Promise.reject(signal.reason);
      const joined = flights.get(key);
      if (joined) return wait(key, joined, true, signal);
      const flight = start(key, work);
      if (flight.controller) return wait(key, flight, false, signal);
      // A work that takes no signal is its leader's own: nothing aborts it, it ends with the
      // leader's request, and its outcome is the leader's answer. So the leader does not listen
      // to its signal, and stays counted until the work settles (no follower leaving frees the key).
      flight.waiters++;
      return flight.outcome.then((value) => ({ value, coalesced: false }));
    },
    get size() {
      return flights.size;
    },
  };
}
