import pino from "pino";

/**
 * A small leveled logger writing one line per event, as text (the default)
 * or JSON through pino (LOG_FORMAT=json). It never formats request bodies:
 * callers pass only what is safe to log (ids, statuses, timings), never keys
 * or prompts. Callers on the hot path check enabled() before building a line.
 */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
export type LogFormat = "text" | "json";
type Level = Exclude<LogLevel, "silent">;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** Fields of a structured event; undefined ones are left out. */
export type LogFields = Readonly<Record<string, string | number | boolean | null | undefined>>;

export interface Logger {
  readonly level: LogLevel;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** One event with fields: `message key=value ...` as text, the fields beside `msg` as JSON. */
  event(level: Level, message: string, fields: LogFields): void;
  enabled(level: LogLevel): boolean;
}

export type LogSink = (line: string) => void;

/**
 * stderr, written asynchronously: a request's line must not cost it a
 * synchronous write (process.stderr is synchronous for pipes and files).
 * What is still buffered is written on the way out, crashes included.
 */
function stderrDestination(): pino.DestinationStream & { flushSync(): void } {
  const destination = pino.destination({ dest: 2, sync: false });
  process.on("exit", () => {
    try {
      destination.flushSync();
    } catch {
      // stderr is gone: nothing left to tell.
    }
  });
  return destination;
}

export function createLogger(level: LogLevel = "info", sink?: LogSink, format: LogFormat = "text"): Logger {
  if (format === "json") return jsonLogger(level, sink);
  if (sink) return textLogger(level, sink);
  const destination = stderrDestination();
  return textLogger(level, (line) => destination.write(line + "\n"));
}

function textLogger(level: LogLevel, sink: LogSink): Logger {
  const threshold = RANK[level];
  const emit = (at: Level, message: string) => {
    if (RANK[at] >= threshold) sink(`${new Date().toISOString()} ${at.padEnd(5)} ${message}`);
  };
  return {
    level,
    debug: (m) => emit("debug", m),
    info: (m) => emit("info", m),
    warn: (m) => emit("warn", m),
    error: (m) => emit("error", m),
    event: (at, m, fields) => {
      if (RANK[at] >= threshold) emit(at, m + textFields(fields));
    },
    enabled: (at) => RANK[at] >= threshold,
  };
}

/** ` key=value` pairs; a value with spaces or quotes is JSON-quoted so the line still splits on spaces. */
function textFields(fields: LogFields): string {
  let out = "";
  for (const name in fields) {
    const v = fields[name];
    if (v === undefined) continue;
    const s = String(v);
    out += ` ${name}=${typeof v === "string" && (s === "" || /[\s"=]/.test(s)) ? JSON.stringify(s) : s}`;
  }
  return out;
}

/**
 * pino writing to stderr asynchronously, or to `sink`
 * line by line for tests. Its own level check makes a disabled call a no-op.
 */
function jsonLogger(level: LogLevel, sink: LogSink | undefined): Logger {
  const destination = sink ? { write: (s: string) => sink(s.endsWith("\n") ? s.slice(0, -1) : s) } : stderrDestination();
  const p = pino({ level, base: null, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, destination);
  const threshold = RANK[level];
  return {
    level,
    debug: (m) => p.debug(m),
    info: (m) => p.info(m),
    warn: (m) => p.warn(m),
    error: (m) => p.error(m),
    event: (at, m, fields) => {
      if (RANK[at] >= threshold) p[at](fields, m);
    },
    enabled: (at) => RANK[at] >= threshold,
  };
}

export function isLogLevel(value: string): value is LogLevel {
  return value in RANK;
}

/**
 * The same logger with `redact` applied to every line it writes (stack
 * traces and string fields included), so no code path has to remember to.
 * Lines below the level are dropped before redacting, so suppressed debug
 * lines cost nothing.
 */
export function redactingLogger(log: Logger, redact: (text: string) => string): Logger {
  const at = (level: Level) => (m: string) => {
    if (log.enabled(level)) log[level](redact(m));
  };
  return {
    level: log.level, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"),
    event: (level, m, fields) => {
      if (!log.enabled(level)) return;
      const clean: Record<string, string | number | boolean | null | undefined> = {};
      for (const name in fields) {
        const v = fields[name];
        clean[name] = typeof v === "string" ? redact(v) : v;
      }
      log.event(level, redact(m), clean);
    },
    enabled: (l) => log.enabled(l),
  };
}
