/**
 * Cluster and HNS fixtures for the syncer and agent tests: Kubernetes API
 * objects (as the fake API server serves them) and seeded HNS states in the
 * emulator's state-file format — an Overlay node with RemoteSubnetRoute
 * policies and the CNI's pod endpoints, and an L2Bridge node.
 *
 * @module
 */

import { join } from "node:path";
import { type Config, parseConfig } from "../../lib/config/mod.ts";
import type { MemoryHnsState } from "../../lib/hns/memory.ts";
import type { HcnEndpoint, HcnLoadBalancer } from "../../lib/hns/types.ts";
import { FakeApiServer, type FakeObject } from "../../lib/fake-apiserver/mod.ts";
import type { ContextSettings } from "../../lib/proxy/context.ts";

/** This node. */
export const NODE = "node-1";
/** This node's IP. */
export const NODE_IP = "192.168.1.11";
/** Overlay network ID. */
export const OVERLAY_NET = "6D6F6E6F-0000-4000-8000-000000000001";
/** L2Bridge network ID. */
export const L2BRIDGE_NET = "6D6F6E6F-0000-4000-8000-000000000002";
/** The CNI's endpoint of pod 10.244.1.5 on this node. */
export const LOCAL_EP_5 = "10CA1000-0000-4000-8000-000000000005";
/** The CNI's endpoint of pod 10.244.1.6 on this node. */
export const LOCAL_EP_6 = "10CA1000-0000-4000-8000-000000000006";
/** The host endpoint (cbr0). */
export const HOST_EP = "10CA1000-0000-4000-8000-0000000000FE";
/** The overlay source VIP. */
export const SOURCE_VIP = "10.244.1.250";
/** The MAC of this node's adapter (`--host-mac`: NODE_IP is no address of the test machine). */
export const HOST_MAC = "00-15-5d-01-02-03";

function localEndpoint(id: string, ip: string, net: string, name: string): HcnEndpoint {
  return {
    ID: id,
    Name: name,
    HostComputeNetwork: net,
    IpConfigurations: [{ IpAddress: ip, PrefixLength: 24 }],
    MacAddress: "00-15-5D-01-00-" + ip.split(".")[3].padStart(2, "0"),
    Flags: 0,
    SchemaVersion: { Major: 2, Minor: 0 },
  };
}

/** An overlay node: routes for node-2 (10.244.2.0/24) and node-3 (10.244.3.0/24), two CNI pods. */
export function overlayHns(extra: { LoadBalancers?: HcnLoadBalancer[] } = {}): MemoryHnsState {
  return {
    Networks: [{
      ID: OVERLAY_NET,
      Name: "vxlan0",
      Type: "Overlay",
      Ipams: [{ Type: "Static", Subnets: [{ IpAddressPrefix: "10.244.1.0/24" }] }],
      Policies: [
        {
          Type: "RemoteSubnetRoute",
          Settings: {
            DestinationPrefix: "10.244.2.0/24",
            IsolationId: 4096,
            ProviderAddress: "192.168.1.12",
            DistributedRouterMacAddress: "01-02-03-04-05-06",
          },
        },
        {
          Type: "RemoteSubnetRoute",
          Settings: {
            DestinationPrefix: "10.244.3.0/24",
            IsolationId: 4096,
            ProviderAddress: "192.168.1.13",
            DistributedRouterMacAddress: "01-02-03-04-05-06",
          },
        },
      ],
      SchemaVersion: { Major: 2, Minor: 0 },
    }],
    Endpoints: [
      localEndpoint(LOCAL_EP_5, "10.244.1.5", OVERLAY_NET, "pod-a"),
      localEndpoint(LOCAL_EP_6, "10.244.1.6", OVERLAY_NET, "pod-b"),
    ],
    LoadBalancers: extra.LoadBalancers ?? [],
  };
}

/**
 * {@link overlayHns} with `count` more CNI endpoints: endpoint `i` named
 * `name(i)`, at 10.244.1.(`first` + i). Built on each call, so that no caller
 * keeps it (heap tests count the copies of the names).
 */
