/**
 * PostgreSQL's failures sorted the way the stores need them: a row the
 * server will never take (its SQLSTATE class 22, a data exception, or 23, an
 * integrity constraint) against everything else, which may pass: a refused
 * or dropped connection, a timeout, a server shutting down, a full disk,
 * a read-only standby. Rows refused for the second reason are held and retried.
 */
export function isPgRowError(err: unknown): boolean {
  const code = pgCode(err);
  return code !== undefined && /^(22|23)[0-9A-Z]{3}$/.test(code);
}

/** The SQLSTATE or the socket's errno ("57P01", "ECONNREFUSED") of an error from the bridge, if it has one. */
export function pgCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Whether the error came from the PostgreSQL bridge or the server (and may pass), not from a bug. */
export function isPgUnavailable(err: unknown): boolean {
  if (!(err instanceof Error) || isPgRowError(err)) return false;
  const code = pgCode(err);
  if (code?.startsWith("SQLITE_")) return false;
  return code !== undefined || /PostgreSQL/.test(err.message);
}

/** The server's own words and its code, which hold no password (the bridge's messages are redacted already). */
export function describePgError(err: unknown): string {
  const code = pgCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return code && !message.includes(code) ? `${message} (${code})` : message;
}
