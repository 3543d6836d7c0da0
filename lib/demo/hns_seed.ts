/**
 * What HNS holds on the demo node before hnsproxy starts, as the CNI
 * (flannel's VXLAN backend with win-overlay) leaves it: the Overlay network
 * `vxlan0` with a RemoteSubnetRoute per other node's pod subnet, an HNS
 * endpoint per pod on this node, and one load balancer another tool made
 * (which hnsproxy must leave alone).
 *
 * @module
 */

import type { HcnApi, HcnEndpoint, HcnLoadBalancer, HcnNetwork } from "../hns/types.ts";
import type { MemoryHnsState } from "../hns/memory.ts";
import {
  DEMO_NODES,
  type DemoPod,
  type DemoService,
  demoServices,
  serviceKey,
  SOURCE_VIP,
  THIS_NODE,
} from "./cluster.ts";
import { kubeProxyHnsObjects } from "./kube_proxy_objects.ts";

/** Name of the demo's HNS network (`--network-name`). */
export const NETWORK_NAME = "vxlan0";

/** MAC of the demo node's network adapter (`--host-mac`: the demo's node IP is no host address). */
export const HOST_MAC = "00-15-5D-52-B0-01";

/** ID of the demo's HNS network. */
export const NETWORK_ID = "B4D3F2A1-7C6E-4E9B-9A51-3C2D1E0F9A88";

/** VXLAN network ID flannel uses. */
const VNI = 4096;

/** A pod on this node that no Service selects, behind the other tool's load balancer. */
export const HOST_TOOL_POD: DemoPod = { name: "node-exporter", node: THIS_NODE, ip: "10.244.1.30" };

/** ID of the load balancer another tool made before hnsproxy started. */
export const FOREIGN_LB_ID = "0E8D7C6B-5A49-4382-9170-6F5E4D3C2B1A";

const SCHEMA = { Major: 2, Minor: 0 };

/** A stable GUID per seed object, so the demo's tables read the same on every run. */
function seedGuid(n: number): string {
  const hex = n.toString(16).toUpperCase().padStart(12, "0");
  return `5EED0000-0000-4000-8000-${hex}`;
}

/** The Overlay network with a RemoteSubnetRoute to each other node's pod subnets. */
export function demoNetwork(): HcnNetwork {
  const routes = DEMO_NODES.filter((n) => n.name !== THIS_NODE).flatMap((node) =>
    node.podCIDRs.map((prefix) => ({
      Type: "RemoteSubnetRoute",
      Settings: {
        DestinationPrefix: prefix,
        IsolationId: VNI,
        ProviderAddress: node.ips[0],
        DistributedRouterMacAddress: "01-11-22-33-44-55",
      },
    }))
  );
  const self = DEMO_NODES.find((n) => n.name === THIS_NODE)!;
  return {
    ID: NETWORK_ID,
    Name: NETWORK_NAME,
    Type: "Overlay",
    Policies: [
      { Type: "ProviderAddress", Settings: { ProviderAddress: self.ips[0] } },
      ...routes,
    ],
    Ipams: [{ Type: "Static", Subnets: [{ IpAddressPrefix: self.podCIDRs[0] }] }],
    MacPool: {
      Ranges: [{ StartMacAddress: "00-15-5D-52-C0-00", EndMacAddress: "00-15-5D-52-CF-FF" }],
    },
    Flags: 0,
    SchemaVersion: SCHEMA,
  };
}

/** The endpoint the CNI creates for a pod on this node. */
export function cniEndpoint(pod: DemoPod, id?: string): HcnEndpoint {
  const last = Number(pod.ip.split(".").at(-1) ?? 0);
  const ep: HcnEndpoint = {
    Name: `${pod.name}_${NETWORK_NAME}`,
    HostComputeNetwork: NETWORK_ID,
    IpConfigurations: [{ IpAddress: pod.ip, PrefixLength: 24 }],
    MacAddress: `00-15-5D-52-C0-${last.toString(16).toUpperCase().padStart(2, "0")}`,
    Flags: 0,
    Policies: [
      { Type: "OutBoundNAT", Settings: { Exceptions: ["10.244.0.0/16", "10.96.0.0/12"] } },
    ],
    SchemaVersion: SCHEMA,
  };
  if (id) ep.ID = id;
  return ep;
}

/** Pods of the demo services that run on this node. */
export function localPods(): DemoPod[] {
  return demoServices().flatMap((s) => s.pods).filter((p) => p.node === THIS_NODE);
}

