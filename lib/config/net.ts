/**
 * IP address, CIDR and `host:port` checks for configuration values. Strict:
 * no zones, no IPv4 octets with leading zeros, ports 0-65535.
 *
 * @module
 */

/** True for a dotted-quad IPv4 address such as `10.0.0.1`. */
export function isIPv4(text: string): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  return parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}

/** True for an IPv6 address (`::`, `fd00::1`, `::ffff:10.0.0.1`), without a zone. */
export function isIPv6(text: string): boolean {
  if (!text.includes(":") || text.includes("%")) return false;
  let groups = 8;
  let body = text;
  const lastColon = body.lastIndexOf(":");
  const tail = body.slice(lastColon + 1);
  if (tail.includes(".")) {
    // An embedded IPv4 address takes the place of the last two groups.
    if (!isIPv4(tail)) return false;
    body = body.slice(0, lastColon + 1) + "0";
    groups = 7;
  }
  const halves = body.split("::");
  if (halves.length > 2) return false;
  const hex = /^[0-9a-fA-F]{1,4}$/;
  const count = (s: string): number | undefined => {
    if (s === "") return 0;
    const g = s.split(":");
    return g.every((x) => hex.test(x)) ? g.length : undefined;
  };
  if (halves.length === 1) return count(halves[0]) === groups;
  const a = count(halves[0]);
  const b = count(halves[1]);
  if (a === undefined || b === undefined) return false;
  return a + b < groups;
}

/** True for an IPv4 or IPv6 address. */
export function isIP(text: string): boolean {
  return isIPv4(text) || isIPv6(text);
}

/** The address family of an IP, or undefined when `text` is not an IP. */
export function ipFamily(text: string): "IPv4" | "IPv6" | undefined {
  if (isIPv4(text)) return "IPv4";
  if (isIPv6(text)) return "IPv6";
  return undefined;
}

/** True for a CIDR such as `10.244.0.0/16` or `fd00:10:244::/56`. */
export function isCIDR(text: string): boolean {
  const slash = text.indexOf("/");
  if (slash < 0) return false;
  const ip = text.slice(0, slash);
  const bits = text.slice(slash + 1);
  if (!/^(0|[1-9]\d{0,2})$/.test(bits)) return false;
  if (isIPv4(ip)) return Number(bits) <= 32;
  if (isIPv6(ip)) return Number(bits) <= 128;
  return false;
}

/** A parsed `host:port` listen address. */
export interface HostPort {
  /** IP address without brackets. */
  host: string;
  /** Port number (0 asks the OS for a free port). */
  port: number;
}

/**
 * Split `ip:port` or `[ipv6]:port` into its parts, or return undefined when
 * the text is not exactly that (the host must be an IP address).
 */
export function splitHostPort(text: string): HostPort | undefined {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") return undefined;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!isIPv6(host)) return undefined;
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return undefined;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (!isIPv4(host)) return undefined;
  }
  if (!/^(0|[1-9]\d{0,4})$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port > 65535) return undefined;
  return { host, port };
}

/** Join an IP and a port, bracketing IPv6 addresses. */
export function joinHostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}