export function overlayHnsWithPods(
  count: number,
  name: (i: number) => string,
  first: number,
): MemoryHnsState {
  const state = overlayHns();
  const network = state.Networks![0].ID!;
  for (let i = 0; i < count; i++) {
    const n = first + i;
    state.Endpoints!.push({
      ID: `10CA1000-0000-4000-8000-0000000${String(1000 + n).padStart(5, "0")}`,
      Name: name(i),
      HostComputeNetwork: network,
      IpConfigurations: [{ IpAddress: `10.244.1.${n}`, PrefixLength: 24 }],
      MacAddress: `00-15-5D-01-01-${n.toString(16).padStart(2, "0")}`,
      Flags: 0,
      SchemaVersion: { Major: 2, Minor: 0 },
    });
  }
  return state;
}

/** An l2bridge node (cbr0) with the host endpoint and two CNI pods. */
export function l2bridgeHns(): MemoryHnsState {
  return {
    Networks: [{
      ID: L2BRIDGE_NET,
      Name: "cbr0",
      Type: "L2Bridge",
      Ipams: [{ Type: "Static", Subnets: [{ IpAddressPrefix: "10.244.1.0/24" }] }],
      SchemaVersion: { Major: 2, Minor: 0 },
    }],
    Endpoints: [
      localEndpoint(HOST_EP, "10.244.1.2", L2BRIDGE_NET, "cbr0"),
      localEndpoint(LOCAL_EP_5, "10.244.1.5", L2BRIDGE_NET, "pod-a"),
      localEndpoint(LOCAL_EP_6, "10.244.1.6", L2BRIDGE_NET, "pod-b"),
    ],
    LoadBalancers: [],
  };
}

/** This node's Node object. */
export function nodeObject(): FakeObject {
  return {
    metadata: { name: NODE, labels: { "topology.kubernetes.io/zone": "zone-a" } },
    spec: { podCIDR: "10.244.1.0/24", podCIDRs: ["10.244.1.0/24"] },
    status: { addresses: [{ type: "InternalIP", address: NODE_IP }] },
  };
}

/** Options of {@link serviceObject}. */
export interface ServiceSpec {
  type?: "ClusterIP" | "NodePort" | "LoadBalancer";
  clusterIP: string;
  /** Dual-stack: every cluster IP (the first is `clusterIP`). */
  clusterIPs?: string[];
  internalTrafficPolicy?: "Cluster" | "Local";
  trafficDistribution?: string;
  ports: Array<
    { name?: string; port: number; targetPort?: number; nodePort?: number; protocol?: string }
  >;
  externalIPs?: string[];
  ingress?: Array<{ ip: string; ipMode?: string }>;
  externalTrafficPolicy?: "Cluster" | "Local";
  healthCheckNodePort?: number;
  sessionAffinity?: "ClientIP";
  annotations?: Record<string, string>;
}

/** A Service API object. */
export function serviceObject(name: string, spec: ServiceSpec, namespace = "default"): FakeObject {
  const out: FakeObject = {
    metadata: { name, namespace, ...(spec.annotations ? { annotations: spec.annotations } : {}) },
    spec: {
      type: spec.type ?? "ClusterIP",
      clusterIP: spec.clusterIP,
      clusterIPs: spec.clusterIPs ?? [spec.clusterIP],
      ipFamilies: (spec.clusterIPs ?? [spec.clusterIP]).map((ip) =>
        ip.includes(":") ? "IPv6" : "IPv4"
      ),
      ...(spec.internalTrafficPolicy ? { internalTrafficPolicy: spec.internalTrafficPolicy } : {}),
      ...(spec.trafficDistribution ? { trafficDistribution: spec.trafficDistribution } : {}),
      ports: spec.ports.map((p) => ({ protocol: "TCP", targetPort: p.port, ...p })),
      ...(spec.externalIPs ? { externalIPs: spec.externalIPs } : {}),
      ...(spec.externalTrafficPolicy ? { externalTrafficPolicy: spec.externalTrafficPolicy } : {}),
      ...(spec.healthCheckNodePort ? { healthCheckNodePort: spec.healthCheckNodePort } : {}),
      ...(spec.sessionAffinity ? { sessionAffinity: spec.sessionAffinity } : {}),
    },
    status: { loadBalancer: spec.ingress ? { ingress: spec.ingress } : {} },
  };
  return out;
}

