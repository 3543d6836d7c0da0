/**
 * An {@link HcnApi} decorator between the agent and the FFI binding that
 * tells the harness when each load balancer write (create or modify)
 * started and finished, with the LB's identity and backend count read from
 * the settings the agent sent. Latency is measured from an API write to the
 * end of the HNS write that programs it; while nobody listens the probe only
 * forwards calls.
 *
 * @module
 */

import type { HcnApi, HcnHandle, HcnKind } from "../lib/hns/types.ts";
import { now } from "./procstat.ts";

/** One load balancer write the agent made. */
export interface LbWrite {
  /** When the agent called HNS ({@link now}). */
  startedAt: number;
  /** When HNS answered. */
  endedAt: number;
  /** `<vip>:<port>` for a VIP LB, `nodeport:<port>` for a NodePort LB. */
  identity: string;
  /** Backend endpoints in the settings. */
  backends: number;
}

/** Listener of load balancer writes. */
export type LbWriteListener = (write: LbWrite) => void;

/** When one of the agent's Enumerate calls ran ({@link now}), by kind. */
export interface EnumerateSpan {
  /** The HCN kind listed. */
  kind: string;
  /** When the agent called HNS. */
  startedAt: number;
  /** When HNS answered (or failed). */
  endedAt: number;
}

/** The identity of a load balancer as {@link LbWrite.identity} spells it. */
export function lbIdentity(vip: string | undefined, port: number): string {
  return vip ? `${vip}:${port}` : `nodeport:${port}`;
}

/** The probe: an HcnApi plus the listener slot. */
export interface ProbedHcnApi extends HcnApi {
  /** Set (or clear) the listener of LB writes. */
  onLbWrite(listener: LbWriteListener | undefined): void;
  /** Set (or clear) the listener of listings. */
  onEnumerate(listener: ((span: EnumerateSpan) => void) | undefined): void;
}

/** Wrap `api`; see the module notes. */
export function probeHcnApi(api: HcnApi): ProbedHcnApi {
  let listener: LbWriteListener | undefined;
  let listings: ((span: EnumerateSpan) => void) | undefined;
  const report = (startedAt: number, settings: string) => {
    if (!listener) return;
    const endedAt = now();
    try {
      const lb = JSON.parse(settings);
      const pm = lb.PortMappings?.[0];
      listener({
        startedAt,
        endedAt,
        identity: lbIdentity(lb.FrontendVIPs?.[0], pm?.ExternalPort ?? 0),
        backends: Array.isArray(lb.HostComputeEndpoints) ? lb.HostComputeEndpoints.length : 0,
      });
    } catch {
      // Not our business to judge the agent's JSON; HNS already did.
    }
  };
  // A listing's span goes to the listener once HNS answered (or failed).
  const traced = async <T>(kind: HcnKind, call: () => Promise<T>): Promise<T> => {
    if (!listings) return await call();
    const startedAt = now();
    try {
      return await call();
    } finally {
      listings?.({ kind, startedAt, endedAt: now() });
    }
  };
  return {
    get hasModifyLoadBalancer() {
      return api.hasModifyLoadBalancer;
    },
    get callsInFlight() {
      return api.callsInFlight;
    },
    get readsInFlight() {
      return api.readsInFlight;
    },
    keepListingsApart: (apart) => api.keepListingsApart?.(apart),
    enumerate: (kind, query) => traced(kind, () => api.enumerate(kind, query)),
    enumerateIds: (kind, query) => traced(kind, () => api.enumerateIds(kind, query)),
    open: (kind, id) => api.open(kind, id),
    async create(kind: HcnKind, id: string, settings: string, network?: HcnHandle) {
      const started = now();
      const handle = await api.create(kind, id, settings, network);
      if (kind === "LoadBalancer") report(started, settings);
      return handle;
    },
    async modify(kind: HcnKind, handle: HcnHandle, settings: string) {
      const started = now();
      await api.modify(kind, handle, settings);
      if (kind === "LoadBalancer") report(started, settings);
    },
    // Compound requests (the same HNS calls as one request each), where the API has them.
    createAndClose: api.createAndClose &&
      (async (kind: HcnKind, id: string, settings: string, network?: HcnHandle) => {
        const started = performance.now();
        await api.createAndClose!(kind, id, settings, network);
        if (kind === "LoadBalancer") report(started, settings);
      }),
    createAndCloseMany: api.createAndCloseMany &&
      (async (kind: HcnKind, ids: readonly string[], settings: readonly string[], network) => {
        const started = now();
        const failures = await api.createAndCloseMany!(kind, ids, settings, network);
        if (kind === "LoadBalancer" && listener) {
          let f = 0;
          for (let i = 0; i < ids.length; i++) {
            if (f < failures.length && failures[f].index === i) f++;
            else report(started, settings[i]);
          }
        }
        return failures;
      }),
    openQueryClose: api.openQueryClose &&
      ((kind: HcnKind, id: string, query: string) => api.openQueryClose!(kind, id, query)),
    openQueryCloseMany: api.openQueryCloseMany &&
      ((kind: HcnKind, ids: readonly string[], query: string) =>
        api.openQueryCloseMany!(kind, ids, query)),
    query: (kind, handle, query) => api.query(kind, handle, query),
    delete: (kind, id) => api.delete(kind, id),
    close: (kind, handle) => api.close(kind, handle),
    hnsCall: (method, path, request) => api.hnsCall(method, path, request),
    dispose: () => api.dispose(),
    onLbWrite(l) {
      listener = l;
    },
    onEnumerate(l) {
      listings = l;
    },
  };
}
