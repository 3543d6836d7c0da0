/**
 * The HNS objects kube-proxy (Windows kernelspace mode, `pkg/proxy/winkernel`,
 * through hcsshim's `hcn` package) leaves behind on an overlay node when it
 * stops: what a node holds the moment it moves from kube-proxy to hnsproxy.
 * A pure function of the services it programmed and the node as it was then;
 * the JSON is what kube-proxy sends, field for field, so hnsproxy's adoption
 * and takeover are tested against kube-proxy's shapes rather than its own.
 *
 * ## What kube-proxy creates (stated from its source; see also kube_proxy_model.ts)
 *
 * - hcsshim marshals with `omitempty`: zero numbers, empty strings and empty
 *   lists are absent (`Flags: 0`, `DistributionType: 0`, a NodePort LB's
 *   `FrontendVIPs`); `SchemaVersion` is always `{2, 0}`.
 * - Overlay runs single-stack: only the node's primary family (IPv4 here) is
 *   programmed.
 * - The source-VIP endpoint: not remote (no `Flags`), the host NIC's MAC, no
 *   policies; created once when HNS lacks it.
 * - Per cluster IP, a remote endpoint (`Flags` 1) with the host NIC's MAC and
 *   this node's IP as `ProviderAddress`.
 * - Per pod on another node, a remote endpoint with MAC `02-11-` + the IPv4
 *   bytes in hex (`conjureMac`) and as `ProviderAddress` the node IP of the
 *   RemoteSubnetRoute that holds the pod IP, else (a "public" IP) this node's
 *   IP. Pods on this node use the CNI's endpoint.
 * - Per service port: a ClusterIP LB (`FrontendVIPs` [cluster IP], port →
 *   target port, LB `Flags` DSR 1 only with `--enable-dsr`); with a node port
 *   a VIP-less LB on it (port-mapping `Flags` 18, LocalRoutedVIP |
 *   VipExternalIP); per ingress IP an LB (`Flags` 16). With
 *   externalTrafficPolicy Local the node-port and ingress LBs take the local
 *   endpoints only, with DSR. `SourceVIP` is the source VIP, or this node's
 *   IP when a backend is public or a node IP. Only ready endpoints are used;
 *   a service port without any gets no LBs.
 *
 * @module
 */

import type { HcnEndpoint, HcnLoadBalancer } from "../hns/types.ts";
import type { MemoryHnsState } from "../hns/memory.ts";
import { cidrContains } from "../net/ip.ts";
import type { DemoPort, DemoService } from "./cluster.ts";

/** The node kube-proxy ran on, as it was then. */
export interface KubeProxyNodeSetup {
  /** This node's name: pods on it are local. */
  nodeName: string;
  /** HNS network ID. */
  networkId: string;
  /** This node's IP (`--bind-address` / the Node's InternalIP). */
  nodeIP: string;
  /** MAC of the host NIC that holds the node IP (dash-separated). */
  hostMac: string;
  /** `--source-vip`. */
  sourceVip: string;
  /** The network's RemoteSubnetRoutes at the time: pod subnet → node IP. */
  routes: ReadonlyArray<{ prefix: string; providerAddress: string }>;
  /** The CNI's endpoints on this node: IP → HNS ID. */
  localEndpoints: ReadonlyMap<string, string>;
  /** `--enable-dsr`. */
  enableDSR?: boolean;
  /** An ID for each object, called in creation order (HNS assigns them). */
  newId(): string;
}

const SCHEMA = { Major: 2, Minor: 0 };
const TCP = 6, UDP = 17;
const PM_LOCAL_ROUTED_VIP = 2, PM_VIP_EXTERNAL_IP = 16;
const LB_DSR = 1;

/** kube-proxy's `conjureMac("02-11", ip)` for an IPv4 address. */
export function kubeProxyRemoteMac(ip: string): string {
  const hex = ip.split(".").map((b) => Number(b).toString(16).padStart(2, "0"));
  return ["02", "11", ...hex].join("-");
}

/**
 * The endpoints and load balancers kube-proxy leaves on the node after
 * programming `services` (and the source-VIP endpoint), in creation order.
 */
