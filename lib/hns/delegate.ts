/**
 * An {@link HcnApi} that hands every call to another, but for the members a
 * caller replaces: a lease of a backend that must not be disposed, or a
 * test's spy or fault on one call. Written once, so that a member added to
 * HcnApi (a request of many, a thread setting) reaches every such wrapper.
 *
 * Rules: optional members are offered only where the backend offers them;
 * an override that is `undefined` takes the member away (the client then
 * falls back as for a backend without it).
 *
 * @module
 */

import type { HcnApi, HcnHandle, HcnKind } from "./types.ts";

/** Members of {@link HcnApi} to replace (`undefined`: an optional member taken away). */
export type HcnApiOverrides = {
  [K in Exclude<keyof HcnApi, "hasModifyLoadBalancer" | "callsInFlight" | "readsInFlight">]?:
    HcnApi[K];
};

/** `api` with `overrides` in place of its own members; everything else goes to `api`. */
export function delegateHcnApi(api: HcnApi, overrides: HcnApiOverrides = {}): HcnApi {
  const out: HcnApi = {
    get hasModifyLoadBalancer() {
      return api.hasModifyLoadBalancer;
    },
    get callsInFlight() {
      return api.callsInFlight;
    },
    get readsInFlight() {
      return api.readsInFlight;
    },
    enumerate: (kind: HcnKind, query: string) => api.enumerate(kind, query),
    enumerateIds: (kind: HcnKind, query: string) => api.enumerateIds(kind, query),
    open: (kind: HcnKind, id: string) => api.open(kind, id),
    create: (kind: HcnKind, id: string, settings: string, network?: HcnHandle) =>
      api.create(kind, id, settings, network),
    modify: (kind: HcnKind, handle: HcnHandle, settings: string) =>
      api.modify(kind, handle, settings),
    query: (kind: HcnKind, handle: HcnHandle, query: string) => api.query(kind, handle, query),
    delete: (kind: HcnKind, id: string) => api.delete(kind, id),
    close: (kind: HcnKind, handle: HcnHandle) => api.close(kind, handle),
    hnsCall: (method: string, path: string, request: string) => api.hnsCall(method, path, request),
    dispose: () => api.dispose(),
  };
  if (api.createAndClose) out.createAndClose = api.createAndClose.bind(api);
  if (api.openQueryClose) out.openQueryClose = api.openQueryClose.bind(api);
  if (api.openQueryCloseMany) out.openQueryCloseMany = api.openQueryCloseMany.bind(api);
  if (api.createAndCloseMany) out.createAndCloseMany = api.createAndCloseMany.bind(api);
  if (api.keepListingsApart) out.keepListingsApart = api.keepListingsApart.bind(api);
  const members = out as unknown as Record<string, unknown>;
  for (const [key, member] of Object.entries(overrides)) {
    if (member === undefined) delete members[key];
    else members[key] = member;
  }
  return out;
}
