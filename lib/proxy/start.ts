/**
 * The start of the proxy: find the HNS network, read HNS once (the network's
 * endpoints and every load balancer) and plan the first programming. Nothing
 * here writes to HNS; `plan` runs exactly this (with a full read) and prints
 * the result.
 *
 * - How HNS is read is decided in one place, {@link startReadMode}: a
 *   trusted read (trusted_start.ts: the ID listings, and reads of what
 *   hnsproxy does not own or cannot vouch for) when the ownership record is
 *   trustworthy, else a full read of every object. Both yield the same
 *   observed state; the plan of a trusted read has no adopt op for a
 *   trusted object alone on its key (the record already holds it as it is).
 *
 * - The read of HNS that does not depend on the cluster ({@link prereadStart}:
 *   the listings, and the objects the trusted read reads anyway) may begin
 *   before the cluster's lists are in ({@link readEarly}: the network and the
 *   ID listings even before the ownership record is loaded, since either
 *   read mode starts from them, and the endpoints the last complete sync's
 *   node context named, the likely CNI endpoints, whose early answers serve
 *   only endpoints the listing shows); the start then plans with it. HNS may
 *   change in between as it may just after any read; the periodic resync,
 *   counted from when the read began, compares again.
 * - The network is found by name; none means "wait for it". Without a
 *   name it is a StartupError listing HNS's networks, unless detection is
 *   asked for (`--detect-network`): then the only Overlay, L2Bridge or
 *   L2Tunnel network, and none or several means "wait".
 * - The node context must satisfy the network type's preconditions
 *   (overlay: a source VIP and the host's MAC), else a StartupError before
 *   anything is planned (lib/proxy/preconditions.ts).
 * - Adoption comes first in the plan: owned objects that match what is
 *   desired, and foreign ones equal to it, are kept with no HNS call. With
 *   takeover (`--take-over-foreign`, the agent's first start only) foreign
 *   objects on keys the desired state claims that differ are adopted too,
 *   and the reconcile that follows replaces them.
 * - The fast start ({@link fastStartCheck}; the digest is synced_inputs.ts,
 *   the decision the syncer's): a trusted read's early part may show HNS as
 *   the last complete sync left it, with nothing the full path would adopt
 *   or act on. With the synced inputs equal to those recorded then, HNS
 *   holds exactly what the cluster asks for, and the agent is ready before
 *   the state is built (from the same read, right after).
 * - Ownership: every object the record lists that HNS holds is owned (then
 *   adopted, modified or deleted like any owned object), whatever sync it
 *   came from, finished or killed. The record lists each create before it is
 *   issued, so a listed ID HNS does not hold is a create that never happened
 *   or an object deleted since: reported, so the caller forgets it.
 *
 * @module
 */

import type {
  HcnEndpoint,
  HcnLoadBalancer,
  HcnNetwork,
  HnsClient,
  ReadOptions,
} from "../hns/types.ts";
import type { ClusterView } from "../kube/model.ts";
import {
  buildNodeContext,
  type ContextSettings,
  isRemoteEndpoint,
  networkInfo,
  onNetwork,
} from "./context.ts";
import { desiredState } from "./desired.ts";
import type {
  DesiredState,
  IndexedObservedState,
  NetworkInfo,
  NodeContext,
  ObservedState,
  Plan,
} from "./model.ts";
import type { OwnershipRecord } from "./ownership.ts";
import { checkStartContext, detectNetwork, networkNameError } from "./preconditions.ts";
import { type Adoption, adoptObserved, type AdoptOptions, reconcile } from "./reconcile.ts";
import {
  bothSettled,
  type HnsRead,
  type ListedIds,
  listIds,
  readTrusted,
  readUnowned,
  type StartPlanning,
  type UnownedRead,
} from "./trusted_start.ts";

/** What the start reads and plans (also used by `plan`, which writes nothing). */
export interface StartState {
  /** The node context. */
  ctx: NodeContext;
  /** The desired state. */
  desired: DesiredState;
  /** Adoption of what HNS holds. */
  adoption: Adoption;
  /** The plan: adoptions first, then the full reconcile. */
  plan: Plan;
  /** Owned IDs that HNS no longer has. */
  vanishedOwned: string[];
  /** Every endpoint ID read (of the network). */
  endpointIds: string[];
  /** Owned objects taken from the record without a read (0 for a full read). */
  trusted: number;
}

