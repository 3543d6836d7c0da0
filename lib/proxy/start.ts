/**
 * The start of the proxy: find the HNS network, read HNS once (the network's
 * endpoints and every load balancer) and plan the first programming. Nothing
 * here writes to HNS; `plan` runs exactly this and prints the result.
 *
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
 * - Ownership: every object the record lists that HNS holds is owned (then
 *   adopted, modified or deleted like any owned object), whatever sync it
 *   came from, finished or killed. The record lists each create before it is
 *   issued, so a listed ID HNS does not hold is a create that never happened
 *   or an object deleted since: reported, so the caller forgets it.
 *
 * @module
 */

import type { HcnNetwork, HnsClient } from "../hns/types.ts";
import type { ClusterView } from "../kube/model.ts";
import { buildNodeContext, type ContextSettings, networkInfo, onNetwork } from "./context.ts";
import { desiredState } from "./desired.ts";
import type { DesiredState, NodeContext, Plan } from "./model.ts";
import type { OwnershipRecord } from "./ownership.ts";
import { checkStartContext, detectNetwork, networkNameError } from "./preconditions.ts";
import { type Adoption, adoptObserved, type AdoptOptions, reconcile } from "./reconcile.ts";

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

/**
 * Read HNS once and plan the start: the network's endpoints and all load
 * balancers, the node context, the desired state, adoption (with `adopt`'s
 * options, e.g. takeover) and the full reconcile. Makes no HNS writes.
 */
export async function readStart(
  client: HnsClient,
  network: HcnNetwork,
  cluster: ClusterView,
  ownership: OwnershipRecord,
  settings: ContextSettings,
  adopt: AdoptOptions = {},
): Promise<StartState> {
  const net = networkInfo(network);
  if (!net) throw new Error(`HNS network ${JSON.stringify(network.Name)} has no ID`);
  const features = await client.features();
  const endpoints = (await client.listEndpoints(net.id)).filter((ep) => onNetwork(ep, net.id));
  const lbs = await client.listLoadBalancers();
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
  const desired = desiredState(cluster, ctx);
  const owned = {
    loadBalancers: ownership.list("LoadBalancer").map((o) => o.id),
    endpoints: ownership.list("Endpoint").map((o) => o.id),
  };
  const adoption = adoptObserved(lbs, endpoints, owned, desired, {
    hostMacKnown: ctx.hostMac !== undefined,
    ...adopt,
  });
  const present = new Set([...lbs, ...endpoints].map((o) => String(o.ID ?? "").toLowerCase()));
  const vanishedOwned = ownership.list().map((o) => o.id).filter((id) =>
    !present.has(id.toLowerCase())
  );
  const reconciled = reconcile(desired, adoption.observed, { features });
  return {
    ctx,
    desired,
    adoption,
    plan: { ops: [...adoption.adopted, ...reconciled.ops], conflicts: reconciled.conflicts },
    vanishedOwned,
    endpointIds: endpoints.map((ep) => String(ep.ID ?? "")).filter((id) => id !== ""),
  };
}
