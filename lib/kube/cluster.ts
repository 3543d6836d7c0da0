/**
 * The cluster watcher: reflectors for Services and EndpointSlices (with
 * kube-proxy's selectors), the agent's Node, and every Node's placement (pod
 * CIDRs and InternalIPs only, so 5,000 nodes cost little), converting every
 * object into a compact record in one {@linkcode ClusterStore}. Malformed
 * objects are logged with their namespace/name and field and kept out of the
 * store.
 *
 * @module
 */

import { parseDuration } from "../config/duration.ts";
import type { Logger } from "../log/types.ts";
import { ENDPOINT_SLICES, keyOf, type KubeObject, NODES, SERVICES } from "./api.ts";
import {
  convertEndpointSlice,
  ConvertError,
  convertNode,
  convertNodePlacement,
  convertService,
} from "./convert.ts";
import { Reflector, type ReflectorClient, type ReflectorTiming } from "./reflector.ts";
import { ClusterStore, type SyncedKind } from "./store.ts";

/**
 * Services handled by another proxy (`service.kubernetes.io/service-proxy-name`)
 * and headless ones (`service.kubernetes.io/headless`, set on their slices)
 * are left out on the server side, exactly as kube-proxy selects.
 */
export const SERVICE_SELECTOR =
  "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";

/** kube-proxy's selector plus the service-name label every usable slice has. */
export const ENDPOINT_SLICE_SELECTOR = `${SERVICE_SELECTOR},kubernetes.io/service-name`;

/** Field selector of the agent's own Node. */
export function nodeFieldSelector(nodeName: string): string {
  return `metadata.name=${nodeName}`;
}

/** Options of {@linkcode watchCluster}. */
export interface WatchClusterOptions {
  /** API client ({@linkcode KubeClient} or a double). */
  client: ReflectorClient;
  /** The agent's node name (`--hostname-override` or the host name). */
  nodeName: string;
  /** Logger. */
  logger: Logger;
  /** Store to fill (a new one by default). */
  store?: ClusterStore;
  /** List page size (default reflector.ts `LIST_PAGE_SIZE`). */
  pageSize?: number;
  /** Watch every Node's placement (default true). */
  watchPlacements?: boolean;
  /** Full relist period (`--config-sync-period`); 0 or absent: never. */
  resyncPeriodMs?: number;
  /** Reflector timer overrides (tests). */
  timing?: Partial<ReflectorTiming>;
}

/**
 * Environment variable overriding the reflectors' progress limit (a Go
 * duration, e.g. `90s`): how long a watch may bring neither an event nor a
 * bookmark before everything is relisted from scratch.
 */
export const WATCH_PROGRESS_TIMEOUT_ENV = "HNSPROXY_WATCH_PROGRESS_TIMEOUT";

/** The reflector timing set by the environment ({@linkcode WATCH_PROGRESS_TIMEOUT_ENV}). */
export function reflectorTimingFromEnv(
  get: (name: string) => string | undefined,
): Partial<ReflectorTiming> {
  const raw = get(WATCH_PROGRESS_TIMEOUT_ENV);
  if (!raw) return {};
  const ms = parseDuration(raw);
  if (ms === undefined || ms <= 0) {
    throw new Error(
      `${WATCH_PROGRESS_TIMEOUT_ENV}: "${raw}" is not a positive duration (e.g. 90s)`,
    );
  }
  return { progressTimeoutMs: ms };
}

/** A running cluster watcher. */
export interface ClusterWatch {
  /** The store the reflectors keep current. */
  store: ClusterStore;
  /** Resolves once Services and EndpointSlices finished their initial list. */
  synced: Promise<void>;
  /** The reflectors (for their resourceVersions in diagnostics). */
  reflectors: {
    services: Reflector;
    endpointSlices: Reflector;
    node: Reflector;
    nodes?: Reflector;
  };
  /** Stops the reflectors and waits for them to end. */
  stop(): Promise<void>;
}

