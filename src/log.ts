/**
 * A small leveled logger writing one line per event. It never formats
 * request bodies: callers pass only what is safe to log (ids, statuses,
 * timings), never keys or prompts.
 */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  readonly level: LogLevel;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  enabled(level: LogLevel): boolean;
}

export type LogSink = (line: string) => void;

const stderrSink: LogSink = (line) => process.stderr.write(line + "\n");

export function createLogger(level: LogLevel = "info", sink: LogSink = stderrSink): Logger {
  const threshold = RANK[level];
  const emit = (at: Exclude<LogLevel, "silent">, message: string) => {
    if (RANK[at] >= threshold) sink(`${new Date().toISOString()} ${at.padEnd(5)} ${message}`);
  };
  return {
    level,
    debug: (m) => emit("debug", m),
    info: (m) => emit("info", m),
    warn: (m) => emit("warn", m),
    error: (m) => emit("error", m),
    enabled: (at) => RANK[at] >= threshold,
  };
}

export function isLogLevel(value: string): value is LogLevel {
  return value in RANK;
}

/**
 * The same logger with `redact` applied to every line it writes (stack
 * traces included), so no code path has to remember to. Lines below the
 * level are dropped before redacting, so suppressed debug lines cost nothing.
 */
export function redactingLogger(log: Logger, redact: (text: string) => string): Logger {
  const at = (level: Exclude<LogLevel, "silent">) => (m: string) => {
    if (log.enabled(level)) log[level](redact(m));
  };
  return { level: log.level, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), enabled: (l) => log.enabled(l) };
}
