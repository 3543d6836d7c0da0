/**
 * The host's MAC address on an overlay network: the MAC of the interface
 * that holds the node IP, as kube-proxy uses it for the source-VIP endpoint
 * and the per-ClusterIP endpoints (on Windows the vEthernet adapter HNS put
 * the node IP on, which carries the physical NIC's MAC).
 *
 * Rules of {@link findHostMac} (pure: the interface list and the node IPs
 * are arguments; {@link systemInterfaces} reads the host's):
 * - the node IPs are tried in order (the primary first), addresses compared
 *   by lib/net/ip.ts's rules;
 * - an all-zero MAC (loopback, tunnels) is no hardware address and does not
 *   count, so a node IP on loopback finds no MAC;
 * - no match is an error naming the IPs looked for and the interfaces seen,
 *   and the override (`--host-mac`).
 *
 * @module
 */

import { canonicalIp } from "./ip.ts";
import { normalizeMac } from "./mac.ts";

/** One address of a host interface (the fields of `Deno.NetworkInterfaceInfo` used here). */
export interface HostInterface {
  /** Interface name (`Ethernet`, `vEthernet (Ethernet)`, `eth0`). */
  name: string;
  /** One address of the interface. */
  address: string;
  /** Its MAC, in any separator and case (`00:15:5d:aa:bb:cc`). */
  mac: string;
}

/** What {@link findHostMac} found. */
export type HostMacResult =
  | { mac: string; interface: string; ip: string }
  | { error: string };

const NO_MAC = "00-00-00-00-00-00";

/** The MAC (hnsproxy's form, `00-15-5d-aa-bb-cc`) of the interface holding a node IP, or why not. */
export function findHostMac(
  interfaces: readonly HostInterface[],
  nodeIPs: readonly string[],
): HostMacResult {
  const wanted = nodeIPs.map((ip) => canonicalIp(ip) ?? ip);
  for (const ip of wanted) {
    for (const i of interfaces) {
      if (canonicalIp(i.address) !== ip) continue;
      const mac = normalizeMac(i.mac);
      if (mac !== "" && mac !== NO_MAC) return { mac, interface: i.name, ip };
    }
  }
  const seen = interfaces.map((i) => `${i.name} ${i.address} ${normalizeMac(i.mac) || "no MAC"}`);
  const lookedFor = wanted.length === 0
    ? "the node IP is not known (the Node object has no InternalIP and --bind-address is unset)"
    : `no host interface with a hardware address holds the node IP ${wanted.join(" or ")}`;
  return {
    error: `${lookedFor}; interfaces seen: ${seen.length === 0 ? "none" : seen.join(", ")}. ` +
      "Set --host-mac to the MAC of the node's network adapter",
  };
}

/**
 * The host's interfaces as Deno reports them; a failure (e.g. the
 * permission is missing) is thrown as an error saying what was attempted.
 */
export function systemInterfaces(): HostInterface[] {
  try {
    return Deno.networkInterfaces();
  } catch (err) {
    throw new Error(
      `cannot list the host's network interfaces: ${err instanceof Error ? err.message : err}`,
      { cause: err },
    );
  }
}
