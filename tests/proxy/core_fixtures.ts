/**
 * Builders for the pure-core tests (desired, reconcile): services, slices,
 * node contexts, and a pure simulation of applying a plan to HNS.
 *
 * @module
 */

import type { HcnEndpoint, HcnLoadBalancer, HnsFeatures } from "../../lib/hns/types.ts";
import {
  type ClusterView,
  type EndpointInfo,
  EndpointList,
  type EndpointSliceInfo,
  type IpFamily,
  type ServiceInfo,
  type ServicePortInfo,
} from "../../lib/kube/model.ts";
import type {
  DesiredState,
  NodeContext,
  ObservedEndpoint,
  ObservedLoadBalancer,
  ObservedState,
  Plan,
} from "../../lib/proxy/model.ts";
import { endpointPayload } from "../../lib/proxy/payload.ts";
import { resolvedLoadBalancerPayload } from "../../lib/proxy/reconcile.ts";

/** Every HNS feature on. */
export const ALL_FEATURES: HnsFeatures = {
  api: true,
  dsr: true,
  ipv6DualStack: true,
  sessionAffinity: true,
  modifyLoadBalancer: true,
};

/** Every HNS feature on but ModifyLoadBalancer: a changed LB is deleted and created again. */
export const NO_MODIFY_FEATURES: HnsFeatures = { ...ALL_FEATURES, modifyLoadBalancer: false };

/** Every optional HNS feature off. */
export const NO_FEATURES: HnsFeatures = {
  api: true,
  dsr: false,
  ipv6DualStack: false,
  sessionAffinity: false,
  modifyLoadBalancer: false,
};

/** The test network's ID. */
export const NET_ID = "0A0B0C0D-0000-0000-0000-000000000001";

/** A node context: l2bridge by default, node `node-a` at 192.168.1.10 in zone-a. */
export function ctx(extra: Partial<NodeContext> = {}): NodeContext {
  return {
    nodeName: "node-a",
    nodeIPs: ["192.168.1.10", "fd00:1::10"],
    zone: "zone-a",
    features: ALL_FEATURES,
    network: { id: NET_ID, name: "cbr0", type: "l2bridge", remoteSubnetRoutes: [] },
    sourceVips: [],
    enableDSR: false,
    forwardHealthCheckVip: false,
    rootHnsEndpointName: "cbr0",
    healthzPort: 10256,
    localEndpoints: new Map([
      ["10.244.1.5", "LOCAL-0001"],
      ["10.244.1.6", "LOCAL-0002"],
      ["fd00:244:1::5", "LOCAL-0601"],
    ]),
    ...extra,
  };
}

/** An overlay context with routes for node-b (10.244.2.0/24) and node-c (10.244.3.0/24). */
export function overlayCtx(extra: Partial<NodeContext> = {}): NodeContext {
  return ctx({
    network: {
      id: NET_ID,
      name: "vxlan0",
      type: "overlay",
      remoteSubnetRoutes: [
        { prefix: "10.244.2.0/24", providerAddress: "192.168.1.11" },
        { prefix: "10.244.3.0/24", providerAddress: "192.168.1.12" },
      ],
    },
    sourceVips: ["10.244.1.2"],
    hostMac: "00-15-5d-aa-bb-cc",
    ...extra,
  });
}

/** A service port (TCP 80 → 8080 unless overridden). */
export function port(extra: Partial<ServicePortInfo> = {}): ServicePortInfo {
  return { name: "http", protocol: "TCP", port: 80, targetPort: 8080, ...extra };
}

/** A ClusterIP service `default/web` at 10.96.0.10 with one port. */
export function svc(extra: Partial<ServiceInfo> = {}): ServiceInfo {
  return {
    namespace: "default",
    name: "web",
    type: "ClusterIP",
    clusterIPs: ["10.96.0.10"],
    ipFamilies: ["IPv4"],
    ports: [port()],
    externalIPs: [],
    ingress: [],
    loadBalancerSourceRanges: [],
    externalTrafficPolicy: "Cluster",
    internalTrafficPolicy: "Cluster",
    sessionAffinity: "None",
    preserveDestination: false,
    ...extra,
  };
}

/** A ready endpoint (nodeName defaults to node-b, i.e. remote). */
export function ep(address: string, extra: Partial<EndpointInfo> = {}): EndpointInfo {
  return { address, ready: true, serving: true, terminating: false, nodeName: "node-b", ...extra };
}