/** Everything HNS holds when the demo starts. */
export function demoHnsState(): MemoryHnsState {
  const pods = [...localPods(), HOST_TOOL_POD];
  const endpoints = pods.map((pod, i) => cniEndpoint(pod, seedGuid(i + 1)));
  const toolEndpoint = endpoints[endpoints.length - 1].ID!;
  const foreign: HcnLoadBalancer = {
    ID: FOREIGN_LB_ID,
    HostComputeEndpoints: [toolEndpoint],
    FrontendVIPs: [DEMO_NODES.find((n) => n.name === THIS_NODE)!.ips[0]],
    PortMappings: [{ Protocol: 6, InternalPort: 9100, ExternalPort: 9100, DistributionType: 0 }],
    Flags: 0,
    SchemaVersion: SCHEMA,
  };
  return { Networks: [demoNetwork()], Endpoints: endpoints, LoadBalancers: [foreign] };
}

/**
 * Create a pod's endpoint the way the CNI does, straight on HNS (not through
 * hnsproxy's instrumented API: these calls are not hnsproxy's).
 */
export async function createCniEndpoint(hns: HcnApi, pod: DemoPod): Promise<void> {
  const network = await hns.open("Network", NETWORK_ID);
  try {
    const handle = await hns.create("Endpoint", "", JSON.stringify(cniEndpoint(pod)), network);
    await hns.close("Endpoint", handle);
  } finally {
    await hns.close("Network", network);
  }
}

/** win-node-2's IP while kube-proxy ran: the node was replaced since, its pod subnet kept. */
export const FORMER_WIN_NODE_2_IP = "10.0.1.22";

/**
 * The cluster as kube-proxy last programmed it, before the node moved to
 * hnsproxy: since then a pod of shop/web moved (web-old on win-node-2 gave
 * way to web-1), shop/legacy was deleted and shop/checkout added, and
 * win-node-2 was replaced (same pod subnet, new IP).
 */
export function kubeProxyEraServices(): DemoService[] {
  const services = demoServices().filter((s) => serviceKey(s) !== "shop/checkout");
  const web = services.find((s) => serviceKey(s) === "shop/web")!;
  web.pods = web.pods.map((p) =>
    p.name === "web-1" ? { name: "web-old", node: "win-node-2", ip: "10.244.2.9" } : p
  );
  services.push({
    namespace: "shop",
    name: "legacy",
    type: "NodePort",
    clusterIPs: ["10.96.10.90"],
    ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: 8080, nodePort: 30090 }],
    pods: [{ name: "legacy-0", node: "linux-node-3", ip: "10.244.3.90" }],
  });
  return services;
}

/**
 * What HNS holds on the demo node the moment it moves from kube-proxy to
 * hnsproxy: {@link demoHnsState} plus the endpoints and load balancers
 * kube-proxy made for `services` (default {@link kubeProxyEraServices}) in
 * kube-proxy's JSON (lib/demo/kube_proxy_objects.ts), with the other nodes'
 * IPs of that time (`formerIps`, by node name; default: win-node-2's
 * former IP). Its objects' IDs start with `C0FFEE00`.
 */
export function kubeProxyLeftoverState(
  services: readonly DemoService[] = kubeProxyEraServices(),
  formerIps: Readonly<Record<string, string>> = { "win-node-2": FORMER_WIN_NODE_2_IP },
): Required<MemoryHnsState> {
  const base = demoHnsState();
  const self = DEMO_NODES.find((n) => n.name === THIS_NODE)!;
  const localEndpoints = new Map(
    (base.Endpoints ?? []).map((ep) => [ep.IpConfigurations![0].IpAddress, ep.ID!]),
  );
  let n = 0;
  const routes = DEMO_NODES.filter((node) => node.name !== THIS_NODE).map((node) => ({
    prefix: node.podCIDRs[0],
    providerAddress: formerIps[node.name] ?? node.ips[0],
  }));
  const left = kubeProxyHnsObjects(services, {
    nodeName: THIS_NODE,
    networkId: NETWORK_ID,
    nodeIP: self.ips[0],
    hostMac: HOST_MAC,
    sourceVip: SOURCE_VIP,
    routes,
    localEndpoints,
    newId: () => `C0FFEE00-0000-4000-8000-${(++n).toString(16).toUpperCase().padStart(12, "0")}`,
  });
  return {
    Networks: base.Networks ?? [],
    Endpoints: [...(base.Endpoints ?? []), ...left.Endpoints],
    LoadBalancers: [...(base.LoadBalancers ?? []), ...left.LoadBalancers],
  };
}
