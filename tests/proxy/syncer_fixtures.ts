/**
 * Fixtures for tests that run a syncer in process: a cluster store
 * ready for it and the options of a syncer on the overlay node of
 * tests/agent/fixtures.ts.
 *
 * @module
 */

import { networkIdsByName } from "../../lib/agent.ts";
import type { HcnApi, HnsClient } from "../../lib/hns/types.ts";
import { convertNode } from "../../lib/kube/convert.ts";
import { ClusterStore } from "../../lib/kube/store.ts";
import { Backoff, type Clock } from "../../lib/proxy/backoff.ts";
import type { OwnershipRecord } from "../../lib/proxy/ownership.ts";
import type { ClusterSource, SyncerOptions } from "../../lib/proxy/syncer.ts";
import { nodeObject, OVERLAY_SETTINGS } from "../agent/fixtures.ts";

/**
 * A cluster store holding this node's Node object ({@link nodeObject}), with
 * services, EndpointSlices and the node marked synced, so a syncer runs on
 * it at once; tests add the services and slices.
 */
export function syncedNodeStore(): ClusterStore {
  const store = new ClusterStore();
  store.setNode(convertNode(nodeObject()));
  for (const kind of ["services", "endpointSlices", "node"] as const) store.markSynced(kind);
  return store;
}

/** What {@link overlaySyncerOptions} takes from the test. */
export interface OverlaySyncerParts {
  /** The HNS client. */
  client: HnsClient;
  /** The cluster state. */
  cluster: ClusterSource;
  /** The ownership record. */
  ownership: OwnershipRecord;
  /** The clock of the syncer and of its backoff. */
  clock: Clock;
  /**
   * The HNS API to look the network up in by name, in one call, as the agent
   * does ({@link networkIdsByName}); without it the syncer's own lookup.
   */
  api?: HcnApi;
}

/**
 * Options of a syncer on the overlay node (network `vxlan0`,
 * {@link OVERLAY_SETTINGS}) with a 30 s sync period and a backoff without
 * jitter on the test's clock; spread them and add or override the rest.
 */
export function overlaySyncerOptions(parts: OverlaySyncerParts): SyncerOptions {
  const { client, cluster, ownership, clock, api } = parts;
  return {
    client,
    cluster,
    ownership,
    networkName: "vxlan0",
    settings: OVERLAY_SETTINGS,
    syncPeriodMs: 30_000,
    clock,
    backoff: new Backoff({ clock, jitter: 0 }),
    ...(api === undefined ? {} : { networkIds: networkIdsByName(api) }),
  };
}
