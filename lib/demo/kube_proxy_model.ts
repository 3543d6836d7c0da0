/**
 * kube-proxy's HNS call pattern (Windows kernelspace mode, `pkg/proxy/winkernel`
 * on the HNS v2 API through hcsshim's `hcn` package), computed from its
 * documented behaviour as a pure function: a description of the node and a
 * sequence of events in, the HNS C calls kube-proxy would make per event out.
 *
 * It exists to put hnsproxy's measured calls next to what kube-proxy would
 * have done for the same work (the demo and the benchmarks), so every rule
 * below is stated, and where kube-proxy's behaviour depends on version or
 * timing the model takes the variant that makes FEWER calls.
 *
 * ## The unit of work
 *
 * kube-proxy programs one "service port" at a time (a service's port in one IP
 * family): its load balancers (ClusterIP, NodePort, one per external IP, one
 * per ingress IP, the health-check LB) and the remote endpoints they use.
 * Callers describe each service port by what it has in HNS
 * ({@link KubeProxyServicePort}); the model assumes kube-proxy would program
 * the same load balancers and remote endpoints hnsproxy programs.
 *
 * ## hcsshim call costs (C calls per Go call)
 *
 * - list N objects (`ListLoadBalancers`, `ListEndpointsOfNetwork`): Enumerate,
 *   then Open + Query + Close per object: `1 + 3N`;
 * - look one object up (`GetNetworkByName`, `GetLoadBalancerByID`,
 *   `GetEndpointByID`, `GetEndpointByName`): a filtered list of one: 4;
 * - create a load balancer: Create + Query + Close: 3;
 * - create an endpoint: kube-proxy looks the network up by name (4), then
 *   hcsshim opens the network, creates, queries and closes the endpoint and
 *   closes the network (5): 9; on overlay, a pod's remote endpoint is preceded
 *   by one more network lookup to refresh the remote subnet routes: 13;
 * - delete a load balancer or endpoint: look it up by ID (4), then Delete: 5;
 * - modify a load balancer in place (`UpdateLoadBalancer`): Open + Modify +
 *   Query + Close: 4;
 * - read the HNS version (`GetSupportedFeatures`): one `HNSCall`.
 *
 * ## What kube-proxy does
 *
 * - Start ({@link KubeProxyStart}): reads the HNS version, deletes EVERY load
 *   balancer in HNS (kube-proxy's and anyone else's: list + delete each),
 *   looks the network up (twice on overlay: again after a 10 s wait for the
 *   remote subnet routes), then runs its first sync in which every service
 *   port is programmed. Its memory (which service ports are programmed,
 *   endpoint reference counts) starts empty; HNS keeps the remote endpoints a
 *   previous run created (`leftoverEndpoints` when that run is not among the
 *   events), and they are found by IP instead of re-created.
 * - Every sync ({@link KubeProxySync}, {@link KubeProxyPeriodicSync}), even
 *   with nothing to do: looks the network up, looks it up again and lists all
 *   its endpoints, lists all load balancers (forwardHealthCheckVip: also looks
 *   up the root host endpoint by name); on overlay creates the source-VIP
 *   endpoint when HNS lacks it.
 * - A changed service port (its Service or EndpointSlices changed): before the
 *   sync reads HNS, all of its load balancers are deleted and its remote
 *   endpoints released; a remote endpoint no programmed service port uses any
 *   more is deleted. Then the sync programs the service port again: on overlay
 *   a remote endpoint for its cluster IP when HNS has none with that IP, a
 *   remote endpoint for each backend HNS has none for, and all its load
 *   balancers. With {@link KubeProxyModelOptions.modifyLoadBalancer} the load
 *   balancers kept are modified in place instead (newer kube-proxy on HNS 15.5+).
 * - A removed service port: its load balancers are deleted and its remote
 *   endpoints released as above; on overlay, the cluster IP's endpoint is
 *   deleted once no service port of that cluster IP is left.
 * - A service port with no load balancers (no usable endpoints) is retried on
 *   every sync but costs nothing beyond the shared reads.
 *
 * ## Left out (each would only add kube-proxy calls)
 *
 * - Dual-stack kube-proxy runs one proxier per IP family, each re-reading all
 *   of HNS on its syncs; the model runs one.
 * - The at-most-20-per-sync retries of failed deletes, and any failure.
 * - Lookups of the source VIP at start other than the first sync's.
 *
 * @module
 */

import { hcnFunctionName, HNS_CALL } from "../hns/names.ts";
import type { HcnKind } from "../hns/types.ts";
import { type CallCounts, countCall } from "./calls.ts";

