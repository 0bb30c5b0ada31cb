import { createHash, randomBytes } from "node:crypto";
import type { Db } from "./db.js";
import { dbVersion } from "./db-version.js";

const KEY_CACHE_MAX = 10_000;

export type KeyKind = "client" | "admin";

/** A key's own response-cache setting; null follows the gateway's CACHE. */
export type KeyCache = "off" | "on" | null;

export interface KeyRecord {
  readonly id: string;
  readonly userId: string;
  readonly userName: string;
  readonly name: string;
  readonly kind: KeyKind;
  /** Display only: "gw_live_AbCd…wxyz". The key itself is never stored. */
  readonly display: string;
  readonly createdAt: number;
  readonly revokedAt: number | null;
  readonly replacedBy: string | null;
  /** The key's own cache setting (api_keys.cache), null for the gateway's. */
  readonly cache: KeyCache;
  /** When the key stops working (ms since the epoch); null: never. */
  readonly expiresAt: number | null;
  /** The models the key may call (core/model-scope.ts); null: every model. */
  readonly models: readonly string[] | null;
}

export interface KeyRecordWithHash extends KeyRecord {
  readonly hash: Buffer;
}

export interface CreatedKey {
  /** The key, shown once; only its hash is kept. */
  readonly key: string;
  readonly record: KeyRecord;
}

const PREFIX: Record<KeyKind, string> = { client: "gw_live_", admin: "gw_admin_" };
// 32 base62 characters carry about 190 bits: guessing is hopeless, so a plain
// SHA-256 is the right hash (a slow password hash would only cost latency).
const RANDOM_CHARS = 32;
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

export function hashKey(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}

export function looksLikeKey(token: string): boolean {
  return /^gw_(live|admin)_[0-9A-Za-z]{32}$/.test(token);
}

/** An id for a row ("key_…", "usr_…"): random, so replicas never collide. */
export function randomId(prefix: string): string {
  return `${prefix}_${randomBytes(9).toString("base64url")}`;
}

function randomKey(kind: KeyKind): string {
  // Rejection sampling keeps every base62 character equally likely.
  let out = "";
  while (out.length < RANDOM_CHARS) {
    for (const b of randomBytes(48)) {
      if (b < 248 && out.length < RANDOM_CHARS) out += BASE62[b % 62];
    }
  }
  return PREFIX[kind] + out;
}

/** A new key and what is stored of it: its hash and the two ends shown in listings. */
export function mintKey(kind: KeyKind): { key: string; hash: Buffer; prefix: string; last4: string } {
  const key = randomKey(kind);
  return { key, hash: hashKey(key), prefix: key.slice(0, PREFIX[kind].length + 4), last4: key.slice(-4) };
}

/** What a new key is made of. */
export interface NewKey { user: string; name: string; kind?: KeyKind; cache?: KeyCache; expiresAt?: number | null; models?: readonly string[] | null }

export interface KeyStore {
  create(input: NewKey): CreatedKey;
  findByHash(hash: Buffer): KeyRecordWithHash | undefined;
  get(id: string): KeyRecord | undefined;
  list(filter?: { user?: string; includeRevoked?: boolean }): KeyRecord[];
  /** Returns false if no such key or already revoked. */
  revoke(id: string): boolean;
  /** Sets a key's own cache setting (null: the gateway's); false if no such key. */
  setCache(id: string, cache: KeyCache): boolean;
  /** Sets when a key expires (null: never); false if no such key. */
  setExpiry(id: string, expiresAt: number | null): boolean;
  /** Sets the models a key may call (null: every model); false if no such key. */
  setModels(id: string, models: readonly string[] | null): boolean;
  /** A new key for the same user, name, kind, cache setting, expiry and models; the old one is revoked. */
  rotate(id: string): CreatedKey;
  userId(name: string): string | undefined;
  countAdminKeys(): number;
}

/** An api_keys row joined with its user's name, as both engines read it. */
export interface KeyRow {
  id: string; user_id: string; user_name: string; name: string; kind: KeyKind; hash: Buffer;
  prefix: string; last4: string; created_at: number; revoked_at: number | null; replaced_by: string | null; cache: KeyCache;
  expires_at: number | null; models: string | null;
}

/** The columns of a KeyRow; PostgreSQL reads the same. */
export const SELECT_KEYS = `SELECT k.id, k.user_id, u.name AS user_name, k.name, k.kind, k.hash, k.prefix, k.last4,
  k.created_at, k.revoked_at, k.replaced_by, k.cache, k.expires_at, k.models FROM api_keys k JOIN users u ON u.id = k.user_id`;