/** Starts watching Services, EndpointSlices and the node into a store. */
export function watchCluster(options: WatchClusterOptions): ClusterWatch {
  const { client, nodeName, logger, pageSize, timing, resyncPeriodMs } = options;
  const store = options.store ?? new ClusterStore();

  /**
   * Converts (handing the converter the record the object replaces); logs
   * and returns null for malformed objects.
   */
  function convert<T>(
    kind: string,
    obj: KubeObject,
    fn: (o: unknown, previous?: T) => T | null,
    previous?: T,
  ) {
    try {
      const record = fn(obj, previous);
      if (record === null) {
        logger.debug(5, `${kind} not handled by the proxy`, { object: keyOf(obj) });
      }
      return record;
    } catch (err) {
      if (!(err instanceof ConvertError)) throw err;
      logger.warn(`malformed ${kind} skipped`, {
        object: err.key,
        field: err.field,
        error: err.message,
      });
      return null;
    }
  }

  const synced = (kind: SyncedKind) => () => {
    logger.info("initial list complete", { resource: kind });
    store.markSynced(kind);
  };

  // An update is converted against the record it replaces, so that what did
  // not change stays shared (lib/kube/convert.ts).
  // The reflector's key is the store's (`namespace/name`): one string per object.
  const serviceUpsert = (obj: KubeObject, key: string) => {
    const info = convert("Service", obj, convertService, store.service(key));
    if (info) store.upsertService(info, key);
    else store.deleteService(key);
  };
  const sliceUpsert = (obj: KubeObject, key: string) => {
    const info = convert("EndpointSlice", obj, convertEndpointSlice, store.slice(key));
    if (info) store.upsertSlice(info, key);
    else store.deleteSlice(key);
  };
  const nodeUpsert = (obj: KubeObject) => {
    if (obj.metadata?.name !== nodeName) return;
    const info = convert("Node", obj, convertNode);
    store.setNode(info ?? undefined);
  };

  // Listeners hear a list page once, not once per object on it.
  const onListPage = (at: "start" | "end") =>
    at === "start" ? store.beginBatch() : store.endBatch();
  const common = { client, logger, pageSize, timing, resyncPeriodMs };
  const services = new Reflector({
    ...common,
    resource: SERVICES,
    labelSelector: SERVICE_SELECTOR,
    handler: {
      onAdd: serviceUpsert,
      onUpdate: serviceUpsert,
      onDelete: (key) => store.deleteService(key),
      onListPage,
      onSynced: synced("services"),
    },
  });
  const endpointSlices = new Reflector({
    ...common,
    resource: ENDPOINT_SLICES,
    labelSelector: ENDPOINT_SLICE_SELECTOR,
    handler: {
      onAdd: sliceUpsert,
      onUpdate: sliceUpsert,
      onDelete: (key) => store.deleteSlice(key),
      onListPage,
      onSynced: synced("endpointSlices"),
    },
  });
  const node = new Reflector({
    ...common,
    resource: NODES,
    fieldSelector: nodeFieldSelector(nodeName),
    handler: {
      onAdd: nodeUpsert,
      onUpdate: nodeUpsert,
      onDelete: (key) => {
        if (key === nodeName) store.setNode(undefined);
      },
      onSynced: synced("node"),
    },
  });
  const placementUpsert = (obj: KubeObject) => {
    const placement = convert("Node", obj, convertNodePlacement);
    const key = keyOf(obj);
    if (placement) store.upsertNodePlacement(placement);
    else if (key) store.deleteNodePlacement(key);
  };
  const nodes = options.watchPlacements === false ? undefined : new Reflector({
    ...common,
    resource: NODES,
    handler: {
      onAdd: placementUpsert,
      onUpdate: placementUpsert,
      onDelete: (key) => store.deleteNodePlacement(key),
      onListPage,
      onSynced: synced("nodes"),
    },
  });
  const all = [services, endpointSlices, node, ...(nodes ? [nodes] : [])];
  for (const r of all) r.start();
  return {
    store,
    synced: store.whenSynced(),
    reflectors: { services, endpointSlices, node, nodes },
    async stop() {
      await Promise.all(all.map((r) => r.stop()));
    },
  };
}
