// The bridge's worker thread (sync-pg.ts): it owns the pg Pool and the LISTEN connection, and
// answers the main thread's calls over two ports, waking a blocked one through Atomics.
// The worker is a string evaluated in place, not a file: a worker file's path
// would differ between tsx, vitest, the tsc output and the esbuild bundle.
// Plain JavaScript (CommonJS), so it runs without a TypeScript loader.
export const WORKER = String.raw`
"use strict";
const { workerData } = require("node:worker_threads");
const { syncPort, asyncPort, signal, url, redacted, statementTimeoutMs, connectTimeoutMs, queryTimeoutMs, applicationName } = workerData;

function answerSync(message) {
  syncPort.postMessage(message);
  // Counted, not a flag: the main thread compares with what it saw before
  // looking at the port, so no wake-up is lost between the two.
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
}

const FIELDS = ["code", "detail", "hint", "constraint", "table", "column", "schema", "severity", "where", "position"];
function errorOf(pg, err) {
  const out = { message: String(err && err.message || err) };
  if (pg && err instanceof pg.DatabaseError) {
    for (const f of FIELDS) if (typeof err[f] === "string") out[f] = err[f];
    return out;
  }
  if (out.message === "Query read timeout") out.message = "PostgreSQL did not answer within " + queryTimeoutMs + " ms (" + redacted + ")";
  else out.message = "PostgreSQL at " + redacted + ": " + out.message;
  if (err && typeof err.code === "string") out.code = err.code;
  return out;
}

function main() {
  const pg = require(workerData.pgPath);
  // int8 as its exact decimal text (also pg's default, made explicit here).
  pg.types.setTypeParser(20, (text) => text);
  const config = { connectionString: url, connectionTimeoutMillis: connectTimeoutMs, application_name: applicationName, keepAlive: true };
  // query_timeout only frees a connection whose server went silent: the
  // main thread has given up on it by then.
  const pool = new pg.Pool({ ...config, statement_timeout: statementTimeoutMs, query_timeout: queryTimeoutMs });
  pool.on("error", () => {}); // an idle connection dropped; the pool has discarded it already

  // A server-reported error leaves the connection usable; anything else
  // (a timeout, a dropped socket) may not, so the pool discards it.
  const broken = (err) => (err instanceof pg.DatabaseError ? undefined : err);
  const rowsOf = (result) => (Array.isArray(result) ? result[result.length - 1].rows : result.rows);

  async function query({ sql, params }) {
    const client = await pool.connect();
    try {
      const rows = rowsOf(await client.query(sql, params));
      client.release();
      return rows;
    } catch (err) {
      client.release(broken(err));
      throw err;
    }
  }

  async function transaction({ steps }) {
    const client = await pool.connect();
    let bad;
    try {
      await client.query("BEGIN");
      const out = [];
      for (const step of steps) out.push(rowsOf(await client.query(step.sql, step.params)));
      await client.query("COMMIT");
      return out;
    } catch (err) {
      bad = broken(err);
      if (!bad) await client.query("ROLLBACK").catch((e) => (bad = e));
      throw err;
    } finally {
      client.release(bad);
    }
  }

  const channels = new Set();
  let listener = null;
  let retry = null;
  let backoff = 50;
  let closing = false;

  async function connectListener() {
    const client = new pg.Client(config);
    client.on("error", () => {}); // 'end' follows, and reconnects
    client.on("end", () => {
      if (listener !== client) return;
      listener = null;
      reconnect();
    });
    client.on("notification", (n) => asyncPort.postMessage({ notify: n.channel, payload: n.payload || "" }));
    try {
      await client.connect();
      for (const channel of channels) await client.query("LISTEN " + client.escapeIdentifier(channel));
    } catch (err) {
      client.end().catch(() => {});
      throw err;
    }
    listener = client;
  }

  function reconnect() {
    if (closing || retry) return;
    retry = setTimeout(async () => {
      try {
        await connectListener();
        retry = null;
        backoff = 50;
        for (const channel of channels) asyncPort.postMessage({ notify: channel, payload: "" });
      } catch {
        retry = null;
        backoff = Math.min(backoff * 2, 1000);
        reconnect();
      }
    }, backoff);
  }

  async function listen({ channel }) {
    const known = channels.has(channel);
    channels.add(channel);
    if (retry || known) return; // a reconnect under way LISTENs on it, then reports the gap
    try {
      if (listener) await listener.query("LISTEN " + listener.escapeIdentifier(channel));
      else await connectListener();
    } catch (err) {
      // The connection dropped under the LISTEN: its 'end' reconnects, with this channel.
      if (listener && broken(err)) return;
      channels.delete(channel);
      throw err;
    }
  }

  async function close() {
    closing = true;
    clearTimeout(retry);
    await Promise.allSettled([pool.end(), listener && listener.end()]);
  }

  const ops = { query, transaction, listen, close };
  const serve = (port, answer) => port.on("message", async (m) => {
    let reply;
    try {
      reply = { id: m.id, value: await ops[m.op](m) };
    } catch (err) {
      reply = { id: m.id, error: errorOf(pg, err) };
    }
    answer(reply);
  });
  serve(syncPort, answerSync);
  serve(asyncPort, (reply) => asyncPort.postMessage(reply));
  answerSync({ id: 0, value: null });
}

try {
  main();
} catch (err) {
  answerSync({ id: 0, error: errorOf(null, err) });
}
`;