/** How a start reads HNS: trusting the ownership record, or every object (with why). */
export type StartReadMode = { mode: "trusted" } | { mode: "full"; reason: string };

/** What decides {@link startReadMode}. */
export interface StartReadOptions {
  /** `--full-hns-read-on-start`: always read every object. */
  fullHnsReadOnStart: boolean;
}

/**
 * The one place that decides how a start reads HNS: every object when the
 * operator asks for it or the record cannot be trusted (none yet, lost,
 * corrupt, an older format); else the trusted read. A takeover
 * (`--take-over-foreign`) needs no full read: what it takes over is not
 * owned, and what is not owned is always read in full.
 */
export function startReadMode(
  ownership: OwnershipRecord,
  options: StartReadOptions,
): StartReadMode {
  if (options.fullHnsReadOnStart) return { mode: "full", reason: "--full-hns-read-on-start" };
  if (ownership.untrusted !== undefined) return { mode: "full", reason: ownership.untrusted };
  return { mode: "trusted" };
}

/**
 * Find the network: by name; without one, with `detect` the only
 * Overlay/L2Bridge/L2Tunnel network (undefined when there is none or
 * several), else a StartupError listing HNS's networks.
 */
export async function findNetwork(
  client: HnsClient,
  name: string,
  detect = false,
): Promise<HcnNetwork | undefined> {
  if (name) return await client.findNetworkByName(name);
  const networks = await client.listNetworks();
  if (!detect) throw networkNameError(networks);
  return detectNetwork(networks);
}

/** What a start reads of HNS before the cluster is known (see {@link prereadStart}). */
export type HnsPreread =
  | { mode: "full"; endpoints: HcnEndpoint[]; loadBalancers: HcnLoadBalancer[] }
  | ({ mode: "trusted" } & UnownedRead);

/**
 * The part of a start's read of HNS that does not depend on the cluster: in
 * full, every object of the network and every load balancer; trusted, the
 * ID listings and the objects hnsproxy does not own. `listed`, when given,
 * is {@link listIds} made for this network (either mode reads from it).
 */
export async function prereadStart(
  client: HnsClient,
  network: HcnNetwork,
  ownership: OwnershipRecord,
  mode: StartReadMode,
  listed?: ListedIds,
): Promise<HnsPreread> {
  const net = networkInfo(network);
  if (!net) throw new Error(`HNS network ${JSON.stringify(network.Name)} has no ID`);
  if (mode.mode === "trusted") {
    return { mode: "trusted", ...await readUnowned(client, net, ownership, listed) };
  }
  return { mode: "full", ...await readEverything(client, net, listed) };
}

/**
 * Every endpoint of the network and every load balancer: those `listed`
 * names (the same calls as listing and reading them at once), else listed now.
 */
async function readEverything(
  client: HnsClient,
  net: NetworkInfo,
  listed?: ListedIds,
): Promise<{ endpoints: HcnEndpoint[]; loadBalancers: HcnLoadBalancer[] }> {
  const [endpoints, loadBalancers] = await bothSettled(
    listed
      ? [client.getEndpoints(listed.endpointIds), client.getLoadBalancers(listed.lbIds)]
      : [client.listEndpoints(net.id), client.listLoadBalancers()],
  );
  return { endpoints: endpoints.filter((ep) => onNetwork(ep, net.id)), loadBalancers };
}

/** A start's read of HNS begun before the cluster is known. */
export interface EarlyStart {
  /** The network found. */
  network: HcnNetwork;
  /** How HNS was read. */
  mode: StartReadMode;
  /** What was read. */
  preread: HnsPreread;
}

/** What {@link readEarly} needs beyond {@link StartReadOptions}. */
export interface EarlyReadOptions extends StartReadOptions {
  /**
   * Endpoint IDs the start will likely read (those the last complete sync's
   * node context named: SyncedInputsFile.takeEndpointIds), read at once
   * beside the ID listings rather than once the record has loaded.
   */
  endpointHint?: Promise<readonly string[] | undefined>;
}

/**
 * Begin a start's read of HNS while the cluster's lists come in: find the
 * network and list the IDs (neither needs the ownership record, which may
 * still be loading), then {@link prereadStart} as the record decides.
 * Undefined when there is no network yet, a call failed or the record did
 * not load: the start then reads (and reports) itself. Settles only once no
 * call it made is in flight.
 *
 * The hinted endpoints (`endpointHint`) are read beside the listings: the
 * read of an endpoint takes that early answer when the endpoint was hinted
 * and HNS had it then (read a moment earlier, as any read may be followed by
 * a change); any other endpoint it asks for is read then. Hinted endpoints
 * nothing asks for cost their read only.
 */
