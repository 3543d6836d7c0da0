/**
 * IP addresses, CIDRs and `host:port` text: the one set of parsing rules
 * for all of hnsproxy (cluster objects, configuration, the proxy core, the
 * in-memory HNS), so that everywhere two spellings of one address compare
 * equal and every address reaches HNS in one canonical text form. No Deno
 * or HNS dependency: the pure core uses it.
 *
 * The rules follow how kube-proxy reads addresses (k8s.io/utils/net
 * `ParseIPSloppy`/`ParseCIDRSloppy`), because hnsproxy must serve every
 * object the API server holds, including ones stored before Kubernetes
 * validated IPs strictly (strict validation rejects only new values):
 *
 * - IPv4 octets with leading zeros are read as decimal (`010.0.0.1` is
 *   `10.0.0.1`), never octal as C's `inet_addr` would. Canonical text has
 *   no leading zeros.
 * - An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, `::ffff:a00:1`) is the
 *   IPv4 address: family IPv4, canonical `10.0.0.1` (Go's `net.IP` and
 *   kube-proxy treat it so; HNS programs IPv4 objects for it).
 * - Zone IDs (`fe80::1%eth0`) are rejected: Kubernetes rejects them and HNS
 *   objects have no zone.
 * - Hex digits in either case; canonical IPv6 is RFC 5952 (lower case,
 *   the longest run of two or more zero groups compressed). HNS compares
 *   addresses, not text, so the canonical form is what hnsproxy sends and
 *   what it compares HNS's answers in.
 * - No surrounding whitespace, no other forms (`1.2.3`, hex or octal
 *   IPv4, brackets); CIDR prefix lengths are decimal, up to 3 digits.
 *
 * @module
 */

/** An address family, named as Kubernetes names them. */
export type IpFamily = "IPv4" | "IPv6";

/** A parsed IP address. */
export interface ParsedIp {
  /** `IPv4` or `IPv6` (an IPv4-mapped IPv6 address is IPv4). */
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

/** Longest text accepted as an address (the longest IPv6 form is 45 characters). */
const MAX_LENGTH = 64;

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
      // Leading zeros are decimal (ParseIPSloppy): "010" is 10.
      value = value * 10 + (c - 48);
      digits++;
      if (value > 255) return undefined;
    } else {
      return undefined;
    }
  }
  return part === 4 ? out : undefined;
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIpv6(s: string): Uint8Array | undefined {
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (h: string, last: boolean): number[] | undefined => {
    if (h === "") return [];
    const out: number[] = [];
    const parts = h.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (last && i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIpv4(p);
        if (!v4) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!HEX_GROUP.test(p)) return undefined;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1], true) : [];
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

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** Parse an IPv4 or IPv6 address by the module's rules; undefined when it is not one. */
export function parseIp(s: string): ParsedIp | undefined {
  if (typeof s !== "string" || s.length === 0 || s.length > MAX_LENGTH) return undefined;
  if (s.includes(":")) {
    const bytes = parseIpv6(s);
    if (!bytes) return undefined;
    if (isV4Mapped(bytes)) return { family: "IPv4", bytes: bytes.slice(12) };
    return { family: "IPv6", bytes };
  }
  const bytes = parseIpv4(s);
  return bytes ? { family: "IPv4", bytes } : undefined;
}

/** The family of an address, or undefined when it is not an IP address. */
export function ipFamilyOf(s: string): IpFamily | undefined {
  return isCanonicalIpv4(s) ? "IPv4" : parseIp(s)?.family;
}

/** Render parsed bytes as canonical text (RFC 5952 for IPv6). */
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
  // Most addresses are canonical IPv4 already: the string itself, with nothing allocated.
  if (isCanonicalIpv4(s)) return s;
  const ip = parseIp(s);
  return ip ? formatIp(ip) : undefined;
}

/** Whether `s` is an IPv4 address in canonical text: four parts 0–255, no leading zero. */
function isCanonicalIpv4(s: string): boolean {
  return canonicalIpv4Value(s) >= 0;
}

/**
 * The four bytes of an IPv4 address in canonical text (four parts 0–255, no
 * leading zero) as one unsigned number, first byte highest; -1 for any other
 * text, including non-canonical spellings of an IPv4 address. A check with
 * nothing allocated, for the hot paths where most addresses are canonical.
 */
export function canonicalIpv4Value(s: string): number {
  if (typeof s !== "string" || s.length < 7 || s.length > 15) return -1;
  let n = 0, parts = 0, value = 0, digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46; // a virtual final "."
    if (c === 46) {
      if (digits === 0 || parts === 4) return -1;
      parts++;
      n = n * 256 + value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && value === 0) return -1; // a leading zero: not canonical
      value = value * 10 + (c - 48);
      digits++;
      if (value > 255) return -1;
    } else {
      return -1;
    }
  }
  return parts === 4 ? n : -1;
}

/** Parse `addr/len`; undefined when malformed or the length exceeds the family's bits. */
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

/** Canonical text of a CIDR (`addr/len`, address canonical), or undefined when malformed. */
export function canonicalCidr(s: string): string | undefined {
  const c = parseCidr(s);
  return c ? `${formatIp(c.ip)}/${c.prefix}` : undefined;
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

/** An address as it appears in a `host:port` string (IPv6 in brackets). */
export function hostForPort(ip: string): string {
  return ip.includes(":") ? `[${ip}]` : ip;
}

/** A parsed `host:port` listen address. */
export interface HostPort {
  /** Canonical IP address, without brackets. */
  host: string;
  /** Port number (0 asks the OS for a free port). */
  port: number;
}

/**
 * Split `ip:port` or `[ipv6]:port` into its parts (the host canonical), or
 * undefined when the text is not exactly that: the host must be an IP
 * address, bracketed when it has colons; the port decimal, 0-65535.
 */
export function splitHostPort(text: string): HostPort | undefined {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") return undefined;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!host.includes(":")) return undefined;
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return undefined;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) return undefined;
  }
  const ip = canonicalIp(host);
  if (ip === undefined || !/^(0|[1-9]\d{0,4})$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port > 65535) return undefined;
  return { host: ip, port };
}

/** Join an IP and a port, bracketing IPv6 addresses. */
export function joinHostPort(host: string, port: number): string {
  return `${hostForPort(host)}:${port}`;
}
