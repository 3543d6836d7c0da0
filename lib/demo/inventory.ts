/**
 * The demo's reading of HNS: each load balancer tied back to the service port
 * it serves (by frontend VIP, port and protocol, or node port) and each
 * backend told apart as a pod on this node or a remote one (with the node
 * that hosts it, from its provider address).
 *
 * @module
 */

import { describeLoadBalancer, loadBalancerWords, protocolName } from "../hns/describe.ts";
import type { MemoryHnsState } from "../hns/memory.ts";
import {
  EndpointFlags,
  type HcnEndpoint,
  type HcnLoadBalancer,
  LoadBalancerFlags,
} from "../hns/types.ts";
import { canonicalIp } from "../net/ip.ts";
import type { ObjectDescriber } from "./recorder.ts";
import { DEMO_NODES, type DemoPort, type DemoService, serviceKey } from "./cluster.ts";

/** What address of a service a load balancer serves. */
export type LbRole = "ClusterIP" | "NodePort" | "Ingress" | "HealthCheck";

/** One backend of a load balancer. */
export interface BackendView {
  /** The endpoint's IP. */
  ip: string;
  /** A pod on this node (the CNI's endpoint) or elsewhere (a remote endpoint). */
  where: "local" | "remote";
  /** For remote ones: the node behind the provider address, or the address itself. */
  via?: string;
}

/** One load balancer HNS holds, as the demo explains it. */
export interface LbView {
  /** HNS ID. */
  id: string;
  /** The HNS object. */
  lb: HcnLoadBalancer;
  /** `10.96.0.10:53/UDP`, `node:30080/TCP`, `[fd00:10:96::50]:7/TCP`. */
  frontend: string;
  /** Port on the backends. */
  internalPort: number;
  /** IP family. */
  family: "IPv4" | "IPv6";
  /** The service it serves, when one matches. */
  service?: DemoService;
  /** The service port it serves, when one matches. */
  port?: DemoPort;
  /** What address of the service. */
  role?: LbRole;
  /** Backends in the order HNS lists them. */
  backends: BackendView[];
  /** Flags in words (`DSR`, `LocalRoutedVIP`, ...). */
  flags: string[];
}

/** The node name of a provider address, else the address. */
function nodeOf(pa: string | undefined): string | undefined {
  if (pa === undefined) return undefined;
  const c = canonicalIp(pa);
  return DEMO_NODES.find((n) => n.ips.some((ip) => canonicalIp(ip) === c))?.name ?? pa;
}

/** The provider address policy of an endpoint. */
function providerAddressOf(ep: HcnEndpoint): string | undefined {
  for (const p of ep.Policies ?? []) {
    const pa = p.Type === "ProviderAddress" ? p.Settings?.ProviderAddress : undefined;
    if (typeof pa === "string") return pa;
  }
  return undefined;
}

/** The first IP of an endpoint, canonical. */
export function endpointIp(ep: HcnEndpoint): string | undefined {
  const ip = ep.IpConfigurations?.[0]?.IpAddress;
  return ip ? canonicalIp(ip) : undefined;
}

/** Whether an endpoint carries the RemoteEndpoint flag. */
export function isRemote(ep: HcnEndpoint): boolean {
  return ((ep.Flags ?? 0) & EndpointFlags.RemoteEndpoint) !== 0;
}

/** The service port and role a load balancer serves, by its frontend. */
function match(
  lb: HcnLoadBalancer,
  services: readonly DemoService[],
): { service: DemoService; port: DemoPort; role: LbRole } | undefined {
  const pm = lb.PortMappings?.[0];
  if (!pm) return undefined;
  const proto = protocolName(pm.Protocol);
  const vip = lb.FrontendVIPs?.[0] ? canonicalIp(lb.FrontendVIPs[0]) : undefined;
  for (const service of services) {
    for (const port of service.ports) {
      if (port.protocol !== proto) continue;
      if (vip === undefined) {
        if (port.nodePort === pm.ExternalPort) return { service, port, role: "NodePort" };
        continue;
      }
      if (port.port === pm.ExternalPort) {
        if (service.clusterIPs.some((ip) => canonicalIp(ip) === vip)) {
          return { service, port, role: "ClusterIP" };
        }
        if ((service.ingress ?? []).some((ip) => canonicalIp(ip) === vip)) {
          return { service, port, role: "Ingress" };
        }
      }
    }
    if (
      vip !== undefined && service.localTrafficHealthCheckPort === pm.ExternalPort &&
      (service.ingress ?? []).some((ip) => canonicalIp(ip) === vip)
    ) {
      return { service, port: service.ports[0], role: "HealthCheck" };
    }
  }
  return undefined;
}

