/**
 * The embedded demo cluster: three nodes on a VXLAN overlay (this Windows
 * node, a second Windows node and a Linux node) and the Services and
 * EndpointSlices a small shop would run, as the API objects a real API server
 * serves. The demo seeds them into the fake API server and changes them step
 * by step through the same objects.
 *
 * @module
 */

import type { FakeObject } from "../fake-apiserver/mod.ts";

/** The node the agent runs on. */
export const THIS_NODE = "win-node-1";

/** One node of the demo cluster. */
export interface DemoNode {
  /** Node name. */
  name: string;
  /** `windows` or `linux`. */
  os: "windows" | "linux";
  /** InternalIPs (IPv4 first). */
  ips: string[];
  /** Pod CIDRs (IPv4 first). */
  podCIDRs: string[];
}

/** The three nodes: pods on the other two are reached through VXLAN. */
export const DEMO_NODES: readonly DemoNode[] = [
  {
    name: THIS_NODE,
    os: "windows",
    ips: ["10.0.1.11", "fd00:10:0:1::11"],
    podCIDRs: ["10.244.1.0/24", "fd00:10:244:1::/64"],
  },
  {
    name: "win-node-2",
    os: "windows",
    ips: ["10.0.1.12", "fd00:10:0:1::12"],
    podCIDRs: ["10.244.2.0/24", "fd00:10:244:2::/64"],
  },
  {
    name: "linux-node-3",
    os: "linux",
    ips: ["10.0.1.13", "fd00:10:0:1::13"],
    podCIDRs: ["10.244.3.0/24", "fd00:10:244:3::/64"],
  },
];

/** `--source-vip` of this node: an address of its pod subnet reserved for SNAT. */
export const SOURCE_VIP = "10.244.1.254";

/** A pod backing a service. */
export interface DemoPod {
  /** Pod name. */
  name: string;
  /** Node it runs on; none for addresses outside the cluster (the API server). */
  node?: string;
  /** IPv4 address. */
  ip: string;
  /** IPv6 address (dual-stack pods). */
  ipv6?: string;
  /** Whether the pod is terminating (then not ready, still serving). */
  terminating?: boolean;
}

/** One port of a demo service. */
export interface DemoPort {
  /** Port name ("" for a single unnamed port). */
  name: string;
  /** Protocol. */
  protocol: "TCP" | "UDP";
  /** Service port. */
  port: number;
  /** Port on the pods. */
  targetPort: number;
  /** Node port, for NodePort and LoadBalancer services. */
  nodePort?: number;
}

/** A demo service and the pods behind it. */
export interface DemoService {
  /** Namespace. */
  namespace: string;
  /** Name. */
  name: string;
  /** Service type. */
  type: "ClusterIP" | "NodePort" | "LoadBalancer";
  /** Cluster IPs (IPv4 first; two for dual-stack). */
  clusterIPs: string[];
  /** Ports. */
  ports: DemoPort[];
  /** `status.loadBalancer.ingress` IPs. */
  ingress?: string[];
  /** externalTrafficPolicy Local, with this healthCheckNodePort. */
  localTrafficHealthCheckPort?: number;
  /** The pods behind it. */
  pods: DemoPod[];
}

/** The demo's services, in the order the tables list them. */
export function demoServices(): DemoService[] {
  return [
    {
      namespace: "default",
      name: "kubernetes",
      type: "ClusterIP",
      clusterIPs: ["10.96.0.1"],
      ports: [{ name: "https", protocol: "TCP", port: 443, targetPort: 6443 }],
      pods: [{ name: "control-plane", ip: "10.0.1.5" }],
    },
    {
      namespace: "kube-system",
      name: "kube-dns",
      type: "ClusterIP",
      clusterIPs: ["10.96.0.10"],
      ports: [
        { name: "dns", protocol: "UDP", port: 53, targetPort: 53 },
        { name: "dns-tcp", protocol: "TCP", port: 53, targetPort: 53 },
      ],
      pods: [
        { name: "coredns-5d78c9869d-4xk2p", node: "linux-node-3", ip: "10.244.3.5" },
        { name: "coredns-5d78c9869d-w9zqf", node: "linux-node-3", ip: "10.244.3.6" },
      ],
    },
    {
      namespace: "shop",
      name: "web",
      type: "NodePort",
      clusterIPs: ["10.96.10.20"],
      ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: 8080, nodePort: 30080 }],
      pods: [
        { name: "web-0", node: THIS_NODE, ip: "10.244.1.10" },
        { name: "web-1", node: "win-node-2", ip: "10.244.2.10" },
      ],
    },
    {
      namespace: "shop",
      name: "api",
      type: "LoadBalancer",
      clusterIPs: ["10.96.10.30"],
      ports: [{ name: "https", protocol: "TCP", port: 443, targetPort: 8443, nodePort: 31443 }],
      ingress: ["20.50.60.70"],
      pods: [
        { name: "api-0", node: THIS_NODE, ip: "10.244.1.11" },
        { name: "api-1", node: "win-node-2", ip: "10.244.2.20" },
        { name: "api-2", node: "win-node-2", ip: "10.244.2.21" },
      ],
    },
    {
      namespace: "shop",
      name: "checkout",
      type: "LoadBalancer",
      clusterIPs: ["10.96.10.40"],
      ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: 8080, nodePort: 30880 }],
      ingress: ["20.50.60.71"],
      localTrafficHealthCheckPort: 32001,
      pods: [
        { name: "checkout-0", node: THIS_NODE, ip: "10.244.1.14" },
        { name: "checkout-1", node: "win-node-2", ip: "10.244.2.14" },
      ],
    },
    {
      namespace: "shop",
      name: "echo",
      type: "ClusterIP",
      clusterIPs: ["10.96.10.50", "fd00:10:96::50"],
      ports: [{ name: "tcp", protocol: "TCP", port: 7, targetPort: 7007 }],
      pods: [
        { name: "echo-0", node: "win-node-2", ip: "10.244.2.30", ipv6: "fd00:10:244:2::30" },
        { name: "echo-1", node: "linux-node-3", ip: "10.244.3.30", ipv6: "fd00:10:244:3::30" },
      ],
    },
  ];
}

