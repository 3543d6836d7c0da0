/**
 * Data shapes of the pure proxy core: the node context the core works in, the
 * desired HNS objects it derives from the cluster state, the observed HNS
 * objects the agent knows of, and the ordered plan of HNS operations that
 * turns one into the other.
 *
 * Every HNS object the core speaks of has a stable key (see keys.ts):
 *
 * - load balancers are keyed by their HNS identity, the triple HNS refuses to
 *   hold twice: protocol, frontend VIP (or "nodeport" for the VIP-less NodePort
 *   LB of a family) and external port — `lb/tcp/10.96.0.10:80`,
 *   `lb/udp/nodeport:30053`, `lb/tcp/nodeport6:30053`, `lb/tcp/[fd00::a]:443`.
 *   Because the key is the HNS identity it can be derived from an LB read back
 *   from HNS (adoption) and two services claiming the same identity collide on
 *   the key instead of failing in HNS with "port already exists".
 * - endpoints: `ep/remote/<ip>` for remote endpoints hnsproxy creates (also
 *   the overlay source-VIP endpoint), `ep/local/<ip>` for endpoints made by the
 *   CNI, `ep/host/<name>` for the root host endpoint (`cbr0`).
 *
 * @module
 */

import type { HcnEndpoint, HcnLoadBalancer, HnsFeatures } from "../hns/types.ts";
import type { IpFamily, ObjectKey } from "../kube/model.ts";

/** A stable key of a desired or observed load balancer, e.g. `lb/tcp/10.96.0.10:80`. */
export type LbKey = string;

/** A stable key of an endpoint, e.g. `ep/remote/10.244.2.15`. */
export type EpKey = string;

/** The HNS network type, lower-cased (`overlay`, `l2bridge`, `l2tunnel`, `transparent`, ...). */
export type NetworkType = string;

/** One `RemoteSubnetRoute` policy of an overlay network. */
export interface RemoteSubnetRoute {
  /** Destination prefix (a pod CIDR of another node), e.g. `10.244.2.0/24`. */
  prefix: string;
  /** Provider address: the IP of the node that hosts that prefix. */
  providerAddress: string;
}

/** The HNS network the proxy programs, as found by `--network-name`. */
export interface NetworkInfo {
  /** HNS network ID (GUID). */
  id: string;
  /** Network name. */
  name: string;
  /** Network type, lower-cased. */
  type: NetworkType;
  /** The network's `RemoteSubnetRoute` policies (overlay only). */
  remoteSubnetRoutes: readonly RemoteSubnetRoute[];
}

/**
 * Everything about the node the pure core needs besides the cluster state:
 * configuration, HNS capabilities and the HNS objects that exist but are not
 * hnsproxy's (the CNI's endpoints and the root host endpoint).
 */
export interface NodeContext {
  /** This node's name (`--hostname-override` or the host name). */
  nodeName: string;
  /** This node's IPs (InternalIPs or `--bind-address`); provider address for the source VIP. */
  nodeIPs: readonly string[];
  /** This node's `topology.kubernetes.io/zone`, when known. */
  zone?: string;
  /** What the running HNS supports. */
  features: HnsFeatures;
  /** The HNS network. */
  network: NetworkInfo;
  /**
   * `--source-vip` addresses (at most one per family). Used on overlay networks
   * only, as the LBs' SourceVIP and as an endpoint hnsproxy ensures exists.
   */
  sourceVips: readonly string[];
  /**
   * MAC of the host NIC that holds the node IP (dash-separated, lower case):
   * on overlay, the MAC of the source-VIP endpoint and of the per-ClusterIP
   * remote endpoints, as kube-proxy does. Required on overlay (the agent does
   * not start without it); when absent the MAC is derived from the IP.
   */
  hostMac?: string;
  /** `--enable-dsr`: DSR on ClusterIP LBs (when HNS supports DSR). */
  enableDSR: boolean;
  /** `forwardHealthCheckVip`: program health-check LBs on ingress IPs. */
  forwardHealthCheckVip: boolean;
  /** `rootHnsEndpointName` (default `cbr0`). */
  rootHnsEndpointName: string;
  /** HNS ID of the root host endpoint, when found (backend of health-check LBs). */
  rootHnsEndpointId?: string;
  /** Port of the proxy's healthz server (health-check LB port for services without healthCheckNodePort). */
  healthzPort: number;
  /**
   * HNS endpoints on the network that are not remote endpoints (the CNI's pod
   * endpoints, host endpoints), by IP address → HNS endpoint ID. An endpoint
   * whose IP is in this map is local whatever its nodeName says.
   */
  localEndpoints: ReadonlyMap<string, string>;
  /**
   * Where other nodes' pods live, from the Node objects (pod CIDRs and
   * InternalIP): on overlay, the provider address of a pod IP no
   * RemoteSubnetRoute covers yet (a node that joined after the CNI's routes
   * were read). Absent or empty when unknown.
   */
  nodePlacements?: readonly NodePlacement[];
  /**
   * The cluster's pod IP ranges (`--cluster-cidr`). On overlay a remote pod IP
   * in them that no route or node places is not programmed until it is (with
   * a `PlacementUnknown` diagnostic); without them such an IP is treated as
   * public, as kube-proxy does.
   */
  clusterCidrs?: readonly string[];
}

