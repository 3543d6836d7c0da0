/**
 * Compact records of the cluster objects the proxy uses. API objects are
 * converted into these on arrival (lib/kube/convert.ts) so memory follows what
 * the proxy reads, not the size of the API objects.
 *
 * @module
 */

/** A service or endpoint protocol as Kubernetes spells it. */
export type Protocol = "TCP" | "UDP" | "SCTP";

/** An IP family as Kubernetes spells it. */
export type IpFamily = "IPv4" | "IPv6";

/** `namespace/name` of a namespaced object. */
export type ObjectKey = string;

/** One port of a Service. */
export interface ServicePortInfo {
  /** Port name ("" when the service has a single unnamed port). */
  name: string;
  /** Protocol. */
  protocol: Protocol;
  /** Service port (the ClusterIP/external port). */
  port: number;
  /** Target port: a number, or a name resolved per endpoint from the slices. */
  targetPort: number | string;
  /** Node port, when allocated. */
  nodePort?: number;
}

/** One load-balancer ingress entry with an IP (hostname-only entries are dropped). */
export interface IngressInfo {
  /** Ingress IP. */
  ip: string;
  /** `VIP` (default) or `Proxy`; Proxy entries are not programmed. */
  ipMode?: "VIP" | "Proxy";
}

/** A Service, reduced to what the proxy uses. */
export interface ServiceInfo {
  /** Namespace. */
  namespace: string;
  /** Name. */
  name: string;
  /** Object resourceVersion, for change detection. */
  resourceVersion?: string;
  /** `ClusterIP`, `NodePort`, `LoadBalancer` or `ExternalName`. */
  type: "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName";
  /** Cluster IPs (one per family; `spec.clusterIPs`, falling back to `spec.clusterIP`). */
  clusterIPs: readonly string[];
  /** IP families of the cluster IPs. */
  ipFamilies: readonly IpFamily[];
  /** Service ports. */
  ports: readonly ServicePortInfo[];
  /** `spec.externalIPs`. */
  externalIPs: readonly string[];
  /** `status.loadBalancer.ingress` entries that carry an IP. */
  ingress: readonly IngressInfo[];
  /** `spec.loadBalancerSourceRanges`. */
  loadBalancerSourceRanges: readonly string[];
  /** `spec.externalTrafficPolicy` (Cluster when unset). */
  externalTrafficPolicy: "Cluster" | "Local";
  /** `spec.internalTrafficPolicy` (Cluster when unset). */
  internalTrafficPolicy: "Cluster" | "Local";
  /** `spec.sessionAffinity`. */
  sessionAffinity: "None" | "ClientIP";
  /** `spec.sessionAffinityConfig.clientIP.timeoutSeconds`, when ClientIP. */
  sessionAffinityTimeoutSeconds?: number;
  /** `spec.healthCheckNodePort`, for LoadBalancer services with ETP Local. */
  healthCheckNodePort?: number;
  /** `spec.trafficDistribution` (e.g. `PreferClose`). */
  trafficDistribution?: string;
  /** Annotation `preserve-destination: "true"`. */
  preserveDestination: boolean;
}

/** One endpoint of an EndpointSlice. */
export interface EndpointInfo {
  /** The endpoint's address (the first of `addresses`). */
  address: string;
  /** `conditions.ready` (nil means true). */
  ready: boolean;
  /** `conditions.serving` (nil means the value of ready). */
  serving: boolean;
  /** `conditions.terminating` (nil means false). */
  terminating: boolean;
  /** `nodeName`, when set. */
  nodeName?: string;
  /** `zone`, when set. */
  zone?: string;
  /** `hints.forZones[].name`, when set. */
  hintZones?: readonly string[];
}

/** One port of an EndpointSlice. */
export interface EndpointPortInfo {
  /** Port name ("" when unnamed); matches the service port name. */
  name: string;
  /** Port number on the endpoints. */
  port: number;
  /** Protocol. */
  protocol: Protocol;
}

/** An EndpointSlice, reduced to what the proxy uses. */
export interface EndpointSliceInfo {
  /** Namespace. */
  namespace: string;
  /** Slice name. */
  name: string;
  /** Owning service name (label `kubernetes.io/service-name`). */
  serviceName: string;
  /** Object resourceVersion, for change detection. */
  resourceVersion?: string;
  /** `IPv4` or `IPv6` (FQDN slices are dropped). */
  addressType: IpFamily;
  /** Ports. */
  ports: readonly EndpointPortInfo[];
  /** Endpoints. */
  endpoints: readonly EndpointInfo[];
  /**
   * Annotation `endpoints.kubernetes.io/last-change-trigger-time` in epoch
   * milliseconds, for the network programming latency metric.
   */
  triggerTimeMs?: number;
}

/** The agent's own Node, reduced to what the proxy uses. */
export interface NodeInfo {
  /** Node name. */
  name: string;
  /** InternalIP addresses (first of each family first). */
  internalIPs: string[];
  /** `topology.kubernetes.io/zone` label, when set. */
  zone?: string;
  /** `spec.podCIDRs`. */
  podCIDRs: string[];
  /** Object resourceVersion, for change detection. */
  resourceVersion?: string;
  /** `metadata.deletionTimestamp`, when the node is being deleted. */
  deletionTimestamp?: string;
  /** `spec.taints`, when there are any. */
  taints?: NodeTaint[];
}

/**
 * Where a node's pods live, for any node of the cluster: what placing a
 * remote endpoint needs (its node's pod CIDRs and InternalIPs), nothing more.
 */
export interface NodePlacement {
  /** Node name. */
  name: string;
  /** `spec.podCIDRs` (or `spec.podCIDR`); empty until the node has one. */
  podCIDRs: readonly string[];
  /** InternalIP addresses, the first of each family first. */
  internalIPs: readonly string[];
}

/** One taint of a node (`spec.taints[]`). */
export interface NodeTaint {
  /** Taint key, e.g. `ToBeDeletedByClusterAutoscaler`. */
  key: string;
  /** Taint value, when set. */
  value?: string;
  /** `NoSchedule`, `PreferNoSchedule` or `NoExecute`, when set. */
  effect?: string;
}

/** `namespace/name` for an object's namespace and name. */
export function objectKey(namespace: string, name: string): ObjectKey {
  return `${namespace}/${name}`;
}

/**
 * A read-only view of the cluster state the proxy core works from. The store
 * in lib/kube keeps it current from the reflectors.
 */
export interface ClusterView {
  /** All services the proxy handles. */
  services(): Iterable<ServiceInfo>;
  /** One service by `namespace/name`. */
  service(key: ObjectKey): ServiceInfo | undefined;
  /** The EndpointSlices of one service (`namespace/serviceName`). */
  slicesFor(serviceKey: ObjectKey): readonly EndpointSliceInfo[];
  /** The agent's own node, once seen. */
  node(): NodeInfo | undefined;
  /**
   * Every node's placement by node name (the cluster's nodes as the API
   * server lists them; empty until listed). Optional for views that know
   * no other nodes.
   */
  nodePlacements?(): ReadonlyMap<string, NodePlacement>;
}
