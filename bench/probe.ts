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

/** One load balancer write the agent made. */
export interface LbWrite {
  /** `performance.now()` when the agent called HNS. */
  startedAt: number;
  /** `performance.now()` when HNS answered. */
  endedAt: number;
  /** `<vip>:<port>` for a VIP LB, `nodeport:<port>` for a NodePort LB. */
  identity: string;
  /** Backend endpoints in the settings. */
  backends: number;
}

/** Listener of load balancer writes. */
export type LbWriteListener = (write: LbWrite) => void;

/** The identity of a load balancer as {@link LbWrite.identity} spells it. */
export function lbIdentity(vip: string | undefined, port: number): string {
  return vip ? `${vip}:${port}` : `nodeport:${port}`;
}

/** The probe: an HcnApi plus the listener slot. */
export interface ProbedHcnApi extends HcnApi {
  /** Set (or clear) the listener of LB writes. */
  onLbWrite(listener: LbWriteListener | undefined): void;
}

/** Wrap `api`; see the module notes. */
export function probeHcnApi(api: HcnApi): ProbedHcnApi {
  let listener: LbWriteListener | undefined;
  const report = (startedAt: number, settings: string) => {
    if (!listener) return;
    const endedAt = performance.now();
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
  return {
    get hasModifyLoadBalancer() {
      return api.hasModifyLoadBalancer;
    },
    get callsInFlight() {
      return api.callsInFlight;
    },
    enumerate: (kind, query) => api.enumerate(kind, query),
    enumerateIds: (kind, query) => api.enumerateIds(kind, query),
    open: (kind, id) => api.open(kind, id),
    async create(kind: HcnKind, id: string, settings: string, network?: HcnHandle) {
      const started = performance.now();
      const handle = await api.create(kind, id, settings, network);
      if (kind === "LoadBalancer") report(started, settings);
      return handle;
    },
    async modify(kind: HcnKind, handle: HcnHandle, settings: string) {
      const started = performance.now();
      await api.modify(kind, handle, settings);
      if (kind === "LoadBalancer") report(started, settings);
    },
    query: (kind, handle, query) => api.query(kind, handle, query),
    delete: (kind, id) => api.delete(kind, id),
    close: (kind, handle) => api.close(kind, handle),
    hnsCall: (method, path, request) => api.hnsCall(method, path, request),
    dispose: () => api.dispose(),
    onLbWrite(l) {
      listener = l;
    },
  };
}
