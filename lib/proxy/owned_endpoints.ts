/**
 * The HNS endpoints hnsproxy creates and owns, as kube-proxy creates them:
 *
 * - a remote endpoint per pod IP on another node (flag RemoteEndpoint, a MAC
 *   derived from the IP, and on overlay a ProviderAddress policy naming the
 *   pod's node), shared by every service that uses the pod;
 * - on overlay, a remote endpoint per cluster IP, with the host NIC's MAC and
 *   this node as provider address;
 * - on overlay, the host endpoint holding `--source-vip` (not remote), with
 *   the host NIC's MAC.
 *
 * @module
 */

import type { IpFamily } from "../kube/model.ts";
import { remoteEndpointKey, sourceVipEndpointKey } from "./keys.ts";
import type { DesiredEndpoint, EndpointRole, NodeContext } from "./model.ts";
import { canonicalIp, ipFamilyOf, remoteEndpointMac } from "./net.ts";
import { nodeIpOf } from "./placement.ts";

/** Whether the network is an overlay (VXLAN) network. */
export function isOverlay(ctx: NodeContext): boolean {
  return ctx.network.type.toLowerCase() === "overlay";
}

/** The remote endpoint of a pod on another node; `providerAddress` on overlay only. */
export function podEndpoint(
  ctx: NodeContext,
  ip: string,
  family: IpFamily,
  providerAddress: string | undefined,
): DesiredEndpoint {
  return remoteEndpoint(ctx, ip, family, remoteEndpointMac(ip), "remote", providerAddress);
}

/** The overlay remote endpoint of a cluster IP: the host NIC's MAC, this node as provider. */
export function serviceVipEndpoint(
  ctx: NodeContext,
  ip: string,
  family: IpFamily,
): DesiredEndpoint {
  const mac = hostMacFor(ctx, ip);
  return remoteEndpoint(ctx, ip, family, mac, "serviceVip", nodeIpOf(ctx, family));
}

function remoteEndpoint(
  ctx: NodeContext,
  ip: string,
  family: IpFamily,
  mac: string,
  role: EndpointRole,
  providerAddress: string | undefined,
): DesiredEndpoint {
  const ep: DesiredEndpoint = {
    key: remoteEndpointKey(ip),
    ip,
    remote: true,
    family,
    mac,
    networkId: ctx.network.id,
    role,
  };
  if (providerAddress !== undefined) ep.providerAddress = providerAddress;
  return ep;
}

/** The endpoints the node context itself wants: the overlay source-VIP endpoint(s). */
export function sourceVipEndpoints(ctx: NodeContext): DesiredEndpoint[] {
  if (!isOverlay(ctx)) return [];
  const out: DesiredEndpoint[] = [];
  for (const raw of ctx.sourceVips) {
    const ip = canonicalIp(raw);
    if (!ip) continue;
    out.push({
      key: sourceVipEndpointKey(ip),
      ip,
      remote: false,
      family: ipFamilyOf(ip)!,
      mac: hostMacFor(ctx, ip),
      networkId: ctx.network.id,
      role: "sourceVip",
    });
  }
  return out;
}

/** The host NIC's MAC; derived from the IP when the context has none. */
function hostMacFor(ctx: NodeContext, ip: string): string {
  return ctx.hostMac ?? remoteEndpointMac(ip);
}
