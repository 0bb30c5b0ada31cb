// grpc.health.v1.Health for load balancers and orchestrators (Kubernetes gRPC
// probes, grpc_health_probe, Envoy). State lives in the returned object, so
// nothing happens at import time and tests can build as many as they like.

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "../../gen/grpc/health/v1/health_pb.js";

export interface HealthServer {
  register(router: ConnectRouter): void;
  setStatus(service: string, status: "SERVING" | "NOT_SERVING"): void;
  /**
   * A drain: every Watch stream ends once it has sent the current status, so
   * open watches (grpc-js client-side health checks, load balancers) do not
   * hold the drain until its deadline.
   */
  endWatches(): void;
}

export interface HealthOptions {
  /** Called before a Check, a List or a new Watch reads the statuses, so they can be brought up to date first. */
  refresh?: () => void;
}

/** `services` start SERVING, as does "" (the server as a whole). */
export function createHealth(services: string[], { refresh = () => {} }: HealthOptions = {}): HealthServer {
  const statuses = new Map<string, Status>([["", Status.SERVING]]);
  for (const s of services) statuses.set(s, Status.SERVING);
  // Watchers per service name; a name may be watched before it is known.
  const watchers = new Map<string, Set<(s: Status) => void>>();
  let ending = false;

  const setStatus = (service: string, status: "SERVING" | "NOT_SERVING"): void => {
    const next = Status[status];
    statuses.set(service, next);
    for (const notify of watchers.get(service) ?? []) notify(next);
  };

  const register = (router: ConnectRouter): void => {
    router.service(Health, {
      check(req) {
        refresh();
        const status = statuses.get(req.service);
        // The spec says NOT_FOUND for an unknown service in Check.
        if (status === undefined) {
          throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
        }
        return { status };
      },
      list() {
        refresh();
        const out: Record<string, { status: Status }> = {};
        for (const [name, status] of statuses) out[name] = { status };
        return { statuses: out };
      },
      async *watch(req, ctx) {
        // Watch never fails for an unknown service: it reports SERVICE_UNKNOWN
        // and keeps watching, since the service may be registered later.
        refresh();
        let latest = statuses.get(req.service) ?? Status.SERVICE_UNKNOWN;
        let lastSent: Status | undefined;
        let wake: (() => void) | undefined;
        // Keep only the latest status: a slow watcher wants the current state,
        // not a backlog of flaps (grpc-go does the same).
        const onChange = (s: Status) => {
          latest = s;
          wake?.();
        };
        // ctx.signal also aborts after a normal end; either way we must stop
        // waiting, so the generator can finish and run its finally.
        const onAbort = () => wake?.();
        let set = watchers.get(req.service);
        if (!set) watchers.set(req.service, (set = new Set()));
        set.add(onChange);
        ctx.signal.addEventListener("abort", onAbort);
        try {
          while (!ctx.signal.aborted) {
            if (latest !== lastSent) {
              lastSent = latest;
              yield create(HealthCheckResponseSchema, { status: latest });
              continue;
            }
            if (ending) return;
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
          }
        } finally {
          ctx.signal.removeEventListener("abort", onAbort);
          set.delete(onChange);
          if (set.size === 0) watchers.delete(req.service);
        }
      },
    });
  };

  const endWatches = (): void => {
    ending = true;
    for (const [service, set] of watchers) for (const notify of set) notify(statuses.get(service) ?? Status.SERVICE_UNKNOWN);
  };

  return { register, setStatus, endWatches };
}
