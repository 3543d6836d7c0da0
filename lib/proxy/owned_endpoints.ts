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
import { canonicalIp, ipFamilyOf } from "../net/ip.ts";
import { remoteEndpointMac } from "./net.ts";
import { isOverlay, nodeIpOf, primaryFamily } from "./placement.ts";

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

/**
 * The endpoints the node context itself wants: on overlay, the source-VIP
 * endpoint of the node's primary family (overlay is single-stack).
 */
export function sourceVipEndpoints(ctx: NodeContext): DesiredEndpoint[] {
  if (!isOverlay(ctx)) return [];
  const family = primaryFamily(ctx);
  const out: DesiredEndpoint[] = [];
  for (const raw of ctx.sourceVips) {
    const ip = canonicalIp(raw);
    if (!ip || ipFamilyOf(ip) !== family) continue;
    out.push({
      key: sourceVipEndpointKey(ip),
      ip,
      remote: false,
      family,
      mac: hostMacFor(ctx, ip),
      networkId: ctx.network.id,
      role: "sourceVip",
    });
  }
  return out;
}

/**
 * The host NIC's MAC. The agent does not start on overlay without it; when a
 * context has none (the plan CLI, tests) the MAC is derived from the IP as for
 * a pod, so that the endpoints stay well-formed.
 */
function hostMacFor(ctx: NodeContext, ip: string): string {
  return ctx.hostMac || remoteEndpointMac(ip);
}
