/**
 * The benchmark cluster, generated deterministically from a few numbers:
 * N services with one TCP port each, every fifth one also NodePort, each
 * with one EndpointSlice of E endpoints of which one in five lives on this
 * node (a CNI endpoint HNS already holds) and the rest on other nodes
 * (remote endpoints hnsproxy must create). Also the HNS the node starts
 * with: one L2Bridge network and the CNI's local pod endpoints.
 *
 * Everything is a pure function of the {@link ScenarioSpec}, so the API
 * server process, the harness and the kube-proxy model agree on every
 * address without exchanging objects.
 *
 * @module
 */

import type { HcnEndpoint, HcnNetwork } from "../lib/hns/types.ts";
import type { FakeObject } from "../lib/fake-apiserver/mod.ts";

/** The numbers that define a benchmark cluster. */
export interface ScenarioSpec {
  /** Number of services. */
  services: number;
  /** Endpoints per service (5 in the issue). */
  endpointsPerService: number;
  /** Every n-th service is also NodePort (5: 20%). */
  nodePortEvery: number;
  /** Every n-th endpoint of a service is on this node (5: 20% local, 80% remote). */
  localEvery: number;
  /** Namespaces the services are spread over. */
  namespaces: number;
}

/** The issue's shape at `services` services. */
export function issueSpec(services: number): ScenarioSpec {
  return { services, endpointsPerService: 5, nodePortEvery: 5, localEvery: 5, namespaces: 50 };
}

/** This node's name in the generated cluster. */
export const NODE_NAME = "bench-node";
/** This node's InternalIP. */
export const NODE_IP = "192.168.0.10";
/** The HNS network the agent programs. */
export const NETWORK_NAME = "bench-l2bridge";
/** This node's pod CIDR: the local (CNI) endpoints live here. */
export const LOCAL_POD_CIDR = "10.200.0.0/16";
/** The service (ClusterIP) port of every service. */
export const SERVICE_PORT = 80;
/** The target (container) port of every endpoint. */
export const TARGET_PORT = 8080;
/** First node port handed out. */
export const NODE_PORT_BASE = 30000;
/** Other nodes the remote endpoints are spread over. */
export const OTHER_NODES = 99;

const SERVICE_CIDR_BASE = ipv4ToInt("10.96.0.16");
const LOCAL_POD_BASE = ipv4ToInt("10.200.0.2");
const REMOTE_POD_BASE = ipv4ToInt("10.128.0.2");
/** Endpoints added during a run (incremental, churn) get addresses from here. */
const EXTRA_POD_BASE = ipv4ToInt("10.160.0.2");