export function kubeProxyHnsObjects(
  services: readonly DemoService[],
  node: KubeProxyNodeSetup,
): Required<Pick<MemoryHnsState, "Endpoints" | "LoadBalancers">> {
  const endpoints: HcnEndpoint[] = [];
  const loadBalancers: HcnLoadBalancer[] = [];
  const byIp = new Map<string, string>(node.localEndpoints);
  /** An endpoint in hcsshim's field order; a remote one carries its provider address. */
  const create = (ip: string, mac: string, providerAddress?: string): string => {
    const ep: HcnEndpoint = { ID: node.newId(), HostComputeNetwork: node.networkId };
    if (providerAddress !== undefined) {
      ep.Policies = [{ Type: "ProviderAddress", Settings: { ProviderAddress: providerAddress } }];
    }
    ep.IpConfigurations = [{ IpAddress: ip }];
    ep.MacAddress = mac;
    if (providerAddress !== undefined) ep.Flags = 1;
    ep.SchemaVersion = SCHEMA;
    endpoints.push(ep);
    byIp.set(ip, ep.ID!);
    return ep.ID!;
  };
  const remote = (ip: string, mac: string, providerAddress: string) =>
    byIp.get(ip) ?? create(ip, mac, providerAddress);
  const routeOf = (ip: string) =>
    node.routes.find((r) => cidrContains(r.prefix, ip))?.providerAddress;

  if (!byIp.has(node.sourceVip)) create(node.sourceVip, node.hostMac);
  for (const svc of services) {
    const clusterIP = svc.clusterIPs.find((ip) => !ip.includes(":"));
    if (clusterIP === undefined) continue;
    const etpLocal = svc.localTrafficHealthCheckPort !== undefined;
    for (const port of svc.ports) {
      remote(clusterIP, node.hostMac, node.nodeIP);
      const ready = svc.pods.filter((p) => !p.terminating);
      if (ready.length === 0) continue;
      const all: string[] = [];
      const local: string[] = [];
      let publicOrNode = false;
      for (const pod of ready) {
        if (pod.node === node.nodeName) {
          const id = node.localEndpoints.get(pod.ip);
          if (id === undefined) continue;
          all.push(id);
          local.push(id);
          continue;
        }
        const pa = routeOf(pod.ip);
        if (pa === undefined || pod.ip === node.nodeIP) publicOrNode = true;
        all.push(remote(pod.ip, kubeProxyRemoteMac(pod.ip), pa ?? node.nodeIP));
      }
      const sourceVip = publicOrNode ? node.nodeIP : node.sourceVip;
      const lb = (
        vip: string | undefined,
        externalPort: number,
        backends: string[],
        pmFlags: number,
        flags: number,
      ) => {
        if (backends.length === 0) return;
        loadBalancers.push(
          loadBalancerJson(
            node.newId(),
            backends,
            sourceVip,
            vip,
            port,
            externalPort,
            pmFlags,
            flags,
          ),
        );
      };
      lb(clusterIP, port.port, all, 0, node.enableDSR ? LB_DSR : 0);
      const external = etpLocal ? local : all;
      const externalFlags = etpLocal ? LB_DSR : 0;
      if (port.nodePort) {
        lb(
          undefined,
          port.nodePort,
          external,
          PM_LOCAL_ROUTED_VIP | PM_VIP_EXTERNAL_IP,
          externalFlags,
        );
      }
      for (const ip of svc.ingress ?? []) {
        lb(ip, port.port, external, PM_VIP_EXTERNAL_IP, externalFlags);
      }
    }
  }
  return { Endpoints: endpoints, LoadBalancers: loadBalancers };
}

/** One load balancer as hcsshim marshals it (`omitempty` on every field). */
function loadBalancerJson(
  id: string,
  backends: string[],
  sourceVip: string,
  vip: string | undefined,
  port: DemoPort,
  externalPort: number,
  pmFlags: number,
  flags: number,
): HcnLoadBalancer {
  const mapping: Record<string, number> = {
    Protocol: port.protocol === "UDP" ? UDP : TCP,
    InternalPort: port.targetPort,
    ExternalPort: externalPort,
  };
  if (pmFlags !== 0) mapping.Flags = pmFlags;
  const lb: Record<string, unknown> = { ID: id, HostComputeEndpoints: backends };
  if (sourceVip) lb.SourceVIP = sourceVip;
  if (vip !== undefined) lb.FrontendVIPs = [vip];
  lb.PortMappings = [mapping];
  lb.SchemaVersion = SCHEMA;
  if (flags !== 0) lb.Flags = flags;
  return lb as unknown as HcnLoadBalancer;
}
