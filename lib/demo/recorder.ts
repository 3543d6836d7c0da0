/**
 * An {@link HcnApi} decorator that writes down every call with the object it
 * concerned, in words (`create load balancer 10.96.0.10:53/UDP`, `delete
 * endpoint 10.244.2.14`), so the demo can print exactly which HNS operations
 * each step made. Objects are named from the settings sent and from what HNS
 * answered (IDs learnt from creates and queries, handles from opens).
 *
 * @module
 */

import {
  describeEndpoint,
  describeLoadBalancer,
  endpointWords,
  providerAddress,
} from "../hns/describe.ts";
import { isZeroGuid, normalizeGuid } from "../hns/guid.ts";
import { hcnFunctionName, type HcnOperation, HNS_CALL } from "../hns/names.ts";
import type { HcnApi, HcnEndpoint, HcnHandle, HcnKind, HcnLoadBalancer } from "../hns/types.ts";
import { errorMessage } from "../errors.ts";

/** One HNS call as the recorder saw it. */
export interface HnsCallRecord {
  /** C function name, e.g. `HcnCreateLoadBalancer`. */
  fn: string;
  /** The operation (`hnsCall` for `HNSCall`). */
  op: HcnOperation | "hnsCall";
  /** Object kind, for HCN functions. */
  kind?: HcnKind;
  /** The object in words, when known: `load balancer 10.96.0.10:53/UDP (2 backends)`. */
  object?: string;
  /** The error message, when the call failed. */
  error?: string;
}

/** An {@link HcnApi} that records its calls. */
export interface RecordingHcnApi extends HcnApi {
  /** Every call since the last {@link RecordingHcnApi.take}, oldest first, and forget them. */
  take(): HnsCallRecord[];
}

type Doc = Record<string, unknown>;

function parse(text: string): Doc | undefined {
  try {
    const v = JSON.parse(text);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** An object's description from its HNS JSON. */
export function describeObject(kind: HcnKind, doc: Doc): string {
  if (kind === "LoadBalancer") {
    const lb = doc as Partial<HcnLoadBalancer>;
    const n = Array.isArray(lb.HostComputeEndpoints) ? lb.HostComputeEndpoints.length : 0;
    return `${describeLoadBalancer(lb)} (${n} backend${n === 1 ? "" : "s"})`;
  }
  if (kind === "Endpoint") {
    const ep = doc as Partial<HcnEndpoint>;
    const words = endpointWords(ep);
    const pa = providerAddress(ep);
    return `${describeEndpoint(ep)} (${words.join(", ")}${pa ? ` via ${pa}` : ""})`;
  }
  return `network ${String(doc.Name ?? doc.ID ?? "")}`;
}

/** Names an object from its HNS JSON (default {@link describeObject}). */
export type ObjectDescriber = (kind: HcnKind, doc: Record<string, unknown>) => string;

/** Wrap `inner` so every call is recorded; see {@link RecordingHcnApi}. */
export function recordHcnApi(
  inner: HcnApi,
  describe: ObjectDescriber = describeObject,
): RecordingHcnApi {
  let records: HnsCallRecord[] = [];
  /** Object ID (upper case) → description. */
  const names = new Map<string, string>();
  /** Handle → object ID. */
  const handles = new Map<HcnHandle, string>();

  const learn = (kind: HcnKind, text: string): string | undefined => {
    const doc = parse(text);
    if (!doc) return undefined;
    const desc = describe(kind, doc);
    if (typeof doc.ID === "string") names.set(doc.ID.toUpperCase(), desc);
    return desc;
  };

  async function call<T>(
    op: HcnOperation,
    kind: HcnKind,
    object: () => string | undefined,
    body: () => Promise<T>,
    after?: (value: T) => void,
  ): Promise<T> {
    const rec: HnsCallRecord = { fn: hcnFunctionName(op, kind), op, kind };
    records.push(rec);
    try {
      const value = await body();
      after?.(value);
      rec.object = object();
      return value;
    } catch (err) {
      rec.object = object();
      rec.error = errorMessage(err);
      throw err;
    }
  }

  const byId = (kind: HcnKind, id: string) =>
    names.get(id.toUpperCase()) ??
      `${kind === "LoadBalancer" ? "load balancer" : kind.toLowerCase()} ${id}`;

  return {
    get hasModifyLoadBalancer() {
      return inner.hasModifyLoadBalancer;
    },
    take() {
      const out = records;
      records = [];
      return out;
    },
    enumerate: (kind, query) =>
      call("enumerate", kind, () => undefined, () => inner.enumerate(kind, query)),
    enumerateIds: (kind, query) =>
      call("enumerate", kind, () => undefined, () => inner.enumerateIds(kind, query)),
    open: (kind, id) =>
      call(
        "open",
        kind,
        () => byId(kind, id),
        () => inner.open(kind, id),
        (h) => handles.set(h, id),
      ),
    create(kind, id, settings, network) {
      const doc = parse(settings);
      const desc = doc ? describe(kind, doc) : undefined;
      return call(
        "create",
        kind,
        () => desc,
        () => inner.create(kind, id, settings, network),
        (handle) => {
          // A caller-chosen ID (hnsproxy's client picks one) names the object without a query.
          if (isZeroGuid(id)) return;
          if (desc) names.set(normalizeGuid(id), desc);
          handles.set(handle, id);
        },
      );
    },
    modify(kind, handle, settings) {
      const doc = parse(settings);
      const desc = doc ? describe(kind, doc) : undefined;
      return call("modify", kind, () => desc, () => inner.modify(kind, handle, settings));
    },
    query(kind, handle, query) {
      let desc: string | undefined;
      return call(
        "query",
        kind,
        () => desc,
        () => inner.query(kind, handle, query),
        (text) => {
          desc = learn(kind, text);
          const id = parse(text)?.ID;
          if (typeof id === "string") handles.set(handle, id);
        },
      );
    },
    delete: (kind, id) => call("delete", kind, () => byId(kind, id), () => inner.delete(kind, id)),
    close(kind, handle) {
      const id = handles.get(handle);
      handles.delete(handle);
      return call(
        "close",
        kind,
        () => (id ? byId(kind, id) : undefined),
        () => inner.close(kind, handle),
      );
    },
    async hnsCall(method, path, request) {
      const rec: HnsCallRecord = { fn: HNS_CALL, op: "hnsCall", object: `${method} ${path}` };
      records.push(rec);
      try {
        return await inner.hnsCall(method, path, request);
      } catch (err) {
        rec.error = errorMessage(err);
        throw err;
      }
    },
    dispose: () => inner.dispose(),
  };
}
