/**
 * The trusted read of HNS at start: what a full read would return, at the
 * cost of the objects hnsproxy does not own and of its own objects that
 * changed. Used when the ownership record can be trusted (start.ts decides).
 *
 * Rules:
 * - The ID listings (the network's endpoints, all load balancers) say which
 *   objects exist. Listed objects the record does not own (CNI endpoints,
 *   objects of others) are read as a full read reads them.
 * - An owned object whose key is still desired, and whose fingerprint in the
 *   record equals the fingerprint of what hnsproxy would write for that key
 *   now, is not read: it is taken to be that payload, which is what HNS
 *   returned when it was written or last read, up to what the comparison in
 *   payload.ts ignores. Any other owned object is read (its key no longer
 *   desired, what is desired changed, no fingerprint).
 * - An owned ID the listings lack, or that is gone when read, is reported as
 *   vanished: the caller forgets it, and the plan creates it afresh.
 * - Endpoints come first: the node context (CNI endpoints, root endpoint)
 *   comes from the objects of others alone, the desired state from it, and a
 *   load balancer's payload from the endpoints its backends resolve to.
 *
 * The trust model: hnsproxy assumes nobody else modifies its objects. An
 * owned object changed out of band while the agent was down keeps its
 * changed content until the desired state of its key changes (as while it
 * runs, where the periodic resync compares IDs only). `--full-hns-read-on-start`
 * reads everything instead.
 *
 * @module
 */

import type { HcnEndpoint, HcnLoadBalancer, HnsClient } from "../hns/types.ts";
import { onNetwork } from "./context.ts";
import { endpointKeyFromHns, isKeyError } from "./keys.ts";
import type {
  DesiredLoadBalancer,
  DesiredState,
  EpKey,
  NetworkInfo,
  NodeContext,
  ObservedEndpoint,
  ObservedLoadBalancer,
} from "./model.ts";
import { slimEndpoint, slimLoadBalancer } from "./observed.ts";
import { type EndpointsByKey, resolveBackendIds } from "./reconcile.ts";
import type { OwnershipRecord } from "./ownership.ts";
import {
  desiredEndpointFingerprintValue,
  desiredLoadBalancerFingerprintValue,
  endpointPayload,
  loadBalancerPayload,
} from "./payload.ts";

/** What a start read of HNS yields (full or trusted). */
export interface HnsRead {
  /** The node context. */
  ctx: NodeContext;
  /** The desired state. */
  desired: DesiredState;
  /**
   * The network's endpoints, as a full read returns them, but for those in
   * {@link trustedEndpoints}.
   */
  endpoints: HcnEndpoint[];
  /** The load balancers, as a full read returns them, but for those in {@link trustedLoadBalancers}. */
  loadBalancers: HcnLoadBalancer[];
  /**
   * The trusted endpoints, each as the observed cache keeps the desired
   * payload of its key ({@link slimEndpoint}; none for a full read).
   */
  trustedEndpoints: ObservedEndpoint[];
  /** The trusted load balancers, as the observed cache keeps them ({@link slimLoadBalancer}). */
  trustedLoadBalancers: ObservedLoadBalancer[];
  /** Owned IDs that HNS does not hold. */
  vanishedOwned: string[];
  /** Every endpoint ID of the network HNS listed. */
  endpointIds: string[];
  /**
   * The fingerprint each trusted endpoint was trusted by (its content's,
   * equal to the record's), in the order of {@link trustedEndpoints}: its
   * value (payload.ts `…FingerprintValue`; the fingerprint is its base-36 text).
   */
  trustedEndpointFps: number[];
  /** The fingerprint values of the {@link trustedLoadBalancers}, in their order. */
  trustedLoadBalancerFps: number[];
}

/**
 * The node context and desired state a start derives from the network's
 * endpoints as HNS holds them (those hnsproxy owns are ignored, so they may
 * be left out). Throws a StartupError when the context is unusable.
 */
export type StartPlanning = (
  endpoints: readonly HcnEndpoint[],
) => { ctx: NodeContext; desired: DesiredState };

/**
 * What the trusted read takes from HNS before the cluster is known: the ID
 * listings and the objects hnsproxy does not own (see {@link readUnowned}).
 */
export interface UnownedRead extends ListedIds {
  /** Listed endpoint IDs the record owns. */
  ownedEps: string[];
  /** Listed load balancer IDs the record owns. */
  ownedLbs: string[];
  /** The network's endpoints hnsproxy does not own, as HNS holds them. */
  others: HcnEndpoint[];
  /** The load balancers hnsproxy does not own, as HNS holds them. */
  foreignLbs: HcnLoadBalancer[];
}

/** The ID listings of a start: the network's endpoints and every load balancer. */
export interface ListedIds {
  /** Every endpoint ID of the network HNS listed. */
  endpointIds: string[];
  /** Every load balancer ID HNS listed. */
  lbIds: string[];
}

