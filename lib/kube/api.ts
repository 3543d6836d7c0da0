/**
 * The small slice of the Kubernetes API wire format hnsproxy speaks: object
 * metadata, lists, watch events, `Status` errors and the three resources the
 * proxy watches. Objects stay `unknown`-shaped here; lib/kube/convert.ts
 * validates them field by field.
 *
 * @module
 */

/** The metadata fields hnsproxy reads from any object. */
export interface ObjectMeta {
  /** Object name. */
  name?: string;
  /** Namespace (absent for cluster-scoped objects such as Nodes). */
  namespace?: string;
  /** Opaque resourceVersion, compared only for equality. */
  resourceVersion?: string;
  /** Labels. */
  labels?: Record<string, string>;
  /** Annotations. */
  annotations?: Record<string, string>;
  /** Other metadata fields, kept as received. */
  [field: string]: unknown;
}

/** Any Kubernetes object as decoded from JSON. */
export interface KubeObject {
  /** `v1`, `discovery.k8s.io/v1`, ... (absent on list items). */
  apiVersion?: string;
  /** `Service`, `EndpointSlice`, ... (absent on list items). */
  kind?: string;
  /** Metadata. */
  metadata?: ObjectMeta;
  /** The rest of the object. */
  [field: string]: unknown;
}

/** A list response (`ServiceList`, `EndpointSliceList`, `NodeList`). */
export interface KubeList {
  /** `v1`, `discovery.k8s.io/v1`. */
  apiVersion?: string;
  /** `ServiceList`, ... */
  kind?: string;
  /** List metadata: the list's resourceVersion and the continue token of the next page. */
  metadata?: { resourceVersion?: string; continue?: string; remainingItemCount?: number };
  /** The objects (without kind/apiVersion). */
  items?: KubeObject[];
}

/** Watch event types as the API server sends them. */
export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

/** One event of a watch stream. */
export interface WatchEvent {
  /** Event type. */
  type: WatchEventType;
  /** The object; a `Status` for ERROR events, a metadata-only object for BOOKMARK. */
  object: KubeObject;
}

/** A `Status` object, the body of every API error. */
export interface Status {
  /** Always `Status`. */
  kind: "Status";
  /** Always `v1`. */
  apiVersion: "v1";
  /** Empty list metadata. */
  metadata: Record<string, never>;
  /** `Failure` for errors. */
  status: "Success" | "Failure";
  /** Human-readable description. */
  message: string;
  /** Machine-readable reason: `Expired`, `Unauthorized`, `Forbidden`, `NotFound`, ... */
  reason: string;
  /** HTTP status code. */
  code: number;
  /** Optional details. */
  details?: Record<string, unknown>;
}

/** A resource hnsproxy lists and watches. */
export interface ResourceInfo {
  /** Plural resource name, e.g. `services`. */
  plural: string;
  /** Cluster-wide collection path, e.g. `/api/v1/services`. */
  path: string;
  /** Object kind, e.g. `Service`. */
  kind: string;
  /** API group version, e.g. `v1` or `discovery.k8s.io/v1`. */
  apiVersion: string;
  /** Whether objects live in namespaces. */
  namespaced: boolean;
}

/** core/v1 Services. */
export const SERVICES: ResourceInfo = {
  plural: "services",
  path: "/api/v1/services",
  kind: "Service",
  apiVersion: "v1",
  namespaced: true,
};

/** discovery.k8s.io/v1 EndpointSlices. */
export const ENDPOINT_SLICES: ResourceInfo = {
  plural: "endpointslices",
  path: "/apis/discovery.k8s.io/v1/endpointslices",
  kind: "EndpointSlice",
  apiVersion: "discovery.k8s.io/v1",
  namespaced: true,
};

/** core/v1 Nodes. */
export const NODES: ResourceInfo = {
  plural: "nodes",
  path: "/api/v1/nodes",
  kind: "Node",
  apiVersion: "v1",
  namespaced: false,
};

/**
 * An error answer of the API server: the HTTP status (or the code of a watch
 * ERROR event) with the `Status` reason and message. Never carries request
 * headers, so it is safe to log.
 */
export class ApiError extends Error {
  /** HTTP status code (410 for an expired resourceVersion, ...). */
  readonly code: number;
  /** `Status.reason` (`Expired`, `Unauthorized`, ...), or "" when the body was not a Status. */
  readonly reason: string;
  /** Seconds from a `Retry-After` header, when sent. */
  readonly retryAfterSeconds?: number;

  /** An API error for `what` (e.g. `list services`). */
  constructor(
    what: string,
    code: number,
    reason: string,
    message: string,
    retryAfterSeconds?: number,
  ) {
    super(`${what}: ${code}${reason ? ` ${reason}` : ""}: ${message}`);
    this.name = "ApiError";
    this.code = code;
    this.reason = reason;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /** Whether the error means "resourceVersion too old / continue token expired" (410). */
  get isGone(): boolean {
    return this.code === 410;
  }

  /**
   * Whether the server answered "Too large resource version" (504 Timeout):
   * it is behind the resourceVersion asked for, as after a restore from
   * backup. Recognised by the message, as client-go does for servers that
   * send no `ResourceVersionTooLarge` cause.
   */
  get isResourceVersionTooLarge(): boolean {
    return this.code === 504 && /too large resource version/i.test(this.message);
  }
}

/** Whether a decoded value looks like a `Status` object. */
export function isStatus(value: unknown): value is Status {
  return typeof value === "object" && value !== null &&
    (value as { kind?: unknown }).kind === "Status";
}

/** The `namespace/name` (or `name` for cluster-scoped objects) of an object, or undefined. */
export function keyOf(obj: KubeObject): string | undefined {
  const name = obj.metadata?.name;
  if (typeof name !== "string" || name === "") return undefined;
  const ns = obj.metadata?.namespace;
  return typeof ns === "string" && ns !== "" ? `${ns}/${name}` : name;
}
