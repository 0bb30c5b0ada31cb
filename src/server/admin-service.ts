import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { AdminService } from "../../gen/gatewayz/v1/admin_pb.js";
import type { Accounts } from "../core/accounts.js";
import type { Authenticator } from "../core/auth.js";
import { asGatewayError } from "../errors.js";
import { storageErrorOf } from "../storage/sqlite-errors.js";
import { budgetOf, groupOf, keyInfoOf, limitChanges, limitsOf, msOf, targetOf, usageRowsOf } from "./admin-proto.js";

export interface AdminServiceDeps {
  accounts: Accounts;
  auth: Authenticator;
}

/**
 * AdminService over gRPC, gRPC-Web and Connect. Every call needs an admin
 * key; the handlers only translate between proto and core/accounts.ts.
 */
export function registerAdminService(router: ConnectRouter, deps: AdminServiceDeps): void {
  const { accounts } = deps;
  // Limit and budget changes reach the running gateway through the limit
  // store's version (core/policy.ts); nothing needs to be told here.
  const call = guard(deps);

  router.service(AdminService, {
    createKey: call((req) => {
      const created = accounts.createKey({
        user: req.user,
        name: req.name,
        kind: req.admin ? "admin" : "client",
        rpm: req.rpm,
        tpm: req.tpm,
        rpd: req.rpd,
        concurrent: req.concurrent,
        budgetUsd: req.budgetUsd,
        budgetPeriod: req.budgetPeriod || undefined,
        cache: req.cache,
        ...(req.expiresAt ? { expiresAt: msOf(req.expiresAt) } : {}),
        ...(req.models.length ? { models: req.models } : {}),
      });
      return { apiKey: created.key, key: keyInfoOf(created.record) };
    }),

    listKeys: call((req) => ({
      keys: accounts.listKeys({ user: req.user || undefined, includeRevoked: req.includeRevoked }).map(keyInfoOf),
    })),

    revokeKey: call((req) => ({ key: keyInfoOf(accounts.revokeKey(req.keyId)) })),

    rotateKey: call((req) => {
      const created = accounts.rotateKey(req.keyId);
      return { apiKey: created.key, key: keyInfoOf(created.record) };
    }),

    setKeyCache: call((req) => ({ key: keyInfoOf(accounts.setKeyCache(req.keyId, req.cache)) })),

    getLimits: call((req) => ({ limits: limitsOf(req.target, accounts.getLimits(targetOf(req.target))) })),

    setLimits: call((req) => {
      const target = targetOf(req.target);
      return { limits: limitsOf(req.target, accounts.setLimits(target, limitChanges(req))) };
    }),

    setBudget: call((req) => {
      const target = targetOf(req.target);
      return { limits: limitsOf(req.target, accounts.setBudget(target, budgetOf(req))) };
    }),

    getUsage: call((req) => {
      const summary = accounts.usage(groupOf(req.groupBy), {
        since: msOf(req.since),
        until: msOf(req.until),
        user: req.user || undefined,
        keyId: req.keyId || undefined,
      });
      return usageRowsOf(summary);
    }),
  });
}

/**
 * Wraps a handler: authenticate the admin key first, and let only
 * GatewayErrors out, so internals (SQL, paths) never reach the client; a
 * database that refuses writes (disk full, read-only) is said so, as
 * storage_unavailable with SQLite's reason and code.
 */
function guard(deps: AdminServiceDeps) {
  return <I, O>(handle: (req: I) => O) => (req: I, ctx: HandlerContext): O => {
    try {
      deps.auth.authenticate(ctx.requestHeader.get("authorization"), "admin");
      return handle(req);
    } catch (err) {
      throw storageErrorOf(err) ?? asGatewayError(err);
    }
  };
}
