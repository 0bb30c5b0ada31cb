// A synchronous PostgreSQL client for the code paths that are synchronous today
// over better-sqlite3 (admin and CLI commands, cache reloads), and an
// asynchronous one for the hot path, on this thread with a pool of its own
// (async-pg.ts). For the synchronous calls, a worker thread owns a `pg` Pool; a synchronous call posts its request and blocks the calling
// thread on Atomics.wait until the worker answers, and is bounded, so that a
// server that stops answering turns into an error rather than a hung process.
//
// Values as they come back: int8 (BIGINT) as a decimal string, exactly (a JS
// number loses precision past 2^53; convert with BigInt() where needed); bytea
// as a Buffer; int4, float8 as numbers; timestamps as Date; json as parsed.
// Parameters: bigint is sent as its decimal string, Buffer as bytea; objects go
// through a structured clone, so a `toPostgres` method is lost on the way.

// Aliased: the esbuild bundle's banner declares its own createRequire.
import { createRequire as requireFrom } from "node:module";
import { MessageChannel, receiveMessageOnPort, Worker } from "node:worker_threads";
import { createAsyncPg } from "./async-pg.js";
import { WORKER } from "./pg-worker-source.js";

export interface SyncPgOptions {
  /** Server-side statement_timeout of every statement; default 10 000 ms. */
  statementTimeoutMs?: number;
  /** How long to wait for a new connection; default 5 000 ms. */
  connectTimeoutMs?: number;
  /** application_name, as pg_stat_activity shows it; default "gatewayz". */
  applicationName?: string;
}

export interface PgStep {
  sql: string;
  params?: readonly unknown[];
}

export type PgRow = Record<string, unknown>;

export interface SyncPg {
  /** Blocks until the rows are back. A multi-statement `sql` (no params) gives the last statement's rows. */
  query<R = PgRow>(sql: string, params?: readonly unknown[]): R[];
  /** `name`: a prepared statement, parsed and planned once a connection (for a statement sent many times). */
  queryAsync<R = PgRow>(sql: string, params?: readonly unknown[], name?: string): Promise<R[]>;
  /** The steps on one connection between BEGIN and COMMIT, each step's rows; ROLLBACK and rethrow on any error. */
  transaction<R = PgRow>(steps: readonly PgStep[]): R[][];
  transactionAsync<R = PgRow>(steps: readonly PgStep[]): Promise<R[][]>;
  /**
   * LISTENs on `channel` (its exact name: it is quoted) before returning, then
   * calls onNotify with each notification's payload. When the connection drops
   * it reconnects by itself and calls onNotify("") once, since notifications
   * sent meanwhile are lost and the listener should reload.
   */
  listen(channel: string, onNotify: (payload: string) => void): void;
  /** Ends the pool and the worker; later calls throw. */
  close(): Promise<void>;
  /** How long a synchronous call waits for the worker before it throws. */
  readonly answerWithinMs: number;
}

/** Slack over statement + connect timeouts for the hop between threads and the pool's own queueing. */
const MARGIN_MS = 1000;
/** How long close() waits for the pool to end before the worker is terminated anyway (a hung server never lets it). */
const CLOSE_WAIT_MS = 2000;

/** The URL without its password (in the userinfo or a password= parameter), for messages and logs. */
export function redactPgUrl(url: string): string {
  return url
    .replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):.*@/is, "$1:***@")
    .replace(/(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)/gi, "$1***");
}

interface Reply { id: number; value?: unknown; error?: { message: string; code?: string } & Record<string, string> }
interface Notice { notify: string; payload: string }

/**
 * Starts the worker and waits for it to be ready (not for a connection: the
 * pool connects on first use). A synchronous call blocks this thread for up to
 * statementTimeoutMs + connectTimeoutMs + 1 s, then throws.
 */
