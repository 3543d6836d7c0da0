/**
 * HCN (HNS v2) object shapes as HNS sends and receives them, and the two
 * interfaces every HNS backend implements: the raw C-API-shaped {@link HcnApi}
 * (FFI binding or in-memory HNS) and the typed {@link HnsClient} built on it.
 *
 * Field names are HNS's own (PascalCase), so objects round-trip unchanged.
 *
 * @module
 */

import type { IdListing, IdListingAnswer, Pacer } from "./id_listing.ts";

/** HCN schema version carried by every v2 object. */
export interface HcnSchemaVersion {
  /** Major version; 2 for the v2 API. */
  Major: number;
  /** Minor version. */
  Minor: number;
}

/** One HNS policy: a type name and type-specific settings. */
export interface HcnPolicy {
  /** Policy type, e.g. `ProviderAddress` or `RemoteSubnetRoute`. */
  Type: string;
  /** Type-specific settings object. */
  Settings?: Record<string, unknown>;
}

/** An IP configuration of an endpoint. */
export interface HcnIpConfiguration {
  /** The IP address (v4 or v6). */
  IpAddress: string;
  /** Prefix length, when known. */
  PrefixLength?: number;
}

/** Endpoint flags (`HostComputeEndpoint.Flags`). */
export const EndpointFlags = {
  None: 0,
  RemoteEndpoint: 1,
} as const;

/** A `HostComputeEndpoint`. */
export interface HcnEndpoint {
  /** GUID: assigned by HNS, or chosen by the creator. */
  ID?: string;
  /** Friendly name. */
  Name?: string;
  /** ID of the network the endpoint is attached to. */
  HostComputeNetwork?: string;
  /** IP configurations; the first one is the endpoint's address. */
  IpConfigurations?: HcnIpConfiguration[];
  /** MAC address, dash-separated (`02-11-0a-f4-02-0f`). */
  MacAddress?: string;
  /** {@link EndpointFlags}. */
  Flags?: number;
  /** Policies, e.g. `ProviderAddress` for overlay remote endpoints. */
  Policies?: HcnPolicy[];
  /** Always {Major: 2, Minor: 0} for v2 objects. */
  SchemaVersion?: HcnSchemaVersion;
  /** Anything else HNS returns is kept verbatim. */
  [extra: string]: unknown;
}

/** Load balancer flags (`HostComputeLoadBalancer.Flags`). */
export const LoadBalancerFlags = {
  None: 0,
  DSR: 1,
  IPv6: 2,
} as const;

/** Port mapping flags (`PortMappings[].Flags`). */
export const PortMappingFlags = {
  None: 0,
  ILB: 1,
  LocalRoutedVIP: 2,
  UseMux: 4,
  PreserveDIP: 8,
  VipExternalIP: 16,
} as const;

/** Distribution types (`PortMappings[].DistributionType`). */
export const DistributionType = {
  None: 0,
  SourceIPProtocol: 1,
  SourceIP: 2,
} as const;

/** IANA protocol numbers HNS uses in port mappings. */
export const IpProtocol = {
  TCP: 6,
  UDP: 17,
  SCTP: 132,
} as const;

/** One port mapping of a load balancer. */
export interface HcnPortMapping {
  /** IANA protocol number (6 TCP, 17 UDP). */
  Protocol: number;
  /** Port on the backend endpoints. */
  InternalPort: number;
  /** Port on the frontend VIP (or the node port). */
  ExternalPort: number;
  /** {@link DistributionType}. */
  DistributionType?: number;
  /** {@link PortMappingFlags}. */
  Flags?: number;
}

