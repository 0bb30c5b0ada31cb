import { existsSync, readFileSync } from "node:fs";
import { parseEnv } from "node:util";

/*
 * Typed values out of environment variables, each refusing what it cannot
 * read with the variable's name, so a typo stops the gateway at start
 * instead of being read as a default.
 */

export type Env = Readonly<Record<string, string | undefined>>;

/** A switch: true/false, yes/no, on/off or 1/0. */
export function flag(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === "") return fallback;
  if (["1", "true", "yes", "on"].includes(raw)) return true;
  if (["0", "false", "no", "off"].includes(raw)) return false;
  throw new Error(`${name} must be true or false, got ${raw}`);
}

/** A setting that is on or off (true/false and 1/0 read the same; yes/no do not). */
export function onOff(env: Env, name: string, fallback: boolean): boolean {
  const v = env[name]?.trim().toLowerCase();
  if (v === undefined || v === "") return fallback;
  if (v === "on" || v === "true" || v === "1") return true;
  if (v === "off" || v === "false" || v === "0") return false;
  throw new Error(`${name} must be on or off, got ${env[name]}`);
}

export function positive(env: Env, name: string, fallback: number): number {
  const n = integer(env, name, fallback);
  if (n === 0) throw new Error(`${name} must be a positive integer, got 0`);
  return n;
}

export function readEnvFile(path: string): Record<string, string> {
  if (!existsSync(path)) return {};
  return parseEnv(readFileSync(path, "utf8")) as Record<string, string>;
}

export function definedOnly(env: Env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

export function integer(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${raw}`);
  return n;
}

export function list(raw: string): string[] {
  return raw.split(",").map((s) => s.trim()).filter(Boolean);
}

/** `Name: value; Other: value` or a JSON object. */
export function headers(env: Env, name: string): Record<string, string> {
  const raw = env[name]?.trim();
  if (!raw) return {};
  if (raw.startsWith("{")) {
    const parsed: unknown = JSON.parse(raw);
    if (typeof parsed !== "object" || parsed === null) throw new Error(`${name} must be a JSON object`);
    return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, String(v)]));
  }
  const out: Record<string, string> = {};
  for (const pair of raw.split(";")) {
    const at = pair.indexOf(":");
    if (at <= 0) throw new Error(`${name} must look like "Name: value; Other: value", got ${raw}`);
    out[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return out;
}