export function openSyncPg(url: string, options: SyncPgOptions = {}): SyncPg {
  const statementTimeoutMs = options.statementTimeoutMs ?? 10_000;
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  const answerWithinMs = statementTimeoutMs + connectTimeoutMs + MARGIN_MS;
  const redacted = redactPgUrl(url);
  const signal = new Int32Array(new SharedArrayBuffer(4));
  const syncChannel = new MessageChannel();
  const asyncChannel = new MessageChannel();
  const worker = new Worker(WORKER, {
    eval: true,
    // Not the parent's --import tsx and the like: the script needs no loader, and a
    // loader's start-up in the worker waits on this thread, which is blocked just below.
    execArgv: [],
    workerData: {
      pgPath: requireFrom(import.meta.url).resolve("pg"),
      syncPort: syncChannel.port2, asyncPort: asyncChannel.port2, signal, url, redacted,
      statementTimeoutMs, connectTimeoutMs, queryTimeoutMs: answerWithinMs,
      applicationName: options.applicationName ?? "gatewayz",
    },
    transferList: [syncChannel.port2, asyncChannel.port2],
  });
  // Neither the worker nor an idle port keeps the process alive; a pending async call does.
  worker.unref();
  const syncPort = syncChannel.port1;
  const asyncPort = asyncChannel.port1;
  let seq = 0;
  let closed: Error | null = null;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners = new Map<string, Set<(payload: string) => void>>();

  const fail = (err: Error) => {
    closed ??= err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
    asyncPort.unref();
  };
  worker.on("error", (err) => fail(new Error(`the PostgreSQL worker failed: ${err.message}`)));
  worker.on("exit", () => fail(new Error("the PostgreSQL bridge is closed")));

  asyncPort.on("message", (m: Reply | Notice) => {
    if ("notify" in m) {
      for (const fn of listeners.get(m.notify) ?? []) fn(m.payload);
      return;
    }
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (pending.size === 0) asyncPort.unref();
    if (m.error) p.reject(toError(m.error));
    else p.resolve(m.value);
  });
  asyncPort.unref();

  function waitFor(id: number): unknown {
    const deadline = performance.now() + answerWithinMs;
    for (;;) {
      const seen = Atomics.load(signal, 0);
      const got = receiveMessageOnPort(syncPort) as { message: Reply } | undefined;
      if (got) {
        // An answer to an earlier call that timed out: that caller has moved on.
        if (got.message.id !== id) continue;
        if (got.message.error) throw toError(got.message.error);
        return got.message.value;
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`PostgreSQL did not answer within ${answerWithinMs} ms (${redacted})`);
      Atomics.wait(signal, 0, seen, left);
    }
  }

  function callSync(op: string, fields: object): unknown {
    if (closed) throw closed;
    const id = ++seq;
    syncPort.postMessage({ id, op, ...fields });
    return waitFor(id);
  }

  function callAsync(op: string, fields: object): Promise<unknown> {
    if (closed) return Promise.reject(closed);
    const id = ++seq;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      asyncPort.ref();
      asyncPort.postMessage({ id, op, ...fields });
    });
  }

  try {
    waitFor(0);
  } catch (err) {
    void worker.terminate();
    throw err;
  }

  const stepsOf = (steps: readonly PgStep[]) => steps.map((s) => ({ sql: s.sql, params: toParams(s.params) }));
  // The asynchronous calls run on this thread, with a pool of their own (async-pg.ts).
  const later = createAsyncPg({
    url, redacted, statementTimeoutMs, connectTimeoutMs, queryTimeoutMs: answerWithinMs, applicationName: options.applicationName ?? "gatewayz",
  });
  const open = () => {
    if (closed) throw closed;
  };

  return {
    answerWithinMs,
    query: <R>(sql: string, params?: readonly unknown[]) => toRows(callSync("query", { sql, params: toParams(params) })) as R[],
    queryAsync: async <R>(sql: string, params?: readonly unknown[], name?: string) => {
      open();
      return later.query<R>(sql, params, name);
    },
    transaction: <R>(steps: readonly PgStep[]) => (callSync("transaction", { steps: stepsOf(steps) }) as unknown[]).map(toRows) as R[][],
    transactionAsync: async <R>(steps: readonly PgStep[]) => {
      open();
      return later.transaction<R>(steps);
    },
    listen(channel, onNotify) {
      callSync("listen", { channel });
      let set = listeners.get(channel);
      if (!set) listeners.set(channel, (set = new Set()));
      set.add(onNotify);
    },
    async close() {
      if (closed) return;
      const ended = Promise.all([callAsync("close", {}).catch(() => {}), later.close().catch(() => {})]);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([ended, new Promise((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
      clearTimeout(timer);
      fail(new Error("the PostgreSQL bridge is closed"));
      await worker.terminate();
    },
  };
}

function toParams(params: readonly unknown[] | undefined): unknown[] | undefined {
  return params?.map(function convert(v): unknown {
    if (typeof v === "bigint") return v.toString();
    return Array.isArray(v) ? v.map(convert) : v;
  });
}

/** A Buffer crosses the thread hop as a plain Uint8Array; bytea values become Buffers again. */
function toRows(rows: unknown): PgRow[] {
  for (const row of rows as PgRow[]) {
    for (const key in row) {
      const v = row[key];
      if (v instanceof Uint8Array && !Buffer.isBuffer(v)) row[key] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    }
  }
  return rows as PgRow[];
}

function toError(e: NonNullable<Reply["error"]>): Error {
  return Object.assign(new Error(e.message), e);
}
