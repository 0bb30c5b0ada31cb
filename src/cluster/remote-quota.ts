import { GatewayError } from "../errors.js";
import type { Policy } from "../core/policy.js";
import { quotaApplies, type Quota, type QuotaTicket } from "../core/quota.js";
import { fromWire, type ToPrimary, type ToWorker } from "./messages.js";

const NO_TICKET: QuotaTicket = { snapshot: {}, settle() {} };
/** The primary answers in microseconds; this only bounds a primary that is gone. */
const TAKE_TIMEOUT_MS = 5_000;

/**
 * A worker's quota: the primary process holds the counters and budgets for
 * every worker, so a limit of N admits exactly N whichever workers the
 * requests land on. A subject with no limit and no budget never leaves the
 * worker (nothing to count), so unlimited keys pay no IPC.
 */
export function remoteQuota(policy: Policy, channel: NodeJS.Process = process): Quota {
  let nextId = 1;
  const waiting = new Map<number, { resolve: (t: QuotaTicket) => void; reject: (e: unknown) => void; timer: NodeJS.Timeout }>();
  const send = (m: ToPrimary) => channel.send!(m);

  channel.on("message", (m: ToWorker) => {
    if (m.t !== "took" && m.t !== "refused") return;
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    clearTimeout(w.timer);
    if (m.t === "refused") return w.reject(fromWire(m.error));
    let settled = false;
    w.resolve({
      snapshot: m.snapshot,
      settle(tokens, costPico) {
        if (settled) return;
        settled = true;
        if (channel.connected) send({ t: "settle", ticket: m.ticket, tokens, pico: String(costPico) });
      },
    });
  });

  return {
    take(subject, tokens, estimatePico) {
      try {
        if (!quotaApplies(policy, subject)) return NO_TICKET;
      } catch (err) {
        throw new GatewayError("limiter_unavailable", "the rate limiter is unavailable, so the request was refused", { cause: err });
      }
      if (!channel.connected) throw new GatewayError("limiter_unavailable", "the rate limiter is unavailable (the primary process is gone), so the request was refused");
      const id = nextId++;
      return new Promise<QuotaTicket>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new GatewayError("limiter_unavailable", "the rate limiter did not answer, so the request was refused"));
        }, TAKE_TIMEOUT_MS);
        waiting.set(id, { resolve, reject, timer });
        send({ t: "take", id, subject: { keyId: subject.keyId, userId: subject.userId }, tokens, pico: String(estimatePico) });
      });
    },
  };
}
