/**
 * The MAC address hnsproxy gives the remote endpoints it creates.
 *
 * @module
 */

import { parseIp } from "../net/ip.ts";

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
