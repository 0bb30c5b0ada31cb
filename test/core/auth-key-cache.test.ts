// A key's own response-cache setting reaches the Principal of every request
// made with it: the authenticator reads it with the key (from the key store's
// cache of keys by hash), and a change, made in this process through the
// accounts API or by another connection (the CLI), is seen on the key's next
// request, as a revocation is (test/storage/key-cache.test.ts).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createAccounts } from "../../src/core/accounts.js";
import { createAuthenticator } from "../../src/core/auth.js";
import { openDb, type Db } from "../../src/storage/db.js";
import { createKeyStore } from "../../src/storage/keys.js";
import { createLimitStore } from "../../src/storage/limits.js";
import { createUsageStore } from "../../src/storage/usage.js";

const BOOTSTRAP = "gw_admin_" + "A".repeat(32);
let dir: string;
const open: Db[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gatewayz-auth-cache-"));
});
afterEach(() => {
  for (const db of open.splice(0)) if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

/** What the gateway builds on its database: the key store, the accounts API and the authenticator. */
function gatewaySide(db: Db) {
  const keys = createKeyStore(db);
  return { keys, accounts: createAccounts(keys, createLimitStore(db), createUsageStore(db)), auth: createAuthenticator(keys, BOOTSTRAP) };
}

function connect(path: string): Db {
  const db = openDb(path);
  open.push(db);
  return db;
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe("Principal.cache", () => {
  it("carries the key's own setting, undefined for the gateway's; a change here applies to the next request at once", () => {
    const { accounts, auth } = gatewaySide(connect(":memory:"));
    const off = accounts.createKey({ user: "ada", name: "ci", cache: "off" });
    const plain = accounts.createKey({ user: "ada", name: "laptop" });
    const bearer = (key: string) => `Bearer ${key}`;
    expect(auth.authenticate(bearer(off.key), "client")).toMatchObject({ keyId: off.record.id, cache: "off" });
    expect(auth.authenticate(bearer(plain.key), "client").cache).toBeUndefined();

    accounts.setKeyCache(plain.record.id, "on");
    accounts.setKeyCache(off.record.id, "default");
    expect(auth.authenticate(bearer(plain.key), "client").cache).toBe("on");
    expect(auth.authenticate(bearer(off.key), "client").cache).toBeUndefined();

    // The rotated key keeps the setting; the bootstrap admin key has none.
    const rotated = accounts.rotateKey(plain.record.id);
    expect(auth.authenticate(bearer(rotated.key), "client").cache).toBe("on");
    expect(auth.authenticate(bearer(BOOTSTRAP), "admin").cache).toBeUndefined();
  });

  it("sees a change made through another connection (the CLI) on the key's next request", async () => {
    const path = join(dir, "g.db");
    const gateway = gatewaySide(connect(path));
    const cli = gatewaySide(connect(path));
    const created = cli.accounts.createKey({ user: "bob", name: "ci" });
    const ask = () => gateway.auth.authenticate(`Bearer ${created.key}`, "client");
    expect(ask().cache).toBeUndefined(); // now in the gateway's key cache

    cli.accounts.setKeyCache(created.record.id, "off");
    await nextTurn(); // the database version is read at most once per event-loop turn
    expect(ask().cache).toBe("off");

    cli.accounts.setKeyCache(created.record.id, "default");
    await nextTurn();
    expect(ask().cache).toBeUndefined();
  });
});
