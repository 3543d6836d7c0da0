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
 * A pod's endpoint is the most numerous object of the desired state, so it
 * holds only what varies (key, IP, network, provider address); its family and
 * MAC are derived from the IP when read.
 *
 * @module
 */

import type { IpFamily } from "../kube/model.ts";
import { remoteEndpointKey, sourceVipEndpointKey } from "./keys.ts";
import type { DesiredEndpoint, EndpointRole, EpKey, NodeContext } from "./model.ts";
import { canonicalIp, ipFamilyOf } from "../net/ip.ts";
import { remoteEndpointMac } from "./net.ts";
import { isOverlay, nodeIpOf, primaryFamily } from "./placement.ts";

/** The remote endpoint of a pod on another node (role `remote`). */
class PodEndpoint implements DesiredEndpoint {
  readonly key: EpKey;
  /** Canonical text, so that only IPv6 addresses hold a colon. */
  readonly ip: string;
  readonly networkId: string;
  declare readonly providerAddress?: string;

  constructor(ip: string, networkId: string, providerAddress?: string) {
    this.key = remoteEndpointKey(ip);
    this.ip = ip;
    this.networkId = networkId;
    if (providerAddress !== undefined) this.providerAddress = providerAddress;
  }

  get remote(): boolean {
    return true;
  }

  get family(): IpFamily {
    return this.ip.includes(":") ? "IPv6" : "IPv4";
  }

  get mac(): string {
    return remoteEndpointMac(this.ip);
  }

  get role(): EndpointRole {
    return "remote";
  }

  /** The plain object of the same endpoint (as `JSON.stringify` shows it). */
  toJSON(): DesiredEndpoint {
    const ep: DesiredEndpoint = {
      key: this.key,
      ip: this.ip,
      remote: true,
      family: this.family,
      mac: this.mac,
      networkId: this.networkId,
      role: "remote",
    };
    if (this.providerAddress !== undefined) ep.providerAddress = this.providerAddress;
    return ep;
  }
}

/**
 * The remote endpoint of a pod on another node; `ip` is canonical (its family
 * follows from it), `providerAddress` on overlay only.
 */
export function podEndpoint(
  ctx: NodeContext,
  ip: string,
  providerAddress: string | undefined,
): DesiredEndpoint {
  return new PodEndpoint(ip, ctx.network.id, providerAddress);
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