/** A `HostComputeLoadBalancer`. */
export interface HcnLoadBalancer {
  /** GUID: assigned by HNS, or chosen by the creator. */
  ID?: string;
  /** Backend endpoint IDs. */
  HostComputeEndpoints: string[];
  /** Source VIP for SNAT (overlay networks). */
  SourceVIP?: string;
  /** Frontend VIPs; empty for NodePort load balancers. */
  FrontendVIPs?: string[];
  /** Port mappings (hnsproxy always sends exactly one). */
  PortMappings: HcnPortMapping[];
  /** {@link LoadBalancerFlags}. */
  Flags?: number;
  /** Always {Major: 2, Minor: 0} for v2 objects. */
  SchemaVersion?: HcnSchemaVersion;
  /** Anything else HNS returns is kept verbatim. */
  [extra: string]: unknown;
}

/** A `HostComputeNetwork`. */
export interface HcnNetwork {
  /** GUID assigned by HNS. */
  ID?: string;
  /** Network name, e.g. `cbr0` or `vxlan0`. */
  Name?: string;
  /** `NAT`, `Transparent`, `L2Bridge`, `L2Tunnel`, `ICS`, `Private` or `Overlay`. */
  Type?: string;
  /** Network policies, e.g. `RemoteSubnetRoute`. */
  Policies?: HcnPolicy[];
  /** IPAM configuration. */
  Ipams?: Array<{ Type?: string; Subnets?: Array<{ IpAddressPrefix?: string }> }>;
  /** Network flags. */
  Flags?: number;
  /** Always {Major: 2, Minor: 0} for v2 objects. */
  SchemaVersion?: HcnSchemaVersion;
  /** Anything else HNS returns is kept verbatim. */
  [extra: string]: unknown;
}

/** The three HCN object kinds. */
export type HcnKind = "Network" | "Endpoint" | "LoadBalancer";

/** An opaque HCN handle (a pointer for FFI, a number for the in-memory HNS). */
export type HcnHandle = unknown;

/**
 * The HCN C API, one method per C function family, with strings already
 * converted to and from JS and every returned buffer already freed.
 *
 * Methods throw {@link import("./errors.ts").HnsError} when the HRESULT is a
 * failure or HNS returned a non-empty error record.
 */
