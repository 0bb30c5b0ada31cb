import type { BreakerState, Breakers } from "../core/circuit-breaker.js";
import type { ProviderSet } from "../providers/provider-set.js";
import { sendJson, type Req, type Res } from "./http-io.js";
import type { Readiness } from "./readiness.js";

/** A provider as an operator reads it: "not_configured", or its circuit in plain words. */
export type ProviderHealth = "ok" | "cooling_down" | "probing" | "not_configured";

const WORDS: Record<BreakerState, ProviderHealth> = { closed: "ok", open: "cooling_down", half_open: "probing" };

export interface ProbeDeps {
  readiness: Readiness;
  providers: Pick<ProviderSet, "configs" | "loaded">;
  breakers: Pick<Breakers, "state">;
}

/**
 * The HTTP probes, keyless, GET or HEAD, a query string ignored:
 * - `/livez`: 200 `{"status":"ok"}` whenever the process answers, a drain
 *   included; a wedged process fails it by not answering. Failing it on
 *   purpose would only get the process killed, which never helps.
 * - `/readyz`: 200 `{"status":"ready","reasons":[]}`, or 503
 *   `{"status":"not_ready","reasons":[...]}` (readiness.ts lists them).
 * - `/healthz`: the same verdict (`status` "ok" or the first reason) plus
 *   each provider's state.
 * Returns whether the request was one of them (and is answered).
 */
export function createProbes({ readiness, providers, breakers }: ProbeDeps): (req: Req, res: Res) => boolean {
  const loaded = new Set(providers.loaded);
  const providerView = () => Object.fromEntries(providers.configs.map((p): [string, ProviderHealth] =>
    [p.row.id, loaded.has(p.row.id) ? WORDS[breakers.state(p.row.id)] : "not_configured"]));
  const answers = new Map<string, (res: Res) => void>([
    ["/livez", (res) => sendJson(res, 200, { status: "ok" })],
    ["/readyz", (res) => {
      readiness.refresh();
      const { ready, reasons } = readiness;
      sendJson(res, ready ? 200 : 503, { status: ready ? "ready" : "not_ready", reasons });
    }],
    ["/healthz", (res) => {
      readiness.refresh();
      const { ready, reasons } = readiness;
      sendJson(res, ready ? 200 : 503, { status: ready ? "ok" : reasons[0], reasons, providers: providerView() });
    }],
  ]);
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const answer = answers.get((req.url ?? "/").split("?", 1)[0]!);
    if (!answer) return false;
    answer(res);
    return true;
  };
}