export async function readEarly(
  client: HnsClient,
  networkName: string,
  detect: boolean,
  ownership: OwnershipRecord | Promise<OwnershipRecord>,
  options: EarlyReadOptions,
): Promise<EarlyStart | undefined> {
  let prefetched: Promise<Map<string, HcnEndpoint>> | undefined;
  try {
    const network = await findNetwork(client, networkName, detect);
    const net = network && networkInfo(network);
    if (!network || !net) return undefined;
    const listing = listIds(client, net);
    prefetched = prefetchEndpoints(client, options.endpointHint);
    const [listed, record] = await bothSettled([listing, Promise.resolve(ownership)]);
    const mode = startReadMode(record, options);
    const reader = readingPrefetched(client, prefetched);
    return { network, mode, preread: await prereadStart(reader, network, record, mode, listed) };
  } catch {
    return undefined;
  } finally {
    // Settled, and what no read took let go of.
    (await prefetched)?.clear();
  }
}

/** The hinted endpoints as HNS holds them, by upper-case ID (none when there is no hint or the read failed). */
async function prefetchEndpoints(
  client: HnsClient,
  hint: Promise<readonly string[] | undefined> | undefined,
): Promise<Map<string, HcnEndpoint>> {
  const out = new Map<string, HcnEndpoint>();
  const ids = await hint?.catch(() => undefined);
  if (!ids || ids.length === 0) return out;
  try {
    // Read ahead: the HNS thread works through it while this thread converts the cluster's lists.
    const read = await client.getEndpoints(ids, { ahead: true });
    for (const ep of read) out.set(String(ep.ID ?? "").toUpperCase(), ep);
  } catch {
    out.clear();
  }
  return out;
}

/**
 * `client`, but for `getEndpoints`: each endpoint asked for that `prefetched`
 * holds is taken from it (once), the others read; the answer is in the
 * order asked, as the client's.
 */