export function createKeyStore(db: Db, now: () => number = Date.now): KeyStore {
  const s = {
    userByName: db.prepare<[string], { id: string }>("SELECT id FROM users WHERE name = ?"),
    insertUser: db.prepare("INSERT INTO users (id, name, created_at) VALUES (?, ?, ?)"),
    insertKey: db.prepare(`INSERT INTO api_keys (id, user_id, name, kind, hash, prefix, last4, created_at, cache, expires_at, models)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    byHash: db.prepare<[Buffer], KeyRow>(`${SELECT_KEYS} WHERE k.hash = ?`),
    byId: db.prepare<[string], KeyRow>(`${SELECT_KEYS} WHERE k.id = ?`),
    all: db.prepare<[], KeyRow>(`${SELECT_KEYS} ORDER BY k.created_at, k.id`),
    revoke: db.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"),
    replaced: db.prepare("UPDATE api_keys SET replaced_by = ? WHERE id = ?"),
    setCache: db.prepare("UPDATE api_keys SET cache = ? WHERE id = ?"),
    setExpiry: db.prepare("UPDATE api_keys SET expires_at = ? WHERE id = ?"),
    setModels: db.prepare("UPDATE api_keys SET models = ? WHERE id = ?"),
    admins: db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM api_keys WHERE kind = 'admin' AND revoked_at IS NULL"),
  };

  const ensureUser = (name: string): string => {
    const found = s.userByName.get(name);
    if (found) return found.id;
    const id = randomId("usr");
    s.insertUser.run(id, name, now());
    return id;
  };

  const create = db.transaction((input: NewKey): CreatedKey => {
    const user = input.user.trim();
    if (!user) throw new Error("a key needs a user");
    const kind = input.kind ?? "client";
    const minted = mintKey(kind);
    const id = randomId("key");
    s.insertKey.run(id, ensureUser(user), input.name, kind, minted.hash, minted.prefix, minted.last4, now(), input.cache ?? null, input.expiresAt ?? null,
      modelsColumn(input.models));
    return { key: minted.key, record: toRecord(s.byId.get(id)!) };
  });

  const rotate = db.transaction((id: string): CreatedKey => {
    const old = s.byId.get(id);
    if (!old || old.revoked_at !== null) throw new Error(`no active key ${id}`);
    const fresh = create({ user: old.user_name, name: old.name, kind: old.kind, cache: old.cache, expiresAt: old.expires_at, models: modelsOf(old.models) });
    s.revoke.run(now(), id);
    s.replaced.run(fresh.record.id, id);
    return fresh;
  });

  // Keys found by hash, valid while the database is unchanged: a revocation,
  // rotation, cache setting or expiry anywhere moves the version and empties it. Misses are not
  // kept, so unknown keys cannot grow it.
  const version = dbVersion(db);
  let cache = new Map<string, KeyRecordWithHash>();
  let cachedAt = "";
  const written = <A extends unknown[], R>(fn: (...a: A) => R) => (...a: A): R => {
    try {
      return fn(...a);
    } finally {
      version.bump();
    }
  };

  return {
    // IMMEDIATE: these read, then write. A deferred transaction that must upgrade to write while
    // another process writes fails at once (SQLITE_BUSY_SNAPSHOT), busy_timeout or not.
    create: written((input: NewKey) => create.immediate(input)),
    findByHash: (hash) => {
      const v = version.current();
      if (v !== cachedAt) {
        cache = new Map();
        cachedAt = v;
      }
      const id = hash.toString("latin1");
      const hit = cache.get(id);
      if (hit) return hit;
      const row = s.byHash.get(hash);
      if (!row) return undefined;
      const found = { ...toRecord(row), hash: row.hash };
      if (cache.size >= KEY_CACHE_MAX) cache.clear();
      cache.set(id, found);
      return found;
    },
    get: (id) => {
      const row = s.byId.get(id);
      return row && toRecord(row);
    },
    list(filter = {}) {
      return s.all.all().map(toRecord)
        .filter((k) => (filter.includeRevoked || k.revokedAt === null) && (!filter.user || k.userName === filter.user));
    },
    revoke: written((id: string) => s.revoke.run(now(), id).changes === 1),
    setCache: written((id: string, cache: KeyCache) => s.setCache.run(cache, id).changes === 1),
    setExpiry: written((id: string, expiresAt: number | null) => s.setExpiry.run(expiresAt, id).changes === 1),
    setModels: written((id: string, models: readonly string[] | null) => s.setModels.run(modelsColumn(models), id).changes === 1),
    rotate: written((id: string) => rotate.immediate(id)),
    userId: (name) => s.userByName.get(name)?.id,
    countAdminKeys: () => s.admins.get()!.n,
  };
}

export function toRecord(r: KeyRow): KeyRecord {
  return {
    id: r.id, userId: r.user_id, userName: r.user_name, name: r.name, kind: r.kind,
    display: `${r.prefix}…${r.last4}`, createdAt: r.created_at, revokedAt: r.revoked_at, replacedBy: r.replaced_by,
    cache: r.cache, expiresAt: r.expires_at, models: modelsOf(r.models),
  };
}

/** api_keys.models: a JSON array, NULL for every model. */
export function modelsColumn(models: readonly string[] | null | undefined): string | null {
  return models ? JSON.stringify(models) : null;
}

function modelsOf(column: string | null): readonly string[] | null {
  if (column === null) return null;
  const parsed: unknown = JSON.parse(column);
  // A scope that cannot be read allows nothing rather than everything.
  return Array.isArray(parsed) && parsed.every((m) => typeof m === "string") ? Object.freeze(parsed as string[]) : Object.freeze([]);
}