/** Every load balancer of `state`, explained, in a stable reading order. */
export function loadBalancerViews(
  state: Required<MemoryHnsState>,
  services: readonly DemoService[],
): LbView[] {
  const endpoints = new Map(state.Endpoints.map((ep) => [String(ep.ID).toUpperCase(), ep]));
  const views = state.LoadBalancers.map((lb): LbView => {
    const pm = lb.PortMappings?.[0];
    const family = ((lb.Flags ?? 0) & LoadBalancerFlags.IPv6) !== 0 ? "IPv6" : "IPv4";
    const backends = (lb.HostComputeEndpoints ?? []).map((id): BackendView => {
      const ep = endpoints.get(id.toUpperCase());
      if (!ep) return { ip: `(missing ${id})`, where: "remote" };
      const ip = endpointIp(ep) ?? "?";
      if (!isRemote(ep)) return { ip, where: "local" };
      return { ip, where: "remote", via: nodeOf(providerAddressOf(ep)) };
    });
    const view: LbView = {
      id: String(lb.ID ?? ""),
      lb,
      frontend: frontendOf(lb, family),
      internalPort: pm?.InternalPort ?? 0,
      family,
      backends,
      flags: loadBalancerWords(lb),
    };
    const m = match(lb, services);
    if (m) Object.assign(view, m);
    return view;
  });
  const order = (v: LbView) => {
    const s = v.service ? services.indexOf(v.service) : services.length;
    const roles: LbRole[] = ["ClusterIP", "NodePort", "Ingress", "HealthCheck"];
    return [
      s,
      v.port && v.service ? v.service.ports.indexOf(v.port) : 0,
      v.family === "IPv6" ? 1 : 0,
      v.role ? roles.indexOf(v.role) : 9,
    ];
  };
  return views.sort((a, b) => {
    const x = order(a);
    const y = order(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
    return a.frontend < b.frontend ? -1 : a.frontend > b.frontend ? 1 : 0;
  });
}

/** `fd00::1:80/TCP` → `[fd00::1]:80/TCP`. */
function bracketV6(frontend: string): string {
  const m = /^(.*):(\d+)\/(\w+)$/.exec(frontend);
  if (!m || !m[1].includes(":") || m[1].startsWith("[")) return frontend;
  return `[${m[1]}]:${m[2]}/${m[3]}`;
}

/** `shop/web` for a view's service, or a marker for load balancers of no service. */
export function serviceLabel(view: LbView): string {
  return view.service ? serviceKey(view.service) : "(no service)";
}

/** IPs of the endpoints on this node that hnsproxy must never touch (the CNI's). */
export function cniEndpointIps(state: Required<MemoryHnsState>): string[] {
  return state.Endpoints.filter((ep) => !isRemote(ep)).map(endpointIp).filter((ip): ip is string =>
    ip !== undefined
  );
}

/**
 * Names HNS objects for the demo's operation lists: load balancers by
 * frontend and backend count, endpoints by IP and role (a remote pod and its
 * node, a cluster-IP endpoint, the source VIP, a pod on this node).
 */
export function demoDescriber(
  services: readonly DemoService[],
  sourceVip: string,
): ObjectDescriber {
  const clusterIps = new Set(services.flatMap((s) => s.clusterIPs.map((ip) => canonicalIp(ip))));
  return (kind, doc) => {
    if (kind === "LoadBalancer") {
      const lb = doc as Partial<HcnLoadBalancer>;
      const family = ((lb.Flags ?? 0) & LoadBalancerFlags.IPv6) !== 0 ? "IPv6" : "IPv4";
      const n = Array.isArray(lb.HostComputeEndpoints) ? lb.HostComputeEndpoints.length : 0;
      return `load balancer ${frontendOf(lb, family)} → ${n} backend${n === 1 ? "" : "s"}`;
    }
    if (kind === "Endpoint") {
      const ep = doc as HcnEndpoint;
      const ip = endpointIp(ep) ?? "?";
      let role: string;
      if (ip === canonicalIp(sourceVip)) role = "source VIP";
      else if (!isRemote(ep)) role = "pod on this node";
      else if (clusterIps.has(ip)) role = "cluster-IP endpoint";
      else role = `remote pod, on ${nodeOf(providerAddressOf(ep)) ?? "?"}`;
      return `endpoint ${ip} (${role})`;
    }
    return `network ${String(doc.Name ?? doc.ID ?? "")}`;
  };
}

/** `10.96.0.10:53/UDP`, `[fd00::a]:7/TCP`, `node:30080/TCP` (NodePort). */
function frontendOf(lb: Partial<HcnLoadBalancer>, family: "IPv4" | "IPv6"): string {
  const desc = describeLoadBalancer(lb).replace(/^load balancer /, "");
  return bracketV6(
    desc.startsWith("*:") ? `node${family === "IPv6" ? "6" : ""}${desc.slice(1)}` : desc,
  );
}