/** One endpoint of a slice: IP, node, and whether it is ready (default true). */
export interface EndpointSpec {
  ip: string;
  node: string;
  ready?: boolean;
  /** Serving (default: the value of ready). */
  serving?: boolean;
  terminating?: boolean;
  /** Topology hints: zones this endpoint is for. */
  hints?: string[];
}

/** An EndpointSlice API object for `service` with one port. */
export function sliceObject(
  service: string,
  endpoints: EndpointSpec[],
  port: { name?: string; port: number; protocol?: string },
  namespace = "default",
  sliceName = `${service}-abc`,
): FakeObject {
  return {
    metadata: {
      name: sliceName,
      namespace,
      labels: { "kubernetes.io/service-name": service },
    },
    addressType: endpoints[0]?.ip.includes(":") ? "IPv6" : "IPv4",
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      nodeName: e.node,
      conditions: {
        ready: e.ready ?? true,
        serving: e.serving ?? e.ready ?? true,
        terminating: e.terminating ?? false,
      },
      ...(e.hints ? { hints: { forZones: e.hints.map((name) => ({ name })) } } : {}),
    })),
    ports: [{ name: port.name ?? "", port: port.port, protocol: port.protocol ?? "TCP" }],
  };
}

/** A load balancer of another proxy on an address no Service claims (uses the CNI's pod 5). */
export const FOREIGN_LB: HcnLoadBalancer = {
  ID: "F0F0F0F0-0000-4000-8000-000000000001",
  HostComputeEndpoints: [LOCAL_EP_5],
  FrontendVIPs: ["10.99.0.1"],
  PortMappings: [{ Protocol: 6, InternalPort: 1, ExternalPort: 1 }],
};

/** {@link FOREIGN_LB} as `lbTable` shows it (tests/agent/harness.ts). */
export const FOREIGN_LB_LINE = "10.99.0.1:1/tcp->1 [10.244.1.5] flags=0 pm=0 dt=0";

/** A remote endpoint someone else made (no service uses its IP). */
export const FOREIGN_EP: HcnEndpoint = {
  ID: "F0F0F0F0-0000-4000-8000-000000000002",
  HostComputeNetwork: OVERLAY_NET,
  IpConfigurations: [{ IpAddress: "10.244.3.250", PrefixLength: 32 }],
  MacAddress: "02-11-0A-F4-03-FA",
  Flags: 1,
  Policies: [{ Type: "ProviderAddress", Settings: { ProviderAddress: "192.168.1.13" } }],
};

/** {@link overlayHns} with {@link FOREIGN_LB} and {@link FOREIGN_EP}: objects hnsproxy must leave alone. */
export function seededOverlayHns(): MemoryHnsState {
  const hns = overlayHns({ LoadBalancers: [FOREIGN_LB] });
  hns.Endpoints!.push(FOREIGN_EP);
  return hns;
}

/** The node context settings of {@link OVERLAY_ARGS}, for tests that build a Syncer directly. */
export const OVERLAY_SETTINGS: ContextSettings = {
  nodeName: NODE,
  nodeIPOverride: [],
  sourceVips: [SOURCE_VIP],
  enableDSR: false,
  forwardHealthCheckVip: false,
  rootHnsEndpointName: "cbr0",
  hostMac: HOST_MAC,
  healthzPort: 10256,
};

/** Agent flags for the overlay node of {@link overlayHns}. */
export const OVERLAY_ARGS: string[] = [
  "--network-name",
  "vxlan0",
  "--source-vip",
  SOURCE_VIP,
  "--host-mac",
  HOST_MAC,
];

/** ClusterIP `web`: 10.96.0.10:80 → 8080. */
export function webService(): FakeObject {
  return serviceObject("web", { clusterIP: "10.96.0.10", ports: [{ port: 80, targetPort: 8080 }] });
}

/** {@link webService}'s EndpointSlice with a pod at each of `ips`, all on node-2. */
export function remoteWebSlice(ips: string[]): FakeObject {
  return sliceObject("web", ips.map((ip) => ({ ip, node: "node-2" })), { port: 8080 });
}

/** ClusterIP `web` (10.96.0.10:80 → 8080) with one pod at `ip` on `node`: its Service and slice. */
export function webObjects(ip: string, node: string): [service: FakeObject, slice: FakeObject] {
  return [webService(), sliceObject("web", [{ ip, node }], { port: 8080 })];
}