/** List the IDs of the network's endpoints and of every load balancer (two calls). */
export async function listIds(client: HnsClient, net: NetworkInfo): Promise<ListedIds> {
  const [endpointIds, lbIds] = await bothSettled([
    client.listEndpointIds(net.id),
    client.listLoadBalancerIds(),
  ]);
  return { endpointIds, lbIds };
}

/**
 * The part of the trusted read that does not depend on the cluster: the ID
 * listings (`listed`, else listed now) and a read of every listed object the
 * record does not own. It may run while the cluster's lists come in.
 */
export async function readUnowned(
  client: HnsClient,
  net: NetworkInfo,
  ownership: OwnershipRecord,
  listed?: ListedIds,
): Promise<UnownedRead> {
  const { endpointIds, lbIds } = listed ?? await listIds(client, net);
  const ownedEps: string[] = [];
  const otherEps: string[] = [];
  for (let i = 0; i < endpointIds.length; i++) {
    const id = endpointIds[i];
    (ownership.kindOf(id) === "Endpoint" ? ownedEps : otherEps).push(id);
  }
  const ownedLbs: string[] = [];
  const otherLbs: string[] = [];
  for (let i = 0; i < lbIds.length; i++) {
    const id = lbIds[i];
    (ownership.kindOf(id) === "LoadBalancer" ? ownedLbs : otherLbs).push(id);
  }
  const [others, foreignLbs] = await bothSettled([
    client.getEndpoints(otherEps),
    client.getLoadBalancers(otherLbs),
  ]);
  return {
    endpointIds,
    lbIds,
    ownedEps,
    ownedLbs,
    others: others.filter((ep) => onNetwork(ep, net.id)),
    foreignLbs,
  };
}

/**
 * Both reads' results, once both have settled: a failed one throws only
 * then, so that no read of the start is still in flight when it fails.
 */
export async function bothSettled<A, B>(reads: [Promise<A>, Promise<B>]): Promise<[A, B]> {
  const [a, b] = await Promise.allSettled(reads);
  if (a.status === "rejected") throw a.reason;
  if (b.status === "rejected") throw b.reason;
  return [a.value, b.value];
}

/**
 * Read HNS for a start, trusting the record's fingerprints (see the module
 * notes); `plan` derives the context and desired state. `unowned` is what
 * {@link readUnowned} returned for this record, read now when absent.
 * `collect`, when given, is called once the owned endpoints are trusted or
 * not (a full collection of the heap: the garbage of their payloads and
 * fingerprints is gone before the load balancers' and the adoption's).
 */
export async function readTrusted(
  client: HnsClient,
  net: NetworkInfo,
  ownership: OwnershipRecord,
  plan: StartPlanning,
  unowned?: UnownedRead,
  collect?: () => void,
): Promise<HnsRead> {
  const { endpointIds, ownedEps, ownedLbs, others, foreignLbs } = unowned ??
    await readUnowned(client, net, ownership);
  const { ctx, desired } = plan(others);
  // Owned IDs spelled as the record spells them: the cache keeps the record's strings, so the
  // listing's copies are garbage before the cache is filled, not alive beside it.
  for (let i = 0; i < endpointIds.length; i++) endpointIds[i] = ownership.idString(endpointIds[i]);

  const endpoints = [...others];
  const trustedEndpoints: ObservedEndpoint[] = [];
  // Fingerprint values, not their text: an array of numbers, not 10,000s of strings, alive
  // until the adoption (which needs the text only for a trusted object it adopts).
  const trustedEndpointFps: number[] = [];
  const toRead: string[] = [];
  // Owned endpoints by key (the first listed wins), for resolving LB backends as reconcile does.
  const ownedByKey = new Map<EpKey, { id: string }>();
  // The fingerprint of what would be written for the key is computed from the desired object;
  // the payload is made only for what is trusted, with the ID as HNS listed it (as a read
  // would return it), and kept only in the observed cache's slim form: the full payloads of
  // 10,000s of objects would all be alive at once until the cache is filled.
  for (let i = 0; i < ownedEps.length; i++) {
    const id = ownership.idString(ownedEps[i]);
    const owned = ownership.handle(id);
    const want = owned < 0 ? undefined : desired.remoteEndpoints.get(ownership.keyAt(owned));
    const fp = want ? desiredEndpointFingerprintValue(want) : -1;
    if (want && ownership.hasFingerprintValueAt(owned, fp)) {
      // The desired state's key string, kept by the record and the cache alike.
      ownership.shareKeyAt(owned, want.key);
      const key = ownership.keyAt(owned);
      const ep = slimEndpoint({ key, id, hns: endpointPayload(want, id) });
      trustedEndpoints.push(ep);
      trustedEndpointFps.push(fp);
      if (!ownedByKey.has(key)) ownedByKey.set(key, ep);
    } else {
      toRead.push(id);
    }
  }
  collect?.();
  const readEps = (await client.getEndpoints(toRead)).filter((ep) => onNetwork(ep, net.id));
  for (let i = 0; i < readEps.length; i++) {
    const ep = readEps[i];
    endpoints.push(ep);
    const id = String(ep.ID ?? "");
    const owned = ownership.handle(id);
    if (owned < 0 || ownership.kindAt(owned) !== "Endpoint") continue;
    const key = ownership.keyAt(owned);
    if (!ownedByKey.has(key)) ownedByKey.set(key, { id });
  }

  const backendIds = backendResolver(ownedByKey, [others, readEps], ownership, desired);
  const loadBalancers = [...foreignLbs];
  const trustedLoadBalancers: ObservedLoadBalancer[] = [];
  const trustedLoadBalancerFps: number[] = [];
  toRead.length = 0;
  for (let i = 0; i < ownedLbs.length; i++) {
    const id = ownership.idString(ownedLbs[i]);
    const owned = ownership.handle(id);
    const want = owned < 0 ? undefined : desired.loadBalancers.get(ownership.keyAt(owned));
    const ids = want ? backendIds(want) : undefined;
    const fp = want && ids ? desiredLoadBalancerFingerprintValue(want, ids) : -1;
    if (want && ids && ownership.hasFingerprintValueAt(owned, fp)) {
      ownership.shareKeyAt(owned, want.key);
      const key = ownership.keyAt(owned);
      const hns = loadBalancerPayload(want, ids);
      trustedLoadBalancers.push(slimLoadBalancer({ key, id, hns, serviceKey: want.serviceKey }));
      trustedLoadBalancerFps.push(fp);
    } else {
      toRead.push(id);
    }
  }
  const readLbs = await client.getLoadBalancers(toRead);
  for (const lb of readLbs) loadBalancers.push(lb);

  return {
    ctx,
    desired,
    endpoints,
    loadBalancers,
    trustedEndpoints,
    trustedLoadBalancers,
    vanishedOwned: vanished(
      ownership,
      [trustedEndpoints, trustedLoadBalancers],
      [others, readEps, foreignLbs, readLbs],
    ),
    endpointIds,
    trustedEndpointFps,
    trustedLoadBalancerFps,
  };
}

