/**
 * IP helpers for the proxy core: strict IPv4/IPv6 parsing, family detection,
 * canonical text form (so `fd00:0::a` and `FD00::A` name the same address),
 * CIDR containment, and the MAC addresses hnsproxy gives remote endpoints.
 *
 * @module
 */

import type { IpFamily } from "../kube/model.ts";

/** A parsed IP address. */
export interface ParsedIp {
  /** `IPv4` or `IPv6`. */
  family: IpFamily;
  /** 4 bytes (IPv4) or 16 bytes (IPv6), network order. */
  bytes: Uint8Array;
}

/** A parsed CIDR prefix. */
export interface ParsedCidr {
  /** The prefix's address (not necessarily masked). */
  ip: ParsedIp;
  /** Prefix length in bits. */
  prefix: number;
}

function parseIpv4(s: string): Uint8Array | undefined {
  const out = new Uint8Array(4);
  let part = 0, value = 0, digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46; // a virtual final "."
    if (c === 46) {
      if (digits === 0 || part > 3) return undefined;
      out[part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      // Leading zeros are rejected as Go's netip does (they read as octal elsewhere).
      if (digits > 0 && value === 0) return undefined;
      value = value * 10 + (c - 48);
      if (++digits > 3 || value > 255) return undefined;
    } else {
      return undefined;
    }
  }
  return part === 4 ? out : undefined;
}

function parseIpv6(s: string): Uint8Array | undefined {
  if (s.includes("%")) return undefined; // zones have no meaning for HNS
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === "") return [];
    const out: number[] = [];
    const parts = h.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIpv4(p);
        if (!v4) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  let all: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return undefined;
    all = [...head, ...new Array(missing).fill(0), ...tail];
  } else {
    all = head;
  }
  if (all.length !== 8) return undefined;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = all[i] >> 8;
    out[2 * i + 1] = all[i] & 0xff;
  }
  return out;
}

/** Parse an IPv4 or IPv6 address; undefined when it is not one. */
export function parseIp(s: string): ParsedIp | undefined {
  if (typeof s !== "string" || s.length === 0 || s.length > 64) return undefined;
  if (s.includes(":")) {
    const bytes = parseIpv6(s);
    return bytes ? { family: "IPv6", bytes } : undefined;
  }
  const bytes = parseIpv4(s);
  return bytes ? { family: "IPv4", bytes } : undefined;
}

/** The family of an address, or undefined when it is not an IP address. */
export function ipFamilyOf(s: string): IpFamily | undefined {
  return parseIp(s)?.family;
}

/** Render parsed bytes as canonical text (RFC 5952 for IPv6: lower case, longest zero run compressed). */
export function formatIp(ip: ParsedIp): string {
  const b = ip.bytes;
  if (ip.family === "IPv4") return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[2 * i] << 8) | b[2 * i + 1]);
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** Canonical text of an address, or undefined when it is not an IP address. */
export function canonicalIp(s: string): string | undefined {
  const ip = parseIp(s);
  return ip ? formatIp(ip) : undefined;
}

/** Parse `addr/len`; undefined when malformed. */
export function parseCidr(s: string): ParsedCidr | undefined {
  if (typeof s !== "string") return undefined;
  const slash = s.indexOf("/");
  if (slash < 0) return undefined;
  const ip = parseIp(s.slice(0, slash));
  const lenText = s.slice(slash + 1);
  if (!ip || !/^[0-9]{1,3}$/.test(lenText)) return undefined;
  const prefix = Number(lenText);
  if (prefix > ip.bytes.length * 8) return undefined;
  return { ip, prefix };
}

/** Whether `ip` lies within `cidr` (false when either is malformed or families differ). */
export function cidrContains(cidr: string | ParsedCidr, ip: string | ParsedIp): boolean {
  const c = typeof cidr === "string" ? parseCidr(cidr) : cidr;
  const a = typeof ip === "string" ? parseIp(ip) : ip;
  if (!c || !a || c.ip.family !== a.family) return false;
  let bits = c.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((c.ip.bytes[i] & mask) !== (a.bytes[i] & mask)) return false;
  }
  return true;
}

const hex2 = (n: number) => n.toString(16).padStart(2, "0");

/**
 * The MAC address of a remote endpoint, derived from its IP as kube-proxy
 * does so that endpoints it created can be adopted: `02-11-` followed by the
 * four IPv4 bytes; for IPv6 the last four bytes in reverse order (kube-proxy's
 * `conjureMac`). Lower-case hex, dash-separated.
 */
export function remoteEndpointMac(ip: string): string {
  const p = parseIp(ip);
  if (!p) return "02-11-22-33-44-55";
  const b = p.bytes;
  const four = p.family === "IPv4" ? [b[0], b[1], b[2], b[3]] : [b[15], b[14], b[13], b[12]];
  return ["02", "11", ...four.map(hex2)].join("-");
}

/** Normalize a MAC for comparison: lower case, dash-separated. */
export function normalizeMac(mac: string | undefined): string {
  return (mac ?? "").trim().toLowerCase().replaceAll(":", "-");
}

/** An address as it appears in a `host:port` string (IPv6 in brackets). */
export function hostForPort(ip: string): string {
  return ip.includes(":") ? `[${ip}]` : ip;
}