/** A slice of `default/web` with port `http` 8080 unless overridden. */
export function slice(
  endpoints: EndpointInfo[],
  extra: Partial<EndpointSliceInfo> & { portNumber?: number } = {},
): EndpointSliceInfo {
  const { portNumber, ...rest } = extra;
  return {
    namespace: "default",
    name: "web-abc",
    serviceName: "web",
    addressType: "IPv4" as IpFamily,
    ports: [{ name: "http", port: portNumber ?? 8080, protocol: "TCP" }],
    endpoints: EndpointList.of(endpoints),
    ...rest,
  };
}

/** A cluster view over a fixed list of services and slices. */
export function view(services: ServiceInfo[], slices: EndpointSliceInfo[]): ClusterView {
  return {
    services: () => services,
    service: (k) => services.find((s) => `${s.namespace}/${s.name}` === k),
    slicesFor: (k) => slices.filter((s) => `${s.namespace}/${s.serviceName}` === k),
    node: () => undefined,
  };
}

/** An empty observed state. */
export function emptyObserved(): ObservedState {
  return {
    loadBalancers: new Map(),
    endpoints: new Map(),
    foreignLoadBalancers: new Map(),
    foreignEndpoints: new Map(),
  };
}

/** A pure HNS: what the simulated host holds after some plans. */
export interface SimHns {
  /** The observed state the agent would hold. */
  observed: ObservedState;
  /** Every LB in HNS (owned and foreign), by ID. */
  lbs: Map<string, HcnLoadBalancer>;
  /** Every endpoint hnsproxy created, by ID. */
  eps: Map<string, HcnEndpoint>;
  /** Number of HNS writes performed. */
  writes: number;
}

let nextId = 1;

/** A fresh upper-case GUID-like ID. */
export function newId(prefix = "ID"): string {
  return `${prefix}-${String(nextId++).padStart(6, "0")}`;
}

/**
 * Execute a plan against a simulated HNS, the way apply would (resolving
 * backend keys to IDs at the time of each op), and return the new state.
 * Throws on ops that would fail in HNS: deleting a referenced endpoint,
 * unresolvable backends, unknown IDs.
 */
export function simulate(prev: SimHns | undefined, plan: Plan, desired: DesiredState): SimHns {
  const lbs = new Map(prev?.lbs ?? []);
  const eps = new Map(prev?.eps ?? []);
  const o = prev?.observed ?? emptyObserved();
  const obsLbs = new Map<string, ObservedLoadBalancer>(o.loadBalancers);
  const obsEps = new Map<string, ObservedEndpoint>(o.endpoints);
  const strayLbs = new Map(o.strayLoadBalancers ?? []);
  const strayEps = new Map(o.strayEndpoints ?? []);
  const observed: ObservedState = {
    ...o,
    loadBalancers: obsLbs,
    endpoints: obsEps,
    strayLoadBalancers: strayLbs,
    strayEndpoints: strayEps,
  };
  let writes = prev?.writes ?? 0;
  for (const op of plan.ops) {
    switch (op.op) {
      case "deleteLoadBalancer":
        if (!lbs.delete(op.id)) throw new Error(`delete of unknown LB ${op.id}`);
        if (op.reason === "stray") strayLbs.delete(op.id);
        else obsLbs.delete(op.key);
        writes++;
        break;
      case "deleteEndpoint":
        for (const lb of lbs.values()) {
          if (lb.HostComputeEndpoints.includes(op.id)) {
            throw new Error(`endpoint ${op.key} (${op.id}) still referenced`);
          }
        }
        if (!eps.delete(op.id)) throw new Error(`delete of unknown endpoint ${op.id}`);
        if (op.reason === "stray") strayEps.delete(op.id);
        else obsEps.delete(op.key);
        writes++;
        break;
      case "createEndpoint": {
        const id = newId("EP");
        const hns = { ...endpointPayload(op.endpoint), ID: id };
        eps.set(id, hns);
        obsEps.set(op.key, { key: op.key, id, hns });
        writes++;
        break;
      }
      case "createLoadBalancer":
      case "modifyLoadBalancer": {
        const payload = resolvedLoadBalancerPayload(op.loadBalancer, desired, observed);
        if (!payload) throw new Error(`unresolved backends for ${op.key}`);
        const id = op.op === "modifyLoadBalancer" ? op.id : newId("LB");
        if (op.op === "modifyLoadBalancer" && !lbs.has(id)) throw new Error(`modify unknown ${id}`);
        const hns = { ...payload, ID: id };
        lbs.set(id, hns);
        obsLbs.set(op.key, { key: op.key, id, hns, serviceKey: op.serviceKey });
        writes++;
        break;
      }
      default:
        break;
    }
  }
  return { observed, lbs, eps, writes };
}

/** The plan's ops as short strings, e.g. `createLoadBalancer lb/tcp/10.96.0.10:80`. */
export function opList(plan: Plan): string[] {
  return plan.ops.map((o) => `${o.op} ${o.key}`);
}