/** One service port (a service's port in one IP family) as kube-proxy programs it. */
export interface KubeProxyServicePort {
  /** A stable identity, e.g. `default/web:http/TCP/IPv4`. */
  id: string;
  /**
   * HNS load balancers the service port has when programmed: ClusterIP,
   * NodePort, one per external IP, one per ingress IP, health-check.
   */
  loadBalancers: number;
  /** IPs of the remote endpoints (pods on other nodes) its load balancers use. */
  remoteEndpoints: readonly string[];
  /** Overlay only: the cluster IP, for which kube-proxy keeps a remote endpoint. */
  clusterIP?: string;
}

/** The node kube-proxy runs on. */
export interface KubeProxyModelOptions {
  /** Whether the HNS network is an overlay (VXLAN) network. */
  overlay: boolean;
  /**
   * IPs of the endpoints on the network kube-proxy never creates or deletes:
   * the CNI's pod endpoints, host endpoints.
   */
  existingEndpoints: readonly string[];
  /** Overlay: `--source-vip`; kube-proxy creates its endpoint when HNS lacks it. */
  sourceVip?: string;
  /** Load balancers in HNS before the first start (others' and an earlier kube-proxy run's). */
  foreignLoadBalancers?: number;
  /**
   * IPs of the remote endpoints an earlier kube-proxy run left in HNS before
   * the first start: found by IP and reused, deleted once no service port
   * uses them.
   */
  leftoverEndpoints?: readonly string[];
  /** `forwardHealthCheckVip`: every sync also looks up the root host endpoint. */
  forwardHealthCheckVip?: boolean;
  /**
   * Update the load balancers of a changed service port in place with
   * `HcnModifyLoadBalancer` (newer kube-proxy on HNS 15.5+) instead of
   * deleting and re-creating them (default false).
   */
  modifyLoadBalancer?: boolean;
}

/** kube-proxy (re)starts, then runs its first sync over `servicePorts`. */
export interface KubeProxyStart {
  /** Discriminator. */
  kind: "start";
  /** Every service port of the cluster at that time. */
  servicePorts: readonly KubeProxyServicePort[];
  /** The endpoints others hold on the network now (replaces the earlier list). */
  existingEndpoints?: readonly string[];
}

/** One sync after changes in the cluster. */
export interface KubeProxySync {
  /** Discriminator. */
  kind: "sync";
  /** Every service port of the cluster after the changes. */
  servicePorts: readonly KubeProxyServicePort[];
  /**
   * IDs of the service ports whose Service or EndpointSlices changed (an
   * endpoint turning terminating is a change even when no load balancer
   * would differ). When absent, the service ports whose description differs
   * from the previous event's. Added and removed service ports always count.
   */
  changed?: readonly string[];
  /**
   * The endpoints others hold on the network now (replaces the earlier list),
   * e.g. after the CNI made the endpoint of a new pod on this node.
   */
  existingEndpoints?: readonly string[];
}

/** The periodic sync (`syncPeriod`, 30 s by default) with nothing changed. */
export interface KubeProxyPeriodicSync {
  /** Discriminator. */
  kind: "periodic";
}

/** Something that makes kube-proxy call HNS. */
export type KubeProxyEvent = KubeProxyStart | KubeProxySync | KubeProxyPeriodicSync;

/** HNS objects the modelled kube-proxy left behind after an event. */
export interface KubeProxyHnsState {
  /** Endpoints on the network (existing, source VIP, cluster-IP and pod remote endpoints). */
  endpoints: number;
  /** Load balancers. */
  loadBalancers: number;
}

/** What kube-proxy did for one event. */
export interface KubeProxyEventCalls {
  /** The event. */
  event: KubeProxyEvent;
  /** HNS C calls made, by function name. */
  calls: CallCounts;
  /** What HNS holds afterwards, in the model. */
  hns: KubeProxyHnsState;
}

const fn = {
  enumerate: (k: HcnKind) => hcnFunctionName("enumerate", k),
  open: (k: HcnKind) => hcnFunctionName("open", k),
  query: (k: HcnKind) => hcnFunctionName("query", k),
  close: (k: HcnKind) => hcnFunctionName("close", k),
  create: (k: HcnKind) => hcnFunctionName("create", k),
  modify: (k: HcnKind) => hcnFunctionName("modify", k),
  delete: (k: HcnKind) => hcnFunctionName("delete", k),
};