export interface HcnApi {
  /** Whether `HcnModifyLoadBalancer` is exported by the loaded library. */
  readonly hasModifyLoadBalancer: boolean;
  /** `HcnEnumerateX(query)`: a JSON array of IDs as text. */
  enumerate(kind: HcnKind, query: string): Promise<string>;
  /**
   * `HcnEnumerateX(query)` parsed where the call ran (the FFI backend: on its
   * HNS thread), so that only the listing's typed arrays reach the caller: an
   * `HnsError` INVALID_JSON when the answer is not a JSON array of IDs. Or
   * the answer as HNS handed it over (the FFI backend while listings are kept
   * apart), which the caller must read with `IdListing.read` (that releases it).
   */
  enumerateIds(kind: HcnKind, query: string): Promise<IdListingAnswer>;
  /** `HcnOpenX(id)`: a handle the caller must close. */
  open(kind: HcnKind, id: string): Promise<HcnHandle>;
  /**
   * `HcnCreateX(id, settings)` (endpoints take the open network handle):
   * a handle the caller must close. A zero/empty `id` lets HNS assign one.
   */
  create(kind: HcnKind, id: string, settings: string, network?: HcnHandle): Promise<HcnHandle>;
  /** `HcnModifyX(handle, settings)`. */
  modify(kind: HcnKind, handle: HcnHandle, settings: string): Promise<void>;
  /** `HcnQueryXProperties(handle, query)`: the object's JSON. */
  query(kind: HcnKind, handle: HcnHandle, query: string): Promise<string>;
  /** `HcnDeleteX(id)`. */
  delete(kind: HcnKind, id: string): Promise<void>;
  /** `HcnCloseX(handle)`. */
  close(kind: HcnKind, handle: HcnHandle): Promise<void>;
  /** `HNSCall(method, path, request)`: the response JSON. */
  hnsCall(method: string, path: string, request: string): Promise<string>;
  /**
   * `HcnCreateX` and, once it succeeded, `HcnCloseX` of the new handle, as
   * one request: the same two HNS calls as {@link HcnApi.create} then
   * {@link HcnApi.close}, for a backend that runs them where they are made
   * (HNS threads) at the cost of one. Fails with the Create's error (nothing
   * to close) or the Close's. Optional: callers fall back to the two calls.
   */
  createAndClose?(kind: HcnKind, id: string, settings: string, network?: HcnHandle): Promise<void>;
  /**
   * `HcnOpenX(id)`, `HcnQueryXProperties(handle, query)`, `HcnCloseX` as one
   * request: the object's JSON. A failure is the failing call's error (its
   * `operation` names that C function); after a failed Query the handle is
   * closed all the same (a failing Close then is not reported). Optional:
   * callers fall back to the three calls.
   */
  openQueryClose?(kind: HcnKind, id: string, query: string): Promise<string>;
  /**
   * {@link HcnApi.openQueryClose} of each ID, in order, as one request: per
   * item the object's JSON, or the error that item's
   * {@link HcnApi.openQueryClose} would have failed with (its handle closed
   * all the same); a rejection means no item was tried. The same HNS calls as
   * the items made one by one, for a backend where a request costs more than
   * the calls it runs (HNS threads). Optional: callers fall back to one
   * request per item.
   */
  openQueryCloseMany?(
    kind: HcnKind,
    ids: readonly string[],
    query: string,
  ): Promise<Array<string | Error>>;
  /**
   * {@link HcnApi.createAndClose} of each item, in order, as one request:
   * `ids[i]` with `settings[i]` (endpoints on the open `network`). Answers
   * only the items that failed, each with its own error as
   * {@link HcnApi.createAndClose} would fail; a rejection means no item was
   * tried. The same HNS calls as the items made one by one, for a backend
   * where a request costs more than the calls it runs (HNS threads).
   * Optional: callers fall back to one request per item.
   */
  createAndCloseMany?(
    kind: HcnKind,
    ids: readonly string[],
    settings: readonly string[],
    network?: HcnHandle,
  ): Promise<ItemFailure[]>;
  /**
   * How many calls a caller should keep in flight to keep this backend busy,
   * when that differs from how many HNS runs at once (the FFI backend queues
   * calls for its HNS threads). Undefined: as many as should run at once.
   */
  readonly callsInFlight?: number;
  /**
   * How many objects a reader of many ({@link HcnApi.openQueryCloseMany})
   * should keep in flight now, when that differs from
   * {@link HcnApi.callsInFlight}: it may change as the backend times its
   * calls (the FFI backend keeps a start's fast reads far ahead on its one
   * HNS thread). Undefined: {@link HcnApi.callsInFlight}.
   */
  readonly readsInFlight?: number;
  /**
   * Whether a listing (an Enumerate) must not hold the calls made beside it
   * (the FFI backend: it then runs on the runtime's blocking pool, not on an
   * HNS thread; see
   * {@link import("./hcn_threads.ts").ThreadedHcnApi.keepListingsApart}).
   * Optional: a backend without threads has nothing to keep apart.
   */
  keepListingsApart?(apart: boolean): void;
  /** Release the libraries (no further calls); the FFI backend's threads end. */
  dispose(): void;
}

/** An item of a batch request that failed: its index in the batch and its error. */
export interface ItemFailure {
  /** The item's index in the request. */
  index: number;
  /** Its error ({@link import("./errors.ts").HnsError} for HNS failures). */
  error: Error;
}

/**
 * What a batch of creates did ({@link HnsClient.createEndpoints}): every
 * object as sent, under its ID, and the items that failed, by index, in
 * order (an object in `sent` whose index failed was not made, or its answer
 * was lost, as after a single create's failure).
 */
export interface CreatedBatch<T> {
  /** Each object as sent, in the order given. */
  sent: T[];
  /** The failed items, in order of their index. */
  failures: ItemFailure[];
}

