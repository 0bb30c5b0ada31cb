import type { Logger } from "../log.js";
import { describeStorageError } from "./sqlite-errors.js";
import type { UsageRecord } from "./usage.js";

/** What the buffer retries through: SQLite answers at once, PostgreSQL later (storage/pg/pg-usage.ts). */
export interface HeldRowsWriter {
  /** Writes the rows without waiting on another writer's lock; the error if the database refused them (none written), else undefined. */
  commitNoWait(rows: readonly UsageRecord[]): unknown;
}

/** What an operator needs to know about usage recording (for health checks and logs). */
export interface UsageHealth {
  /** False while `buffered` has reached `capacity`: new chat requests are refused then. */
  readonly available: boolean;
  /** Rows the database refused, held in memory and retried. */
  readonly buffered: number;
  readonly capacity: number;
  /** Why the database refuses writes ("database or disk is full (SQLITE_FULL)"); undefined while it accepts them. */
  readonly lastError: string | undefined;
  /** Rows dropped because even the hard limit (2 × capacity, at least 1024) was reached. */
  readonly lost: number;
  /** Requests refused, or not recorded, because rows could not be kept. */
  readonly unrecorded: number;
}

export interface RetryBuffer {
  /**
   * Rows the database refused (`err`), or rows queued behind held ones (no
   * `err`: they are not tried before the older ones); retried with backoff
   * until the database accepts them.
   */
  hold(rows: readonly UsageRecord[], err?: unknown): void;
  readonly rows: readonly UsageRecord[];
  available(): boolean;
  health(): UsageHealth;
  onAvailabilityChange(listener: (available: boolean) => void): () => void;
  /** A request was turned away (or its row not kept) because the buffer is full. */
  countUnrecorded(): void;
  /** One last attempt (at shutdown); rows still refused are reported lost. Returns a promise when the writer answers later. */
  close(): void | Promise<void>;
}

export interface RetryOptions {
  capacity: number;
  log: Pick<Logger, "warn" | "error">;
  /** First retry delay, doubled after each failure up to maxMs. */
  firstMs?: number;
  maxMs?: number;
  now?: () => number;
}

const REPORT_EVERY_MS = 10_000;
const CHUNK = 512;
const MIN_HARD_LIMIT = 1_024;

/**
 * The bounded retry buffer for usage rows the database refuses (disk full,
 * read-only, locked). Rows are kept in order and retried on an unref'd
 * timer; at `capacity` the store reports itself unavailable, so admission
 * turns new chats away, while rows of requests already in flight are still
 * kept, up to a hard limit of twice the capacity (at least 1024), past which the loss is
 * logged with its count. Nothing here is ever dropped silently.
 */