/** Where one other node's pods live (overlay), from its Node object. */
export interface NodePlacement {
  /** The node's name (as in EndpointSlice `nodeName`). */
  nodeName: string;
  /** The node's pod CIDRs (`spec.podCIDRs`); may be empty. */
  podCidrs: readonly string[];
  /** The node's IP in the primary family (its InternalIP): provider address of its pods. */
  providerAddress: string;
}

/** Which service address a load balancer serves. */
export type LbKind = "clusterIP" | "nodePort" | "externalIP" | "ingress" | "healthCheck";

/** One desired HNS load balancer (one service port on one VIP). */
export interface DesiredLoadBalancer {
  /** Stable key (the HNS identity), e.g. `lb/tcp/10.96.0.10:80`. */
  key: LbKey;
  /** What address of the service this LB serves. */
  kind: LbKind;
  /** The owning service, `namespace/name`. */
  serviceKey: ObjectKey;
  /** The service port's name ("" when unnamed). */
  portName: string;
  /** IP family of the LB (and of its backends). */
  family: IpFamily;
  /** IANA protocol number (6 TCP, 17 UDP). */
  protocol: number;
  /** Frontend VIP; absent for NodePort LBs. */
  vip?: string;
  /** Port on the VIP (service port, node port or health-check port). */
  externalPort: number;
  /** Port on the backends. */
  internalPort: number;
  /** LB flags ({@link import("../hns/types.ts").LoadBalancerFlags}: DSR 1, IPv6 2). */
  flags: number;
  /** Port-mapping flags ({@link import("../hns/types.ts").PortMappingFlags}). */
  portMappingFlags: number;
  /** Distribution type (0 none, 2 source IP for ClientIP affinity). */
  distributionType: number;
  /** SourceVIP (overlay only). */
  sourceVip?: string;
  /** Backend endpoint keys (`ep/remote/..`, `ep/local/..`, `ep/host/..`), sorted, unique. */
  backends: readonly EpKey[];
}

/**
 * Why hnsproxy wants an endpoint of its own (see owned_endpoints.ts):
 * - `remote`: a pod on another node (flag RemoteEndpoint, MAC derived from the IP);
 * - `serviceVip`: on overlay, a remote endpoint for each cluster IP with the
 *   host NIC's MAC and this node as provider address (as kube-proxy does);
 * - `sourceVip`: on overlay, the host endpoint holding `--source-vip`
 *   (not a remote endpoint; any endpoint with that IP satisfies it).
 */
export type EndpointRole = "remote" | "serviceVip" | "sourceVip";

/**
 * One endpoint hnsproxy wants to exist and owns: a remote endpoint (a pod on
 * another node, an overlay service VIP) or the overlay source-VIP endpoint.
 * Some fields may be accessors derived from others (a pod's MAC from its IP):
 * copy one field by field, never by spread or structuredClone.
 */
export interface DesiredEndpoint {
  /** Stable key `ep/remote/<ip>` (or `ep/sourcevip/<ip>`). */
  key: EpKey;
  /** Pod IP, cluster IP or source VIP (canonical text). */
  ip: string;
  /** Whether it is created with flag RemoteEndpoint (false only for the source VIP). */
  remote: boolean;
  /** IP family. */
  family: IpFamily;
  /** MAC address, dash-separated: derived from the IP for pods, else the host NIC's. */
  mac: string;
  /** Provider address (overlay remote endpoints only): the IP of the node hosting the IP. */
  providerAddress?: string;
  /** HNS network ID the endpoint is created on. */
  networkId: string;
  /** What it is for. */
  role: EndpointRole;
}

