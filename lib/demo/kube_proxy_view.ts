/**
 * The demo's HNS state as the kube-proxy model's input: one
 * {@link KubeProxyServicePort} per service port and IP family, with the load
 * balancers and remote endpoints hnsproxy programmed for it. The comparison
 * thus assumes kube-proxy would program exactly what hnsproxy did.
 *
 * @module
 */

import type { MemoryHnsState } from "../hns/memory.ts";
import { canonicalIp } from "../net/ip.ts";
import type { DemoService } from "./cluster.ts";
import { serviceKey } from "./cluster.ts";
import { loadBalancerViews } from "./inventory.ts";
import type { KubeProxyServicePort } from "./kube_proxy_model.ts";

/** The ID of a service port in one family: `shop/web:http/TCP/IPv4`. */
export function servicePortId(
  svc: DemoService,
  portName: string,
  protocol: string,
  family: string,
): string {
  return `${serviceKey(svc)}:${portName}/${protocol}/${family}`;
}

/** IDs of every service port (all families) of the given services. */
export function servicePortIds(services: readonly DemoService[]): string[] {
  return services.flatMap((svc) =>
    svc.clusterIPs.flatMap((ip) =>
      svc.ports.map((p) =>
        servicePortId(svc, p.name, p.protocol, ip.includes(":") ? "IPv6" : "IPv4")
      )
    )
  );
}

/**
 * The service ports of `services` with what `state` holds for them. Pod
 * remote endpoints are the remote backends that are not a cluster IP;
 * `overlay` adds each service port's cluster IP (kube-proxy's service-VIP
 * endpoint).
 */
export function kubeProxyServicePorts(
  state: Required<MemoryHnsState>,
  services: readonly DemoService[],
  overlay: boolean,
): KubeProxyServicePort[] {
  const clusterIps = new Set(
    services.flatMap((s) => s.clusterIPs.map((ip) => canonicalIp(ip) ?? ip)),
  );
  const byId = new Map<string, KubeProxyServicePort & { remoteEndpoints: string[] }>();
  for (const svc of services) {
    for (const clusterIP of svc.clusterIPs) {
      const family = clusterIP.includes(":") ? "IPv6" : "IPv4";
      for (const p of svc.ports) {
        const id = servicePortId(svc, p.name, p.protocol, family);
        const sp: KubeProxyServicePort & { remoteEndpoints: string[] } = {
          id,
          loadBalancers: 0,
          remoteEndpoints: [],
        };
        if (overlay) sp.clusterIP = canonicalIp(clusterIP) ?? clusterIP;
        byId.set(id, sp);
      }
    }
  }
  for (const view of loadBalancerViews(state, services)) {
    if (!view.service || !view.port) continue;
    const id = servicePortId(view.service, view.port.name, view.port.protocol, view.family);
    const sp = byId.get(id);
    if (!sp) continue;
    sp.loadBalancers++;
    for (const b of view.backends) {
      if (b.where === "remote" && !clusterIps.has(b.ip) && !sp.remoteEndpoints.includes(b.ip)) {
        sp.remoteEndpoints.push(b.ip);
      }
    }
  }
  return [...byId.values()];
}