/**
 * The owned IDs that are neither trusted nor among the objects read. None
 * when every owned object was trusted.
 */
function vanished(
  ownership: OwnershipRecord,
  trusted: ReadonlyArray<ReadonlyArray<{ id: string }>>,
  reads: ReadonlyArray<ReadonlyArray<{ ID?: string }>>,
): string[] {
  // Trusted IDs are distinct owned IDs.
  if (trusted.reduce((n, objs) => n + objs.length, 0) === ownership.size) return [];
  const seen = new Set<string>();
  for (const objs of trusted) for (const o of objs) seen.add(o.id.toUpperCase());
  for (const objs of reads) for (const o of objs) seen.add(String(o.ID).toUpperCase());
  const out: string[] = [];
  for (const kind of ["LoadBalancer", "Endpoint"] as const) {
    for (const upper of ownership.upperCaseIds(kind)) {
      if (!seen.has(upper)) out.push(ownership.get(upper)!.id);
    }
  }
  return out;
}

/**
 * The backend IDs of a desired LB as reconcile resolves them
 * ({@link resolveBackendIds}), or undefined when one does not exist: the
 * owned endpoints are `ownedByKey`, the foreign ones indexed from `read`
 * (the CNI's own left out) only when first needed. Any choice among
 * duplicates is safe: a load balancer is trusted only when the fingerprint
 * of the payload made with these IDs equals what HNS holds, so a wrong
 * choice only costs a read.
 */
function backendResolver(
  ownedByKey: ReadonlyMap<EpKey, { id: string }>,
  read: ReadonlyArray<readonly HcnEndpoint[]>,
  ownership: OwnershipRecord,
  desired: DesiredState,
): (lb: DesiredLoadBalancer) => string[] | undefined {
  let foreign: Map<EpKey, { id: string }> | undefined;
  const foreignIndex = () => {
    if (foreign) return foreign;
    foreign = new Map();
    const sourceVips = new Set<string>();
    for (const e of desired.remoteEndpoints.values()) {
      if (e.role === "sourceVip") sourceVips.add(e.ip);
    }
    for (const eps of read) {
      for (const hns of eps) {
        const id = String(hns.ID ?? "");
        if (ownership.kindOf(id) === "Endpoint") continue;
        const key = endpointKeyFromHns(hns, sourceVips);
        if (isKeyError(key) || key.startsWith("ep/local/") || foreign.has(key)) continue;
        foreign.set(key, { id });
      }
    }
    return foreign;
  };
  const endpoints: EndpointsByKey = {
    endpoints: ownedByKey,
    foreignEndpoints: { get: (key) => foreignIndex().get(key) },
  };
  return (lb) => resolveBackendIds(lb, desired, endpoints);
}