/** Dotted IPv4 → 32-bit unsigned. */
export function ipv4ToInt(ip: string): number {
  return ip.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

/** 32-bit unsigned → dotted IPv4. */
export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** Namespace of service `i`. */
export function namespaceOf(spec: ScenarioSpec, i: number): string {
  return `ns-${i % spec.namespaces}`;
}

/** Name of service `i`. */
export function serviceName(i: number): string {
  return `svc-${String(i).padStart(5, "0")}`;
}

/** `namespace/name` of service `i`. */
export function serviceKey(spec: ScenarioSpec, i: number): string {
  return `${namespaceOf(spec, i)}/${serviceName(i)}`;
}

/** Cluster IP of service `i`. */
export function clusterIpOf(i: number): string {
  return intToIpv4(SERVICE_CIDR_BASE + i);
}

/** Node port of service `i`, or undefined when it is ClusterIP only. */
export function nodePortOf(spec: ScenarioSpec, i: number): number | undefined {
  return i % spec.nodePortEvery === 0 ? NODE_PORT_BASE + i / spec.nodePortEvery : undefined;
}

/** One endpoint of the generated cluster. */
export interface GeneratedEndpoint {
  /** Pod IP. */
  ip: string;
  /** Node the pod runs on. */
  nodeName: string;
  /** Whether that is this node. */
  local: boolean;
}

/** Endpoint `j` of service `i` as first seeded. */
export function endpointOf(spec: ScenarioSpec, i: number, j: number): GeneratedEndpoint {
  if (j % spec.localEvery === 0) {
    const localPerService = Math.ceil(spec.endpointsPerService / spec.localEvery);
    const n = i * localPerService + j / spec.localEvery;
    return { ip: intToIpv4(LOCAL_POD_BASE + n), nodeName: NODE_NAME, local: true };
  }
  const remotePerService = spec.endpointsPerService -
    Math.ceil(spec.endpointsPerService / spec.localEvery);
  const r = i * remotePerService + (j - 1 - Math.floor(j / spec.localEvery));
  return {
    ip: intToIpv4(REMOTE_POD_BASE + r),
    nodeName: `node-${1 + (r % OTHER_NODES)}`,
    local: false,
  };
}

/** The `n`-th endpoint added during a run: always remote, never seen before. */
export function extraEndpoint(n: number): GeneratedEndpoint {
  return {
    ip: intToIpv4(EXTRA_POD_BASE + n),
    nodeName: `node-${1 + (n % OTHER_NODES)}`,
    local: false,
  };
}

/** The seeded endpoints of service `i`. */
export function endpointsOf(spec: ScenarioSpec, i: number): GeneratedEndpoint[] {
  return Array.from({ length: spec.endpointsPerService }, (_, j) => endpointOf(spec, i, j));
}

/** What HNS must hold once the agent has programmed the whole cluster. */
export interface ExpectedHns {
  /** Load balancers: one per service (ClusterIP) plus one per NodePort service. */
  loadBalancers: number;
  /** Remote endpoints hnsproxy creates (one per remote pod IP). */
  remoteEndpoints: number;
  /** CNI endpoints present before the agent starts. */
  localEndpoints: number;
  /** All endpoints HNS holds at convergence. */
  endpoints: number;
  /** The minimum HNS writes of a cold start: one create per LB and per remote endpoint. */
  minimumColdWrites: number;
}

/** The expected HNS content for `spec` (before any incremental change). */
export function expectedHns(spec: ScenarioSpec): ExpectedHns {
  const nodePorts = Math.ceil(spec.services / spec.nodePortEvery);
  const loadBalancers = spec.services + nodePorts;
  const localPer = Math.ceil(spec.endpointsPerService / spec.localEvery);
  const localEndpoints = spec.services * localPer;
  const remoteEndpoints = spec.services * (spec.endpointsPerService - localPer);
  return {
    loadBalancers,
    remoteEndpoints,
    localEndpoints,
    endpoints: localEndpoints + remoteEndpoints,
    minimumColdWrites: loadBalancers + remoteEndpoints,
  };
}

/** Service `i` as the API server stores it. */
export function serviceObject(spec: ScenarioSpec, i: number): FakeObject {
  const nodePort = nodePortOf(spec, i);
  const ip = clusterIpOf(i);
  const port: Record<string, unknown> = {
    name: "http",
    protocol: "TCP",
    port: SERVICE_PORT,
    targetPort: TARGET_PORT,
  };
  if (nodePort !== undefined) port.nodePort = nodePort;
  const spec_: Record<string, unknown> = {
    type: nodePort !== undefined ? "NodePort" : "ClusterIP",
    clusterIP: ip,
    clusterIPs: [ip],
    ipFamilies: ["IPv4"],
    ipFamilyPolicy: "SingleStack",
    ports: [port],
    selector: { app: serviceName(i) },
    sessionAffinity: "None",
    internalTrafficPolicy: "Cluster",
  };
  if (nodePort !== undefined) spec_.externalTrafficPolicy = "Cluster";
  return {
    metadata: {
      name: serviceName(i),
      namespace: namespaceOf(spec, i),
      labels: { app: serviceName(i) },
    },
    spec: spec_,
    status: { loadBalancer: {} },
  };
}

/** Name of the (single) EndpointSlice of service `i`. */
export function sliceName(i: number): string {
  return `${serviceName(i)}-x7k2p`;
}

/** The EndpointSlice of service `i` holding `endpoints`, as the controller writes it. */
export function sliceObject(
  spec: ScenarioSpec,
  i: number,
  endpoints: readonly GeneratedEndpoint[],
  triggerTime: Date,
): FakeObject {
  const ns = namespaceOf(spec, i);
  return {
    metadata: {
      name: sliceName(i),
      namespace: ns,
      generateName: `${serviceName(i)}-`,
      labels: {
        "kubernetes.io/service-name": serviceName(i),
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        app: serviceName(i),
      },
      annotations: {
        "endpoints.kubernetes.io/last-change-trigger-time": triggerTime.toISOString()
          .replace(/\.\d+Z$/, "Z"),
      },
    },
    addressType: "IPv4",
    ports: [{ name: "http", protocol: "TCP", port: TARGET_PORT }],
    endpoints: endpoints.map((ep, j) => ({
      addresses: [ep.ip],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: ep.nodeName,
      targetRef: { kind: "Pod", namespace: ns, name: `${serviceName(i)}-pod-${j}` },
    })),
  };
}

/** This node's Node object. */
export function nodeObject(): FakeObject {
  return {
    metadata: {
      name: NODE_NAME,
      labels: { "kubernetes.io/os": "windows", "topology.kubernetes.io/zone": "zone-a" },
    },
    spec: { podCIDR: LOCAL_POD_CIDR, podCIDRs: [LOCAL_POD_CIDR] },
    status: {
      addresses: [{ type: "InternalIP", address: NODE_IP }, {
        type: "Hostname",
        address: NODE_NAME,
      }],
    },
  };
}

/** The HNS network the node starts with (sent to HcnCreateNetwork). */
export function networkSettings(): HcnNetwork {
  return {
    Name: NETWORK_NAME,
    Type: "L2Bridge",
    Ipams: [{ Type: "Static", Subnets: [{ IpAddressPrefix: LOCAL_POD_CIDR }] }],
    Flags: 0,
    SchemaVersion: { Major: 2, Minor: 0 },
  };
}

/** The CNI endpoint of a local pod (sent to HcnCreateEndpoint). */
export function localEndpointSettings(ip: string, networkId: string): HcnEndpoint {
  const n = ipv4ToInt(ip);
  const hex = (b: number) => b.toString(16).padStart(2, "0");
  return {
    Name: `pod-${ip}_eth0`,
    HostComputeNetwork: networkId,
    IpConfigurations: [{ IpAddress: ip, PrefixLength: 16 }],
    MacAddress: `00-15-5d-${hex((n >>> 16) & 255)}-${hex((n >>> 8) & 255)}-${hex(n & 255)}`,
    Flags: 0,
    SchemaVersion: { Major: 2, Minor: 0 },
  };
}

/** Every local pod IP of `spec` (the CNI endpoints HNS holds before the agent starts). */
export function localEndpointIps(spec: ScenarioSpec): string[] {
  const out: string[] = [];
  for (let i = 0; i < spec.services; i++) {
    for (const ep of endpointsOf(spec, i)) if (ep.local) out.push(ep.ip);
  }
  return out;
}