/**
 * An endpoint that exists in HNS and is not hnsproxy's (CNI pod endpoint, root
 * host endpoint): LBs reference it by key, the ID is already known.
 */
export interface ExistingEndpointRef {
  /** `ep/local/<ip>` or `ep/host/<name>`. */
  key: EpKey;
  /** HNS endpoint ID. */
  id: string;
}

/** Severity of a diagnostic. */
export type DiagnosticLevel = "warning" | "error";

/** A problem with one service's input, naming the object and the field. */
export interface Diagnostic {
  /** `warning`: something was skipped or degraded; `error`: nothing was programmed for it. */
  level: DiagnosticLevel;
  /** The service, `namespace/name`. */
  serviceKey: ObjectKey;
  /** The field at fault, e.g. `spec.ports[1].protocol`. */
  field: string;
  /** A short machine-friendly reason, e.g. `SCTPUnsupported`. */
  reason: string;
  /** Human-readable message naming the service and the field. */
  message: string;
  /** The endpoint IP it is about, when about one endpoint (e.g. `LocalEndpointNotFound`). */
  endpointIp?: string;
}

/** A health-check HTTP server wanted on a healthCheckNodePort (ETP=Local services). */
export interface HealthCheckWanted {
  /** The service, `namespace/name`. */
  serviceKey: ObjectKey;
  /** The healthCheckNodePort. */
  port: number;
  /** Number of local endpoints in use (200 when > 0, else 503). */
  localEndpoints: number;
}

/**
 * A service port (in one family) whose Local traffic policy finds no local
 * endpoint although the service has endpoints on other nodes: its traffic of
 * that kind is dropped on this node (kube-proxy's
 * `sync_proxy_rules_no_local_endpoints_total`).
 */
export interface NoLocalEndpoints {
  /** `internal` (internalTrafficPolicy Local) or `external` (externalTrafficPolicy Local). */
  trafficPolicy: "internal" | "external";
  /** The family of the service port's cluster IP. */
  family: IpFamily;
}

/** Everything one service wants in HNS (the unit the runner recomputes when dirty). */
export interface ServiceDesired {
  /** The service, `namespace/name`. */
  serviceKey: ObjectKey;
  /** The service's load balancers, sorted by key. */
  loadBalancers: readonly DesiredLoadBalancer[];
  /** Remote endpoints its load balancers reference, sorted by key. */
  remoteEndpoints: readonly DesiredEndpoint[];
  /** Existing (not owned) endpoints its load balancers reference, sorted by key. */
  existingEndpoints: readonly ExistingEndpointRef[];
  /** Health-check server, when the service is ETP=Local with a healthCheckNodePort. */
  healthCheck?: HealthCheckWanted;
  /** Service ports whose Local traffic policy finds no local endpoint (one per port and family). */
  noLocalEndpoints?: readonly NoLocalEndpoints[];
  /** Problems found in the service's input. */
  diagnostics: readonly Diagnostic[];
}

/**
 * The whole desired HNS state of the node. The maps are in no particular
 * order (an update patches them in place); sort where order is visible.
 */
export interface DesiredState {
  /** Per-service results, by service key. */
  services: ReadonlyMap<ObjectKey, ServiceDesired>;
  /**
   * Load balancers by key. When several services claim one key the service
   * with the smallest key wins and the others get a `LoadBalancerConflict`
   * diagnostic (see `conflicts`).
   */
  loadBalancers: ReadonlyMap<LbKey, DesiredLoadBalancer>;
  /**
   * Endpoints hnsproxy wants (shared across services), by key: remote ones
   * and, on overlay, the source-VIP endpoint.
   */
  remoteEndpoints: ReadonlyMap<EpKey, DesiredEndpoint>;
  /** How many desired LBs reference each remote endpoint key. */
  endpointRefs: ReadonlyMap<EpKey, number>;
  /** Existing (not owned) endpoints referenced, key → HNS ID. */
  existingEndpoints: ReadonlyMap<EpKey, string>;
  /** Health-check servers wanted, by service key. */
  healthChecks: ReadonlyMap<ObjectKey, HealthCheckWanted>;
  /** Cross-service problems (LB key claimed by several services). */
  conflicts: readonly Diagnostic[];
  /** Keys of the endpoints the node context itself wants (overlay source VIPs), in `remoteEndpoints`. */
  contextEndpoints: readonly EpKey[];
}