/** The model's memory of HNS and of kube-proxy's own state. */
class Simulation {
  /** IPs of the endpoints on the network others made (the CNI). */
  external = new Set<string>();
  /** IPs of the endpoints on the network kube-proxy made. */
  readonly made: Set<string>;
  loadBalancers = 0;
  /** Service ports programmed (policyApplied), by ID. */
  readonly applied = new Map<string, KubeProxyServicePort>();
  /** Reference counts of pod remote endpoints, by IP. */
  readonly refs = new Map<string, number>();
  /** The last cluster described, for `periodic` events and change detection. */
  last: readonly KubeProxyServicePort[] = [];
  calls: CallCounts = {};

  constructor(readonly options: KubeProxyModelOptions) {
    this.external = new Set(options.existingEndpoints);
    this.made = new Set(options.leftoverEndpoints ?? []);
    this.loadBalancers = options.foreignLoadBalancers ?? 0;
  }

  /** A filtered list that finds one object: Enumerate + Open/Query/Close. */
  lookup(kind: HcnKind): void {
    this.list(kind, 1);
  }

  list(kind: HcnKind, n: number): void {
    countCall(this.calls, fn.enumerate(kind));
    countCall(this.calls, fn.open(kind), n);
    countCall(this.calls, fn.query(kind), n);
    countCall(this.calls, fn.close(kind), n);
  }

  /** `hns.createEndpoint`: network lookup, then Open network, Create, Query, Close x2. */
  createEndpoint(ip: string, refreshRoutes: boolean): void {
    if (refreshRoutes) this.lookup("Network");
    this.lookup("Network");
    countCall(this.calls, fn.open("Network"));
    countCall(this.calls, fn.create("Endpoint"));
    countCall(this.calls, fn.query("Endpoint"));
    countCall(this.calls, fn.close("Endpoint"));
    countCall(this.calls, fn.close("Network"));
    this.made.add(ip);
  }

  /** Whether HNS has an endpoint with this IP on the network. */
  hasEndpoint(ip: string): boolean {
    return this.made.has(ip) || this.external.has(ip);
  }

  /** Endpoints on the network. */
  endpointCount(): number {
    let n = this.external.size;
    for (const ip of this.made) if (!this.external.has(ip)) n++;
    return n;
  }

  /** `hns.deleteEndpoint`: lookup by ID, Delete. */
  deleteEndpoint(ip: string): void {
    if (!this.made.has(ip)) return;
    this.lookup("Endpoint");
    countCall(this.calls, fn.delete("Endpoint"));
    this.made.delete(ip);
  }

  /** `hns.deleteLoadBalancer` for `n` load balancers: lookup by ID, Delete. */
  deleteLoadBalancers(n: number): void {
    for (let i = 0; i < n; i++) {
      this.lookup("LoadBalancer");
      countCall(this.calls, fn.delete("LoadBalancer"));
    }
    this.loadBalancers -= n;
  }

  createLoadBalancers(n: number): void {
    countCall(this.calls, fn.create("LoadBalancer"), n);
    countCall(this.calls, fn.query("LoadBalancer"), n);
    countCall(this.calls, fn.close("LoadBalancer"), n);
    this.loadBalancers += n;
  }

  modifyLoadBalancers(n: number): void {
    countCall(this.calls, fn.open("LoadBalancer"), n);
    countCall(this.calls, fn.modify("LoadBalancer"), n);
    countCall(this.calls, fn.query("LoadBalancer"), n);
    countCall(this.calls, fn.close("LoadBalancer"), n);
  }

  /** Drop one reference of each of the service port's remote endpoints; delete the unused ones. */
  release(sp: KubeProxyServicePort): void {
    for (const ip of new Set(sp.remoteEndpoints)) {
      const n = (this.refs.get(ip) ?? 0) - 1;
      if (n > 0) {
        this.refs.set(ip, n);
        continue;
      }
      this.refs.delete(ip);
      this.deleteEndpoint(ip);
    }
  }

  start(servicePorts: readonly KubeProxyServicePort[]): void {
    this.applied.clear();
    this.refs.clear();
    countCall(this.calls, HNS_CALL);
    // deleteAllHnsLoadBalancerPolicy: list every LB in HNS, delete each by ID.
    this.list("LoadBalancer", this.loadBalancers);
    countCall(this.calls, fn.delete("LoadBalancer"), this.loadBalancers);
    this.loadBalancers = 0;
    this.lookup("Network");
    if (this.options.overlay) this.lookup("Network");
    this.sync(servicePorts, []);
  }

