import { timingSafeEqual } from "node:crypto";
import { GatewayError } from "../errors.js";
import { hashKey, looksLikeKey, type KeyKind, type KeyStore } from "../storage/keys.js";

/** Who is calling, once their key has been checked. */
export interface Principal {
  readonly keyId: string;
  readonly userId: string;
  readonly userName: string;
  readonly keyName: string;
  readonly kind: KeyKind;
  /** The key's own response-cache setting; undefined follows the gateway's CACHE (and the bootstrap admin key has none). */
  readonly cache?: "off" | "on" | undefined;
  /** The models the key may call (core/model-scope.ts); undefined: every model. */
  readonly models?: readonly string[] | undefined;
}

export interface Authenticator {
  /**
   * The principal behind an `Authorization` header value ("Bearer gw_live_…").
   * Missing, malformed, unknown and revoked keys are all `unauthenticated`,
   * a key past its expiry `key_expired`; a valid key of the wrong kind is
   * `permission_denied`.
   */
  authenticate(authorization: string | null | undefined, need: KeyKind): Principal;
}

/**
 * The refusal of a key that was ours: revoked, the old key of a rotation, or
 * past its expiry. 401 (unauthenticated, or key_expired), but it names whose
 * key it was, so the refused request can be recorded under that key (its
 * owner learns who still uses it).
 */
export class RevokedKeyError extends GatewayError {
  constructor(readonly principal: Principal, expiredAt?: number) {
    super(expiredAt === undefined ? "unauthenticated" : "key_expired", expiredAt === undefined
      ? "the API key has been revoked"
      : `the API key expired at ${new Date(expiredAt).toISOString()}; ask for a new one`);
  }
}

const BOOTSTRAP: Principal = Object.freeze({
  keyId: "bootstrap-admin", userId: "bootstrap-admin", userName: "bootstrap-admin", keyName: "GATEWAYZ_ADMIN_KEY", kind: "admin",
});

/**
 * Checks keys against their stored SHA-256 hashes. The lookup is by hash, so
 * no secret is ever compared by `===`; the final comparison is constant time
 * anyway, and so is the one against the bootstrap admin key.
 */
export function createAuthenticator(keys: KeyStore, bootstrapAdminKey?: string): Authenticator {
  const bootstrapHash = bootstrapAdminKey ? hashKey(bootstrapAdminKey) : undefined;
  return {
    authenticate(authorization, need) {
      const token = bearer(authorization);
      const hash = hashKey(token);
      let principal: Principal | undefined;
      if (bootstrapHash && timingSafeEqual(hash, bootstrapHash)) {
        principal = BOOTSTRAP;
      } else {
        if (!looksLikeKey(token)) throw invalid("the API key is malformed; Gatewayz keys look like gw_live_…");
        const found = keys.findByHash(hash);
        if (!found || !timingSafeEqual(found.hash, hash)) throw invalid("the API key is not valid");
        // found comes from the key store's cache, which any key change (revoke, rotate, cache setting) empties.
        principal = { keyId: found.id, userId: found.userId, userName: found.userName, keyName: found.name, kind: found.kind, cache: found.cache ?? undefined,
          models: found.models ?? undefined };
        if (found.revokedAt !== null) throw new RevokedKeyError(principal);
        // Checked on every request: a key cached as valid still expires on time.
        if (found.expiresAt !== null && found.expiresAt <= Date.now()) throw new RevokedKeyError(principal, found.expiresAt);
      }
      if (principal.kind !== need) {
        throw new GatewayError("permission_denied", need === "admin"
          ? "this call needs an admin key" : "admin keys are for the admin API; use a client key here");
      }
      return principal;
    },
  };
}

function bearer(authorization: string | null | undefined): string {
  if (!authorization) throw invalid("no API key: send `Authorization: Bearer <key>`");
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!m) throw invalid("the Authorization header must be `Bearer <key>`");
  return m[1]!;
}

function invalid(message: string): GatewayError {
  return new GatewayError("unauthenticated", message);
}