/** A load balancer present in HNS, as last seen or as created by hnsproxy. */
export interface ObservedLoadBalancer {
  /** Stable key derived from its HNS identity. */
  key: LbKey;
  /** HNS ID. */
  id: string;
  /** The owning service, when known (recorded at create/adopt time). */
  serviceKey?: ObjectKey;
  /** The HNS JSON as last seen (or as sent, with the ID HNS assigned). */
  hns: HcnLoadBalancer;
}

/** An endpoint present in HNS, as last seen or as created by hnsproxy. */
export interface ObservedEndpoint {
  /** Stable key, e.g. `ep/remote/10.244.2.15`. */
  key: EpKey;
  /** HNS ID. */
  id: string;
  /** The HNS JSON as last seen (or as sent, with the ID HNS assigned). */
  hns: HcnEndpoint;
}

/**
 * What the agent knows HNS holds: its own objects (owned or adopted) and, for
 * conflict detection only, objects of others.
 */
export interface ObservedState {
  /** Load balancers hnsproxy owns, by key. */
  loadBalancers: ReadonlyMap<LbKey, ObservedLoadBalancer>;
  /** Endpoints hnsproxy owns (remote endpoints, the source-VIP endpoint), by key. */
  endpoints: ReadonlyMap<EpKey, ObservedEndpoint>;
  /** Load balancers in HNS that are not hnsproxy's, by key. Never touched. */
  foreignLoadBalancers: ReadonlyMap<LbKey, ObservedLoadBalancer>;
  /**
   * Endpoints in HNS that are not hnsproxy's, by key (remote ones and any that
   * hold a source VIP). Never touched; LBs may reference them.
   */
  foreignEndpoints: ReadonlyMap<EpKey, ObservedEndpoint>;
  /**
   * Owned load balancers with no usable key (unparsable, or a duplicate of
   * another owned LB's key), by HNS ID: deleted on a full reconcile.
   */
  strayLoadBalancers?: ReadonlyMap<string, ObservedLoadBalancer>;
  /** Owned endpoints with no usable key or a duplicate key, by HNS ID: deleted on a full reconcile. */
  strayEndpoints?: ReadonlyMap<string, ObservedEndpoint>;
}

/**
 * Lookups over an observed state that let a partial reconcile cost what the
 * change costs rather than what the cluster holds. The agent's observed cache
 * keeps them current; `indexObserved` (reconcile.ts) builds them for a plain
 * {@link ObservedState}. Endpoint IDs compare case-insensitively.
 */
export interface ObservedIndex {
  /** Keys of the owned load balancers whose backends include this endpoint ID. */
  loadBalancersReferencing(endpointId: string): Iterable<LbKey>;
  /**
   * Whether a foreign load balancer references this endpoint ID; with
   * `includeStray`, a stray (owned, unusable) load balancer counts too.
   */
  referencedByOthers(endpointId: string, includeStray: boolean): boolean;
  /** Keys of the owned load balancers recorded for this service. */
  loadBalancersOfService(serviceKey: ObjectKey): Iterable<LbKey>;
  /** The owned endpoint (in `endpoints`) with this ID, if any. */
  ownedEndpointById(id: string): ObservedEndpoint | undefined;
}

/** An observed state with its index lookups. */
export interface IndexedObservedState extends ObservedState, ObservedIndex {}

/** The ownership record's content: HNS IDs hnsproxy created (compared case-insensitively). */
export interface OwnedIds {
  /** IDs of load balancers hnsproxy created. */
  loadBalancers: Iterable<string>;
  /** IDs of endpoints hnsproxy created. */
  endpoints: Iterable<string>;
}

/** Delete a load balancer hnsproxy owns. */
export interface DeleteLoadBalancerOp {
  /** Operation name. */
  op: "deleteLoadBalancer";
  /** LB key. */
  key: LbKey;
  /** HNS ID to delete. */
  id: string;
  /** The service it belonged to, when known. */
  serviceKey?: ObjectKey;
  /**
   * Why: `stale` (no longer desired), `replace` (recreated later in the plan)
   * or `stray` (owned but unparsable or a duplicate).
   */
  reason: "stale" | "replace" | "stray";
}

