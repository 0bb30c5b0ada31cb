import type { Logger } from "../../log.js";
import { describePgError } from "./pg-errors.js";
import type { PgStep, SyncPg } from "./sync-pg.js";

/** The channel every write of keys, limits or budgets notifies, from any replica or the CLI. */
const CHANNEL = "gatewayz_changes";
/** Part of the transaction of every such write: PostgreSQL delivers it when (and only if) the write commits. */
export const NOTIFY_CHANGE: PgStep = { sql: `SELECT pg_notify('${CHANNEL}', '')` };
/** A full reload this often even without a notification: a listening connection can die without a word. */
const RESYNC_MS = 30_000;

/**
 * What the request path reads instead of PostgreSQL: a table (keys, limits)
 * held in memory, reloaded when any replica writes it. A request never waits
 * on the server for it, so a flood of made-up keys costs no query, and PostgreSQL
 * down leaves the last view serving.
 */
export interface PgView<T> {
  /** The view; loaded (synchronously) on first use. */
  get(): T;
  /** Moves each time a new view is taken in. */
  readonly version: number;
  /** Reloads synchronously: after this process's own write, which must count for its next request. */
  reload(): void;
}

export interface ChangeFeed {
  /** A view of `load`'s result, kept fresh by the feed. */
  view<T>(name: string, load: { sync: () => T; async: () => Promise<T> }): PgView<T>;
  close(): void;
}

export interface ChangeFeedOptions {
  /** LISTEN for other writers' changes (the gateway); without it (the CLI) views reload only after own writes. */
  readonly listen: boolean;
  readonly log: Pick<Logger, "warn">;
  readonly resyncMs?: number;
}

/**
 * Views reload asynchronously on a notification (or after the listening
 * connection came back, when notifications may have been missed), one load
 * at a time and once more if another came in meanwhile. Every load is
 * numbered when it starts, and an older one's result never replaces a newer
 * one's: a slow reload cannot undo what a later synchronous one took in.
 */
export function createChangeFeed(pg: SyncPg, options: ChangeFeedOptions): ChangeFeed {
  const views: Array<() => void> = [];
  let warnedAt = -Infinity;
  const warn = (line: string) => {
    if (performance.now() - warnedAt < 10_000) return;
    warnedAt = performance.now();
    options.log.warn(line);
  };
  let timer: NodeJS.Timeout | undefined;
  const changed = () => {
    for (const v of views) v();
  };
  if (options.listen) {
    pg.listen(CHANNEL, changed);
    timer = setInterval(changed, options.resyncMs ?? RESYNC_MS);
    timer.unref();
  }
  return {
    view<T>(name: string, load: { sync: () => T; async: () => Promise<T> }): PgView<T> {
      let value: T | undefined;
      let loaded = false;
      let version = 0;
      let started = 0;
      let applied = 0;
      let running = false;
      let again = false;
      const take = (seq: number, v: T) => {
        if (seq <= applied) return;
        applied = seq;
        value = v;
        loaded = true;
        version++;
      };
      const reloadAsync = () => {
        if (!loaded) return; // nothing is served from it yet: the first get() loads it
        if (running) {
          again = true;
          return;
        }
        running = true;
        const seq = ++started;
        load.async().then((v) => take(seq, v), (err: unknown) => {
          warn(`${name}: could not reload from PostgreSQL (the last copy stays in use): ${describePgError(err)}`);
        }).finally(() => {
          running = false;
          if (again) {
            again = false;
            reloadAsync();
          }
        });
      };
      views.push(reloadAsync);
      const reload = () => take(++started, load.sync());
      return {
        get() {
          if (!loaded) reload();
          return value as T;
        },
        get version() {
          return version;
        },
        reload,
      };
    },
    close() {
      if (timer) clearInterval(timer);
    },
  };
}