/** web's remote pod (of {@link overlayWebCluster}) moves to node-2 (10.244.2.8). */
export function moveWebPod(api: FakeApiServer): void {
  api.update(
    "endpointslices",
    sliceObject("web", [
      { ip: "10.244.1.5", node: NODE },
      { ip: "10.244.2.8", node: "node-2" },
    ], { port: 8080 }),
  );
}

/** The db Service (10.96.0.30:5432) created, with its one pod `podIp` on node-3. */
export function createDb(api: FakeApiServer, podIp: string): void {
  api.create("services", serviceObject("db", { clusterIP: "10.96.0.30", ports: [{ port: 5432 }] }));
  api.create("endpointslices", sliceObject("db", [{ ip: podIp, node: "node-3" }], { port: 5432 }));
}

/**
 * A fake API server serving the one-pod web Service ({@link webObjects}, its
 * pod on node-2) and this node, and a temporary directory for the agent's
 * files; `close` stops the server and removes the directory.
 */
export async function webWorld(): Promise<
  { api: FakeApiServer; dir: string; close(): Promise<void> }
> {
  const api = await new FakeApiServer().start();
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-agent-" });
  const [web, webSlice] = webObjects("10.244.2.7", "node-2");
  api.create("services", web);
  api.create("endpointslices", webSlice);
  api.create("nodes", nodeObject());
  return {
    api,
    dir,
    close: async () => {
      await api.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * A small overlay cluster: ClusterIP `web` (one local and one remote pod) and
 * NodePort `np` (one remote pod), with this node's Node object.
 */
export function overlayWebCluster(): {
  services: FakeObject[];
  slices: FakeObject[];
  node: FakeObject;
} {
  return {
    services: [
      webService(),
      serviceObject("np", {
        type: "NodePort",
        clusterIP: "10.96.0.20",
        ports: [{ port: 80, targetPort: 9090, nodePort: 30080 }],
      }),
    ],
    slices: [
      sliceObject("web", [
        { ip: "10.244.1.5", node: NODE },
        { ip: "10.244.2.7", node: "node-2" },
      ], { port: 8080 }),
      sliceObject("np", [{ ip: "10.244.3.9", node: "node-3" }], { port: 9090 }),
    ],
    node: nodeObject(),
  };
}

/** The load balancers of {@link overlayWebCluster} on the overlay node, as `lbTable` shows them. */
export const OVERLAY_WEB_LBS: readonly string[] = [
  "*:30080/tcp->9090 [10.244.3.9] flags=0 pm=18 dt=0",
  "10.96.0.10:80/tcp->8080 [10.244.1.5,10.244.2.7] flags=0 pm=0 dt=0",
  "10.96.0.20:80/tcp->9090 [10.244.3.9] flags=0 pm=0 dt=0",
];

/** A clock for in-process syncers that moves only when a test sets `t` (ms). */
export function manualClock(): { t: number; now(): number } {
  return {
    t: 0,
    now() {
      return this.t;
    },
  };
}

/** A kubeconfig (JSON) that points at the fake API server `server` with no credentials. */
export function fakeKubeconfig(server: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "fake", cluster: { server } }],
    users: [{ name: "fake", user: {} }],
    contexts: [{ name: "fake", context: { cluster: "fake", user: "fake" } }],
    "current-context": "fake",
  });
}

/**
 * The config of an agent run in this process (lib/agent.ts `startAgent`) on
 * the overlay node of {@link overlayHns}, against the fake API server at
 * `server`: a kubeconfig and the ownership record in `dir`, no health or
 * metrics servers, then `extra` flags.
 */
export async function inProcessConfig(
  server: string,
  dir: string,
  extra: string[] = [],
): Promise<Config> {
  const kubeconfig = join(dir, "kubeconfig");
  await Deno.writeTextFile(kubeconfig, fakeKubeconfig(server));
  return parseConfig(
    [
      "--kubeconfig",
      kubeconfig,
      "--hostname-override",
      NODE,
      ...OVERLAY_ARGS,
      "--state-file",
      join(dir, "state.json"),
      "--healthz-bind-address=",
      "--metrics-bind-address=",
      ...extra,
    ],
    {},
    Deno.readTextFileSync,
  ).config;
}
