import { GatewayError } from "../errors.js";
import type { Res } from "./http-io.js";
import type { RequestTelemetry } from "../observe/telemetry.js";

/**
 * One request's lifetime as the front doors see it. Its signal aborts when
 * the client goes away before the answer is complete (a closed connection, a
 * reset stream), when the client stops reading for too long, or when a drain
 * runs out of time; whatever the door is doing then (waiting on the
 * upstream, or on a client that is not reading) ends at once.
 */
export interface RequestScope {
  readonly signal: AbortSignal;
  /** Its id, trace and facts (src/observe/telemetry.ts). */
  readonly telemetry: RequestTelemetry;
  abort(reason: GatewayError): void;
  /**
   * The door's work for this request, which may outlive the response (a
   * stream still recording its usage after the client left): the request
   * counts as in flight until it settles too.
   */
  hold(work: Promise<unknown>): void;
}

export interface Requests {
  /**
   * Tracks a request until its response has closed and its work has
   * settled; then `done` runs (the request's log line, the end of its span).
   */
  start(res: Res, telemetry: RequestTelemetry, done?: () => void): RequestScope;
  readonly inFlight: number;
  /** True once abortAll() ran: a request arriving now is refused. */
  readonly ending: boolean;
  /** Resolves true once nothing is in flight, false after `ms` (or, if `hurryable`, at once after hurry()). */
  idle(ms: number, hurryable?: boolean): Promise<boolean>;
  /** Ends every request in flight with `reason`. */
  abortAll(reason: GatewayError): void;
  /** Cuts short the hurryable idle() waits (a second shutdown signal). */
  hurry(): void;
}

export function createRequests(): Requests {
  const live = new Set<AbortController>();
  const waiters = new Set<(hurry: boolean) => void>();
  let hurried = false;
  let ending = false;
  const wakeAll = (hurry: boolean) => {
    for (const wake of waiters) wake(hurry);
  };

  return {
    start(res, telemetry, done) {
      const controller = new AbortController();
      live.add(controller);
      let pending = 1; // the response; plus each piece of held work
      const release = () => {
        if (--pending > 0) return;
        live.delete(controller);
        done?.();
        if (live.size === 0) wakeAll(false);
      };
      res.once("close", () => {
        // HTTP/2's writableFinished is true even after a client's RST_STREAM; writableEnded is ours.
        if (!res.writableEnded && !controller.signal.aborted) {
          controller.abort(new GatewayError("cancelled", "the client closed the connection"));
        }
        release();
      });
      return {
        signal: controller.signal,
        telemetry,
        abort(reason) {
          if (!controller.signal.aborted) controller.abort(reason);
        },
        hold(work) {
          pending++;
          work.then(release, release);
        },
      };
    },
    get inFlight() {
      return live.size;
    },
    get ending() {
      return ending;
    },
    idle(ms, hurryable = true) {
      if (live.size === 0) return Promise.resolve(true);
      if (hurryable && hurried) return Promise.resolve(false);
      return new Promise((resolve) => {
        const done = (ok: boolean) => {
          clearTimeout(timer);
          waiters.delete(wake);
          resolve(ok);
        };
        const wake = (hurry: boolean) => {
          if (live.size === 0) done(true);
          else if (hurry && hurryable) done(false);
        };
        const timer = setTimeout(() => done(false), ms);
        waiters.add(wake);
      });
    },
    abortAll(reason) {
      ending = true;
      for (const c of live) if (!c.signal.aborted) c.abort(reason);
    },
    hurry() {
      hurried = true;
      wakeAll(true);
    },
  };
}