/** Delete a remote endpoint hnsproxy owns. */
export interface DeleteEndpointOp {
  /** Operation name. */
  op: "deleteEndpoint";
  /** Endpoint key. */
  key: EpKey;
  /** HNS ID to delete. */
  id: string;
  /**
   * Why: `stale` (no longer wanted), `replace` (recreated later in the plan)
   * or `stray` (owned but unparsable or a duplicate).
   */
  reason: "stale" | "replace" | "stray";
}

/** Create a remote endpoint. */
export interface CreateEndpointOp {
  /** Operation name. */
  op: "createEndpoint";
  /** Endpoint key. */
  key: EpKey;
  /** The HNS network to create it on. */
  networkId: string;
  /** The desired endpoint. */
  endpoint: DesiredEndpoint;
  /**
   * The HNS payload (without ID). Plans built by reconcile leave it out (it is
   * `endpointPayload(endpoint)`, built when the operation is applied, so a big
   * plan does not hold one per endpoint); the plan CLI fills it in.
   */
  payload?: HcnEndpoint;
}

/** Create a load balancer. */
export interface CreateLoadBalancerOp {
  /** Operation name. */
  op: "createLoadBalancer";
  /** LB key. */
  key: LbKey;
  /** The owning service. */
  serviceKey: ObjectKey;
  /** The desired LB; build the payload with `loadBalancerPayload` once backend IDs are known. */
  loadBalancer: DesiredLoadBalancer;
}

/** Update a load balancer in place (HNS ModifyLoadbalancer). */
export interface ModifyLoadBalancerOp {
  /** Operation name. */
  op: "modifyLoadBalancer";
  /** LB key. */
  key: LbKey;
  /** HNS ID to modify. */
  id: string;
  /** The owning service. */
  serviceKey: ObjectKey;
  /** The desired LB; build the payload with `loadBalancerPayload` once backend IDs are known. */
  loadBalancer: DesiredLoadBalancer;
}

/** Take over an LB found in HNS equal to the desired one (no HNS call). */
export interface AdoptLoadBalancerOp {
  /** Operation name. */
  op: "adoptLoadBalancer";
  /** LB key. */
  key: LbKey;
  /** HNS ID. */
  id: string;
  /** The owning service. */
  serviceKey: ObjectKey;
  /** Whether it was foreign (not in the ownership record) before. */
  wasForeign: boolean;
  /** Its content's fingerprint when known without computing it (a trusted start's own objects). */
  fp?: string;
}

/** Take over a remote endpoint found in HNS equal to the desired one (no HNS call). */
export interface AdoptEndpointOp {
  /** Operation name. */
  op: "adoptEndpoint";
  /** Endpoint key. */
  key: EpKey;
  /** HNS ID. */
  id: string;
  /** Whether it was foreign (not in the ownership record) before. */
  wasForeign: boolean;
  /** Its content's fingerprint when known without computing it (a trusted start's own objects). */
  fp?: string;
}

/** One operation of a plan. */
export type PlanOp =
  | DeleteLoadBalancerOp
  | DeleteEndpointOp
  | CreateEndpointOp
  | CreateLoadBalancerOp
  | ModifyLoadBalancerOp
  | AdoptLoadBalancerOp
  | AdoptEndpointOp;

/** A desired LB whose HNS identity is held by an object hnsproxy does not own. */
export interface LoadBalancerConflict {
  /** LB key. */
  key: LbKey;
  /** The service that wants it. */
  serviceKey: ObjectKey;
  /** ID of the foreign LB holding the identity. */
  foreignId: string;
}

/**
 * An ordered plan. Execute `ops` in order; an op may depend on earlier ones
 * (LBs reference endpoints created before them). The order is: delete LBs →
 * delete endpoints nothing references any more → create endpoints → create
 * and modify LBs → delete endpoints freed by those modifications.
 */
export interface Plan {
  /** Operations in execution order. */
  ops: readonly PlanOp[];
  /** Desired LBs not programmed because a foreign object holds their identity. */
  conflicts: readonly LoadBalancerConflict[];
}
