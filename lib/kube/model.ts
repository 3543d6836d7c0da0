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
  /** `hints.forZones[].name`, when set (topology follows hints, not an endpoint's zone). */
  hintZones?: readonly string[];
}

/** Bits of an endpoint's conditions in {@linkcode EndpointList.cells}. */
const READY = 1, SERVING = 2, TERMINATING = 4;
/** Cells per endpoint in {@linkcode EndpointList.cells}. */
export const ENDPOINT_CELLS = 3;
const STRIDE = ENDPOINT_CELLS;
const NO_CELLS: readonly EndpointCell[] = Object.freeze([]);

/** One cell of {@linkcode EndpointList.cells}. */
export type EndpointCell = string | number | undefined;

/**
 * The endpoints of an EndpointSlice, packed: one flat array holds, per
 * endpoint, its address, node name and condition bits (no object per
 * endpoint: slices hold most of the cluster store's records). Hint zones,
 * rare, sit in a second array only when some endpoint has them. Read-only:
 * read through the accessors by index; {@linkcode at} and iteration make
 * {@linkcode EndpointInfo} objects, for readers off the hot paths.
 */
export class EndpointList implements Iterable<EndpointInfo> {
  /** The empty list (shared). */
  static readonly EMPTY: EndpointList = new EndpointList(NO_CELLS, undefined);

  /** `address, nodeName, condition bits` per endpoint, in slice order. */
  readonly cells: readonly EndpointCell[];
  /** Hint zones per endpoint, or undefined when no endpoint has any. */
  readonly hints: readonly (readonly string[] | undefined)[] | undefined;

  /** A list over packed cells (see {@linkcode cells}); both arrays are kept as they are. */
  constructor(
    cells: readonly EndpointCell[],
    hints: readonly (readonly string[] | undefined)[] | undefined,
  ) {
    this.cells = cells;
    this.hints = hints;
  }

  /** The list of `endpoints` (from records: tests, builders). */
  static of(endpoints: readonly EndpointInfo[]): EndpointList {
    if (endpoints.length === 0) return EndpointList.EMPTY;
    const cells: EndpointCell[] = new Array(endpoints.length * STRIDE);
    let hints: (readonly string[] | undefined)[] | undefined;
    endpoints.forEach((e, i) => {
      EndpointList.pack(cells, i, e.address, e.ready, e.serving, e.terminating, e.nodeName);
      if (e.hintZones !== undefined && e.hintZones.length > 0) {
        (hints ??= new Array(endpoints.length).fill(undefined))[i] = e.hintZones;
      }
    });
    return new EndpointList(cells, hints);
  }

  /** Writes endpoint `i` into `cells` (sized `STRIDE` × endpoints). */
  static pack(
    cells: EndpointCell[],
    i: number,
    address: string,
    ready: boolean,
    serving: boolean,
    terminating: boolean,
    nodeName: string | undefined,
  ): void {
    const at = i * STRIDE;
    cells[at] = address;
    cells[at + 1] = nodeName || undefined;
    cells[at + 2] = (ready ? READY : 0) | (serving ? SERVING : 0) |
      (terminating ? TERMINATING : 0);
  }

  /** Number of endpoints. */
  get length(): number {
    return this.cells.length / STRIDE;
  }

  /** The address of endpoint `i`. */
  address(i: number): string {
    return this.cells[i * STRIDE] as string;
  }

  /** The node name of endpoint `i`, when set. */
  nodeName(i: number): string | undefined {
    return this.cells[i * STRIDE + 1] as string | undefined;
  }

  /** `conditions.ready` of endpoint `i`. */
  ready(i: number): boolean {
    return ((this.cells[i * STRIDE + 2] as number) & READY) !== 0;
  }

  /** `conditions.serving` of endpoint `i`. */
  serving(i: number): boolean {
    return ((this.cells[i * STRIDE + 2] as number) & SERVING) !== 0;
  }

  /** `conditions.terminating` of endpoint `i`. */
  terminating(i: number): boolean {
    return ((this.cells[i * STRIDE + 2] as number) & TERMINATING) !== 0;
  }

  /** The hint zones of endpoint `i`, when it has any. */
  hintZones(i: number): readonly string[] | undefined {
    return this.hints?.[i];
  }

  /** Whether endpoint `i` of this list and endpoint `j` of `other` are equal. */
  sameEndpoint(i: number, other: EndpointList, j: number): boolean {
    const a = this.cells, b = other.cells;
    const x = i * STRIDE, y = j * STRIDE;
    if (a[x] !== b[y] || a[x + 1] !== b[y + 1] || a[x + 2] !== b[y + 2]) return false;
    const h = this.hintZones(i), g = other.hintZones(j);
    if (h === g) return true;
    if (h === undefined || g === undefined || h.length !== g.length) return false;
    for (let k = 0; k < h.length; k++) if (h[k] !== g[k]) return false;
    return true;
  }

  /** Endpoint `i` as a record (a new object). */
  at(i: number): EndpointInfo {
    const info: EndpointInfo = {
      address: this.address(i),
      ready: this.ready(i),
      serving: this.serving(i),
      terminating: this.terminating(i),
    };
    const node = this.nodeName(i);
    if (node !== undefined) info.nodeName = node;
    const hints = this.hintZones(i);
    if (hints !== undefined) info.hintZones = hints;
    return info;
  }

  /** Every endpoint as a record (new objects). */
  toArray(): EndpointInfo[] {
    return Array.from({ length: this.length }, (_, i) => this.at(i));
  }

  /** The endpoints as records (new objects), in slice order. */
  *[Symbol.iterator](): Iterator<EndpointInfo> {
    for (let i = 0; i < this.length; i++) yield this.at(i);
  }

  /** The records, as `JSON.stringify` shows the list. */
  toJSON(): EndpointInfo[] {
    return this.toArray();
  }
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
  /** Endpoints, packed. */
  endpoints: EndpointList;
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
  /**
   * Calls `fn` for every service with its key (`namespace/name`: the view's
   * own string, so looking it up again does not build and hash a new one).
   * Optional: without it, keys are made from {@linkcode services}.
   */
  forEachService?(fn: (svc: ServiceInfo, key: ObjectKey) => void): void;
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
