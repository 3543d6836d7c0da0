/**
 * The MAC address hnsproxy gives the remote endpoints it creates.
 *
 * @module
 */

import { canonicalIpv4Value, parseIp } from "../net/ip.ts";

/** Character codes of the lower-case hex digits. */
const HEX = [..."0123456789abcdef"].map((c) => c.charCodeAt(0));

/** `02-11-` and four bytes in lower-case hex, dash-separated, built as one flat string. */
function macOf(a: number, b: number, c: number, d: number): string {
  // deno-fmt-ignore
  return String.fromCharCode(
    48, 50, 45, 49, 49, 45, // "02-11-"
    HEX[a >> 4], HEX[a & 15], 45, HEX[b >> 4], HEX[b & 15], 45,
    HEX[c >> 4], HEX[c & 15], 45, HEX[d >> 4], HEX[d & 15],
  );
}

/**
 * The MAC address of a remote endpoint, derived from its IP as kube-proxy
 * does so that endpoints it created can be adopted: `02-11-` followed by the
 * four IPv4 bytes; for IPv6 the last four bytes in reverse order (kube-proxy's
 * `conjureMac`). Lower-case hex, dash-separated.
 */
export function remoteEndpointMac(ip: string): string {
  const q = canonicalIpv4Value(ip);
  if (q >= 0) return macOf(q >>> 24, (q >>> 16) & 255, (q >>> 8) & 255, q & 255);
  const p = parseIp(ip);
  if (!p) return "02-11-22-33-44-55";
  const b = p.bytes;
  return p.family === "IPv4" ? macOf(b[0], b[1], b[2], b[3]) : macOf(b[15], b[14], b[13], b[12]);
}