/** HNS version as reported by `HNSCall GET /globals/version`. */
export interface HnsVersion {
  /** Major version. */
  major: number;
  /** Minor version. */
  minor: number;
}

/** What the running HNS supports, derived from its version. */
export interface HnsFeatures {
  /** The v2 API, remote subnet routes and host routes (9.2+). */
  api: boolean;
  /** Direct server return (9.3–9.x or 10.2+). */
  dsr: boolean;
  /** IPv6 dual-stack (11.10+). */
  ipv6DualStack: boolean;
  /** Session affinity via DistributionType SourceIP (12.0+). */
  sessionAffinity: boolean;
  /**
   * In-place load balancer update with HcnModifyLoadBalancer (15.5–15.x and
   * 16.0+, the library exports it, and HNS has not answered "not implemented").
   */
  modifyLoadBalancer: boolean;
}

/**
 * A network whose handle stays open between reads (see
 * {@link HnsClient.openNetwork}): each read is one HcnQueryNetworkProperties
 * call. The holder must close it.
 */
export interface OpenNetwork {
  /** The network's ID, as opened. */
  readonly id: string;
  /** The network's properties now; undefined when HNS no longer has it. */
  read(): Promise<HcnNetwork | undefined>;
  /** Close the handle (HcnCloseNetwork); a second close does nothing. */
  close(): Promise<void>;
}

/** How {@link HnsClient.getEndpoints} and {@link HnsClient.getLoadBalancers} read. */
export interface ReadOptions {
  /**
   * Keep as many reads in flight as the backend asks for
   * ({@link HcnApi.readsInFlight}: a start's fast reads, far ahead on one
   * HNS thread), for a read made while the caller is busy elsewhere (a
   * restart's early read, beside the cluster's lists): its answers wait,
   * in memory, until taken. Else as many as a listing reads.
   */
  ahead?: boolean;
}

/**
 * Typed HNS operations used by hnsproxy. Every method opens and closes any
 * handle it needs on every path and throws a typed
 * {@link import("./errors.ts").HnsError} on failure.
 */
export interface HnsClient {
  /** HNS version, or null when it cannot be read. */
  version(): Promise<HnsVersion | null>;
  /**
   * Features derived from {@link HnsClient.version}; `modifyLoadBalancer` also
   * turns off for the client's life once {@link HnsClient.modifyLoadBalancer}
   * was refused as unsupported (see {@link HnsClient.modifyUnsupported}).
   */
  features(): Promise<HnsFeatures>;
  /**
   * True once a {@link HnsClient.modifyLoadBalancer} was refused as not
   * implemented or not supported: later calls fail at once with E_NOTIMPL
   * without calling HNS, and callers delete and re-create instead.
   */
  readonly modifyUnsupported: boolean;

  /** All networks with their properties. */
  listNetworks(): Promise<HcnNetwork[]>;
  /** The network with this name, or undefined. */
  findNetworkByName(name: string): Promise<HcnNetwork | undefined>;
  /**
   * Open a network and keep the handle (one HcnOpenNetwork call), so that
   * re-reading it costs one call; the caller closes it. Not found is an
   * {@link import("./errors.ts").HnsError} like any failure.
   */
  openNetwork(id: string): Promise<OpenNetwork>;