export function createRetryBuffer(writer: HeldRowsWriter, options: RetryOptions): RetryBuffer {
  const { capacity, log } = options;
  const firstMs = options.firstMs ?? 50;
  const maxMs = options.maxMs ?? 1_000;
  const now = options.now ?? Date.now;
  // Room for the rows of requests in flight when the buffer fills, bounded
  // (a row is a few hundred bytes); even without a buffer (capacity 0) they are kept.
  const hardLimit = Math.max(2 * capacity, MIN_HARD_LIMIT);
  const held: UsageRecord[] = [];
  const listeners = new Set<(available: boolean) => void>();
  let lastError: string | undefined;
  let heldSince = 0;
  let delay = firstMs;
  let timer: NodeJS.Timeout | undefined;
  let wasAvailable = true;
  let lost = 0;
  const unrecorded = createUnrecordedReport(log, () => (lastError
    ? `the database refuses writes (${lastError}) and ${held.length} usage rows are held`
    : "the database accepts writes again"), now);

  // With a capacity of 0 there is no buffer: unavailable from the first refused row.
  const available = () => held.length === 0 || held.length < capacity;
  const changed = () => {
    const is = available();
    if (is === wasAvailable) return;
    wasAvailable = is;
    if (!is) log.error(`usage: ${held.length} usage rows are held and the database still refuses writes (${lastError}): new chat requests are refused (usage_store_unavailable) until it accepts them again`);
    for (const listener of listeners) {
      try {
        listener(is);
      } catch (err) {
        log.error(`usage: an availability listener failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };

  const schedule = () => {
    timer = setTimeout(retry, delay);
    timer.unref();
    delay = Math.min(delay * 2, maxMs);
  };

  /**
   * Writes held rows, oldest first, until none is left or the database
   * refuses again; true if none is left. With a writer that answers later,
   * a promise of the same; rows held meanwhile join the end of the queue.
   */
  const drain = (): boolean | Promise<boolean> => {
    while (held.length) {
      const chunk = held.slice(0, CHUNK);
      const err = writer.commitNoWait(chunk) as unknown;
      if (isThenable(err)) return Promise.resolve(err).then((e) => (written(chunk, e) ? drain() : false));
      if (!written(chunk, err)) return false;
    }
    return true;
  };
  const written = (chunk: readonly UsageRecord[], err: unknown): boolean => {
    if (err !== undefined) {
      lastError = describeStorageError(err);
      return false;
    }
    held.splice(0, chunk.length);
    return true;
  };

  // While an answer is awaited, `retrying` stands in for the timer: no second drain starts.
  let retrying = false;
  function retry() {
    timer = undefined;
    const count = held.length;
    const after = (ok: boolean) => {
      if (ok) {
        log.warn(`usage: the database accepts writes again; ${count} held usage row(s) committed after ${((now() - heldSince) / 1000).toFixed(1)} s`);
        lastError = undefined;
        delay = firstMs;
      } else {
        schedule();
      }
      changed();
    };
    const ok = drain();
    if (typeof ok === "boolean") return after(ok);
    retrying = true;
    void ok.then((done) => {
      retrying = false;
      after(done);
    });
  }

  const dropAtShutdown = (ok: boolean) => {
    if (!ok && held.length) {
      lost += held.length;
      log.error(`usage: ${held.length} usage record(s) lost at shutdown: the database still refuses writes (${lastError})`);
      held.length = 0;
    }
    unrecorded.flush();
  };

  return {
    get rows() {
      return held;
    },
    hold(rows, err) {
      if (err !== undefined) lastError = describeStorageError(err);
      if (!held.length) {
        heldSince = now();
        log.warn(`usage: the database refuses writes (${lastError}); holding usage rows in memory (up to ${capacity}) and retrying`);
      }
      const room = Math.max(0, hardLimit - held.length);
      if (rows.length > room) {
        lost += rows.length - room;
        log.error(`usage: ${rows.length - room} usage record(s) lost: the retry buffer is at its hard limit of ${hardLimit} rows (twice USAGE_BUFFER_ROWS, at least 1024) and the database refuses writes (${lastError})`);
      }
      for (let i = 0; i < Math.min(room, rows.length); i++) held.push(rows[i]!);
      if (!timer && !retrying && held.length) schedule();
      changed();
    },
    available,
    health: () => ({ available: available(), buffered: held.length, capacity, lastError, lost, unrecorded: unrecorded.total() }),
    onAvailabilityChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    countUnrecorded: () => unrecorded.add(),
    close() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      const ok = held.length ? drain() : true;
      if (typeof ok === "boolean") return dropAtShutdown(ok);
      return ok.then(dropAtShutdown, () => dropAtShutdown(false));
    },
  };
}

const isThenable = (v: unknown): v is PromiseLike<unknown> => typeof (v as PromiseLike<unknown> | undefined)?.then === "function";

/** Counts refusals that leave no row, logging them at most once every 10 s (and once more after the last). */
function createUnrecordedReport(log: Pick<Logger, "error">, why: () => string, now: () => number) {
  let total = 0;
  let pending = 0;
  let lastAt = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (!pending) return;
    log.error(`usage: ${pending} request(s) refused without a usage row (the retry buffer was full) since the last report; now ${why()}`);
    pending = 0;
    lastAt = now();
  };
  return {
    total: () => total,
    flush,
    add() {
      total++;
      pending++;
      const wait = lastAt + REPORT_EVERY_MS - now();
      if (wait <= 0) flush();
      else if (!timer) (timer = setTimeout(flush, wait)).unref();
    },
  };
}
