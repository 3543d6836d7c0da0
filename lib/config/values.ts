/**
 * Converters from raw input (flag strings, environment strings, YAML
 * values) to typed configuration values. Each takes the label of where the
 * value came from and throws a {@link ConfigError} naming it and the value.
 *
 * @module
 */

import { ConfigError } from "./errors.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { canonicalCidr, canonicalIp, joinHostPort, parseCidr, splitHostPort } from "../net/ip.ts";
import { parseMac } from "../net/mac.ts";

/**
 * A boolean: true/false from a config file; from flags also Go's
 * strconv.ParseBool spellings (`1`, `t`, `TRUE`, `0`, `f`, `False`, ...).
 */
export function toBool(label: string, raw: unknown): boolean {
  if (typeof raw === "boolean") return raw;
  if (typeof raw === "string") {
    if (["1", "t", "T", "true", "TRUE", "True"].includes(raw)) return true;
    if (["0", "f", "F", "false", "FALSE", "False"].includes(raw)) return false;
  }
  throw new ConfigError(label, "is not a boolean (true or false)", raw);
}

/** A string (numbers are not silently turned into strings). */
export function toStr(label: string, raw: unknown): string {
  if (typeof raw === "string") return raw;
  throw new ConfigError(label, "is not a string", raw);
}

/** An integer within [min, max]. */
export function toInt(label: string, raw: unknown, min: number, max: number): number {
  const n = typeof raw === "number"
    ? raw
    : typeof raw === "string" && /^[+-]?\d+$/.test(raw.trim())
    ? Number(raw)
    : NaN;
  if (!Number.isSafeInteger(n)) throw new ConfigError(label, "is not an integer", raw);
  if (n < min || n > max) {
    throw new ConfigError(label, `is out of range [${min}, ${max}]`, raw);
  }
  return n;
}

/** A finite number within [min, max]. */
export function toNumber(label: string, raw: unknown, min: number, max: number): number {
  const n = typeof raw === "number"
    ? raw
    : typeof raw === "string" && raw.trim() !== ""
    ? Number(raw)
    : NaN;
  if (!Number.isFinite(n)) throw new ConfigError(label, "is not a number", raw);
  if (n < min || n > max) {
    throw new ConfigError(label, `is out of range [${min}, ${max}]`, raw);
  }
  return n;
}

/** A Go duration (`30s`, `1m0s`) in milliseconds, at least `minMs`. */
export function toDuration(label: string, raw: unknown, minMs = 0): number {
  const ms = typeof raw === "string" ? parseDuration(raw) : undefined;
  if (ms === undefined) {
    throw new ConfigError(label, "is not a duration (e.g. 30s, 1m0s, 500ms)", raw);
  }
  if (ms < minMs) {
    const what = minMs === 0 ? "must not be negative" : `must be at least ${formatDuration(minMs)}`;
    throw new ConfigError(label, what, raw);
  }
  return ms;
}

/** One of the listed words. */
export function toEnum<T extends string>(label: string, raw: unknown, allowed: readonly T[]): T {
  if (typeof raw === "string" && (allowed as readonly string[]).includes(raw)) return raw as T;
  throw new ConfigError(label, `is not one of ${allowed.join(", ")}`, raw);
}

/** An IP address in canonical form (lib/net/ip.ts), or the empty string when `allowEmpty`. */
export function toIP(label: string, raw: unknown, allowEmpty = true): string {
  if (typeof raw === "string") {
    const s = raw.trim();
    if (s === "" && allowEmpty) return "";
    const ip = canonicalIp(s);
    if (ip !== undefined) return ip;
  }
  throw new ConfigError(label, "is not an IP address", raw);
}

/** A MAC address in hnsproxy's form (`00-15-5d-aa-bb-cc`), or the empty string. */
export function toMac(label: string, raw: unknown): string {
  if (typeof raw === "string") {
    const s = raw.trim();
    if (s === "") return "";
    const mac = parseMac(s);
    if (mac !== undefined) return mac;
  }
  throw new ConfigError(label, "is not a MAC address (e.g. 00-15-5D-AA-BB-CC)", raw);
}

/**
 * A listen address `ip:port` / `[ipv6]:port`. A bare IP gets `defaultPort`
 * (as kube-proxy does); the empty string means "disabled".
 */
export function toBindAddress(label: string, raw: unknown, defaultPort: number): string {
  if (typeof raw !== "string") throw new ConfigError(label, "is not an ip:port address", raw);
  const s = raw.trim();
  if (s === "") return "";
  const bare = canonicalIp(s.startsWith("[") && s.endsWith("]") ? s.slice(1, -1) : s);
  if (bare !== undefined) return joinHostPort(bare, defaultPort);
  const hp = splitHostPort(s);
  if (!hp) {
    throw new ConfigError(label, "is not an ip:port address (e.g. 0.0.0.0:10256, [::]:10256)", raw);
  }
  return joinHostPort(hp.host, hp.port);
}

/**
 * Cluster CIDRs: a comma-separated string (or a list), each a CIDR, at most
 * one per address family.
 */
export function toCIDRs(label: string, raw: unknown): string[] {
  let items: unknown[];
  if (typeof raw === "string") items = raw.trim() === "" ? [] : raw.split(",");
  else if (Array.isArray(raw)) items = raw;
  else throw new ConfigError(label, "is not a comma-separated list of CIDRs", raw);
  const out: string[] = [];
  const families = new Set<string>();
  for (const item of items) {
    const s = typeof item === "string" ? item.trim() : item;
    const cidr = typeof s === "string" ? parseCidr(s) : undefined;
    if (!cidr) throw new ConfigError(label, "is not a CIDR (e.g. 10.244.0.0/16)", s);
    const family = cidr.ip.family;
    if (families.has(family)) {
      throw new ConfigError(label, `has more than one ${family} CIDR`, raw);
    }
    families.add(family);
    out.push(canonicalCidr(s as string)!);
  }
  return out;
}

const GATE_NAME = /^[A-Za-z][A-Za-z0-9]*$/;

/**
 * Feature gates: `A=true,B=false` from a flag, or a map of booleans from a
 * config file.
 */
export function toFeatureGates(label: string, raw: unknown): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  if (typeof raw === "string") {
    for (const item of raw.split(",")) {
      const pair = item.trim();
      if (pair === "") continue;
      const eq = pair.indexOf("=");
      if (eq < 0) throw new ConfigError(label, "is not a key=value pair (e.g. Gate=true)", pair);
      const name = pair.slice(0, eq).trim();
      if (!GATE_NAME.test(name)) throw new ConfigError(label, "is not a feature gate name", name);
      out[name] = toBool(`${label} ${name}`, pair.slice(eq + 1).trim());
    }
    return out;
  }
  if (raw !== null && typeof raw === "object" && !Array.isArray(raw)) {
    for (const [name, value] of Object.entries(raw)) {
      if (!GATE_NAME.test(name)) throw new ConfigError(label, "is not a feature gate name", name);
      if (typeof value !== "boolean") {
        throw new ConfigError(`${label}.${name}`, "is not a boolean (true or false)", value);
      }
      out[name] = value;
    }
    return out;
  }
  if (raw === null) return out;
  throw new ConfigError(label, "is not a map of feature gates to booleans", raw);
}

/** A node name: trimmed, lower-cased, non-empty. */
export function toNodeName(label: string, raw: unknown): string {
  if (typeof raw !== "string" || raw.trim() === "") {
    throw new ConfigError(label, "is not a node name", raw);
  }
  return raw.trim().toLowerCase();
}