  /**
   * IDs of all endpoints, or only those of one network, or only those with
   * one name (one Enumerate call, filtered by HNS on `VirtualNetwork` and
   * `Name`; HNS compares names without case).
   */
  listEndpointIds(networkId?: string, name?: string): Promise<string[]>;
  /** All endpoints with properties, optionally only those of one network. */
  listEndpoints(networkId?: string): Promise<HcnEndpoint[]>;
  /** One endpoint, or undefined when HNS does not have it. */
  getEndpoint(id: string): Promise<HcnEndpoint | undefined>;
  /**
   * These endpoints (Open, Query, Close each, as many at once as a listing
   * reads, or read ahead: {@link ReadOptions}); those HNS does not have are
   * left out.
   */
  getEndpoints(ids: readonly string[], options?: ReadOptions): Promise<HcnEndpoint[]>;
  /**
   * Create an endpoint on a network under its `ID` when the caller set one,
   * else under a new random GUID the client makes; HNS takes the caller's ID
   * as the new object's. Returns the endpoint as sent (with that ID, upper
   * case, and `HostComputeNetwork` set to `networkId`) without reading it back:
   * two HNS calls, Create and Close (plus the network's Open outside a batch).
   * A duplicate ID is refused by HNS with ERROR_ALREADY_EXISTS.
   */
  createEndpoint(networkId: string, endpoint: HcnEndpoint): Promise<HcnEndpoint>;
  /**
   * {@link HnsClient.createEndpoint} of each endpoint, all on one network,
   * their calls made together (one request where the API runs many,
   * {@link HcnApi.createAndCloseMany}): the same HNS calls, Create and Close
   * each (plus the network's Open outside a batch). Each failure is the
   * error {@link HnsClient.createEndpoint} would have thrown for that item.
   */
  createEndpoints(
    networkId: string,
    endpoints: readonly HcnEndpoint[],
  ): Promise<CreatedBatch<HcnEndpoint>>;
  /** Delete an endpoint by ID. */
  deleteEndpoint(id: string): Promise<void>;

  /** IDs of all load balancers (one Enumerate call). */
  listLoadBalancerIds(): Promise<string[]>;
  /**
   * The IDs of all load balancers or all endpoints (one Enumerate call), held
   * compactly ({@link IdListing}) and parsed where the call ran
   * ({@link HcnApi.enumerateIds}), or here, a page and an ID per step of
   * `pace` ({@link IdListing.read}). Throws like the listings.
   */
  listIds(kind: "LoadBalancer" | "Endpoint", pace?: Pacer): Promise<IdListing>;
  /** All load balancers with properties. */
  listLoadBalancers(): Promise<HcnLoadBalancer[]>;
  /** One load balancer, or undefined when HNS does not have it. */
  getLoadBalancer(id: string): Promise<HcnLoadBalancer | undefined>;
  /** These load balancers, as {@link HnsClient.getEndpoints} reads endpoints. */
  getLoadBalancers(ids: readonly string[], options?: ReadOptions): Promise<HcnLoadBalancer[]>;
  /**
   * Create a load balancer under its `ID` when the caller set one, else under
   * a new random GUID the client makes. Returns it as sent (with that ID,
   * upper case) without reading it back: Create and Close, two HNS calls.
   * A duplicate ID is refused by HNS with ERROR_ALREADY_EXISTS.
   */
  createLoadBalancer(lb: HcnLoadBalancer): Promise<HcnLoadBalancer>;
  /**
   * {@link HnsClient.createLoadBalancer} of each load balancer, their calls
   * made together as {@link HnsClient.createEndpoints} makes its own.
   */
  createLoadBalancers(lbs: readonly HcnLoadBalancer[]): Promise<CreatedBatch<HcnLoadBalancer>>;
  /**
   * Replace a load balancer's settings in place (needs ModifyLoadbalancer).
   * A refusal as unsupported ({@link import("./errors.ts").isUnsupported}) sets
   * {@link HnsClient.modifyUnsupported}.
   */
  modifyLoadBalancer(id: string, lb: HcnLoadBalancer): Promise<HcnLoadBalancer>;
  /** Delete a load balancer by ID. */
  deleteLoadBalancer(id: string): Promise<void>;

  /**
   * Run `body` as one batch: every {@link HnsClient.createEndpoint} inside it
   * (concurrent ones included) reuses one open handle per network, opened at
   * the first create and closed when `body` settles, on every path. Without
   * a batch each create opens and closes the network. Nested batches share
   * the outermost one.
   */
  batch<T>(body: () => Promise<T>): Promise<T>;

  /** Release the backend. */
  close(): void;
}