/** The Node object of a demo node. */
export function nodeObject(node: DemoNode): FakeObject {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: node.name,
      labels: {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": node.os,
        "topology.kubernetes.io/zone": "zone-a",
      },
    },
    spec: { podCIDR: node.podCIDRs[0], podCIDRs: node.podCIDRs },
    status: {
      addresses: [
        ...node.ips.map((address) => ({ type: "InternalIP", address })),
        { type: "Hostname", address: node.name },
      ],
    },
  };
}

const familyOf = (ip: string) => (ip.includes(":") ? "IPv6" : "IPv4");

/** The Service object of a demo service. */
export function serviceObject(svc: DemoService): FakeObject {
  const spec: Record<string, unknown> = {
    type: svc.type,
    clusterIP: svc.clusterIPs[0],
    clusterIPs: svc.clusterIPs,
    ipFamilies: svc.clusterIPs.map(familyOf),
    ipFamilyPolicy: svc.clusterIPs.length > 1 ? "RequireDualStack" : "SingleStack",
    ports: svc.ports.map((p) => ({
      ...(p.name ? { name: p.name } : {}),
      protocol: p.protocol,
      port: p.port,
      targetPort: p.targetPort,
      ...(p.nodePort ? { nodePort: p.nodePort } : {}),
    })),
    sessionAffinity: "None",
    internalTrafficPolicy: "Cluster",
  };
  if (svc.type !== "ClusterIP") {
    spec.externalTrafficPolicy = svc.localTrafficHealthCheckPort ? "Local" : "Cluster";
  }
  if (svc.localTrafficHealthCheckPort) spec.healthCheckNodePort = svc.localTrafficHealthCheckPort;
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: svc.name, namespace: svc.namespace, labels: { app: svc.name } },
    spec,
    status: { loadBalancer: { ingress: (svc.ingress ?? []).map((ip) => ({ ip, ipMode: "VIP" })) } },
  };
}

/** The name of the service's EndpointSlice of a family. */
export function sliceName(svc: DemoService, family: "IPv4" | "IPv6"): string {
  return `${svc.name}-${family === "IPv4" ? "v4" : "v6"}`;
}

/** The EndpointSlices of a demo service: one per IP family its pods have. */
export function sliceObjects(svc: DemoService): FakeObject[] {
  const families: Array<"IPv4" | "IPv6"> = svc.clusterIPs.map(familyOf);
  return families.map((family) => ({
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: sliceName(svc, family),
      namespace: svc.namespace,
      labels: {
        "kubernetes.io/service-name": svc.name,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
      },
    },
    addressType: family,
    endpoints: svc.pods.flatMap((pod) => {
      const address = family === "IPv4" ? pod.ip : pod.ipv6;
      if (!address) return [];
      const terminating = pod.terminating ?? false;
      return [{
        addresses: [address],
        conditions: { ready: !terminating, serving: true, terminating },
        ...(pod.node ? { nodeName: pod.node } : {}),
        ...(pod.node
          ? { targetRef: { kind: "Pod", namespace: svc.namespace, name: pod.name } }
          : {}),
      }];
    }),
    ports: svc.ports.map((p) => ({
      ...(p.name ? { name: p.name } : {}),
      protocol: p.protocol,
      port: p.targetPort,
    })),
  }));
}

/** `namespace/name` of a demo service. */
export function serviceKey(svc: DemoService): string {
  return `${svc.namespace}/${svc.name}`;
}
