import type { Authenticator, Principal } from "../core/auth.js";
import { formatDuration } from "../core/limiter.js";
import { asGatewayError, GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import type { KeyKind } from "../storage/keys.js";
import type { Req } from "./http-io.js";

export interface AuthGate {
  /**
   * The key behind the request's Authorization header, checked from the
   * headers alone, before a byte of the body is read. Throws the refusal:
   * `unauthenticated`, `permission_denied`, or `rate_limited` for an address
   * that has failed too often this minute.
   */
  check(req: Req, need: KeyKind): Principal;
  /** Requests refused here since start (they leave no usage row): for operators and tests. */
  readonly refusals: number;
  /** The same by reason: `unauthenticated`, `permission_denied`, `rate_limited` (an address that failed too often). */
  readonly refusalsBy: Readonly<Record<string, number>>;
}

const WINDOW_MS = 60_000;
/** Addresses remembered per window; past it, new ones go uncounted rather than grow memory. */
const MAX_ADDRESSES = 100_000;
const REPORT_EVERY_MS = 10_000;

/**
 * Authentication at the door. A request without a valid key costs one hash
 * and one lookup: no body read, no JSON parsed, no usage row written (rows
 * are billing, and an unauthenticated flood would fill the disk). Refusals
 * are counted instead, and reported in one log line per 10 s at most. An
 * address that fails `failuresPerMinute` times is refused unread for the
 * rest of the minute; behind a proxy every client shares its address, so
 * operators there raise the limit or set it to 0 (no limit).
 */
export function createAuthGate(auth: Authenticator, failuresPerMinute: number, log: Logger, now: () => number = Date.now): AuthGate {
  let windowStart = 0;
  let failures = new Map<string, number>();
  let refusals = 0;
  const refusalsBy: Record<string, number> = {};
  let unreported = 0;
  let report: NodeJS.Timeout | undefined;

  const refused = (reason: string) => {
    refusals++;
    refusalsBy[reason] = (refusalsBy[reason] ?? 0) + 1;
    unreported++;
    report ??= setTimeout(() => {
      log.warn(`refused ${unreported} request(s) without a valid key in the last ${REPORT_EVERY_MS / 1000} s`);
      unreported = 0;
      report = undefined;
    }, REPORT_EVERY_MS).unref();
  };

  const windowOf = (t: number) => {
    if (t - windowStart >= WINDOW_MS) {
      windowStart = t - (t % WINDOW_MS);
      failures = new Map();
    }
  };

  return {
    check(req, need) {
      const t = now();
      windowOf(t);
      const address = req.socket?.remoteAddress ?? "";
      if (failuresPerMinute > 0 && (failures.get(address) ?? 0) >= failuresPerMinute) {
        refused("rate_limited");
        const retryMs = windowStart + WINDOW_MS - t;
        throw new GatewayError("rate_limited",
          `too many failed authentications from this address; retry in ${formatDuration(retryMs)}`,
          { headers: { "retry-after": String(Math.max(1, Math.ceil(retryMs / 1000))) } });
      }
      try {
        return auth.authenticate(req.headers.authorization, need);
      } catch (err) {
        const e = asGatewayError(err);
        if (e.kind === "unauthenticated" || e.kind === "key_expired" || e.kind === "permission_denied") {
          refused(e.kind);
          const n = failures.get(address);
          if (n !== undefined || failures.size < MAX_ADDRESSES) failures.set(address, (n ?? 0) + 1);
        }
        throw e;
      }
    },
    get refusals() {
      return refusals;
    },
    refusalsBy,
  };
}