  /** One syncProxyRules run; `changed` are the service ports whose objects changed. */
  sync(servicePorts: readonly KubeProxyServicePort[], changed: readonly string[]): void {
    const next = new Map(servicePorts.map((sp) => [sp.id, sp]));
    const modify = this.options.modifyLoadBalancer ?? false;
    // Kept to modify in place: ID → the service port as last programmed.
    const kept = new Map<string, KubeProxyServicePort>();

    // The change trackers' callbacks run first, inside the sync, before HNS is read.
    for (const [id, old] of [...this.applied]) {
      const now = next.get(id);
      if (now && !changed.includes(id)) continue;
      this.applied.delete(id);
      if (now && modify) {
        // Released after re-programming, so endpoints it keeps using survive.
        kept.set(id, old);
        continue;
      }
      this.deleteLoadBalancers(old.loadBalancers);
      this.release(old);
      if (!now && old.clusterIP !== undefined && this.options.overlay) {
        const stillUsed = [...this.applied.values(), ...next.values()].some((sp) =>
          sp.clusterIP === old.clusterIP
        );
        if (!stillUsed) this.deleteEndpoint(old.clusterIP);
      }
    }

    // The reads every sync makes.
    if (this.options.forwardHealthCheckVip) this.lookup("Endpoint");
    this.lookup("Network");
    this.lookup("Network");
    this.list("Endpoint", this.endpointCount());
    this.list("LoadBalancer", this.loadBalancers);
    const sv = this.options.sourceVip;
    if (this.options.overlay && sv !== undefined && !this.hasEndpoint(sv)) {
      this.createEndpoint(sv, false);
    }

    for (const sp of servicePorts) {
      if (this.applied.has(sp.id)) continue;
      if (this.options.overlay && sp.clusterIP !== undefined && !this.hasEndpoint(sp.clusterIP)) {
        this.createEndpoint(sp.clusterIP, false);
      }
      if (sp.loadBalancers === 0) continue; // no endpoints: retried next sync
      for (const ip of new Set(sp.remoteEndpoints)) {
        if (!this.hasEndpoint(ip)) this.createEndpoint(ip, this.options.overlay);
        this.refs.set(ip, (this.refs.get(ip) ?? 0) + 1);
      }
      const old = kept.get(sp.id);
      const had = old?.loadBalancers ?? 0;
      const same = Math.min(had, sp.loadBalancers);
      this.modifyLoadBalancers(same);
      this.deleteLoadBalancers(had - same);
      this.createLoadBalancers(sp.loadBalancers - same);
      if (old) this.release(old);
      kept.delete(sp.id);
      this.applied.set(sp.id, sp);
    }
    // Kept service ports that lost all their load balancers.
    for (const old of kept.values()) {
      this.deleteLoadBalancers(old.loadBalancers);
      this.release(old);
    }
    this.last = servicePorts;
  }

  /** Service ports whose description changed between the last event and `now`. */
  differing(now: readonly KubeProxyServicePort[]): string[] {
    const before = new Map(this.last.map((sp) => [sp.id, sp]));
    return now.filter((sp) => {
      const old = before.get(sp.id);
      return !old || describe(old) !== describe(sp);
    }).map((sp) => sp.id);
  }
}

/** A canonical text of a service port, for change detection. */
function describe(sp: KubeProxyServicePort): string {
  return JSON.stringify([
    sp.loadBalancers,
    [...new Set(sp.remoteEndpoints)].sort(),
    sp.clusterIP ?? null,
  ]);
}

/**
 * The HNS calls kube-proxy would make for each event, in order. The first
 * event must be a `start`. Pure: the same input always gives the same
 * output. See the module documentation for every rule and assumption.
 */
export function kubeProxyCalls(
  options: KubeProxyModelOptions,
  events: readonly KubeProxyEvent[],
): KubeProxyEventCalls[] {
  if (events.length > 0 && events[0].kind !== "start") {
    throw new RangeError("the first kube-proxy event must be a start");
  }
  const sim = new Simulation(options);
  return events.map((event) => {
    sim.calls = {};
    if (event.kind !== "periodic" && event.existingEndpoints) {
      sim.external = new Set(event.existingEndpoints);
    }
    if (event.kind === "start") {
      sim.start(event.servicePorts);
    } else if (event.kind === "sync") {
      sim.sync(event.servicePorts, event.changed ?? sim.differing(event.servicePorts));
    } else {
      sim.sync(sim.last, []);
    }
    return {
      event,
      calls: sim.calls,
      hns: { endpoints: sim.endpointCount(), loadBalancers: sim.loadBalancers },
    };
  });
}