function readingPrefetched(
  client: HnsClient,
  prefetched: Promise<Map<string, HcnEndpoint>>,
): HnsClient {
  const getEndpoints = async (
    ids: readonly string[],
    options?: ReadOptions,
  ): Promise<HcnEndpoint[]> => {
    const have = await prefetched;
    if (have.size === 0) return await client.getEndpoints(ids, options);
    const found: (HcnEndpoint | undefined)[] = new Array(ids.length);
    const rest: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const key = ids[i].toUpperCase();
      const ep = have.get(key);
      if (ep) have.delete(key);
      else rest.push(ids[i]);
      found[i] = ep;
    }
    const read = rest.length > 0 ? await client.getEndpoints(rest, options) : [];
    if (read.length === 0) return found.filter((ep) => ep !== undefined);
    const byId = new Map(read.map((ep) => [String(ep.ID ?? "").toUpperCase(), ep]));
    const out: HcnEndpoint[] = [];
    for (let i = 0; i < ids.length; i++) {
      const ep = found[i] ?? byId.get(ids[i].toUpperCase());
      if (ep) out.push(ep);
    }
    return out;
  };
  return new Proxy(client, {
    get(target, key) {
      if (key === "getEndpoints") return getEndpoints;
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * Read HNS once and plan the start: the network's endpoints and all load
 * balancers (every object, or the trusted read: see {@link startReadMode}),
 * the node context, the desired state, adoption (with `adopt`'s options,
 * e.g. takeover) and the full reconcile. Makes no HNS writes. `preread`
 * is what {@link prereadStart} returned for this network and record; it is
 * used when read in `mode`, else HNS is read now. `keep`, when given, takes
 * the adoption's observed state and returns it indexed (the agent's observed
 * cache, filled from it): the reconcile runs against that instead of an
 * index built for it alone, and the adoption's `observed` is that.
 * `collect`, when given, is called where the trusted read has left the most
 * garbage (after its endpoints; a full collection of the heap).
 */
export function readStart(
  client: HnsClient,
  network: HcnNetwork,
  cluster: ClusterView,
  ownership: OwnershipRecord,
  settings: ContextSettings,
  adopt: AdoptOptions = {},
  mode: StartReadMode = { mode: "full", reason: "" },
  preread?: HnsPreread,
  keep?: (observed: ObservedState) => IndexedObservedState,
  collect?: () => void,
): Promise<StartState> {
  // Not async: an async function's arguments stay alive (its generator holds them) until it
  // returns, and the early read is garbage once read and adopted, before the cache is filled.
  return planStart(
    client,
    network,
    cluster,
    ownership,
    settings,
    adopt,
    mode,
    { preread },
    keep,
    collect,
  );
}

/** {@link readStart}, with the early read in a box that the read empties. */
async function planStart(
  client: HnsClient,
  network: HcnNetwork,
  cluster: ClusterView,
  ownership: OwnershipRecord,
  settings: ContextSettings,
  adopt: AdoptOptions,
  mode: StartReadMode,
  early: { preread?: HnsPreread },
  keep?: (observed: ObservedState) => IndexedObservedState,
  collect?: () => void,
): Promise<StartState> {
  const net = networkInfo(network);
  if (!net) throw new Error(`HNS network ${JSON.stringify(network.Name)} has no ID`);
  const features = await client.features();
  // The one way both reads derive the node context and the desired state.
  const plan: StartPlanning = (endpoints) => {
    const ctx = buildNodeContext({
      settings,
      network: net,
      features,
      endpoints,
      owns: (id) => ownership.owns(id),
      node: cluster.node(),
      placements: cluster.nodePlacements?.(),
    });
    checkStartContext(ctx, settings);
    return { ctx, desired: desiredState(cluster, ctx) };
  };
  // What HNS held as read is garbage once the adoption and the cache have what they keep of
  // it: read and adopted in a frame that ends before the cache is filled (the temporaries of a
  // frame still running are kept alive with it).
  const { read, adoption, trusted } = await readAndAdopt(
    client,
    net,
    ownership,
    plan,
    mode,
    early,
    adopt,
    collect,
  );
  const { ctx, desired } = read;
  if (keep) adoption.observed = keep(adoption.observed);
  const reconciled = reconcile(desired, adoption.observed, { features });
  return {
    ctx,
    desired,
    adoption,
    plan: { ops: joined(adoption.adopted, reconciled.ops), conflicts: reconciled.conflicts },
    vanishedOwned: read.vanishedOwned,
    endpointIds: read.endpointIds,
    trusted,
  };
}

/**
 * `first` then `rest` in one array: `rest` itself when `first` is empty (a
 * cold start's tens of thousands of creates are not copied), else an array
 * made at its final length (no outgrown stores left as garbage).
 */
function joined<T>(first: readonly T[], rest: readonly T[]): readonly T[] {
  if (first.length === 0) return rest;
  const out = new Array<T>(first.length + rest.length);
  for (let i = 0; i < first.length; i++) out[i] = first[i];
  for (let i = 0; i < rest.length; i++) out[first.length + i] = rest[i];
  return out;
}

/**
 * Read HNS (the early read in `early`, taken from it, when read in `mode`)
 * and adopt what it holds; the read's objects are let go of (only its
 * context, desired state, vanished and endpoint IDs are left in it).
 */
async function readAndAdopt(
  client: HnsClient,
  net: NetworkInfo,
  ownership: OwnershipRecord,
  plan: StartPlanning,
  mode: StartReadMode,
  early: { preread?: HnsPreread },
  adopt: AdoptOptions,
  collect?: () => void,
): Promise<{ read: HnsRead; adoption: Adoption; trusted: number }> {
  const preread = early.preread?.mode === mode.mode ? early.preread : undefined;
  early.preread = undefined;
  const read = mode.mode === "trusted"
    ? await readTrusted(
      client,
      net,
      ownership,
      plan,
      preread?.mode === "trusted" ? preread : undefined,
      collect,
    )
    : await readFull(client, net, ownership, plan, preread?.mode === "full" ? preread : undefined);
  const owned = {
    ownsLoadBalancer: (id: string) => ownership.kindOf(id) === "LoadBalancer",
    ownsEndpoint: (id: string) => ownership.kindOf(id) === "Endpoint",
  };
  // The objects read are never trusted ones: the trusted come observed, with no ID → key map.
  const adoption = adoptObserved(read.loadBalancers, read.endpoints, owned, read.desired, {
    hostMacKnown: read.ctx.hostMac !== undefined,
    trustedEndpoints: read.trustedEndpoints,
    trustedLoadBalancers: read.trustedLoadBalancers,
    ...adopt,
  });
  const trusted = read.trustedEndpoints.length + read.trustedLoadBalancers.length;
  carryTrustedFps(adoption.adopted, read);
  read.endpoints = read.loadBalancers = [];
  read.trustedEndpoints = [];
  read.trustedLoadBalancers = [];
  read.trustedEndpointFps = [];
  read.trustedLoadBalancerFps = [];
  return { read, adoption, trusted };
}

/**
 * A trusted object's adoption carries the fingerprint it was trusted by (its
 * content's). Only trusted objects that share their key with another are
 * adopted (one alone on its key is kept as it is), so the IDs are indexed
 * only when an owned object was adopted at all.
 */
function carryTrustedFps(adopted: Adoption["adopted"], read: HnsRead): void {
  if (!adopted.some((op) => !op.wasForeign)) return;
  const fps = new Map<string, number>();
  read.trustedEndpoints.forEach((o, i) => fps.set(o.id, read.trustedEndpointFps[i]));
  read.trustedLoadBalancers.forEach((o, i) => fps.set(o.id, read.trustedLoadBalancerFps[i]));
  for (const op of adopted) {
    const fp = op.wasForeign ? undefined : fps.get(op.id);
    if (fp !== undefined) op.fp = fp.toString(36);
  }
}

/** Read every object of the network and every load balancer. */
async function readFull(
  client: HnsClient,
  net: NetworkInfo,
  ownership: OwnershipRecord,
  plan: StartPlanning,
  preread?: { endpoints: HcnEndpoint[]; loadBalancers: HcnLoadBalancer[] },
): Promise<HnsRead> {
  const { endpoints, loadBalancers } = preread ?? await readEverything(client, net);
  const { ctx, desired } = plan(endpoints);
  const present = new Set(
    [...loadBalancers, ...endpoints].map((o) => String(o.ID ?? "").toLowerCase()),
  );
  return {
    ctx,
    desired,
    endpoints,
    loadBalancers,
    trustedEndpoints: [],
    trustedLoadBalancers: [],
    trustedEndpointFps: [],
    trustedLoadBalancerFps: [],
    vanishedOwned: [...ownership.ids()].filter((id) => !present.has(id.toLowerCase())),
    endpointIds: endpoints.map((ep) => String(ep.ID ?? "")).filter((id) => id !== ""),
  };
}

/** What {@link fastStartCheck} needs. */
export interface FastStartInputs {
  /** The HNS client (its features; no call). */
  client: HnsClient;
  /** The network the early read found. */
  network: HcnNetwork;
  /** The cluster (its Node and placements, for the node context). */
  cluster: ClusterView;
  /** The ownership record. */
  ownership: OwnershipRecord;
  /** The context settings. */
  settings: ContextSettings;
  /** How this start reads HNS. */
  mode: StartReadMode;
  /** The early read, if any. */
  preread?: HnsPreread;
}

/**
 * Whether a start may skip building the state before it is ready, but for
 * the synced-inputs digest (the caller compares it): the node context it
 * would build, else why not. Conservative: a full start, no early trusted
 * read, an owned ID HNS does not list, a load balancer or a remote endpoint
 * hnsproxy does not own (the full path would adopt, take over, replace or
 * report it: without them a takeover has nothing to take), or a context the
 * network type cannot use all say no.
 */
export async function fastStartCheck(
  inputs: FastStartInputs,
): Promise<{ ctx: NodeContext } | { reason: string }> {
  const { mode, preread, ownership, network } = inputs;
  if (mode.mode === "full") return { reason: mode.reason };
  if (preread?.mode !== "trusted") return { reason: "no early read of HNS" };
  if (preread.ownedEps.length + preread.ownedLbs.length !== ownership.size) {
    return { reason: "owned objects HNS does not list" };
  }
  if (preread.foreignLbs.length > 0) return { reason: "load balancers hnsproxy does not own" };
  if (preread.others.some(isRemoteEndpoint)) {
    return { reason: "remote endpoints hnsproxy does not own" };
  }
  const net = networkInfo(network);
  if (!net) return { reason: "network without ID" };
  const ctx = buildNodeContext({
    settings: inputs.settings,
    network: net,
    features: await inputs.client.features(),
    endpoints: preread.others,
    owns: (id) => ownership.owns(id),
    node: inputs.cluster.node(),
    placements: inputs.cluster.nodePlacements?.(),
  });
  try {
    checkStartContext(ctx, inputs.settings);
  } catch (err) {
    return { reason: err instanceof Error ? err.message : String(err) };
  }
  return { ctx };
}
