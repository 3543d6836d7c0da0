/**
 * API objects → compact records (lib/kube/model.ts). Pure functions: each
 * validates the fields the proxy reads and throws a {@linkcode ConvertError}
 * naming the object (`Kind namespace/name`) and the field path when one is
 * malformed, or returns `null` when the object is valid but not for the proxy
 * (headless and ExternalName services, FQDN slices), as kube-proxy ignores
 * them.
 *
 * @module
 */

import { canonicalIp, ipFamilyOf } from "../net/ip.ts";
import { ENDPOINT_CELLS, type EndpointCell, EndpointList } from "./model.ts";
import type {
  EndpointPortInfo,
  EndpointSliceInfo,
  IngressInfo,
  IpFamily,
  NodeInfo,
  NodePlacement,
  NodeTaint,
  Protocol,
  ServiceInfo,
  ServicePortInfo,
} from "./model.ts";

/** Label naming the Service an EndpointSlice belongs to. */
export const LABEL_SERVICE_NAME = "kubernetes.io/service-name";
const SERVICE_NAME_FIELD = `metadata.labels[${LABEL_SERVICE_NAME}]`;
/** Annotation with the time of the change that triggered an EndpointSlice update. */
export const ANNOTATION_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time";
/** Annotation asking to keep the destination IP (DSR-style) on Windows load balancers. */
export const ANNOTATION_PRESERVE_DESTINATION = "preserve-destination";
/** Node label with the node's zone. */
export const LABEL_ZONE = "topology.kubernetes.io/zone";

/** A malformed API object: names the object and the offending field. */
export class ConvertError extends Error {
  /** `Service`, `EndpointSlice` or `Node`. */
  readonly kind: string;
  /** `namespace/name`, or the name for Nodes ("" when unknown). */
  readonly key: string;
  /** JSON path of the field, e.g. `spec.ports[1].port`. */
  readonly field: string;

  /** An error for `kind key`, field `field`. */
  constructor(kind: string, key: string, field: string, problem: string) {
    super(`${kind} ${key || "<unnamed>"}: ${field}: ${problem}`);
    this.name = "ConvertError";
    this.kind = kind;
    this.key = key;
    this.field = field;
  }
}

// Many records repeat the same short strings (namespaces, node names, zones);
// sharing one copy keeps memory proportional to distinct values.
const interned = new Map<string, string>();
function intern(s: string): string {
  const hit = interned.get(s);
  if (hit !== undefined) return hit;
  if (interned.size >= 100_000) interned.clear();
  interned.set(s, s);
  return s;
}

/**
 * Empty lists and the common single-family lists are shared between records
 * (frozen: records are read-only for every consumer).
 */
const EMPTY: readonly never[] = Object.freeze([]);
const NO_FIELDS: Record<string, unknown> = Object.freeze({});
const FAMILY_LISTS: Record<string, readonly IpFamily[]> = {
  IPv4: Object.freeze(["IPv4"]),
  IPv6: Object.freeze(["IPv6"]),
  "IPv4,IPv6": Object.freeze(["IPv4", "IPv6"]),
  "IPv6,IPv4": Object.freeze(["IPv6", "IPv4"]),
};

function shared<T>(list: readonly T[]): readonly T[] {
  return list.length === 0 ? EMPTY : list;
}

// Port lists repeat across services and slices (80/443, the same app's
// ports): identical lists share one frozen copy. A service's node port is
// its own, so a list holding one is kept as it is (no key made for it).
const portLists = new Map<string, readonly unknown[]>();
// The list shared last, per kind (service ports, slice ports): consecutive
// objects mostly repeat it, so it is compared field by field before any key
// is made.
const lastShared: [readonly ServicePortInfo[], readonly EndpointPortInfo[]] = [EMPTY, EMPTY];
function sharedPorts<T extends ServicePortInfo | EndpointPortInfo>(list: T[]): readonly T[] {
  if (list.length === 0) return EMPTY;
  const kind = "targetPort" in list[0] ? 0 : 1;
  const last = lastShared[kind] as readonly T[];
  if (samePorts(list, last)) return last;
  // The key names the kind of list (service ports have a target port) and
  // every field, texts with their length (so no two lists share a key).
  let key = "";
  for (const p of list) {
    if ("nodePort" in p) return Object.freeze(list.map((p) => Object.freeze(p)));
    key += `${p.name.length}:${p.name} ${p.protocol} ${p.port}`;
    if ("targetPort" in p) {
      const t = p.targetPort;
      key += typeof t === "number" ? ` #${t};` : ` ${t.length}:${t};`;
    } else {
      key += ";";
    }
  }
  let shared = portLists.get(key) as readonly T[] | undefined;
  if (shared === undefined) {
    if (portLists.size >= 10_000) portLists.clear();
    shared = Object.freeze(list.map((p) => Object.freeze(p)));
    portLists.set(key, shared);
  }
  lastShared[kind] = shared as readonly ServicePortInfo[] & readonly EndpointPortInfo[];
  return shared;
}

/** Whether two port lists of one kind hold the same ports (none with a node port in `shared`). */
function samePorts(
  list: readonly (ServicePortInfo | EndpointPortInfo)[],
  shared: readonly (ServicePortInfo | EndpointPortInfo)[],
): boolean {
  if (list.length !== shared.length) return false;
  for (let i = 0; i < list.length; i++) {
    const p = list[i] as Partial<ServicePortInfo>, q = shared[i] as Partial<ServicePortInfo>;
    if (
      p.name !== q.name || p.protocol !== q.protocol || p.port !== q.port ||
      p.targetPort !== q.targetPort || p.nodePort !== undefined
    ) return false;
  }
  return true;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 60)}...` : s;
}

/**
 * Field access with errors that name the object. The object's key and the
 * field paths are built only for an error: converting a valid object
 * allocates no text for them.
 */
class Reader {
  /** Set once the object's name and namespace were read (its key is "" before). */
  named = false;
  namespace: string | undefined;
  name: string | undefined;
  /** The object and what {@linkcode metaOf} read of its metadata. */
  o: Obj = NO_FIELDS;
  labels: Obj = NO_FIELDS;
  annotations: Obj = NO_FIELDS;
  rv: string | undefined;

  constructor(readonly kind: string, readonly namespaced: boolean) {}

  get key(): string {
    if (!this.named) return "";
    const name = this.name ?? "";
    return this.namespaced ? `${this.namespace ?? ""}/${name}` : name;
  }

  fail(field: string, problem: string): never {
    throw new ConvertError(this.kind, this.key, field, problem);
  }

  obj(v: unknown, field: string, optional = false): Obj | undefined {
    if (v === undefined || v === null) {
      return optional ? undefined : this.fail(field, "missing");
    }
    return isObj(v) ? v : this.fail(field, `must be an object, got ${show(v)}`);
  }

  /** A list field; a missing one is a shared empty list (never changed). */
  arr(v: unknown, field: string): readonly unknown[] {
    if (v === undefined || v === null) return EMPTY;
    return Array.isArray(v) ? v : this.fail(field, `must be a list, got ${show(v)}`);
  }

  str(v: unknown, field: string): string | undefined {
    if (v === undefined || v === null) return undefined;
    return typeof v === "string" ? v : this.fail(field, `must be a string, got ${show(v)}`);
  }

  oneOf<T extends string>(v: unknown, field: string, allowed: readonly T[], dflt: T): T {
    const s = this.str(v, field);
    if (s === undefined || s === "") return dflt;
    return (allowed as readonly string[]).includes(s)
      ? s as T
      : this.fail(field, `must be one of ${allowed.join(", ")}, got ${show(s)}`);
  }

  port(v: unknown, field: string): number {
    return isPort(v) ? v : this.fail(field, `must be a port number in 1..65535, got ${show(v)}`);
  }

  optPort(v: unknown, field: string): number | undefined {
    return v === undefined || v === null || v === 0 ? undefined : this.port(v, field);
  }

  ip(v: unknown, field: string, family?: IpFamily): string {
    const s = this.str(v, field);
    const fam = s === undefined ? undefined : ipFamilyOf(s);
    if (fam === undefined) return this.fail(field, `must be an IP address, got ${show(v)}`);
    if (family && fam !== family) {
      return this.fail(field, `must be an ${family} address, got ${show(v)}`);
    }
    return canonicalIp(s!)!;
  }

  cidr(v: unknown, field: string): string {
    const s = this.str(v, field)?.trim();
    const m = s ? /^([^/]+)\/(\d{1,3})$/.exec(s) : null;
    const fam = m ? ipFamilyOf(m[1]) : undefined;
    if (!m || !fam || Number(m[2]) > (fam === "IPv4" ? 32 : 128)) {
      return this.fail(field, `must be a CIDR such as 10.0.0.0/8, got ${show(v)}`);
    }
    return s!;
  }
}

/**
 * Reads an object's metadata into a {@linkcode Reader} for it (one
 * allocation per object): name and namespace (required), labels,
 * annotations, resourceVersion.
 */
function metaOf(kind: string, obj: unknown, namespaced: boolean) {
  const r = new Reader(kind, namespaced);
  const o = r.o = r.obj(obj, "object")!;
  const meta = r.obj(o.metadata, "metadata")!;
  const name = r.name = r.str(meta.name, "metadata.name");
  if (namespaced) r.namespace = r.str(meta.namespace, "metadata.namespace");
  r.named = true;
  if (!name) r.fail("metadata.name", "missing");
  if (namespaced && !r.namespace) r.fail("metadata.namespace", "missing");
  r.labels = r.obj(meta.labels, "metadata.labels", true) ?? NO_FIELDS;
  r.annotations = r.obj(meta.annotations, "metadata.annotations", true) ?? NO_FIELDS;
  r.rv = r.str(meta.resourceVersion, "metadata.resourceVersion");
  return r;
}

const PROTOCOLS = ["TCP", "UDP", "SCTP"] as const;
const SERVICE_TYPES = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] as const;
const POLICIES = ["Cluster", "Local"] as const;
const SESSION_AFFINITIES = ["None", "ClientIP"] as const;
const IP_MODES = ["VIP", "Proxy"] as const;

function isPort(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;
}

/** Whether `raw` (as listed) holds exactly the texts of `kept`. */
function sameTexts(kept: readonly string[] | undefined, raw: readonly unknown[]): boolean {
  if (kept === undefined || kept.length !== raw.length) return false;
  for (let i = 0; i < raw.length; i++) if (kept[i] !== raw[i]) return false;
  return true;
}

/** The IP families of canonical addresses, a shared list for the common ones. */
function familiesOf(ips: readonly string[]): IpFamily[] {
  if (ips.length === 1) return FAMILY_LISTS[ipFamilyOf(ips[0])!] as IpFamily[];
  const families = ips.map((ip) => ipFamilyOf(ip)!);
  return (FAMILY_LISTS[families.join(",")] ?? families) as IpFamily[];
}

/**
 * Converts a Service. Returns `null` for services the proxy does not handle:
 * ExternalName and headless ones (no cluster IP), as kube-proxy skips them.
 * `previous` is the record this object replaces, when there is one: lists of
 * addresses that did not change are taken from it (the same strings).
 */
export function convertService(obj: unknown, previous?: ServiceInfo): ServiceInfo | null {
  const r = metaOf("Service", obj, true);
  const { o, annotations, rv } = r;
  const name = r.name!, namespace = r.namespace!;
  const spec = r.obj(o.spec, "spec")!;
  const type = r.oneOf(spec.type, "spec.type", SERVICE_TYPES, "ClusterIP");
  if (type === "ExternalName") return null;
  let rawIPs = r.arr(spec.clusterIPs, "spec.clusterIPs");
  let single = false;
  if (rawIPs.length === 0) {
    const ip = r.str(spec.clusterIP, "spec.clusterIP");
    rawIPs = ip ? [ip] : [];
    single = true;
  }
  if (rawIPs.length === 0 || rawIPs[0] === "None") return null;
  const clusterIPs = sameTexts(previous?.clusterIPs, rawIPs)
    ? previous!.clusterIPs
    : rawIPs.map((ip, i) => r.ip(ip, single ? "spec.clusterIP" : `spec.clusterIPs[${i}]`));
  const ipFamilies = clusterIPs === previous?.clusterIPs
    ? previous.ipFamilies
    : familiesOf(clusterIPs);

  const rawPorts = r.arr(spec.ports, "spec.ports");
  const ports: ServicePortInfo[] = new Array(rawPorts.length);
  for (let i = 0; i < rawPorts.length; i++) {
    // The field's path, made only for an error.
    const f = (rest: string) => `spec.ports[${i}]${rest}`;
    const p = rawPorts[i];
    const po = isObj(p) ? p : r.obj(p, f(""))!;
    const portName = optStr(po.name) ?? r.str(po.name, f(".name")) ?? "";
    for (let j = 0; j < i; j++) {
      if (ports[j].name === portName) r.fail(f(".name"), `duplicate port name ${show(portName)}`);
    }
    const port = isPort(po.port) ? po.port : r.port(po.port, f(".port"));
    let targetPort: number | string = port;
    const tp = po.targetPort;
    if (typeof tp === "string" && tp !== "") {
      targetPort = /^\d+$/.test(tp) ? r.port(Number(tp), f(".targetPort")) : tp;
    } else if (tp !== undefined && tp !== null && tp !== 0 && tp !== "") {
      targetPort = r.port(tp, f(".targetPort"));
    }
    const protocol = po.protocol === "TCP"
      ? "TCP"
      : r.oneOf(po.protocol, f(".protocol"), PROTOCOLS, "TCP") as Protocol;
    if (typeof targetPort === "string") targetPort = intern(targetPort);
    const nodePort = po.nodePort === undefined ? undefined : r.optPort(po.nodePort, f(".nodePort"));
    ports[i] = nodePort === undefined
      ? { name: intern(portName), protocol, port, targetPort }
      : { name: intern(portName), protocol, port, targetPort, nodePort };
  }

  const rawExternal = r.arr(spec.externalIPs, "spec.externalIPs");
  const externalIPs: readonly string[] = rawExternal.length === 0
    ? EMPTY
    : sameTexts(previous?.externalIPs, rawExternal)
    ? previous!.externalIPs
    : rawExternal.map((ip, i) => r.ip(ip, `spec.externalIPs[${i}]`));
  const status = r.obj(o.status, "status", true);
  const lb = status ? r.obj(status.loadBalancer, "status.loadBalancer", true) : undefined;
  const rawIngress = r.arr(lb?.ingress, "status.loadBalancer.ingress");
  const ingress: IngressInfo[] = [];
  for (let i = 0; i < rawIngress.length; i++) {
    const f = `status.loadBalancer.ingress[${i}]`;
    const io = r.obj(rawIngress[i], f)!;
    if (io.ip === undefined || io.ip === null || io.ip === "") continue; // hostname-only
    const entry: IngressInfo = { ip: r.ip(io.ip, `${f}.ip`) };
    if (io.ipMode !== undefined && io.ipMode !== null) {
      entry.ipMode = r.oneOf(io.ipMode, `${f}.ipMode`, IP_MODES, "VIP");
    }
    ingress.push(entry);
  }
  const rawRanges = r.arr(spec.loadBalancerSourceRanges, "spec.loadBalancerSourceRanges");
  const loadBalancerSourceRanges: readonly string[] = rawRanges.length === 0
    ? EMPTY
    : rawRanges.map((c, i) => r.cidr(c, `spec.loadBalancerSourceRanges[${i}]`));

  const sessionAffinity = r.oneOf(
    spec.sessionAffinity,
    "spec.sessionAffinity",
    SESSION_AFFINITIES,
    "None",
  );
  const info: ServiceInfo = {
    namespace: intern(namespace),
    name,
    resourceVersion: rv,
    type,
    clusterIPs,
    ipFamilies,
    ports: sharedPorts(ports),
    externalIPs: shared(externalIPs),
    ingress: shared(ingress),
    loadBalancerSourceRanges: shared(loadBalancerSourceRanges),
    externalTrafficPolicy: r.oneOf(
      spec.externalTrafficPolicy,
      "spec.externalTrafficPolicy",
      POLICIES,
      "Cluster",
    ),
    internalTrafficPolicy: r.oneOf(
      spec.internalTrafficPolicy,
      "spec.internalTrafficPolicy",
      POLICIES,
      "Cluster",
    ),
    sessionAffinity,
    preserveDestination: annotations[ANNOTATION_PRESERVE_DESTINATION] === "true",
  };
  if (sessionAffinity === "ClientIP") {
    const cfg = r.obj(spec.sessionAffinityConfig, "spec.sessionAffinityConfig", true);
    const ci = cfg ? r.obj(cfg.clientIP, "spec.sessionAffinityConfig.clientIP", true) : undefined;
    const t = ci?.timeoutSeconds ?? 10800;
    if (!Number.isInteger(t) || (t as number) < 1 || (t as number) > 86400) {
      r.fail(
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        `must be an integer in 1..86400, got ${show(t)}`,
      );
    }
    info.sessionAffinityTimeoutSeconds = t as number;
  }
  const hc = r.optPort(spec.healthCheckNodePort, "spec.healthCheckNodePort");
  if (hc !== undefined) info.healthCheckNodePort = hc;
  const td = r.str(spec.trafficDistribution, "spec.trafficDistribution");
  if (td) info.trafficDistribution = intern(td);
  return info;
}

/**
 * The endpoints of the record an EndpointSlice replaces, found by address:
 * at the same position first (an update usually keeps the order), else
 * through an index built on the first miss.
 */
class PreviousEndpoints {
  #byAddress?: Map<string, number>;
  constructor(readonly list: EndpointList) {}

  /** The index of the previous endpoint whose address is `address` (the text as listed), or -1. */
  find(address: unknown, at: number): number {
    const list = this.list;
    if (at < list.length && list.address(at) === address) return at;
    if (typeof address !== "string") return -1;
    if (!this.#byAddress) {
      this.#byAddress = new Map();
      for (let i = 0; i < list.length; i++) {
        const a = list.address(i);
        if (!this.#byAddress.has(a)) this.#byAddress.set(a, i);
      }
    }
    return this.#byAddress.get(address) ?? -1;
  }
}

/** The canonical text of `v` when it is an address of `family`; undefined otherwise. */
function addressOf(v: unknown, family: IpFamily): string | undefined {
  if (typeof v !== "string") return undefined;
  const ip = canonicalIp(v);
  // Canonical IPv6 text always holds a colon, canonical IPv4 text never does.
  return ip !== undefined && (ip.includes(":") ? "IPv6" : "IPv4") === family ? ip : undefined;
}

/** A condition's value: `dflt` when unset, undefined when not a boolean. */
function flag(v: unknown, dflt: boolean): boolean | undefined {
  if (v === undefined || v === null) return dflt;
  return typeof v === "boolean" ? v : undefined;
}

/** An optional string field: undefined when unset or not a string (the caller checks which). */
function optStr(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/**
 * Converts `endpoints[i]` of a slice into `cells` (its hint zones into
 * `hints`, returned, made on the first endpoint that has some). Field paths
 * are built only on the way to an error (endpoints are the most numerous
 * objects converted). An address that stayed is the previous record's string.
 */
function convertEndpoint(
  e: unknown,
  i: number,
  r: Reader,
  family: IpFamily,
  before: PreviousEndpoints | undefined,
  cells: EndpointCell[],
  hints: (readonly string[] | undefined)[] | undefined,
  count: number,
): (readonly string[] | undefined)[] | undefined {
  const eo = isObj(e) ? e : r.obj(e, `endpoints[${i}]`)!;
  const addresses = eo.addresses;
  if (!Array.isArray(addresses) || addresses.length === 0) {
    r.arr(addresses, `endpoints[${i}].addresses`);
    r.fail(`endpoints[${i}].addresses`, "must hold at least one address");
  }
  const rawAddress = addresses[0];
  const prev = before === undefined ? -1 : before.find(rawAddress, i);
  const address = (prev >= 0 ? before!.list.address(prev) : undefined) ??
    addressOf(rawAddress, family) ?? r.ip(rawAddress, `endpoints[${i}].addresses[0]`, family);

  const c = eo.conditions;
  const cond = c === undefined || c === null
    ? NO_FIELDS
    : isObj(c)
    ? c
    : r.obj(c, `endpoints[${i}].conditions`)!;
  const ready = flag(cond.ready, true) ??
    r.fail(`endpoints[${i}].conditions.ready`, `must be true or false, got ${show(cond.ready)}`);
  const serving = flag(cond.serving, ready) ??
    r.fail(
      `endpoints[${i}].conditions.serving`,
      `must be true or false, got ${show(cond.serving)}`,
    );
  const terminating = flag(cond.terminating, false) ??
    r.fail(
      `endpoints[${i}].conditions.terminating`,
      `must be true or false, got ${show(cond.terminating)}`,
    );
  const nodeName = optStr(eo.nodeName) ?? r.str(eo.nodeName, `endpoints[${i}].nodeName`);
  const hintsObj = eo.hints === undefined || eo.hints === null
    ? undefined
    : r.obj(eo.hints, `endpoints[${i}].hints`, true);
  if (hintsObj) {
    const f = `endpoints[${i}]`;
    const zones = r.arr(hintsObj.forZones, `${f}.hints.forZones`).map((z, j) => {
      const zf = `${f}.hints.forZones[${j}]`;
      const zn = r.str(r.obj(z, zf)!.name, `${zf}.name`);
      return zn ? intern(zn) : r.fail(`${zf}.name`, "missing");
    });
    if (zones.length > 0) {
      const kept = prev >= 0 ? before!.list.hintZones(prev) : undefined;
      (hints ??= new Array(count).fill(undefined))[i] = sameTexts(kept, zones) ? kept : zones;
    }
  }
  EndpointList.pack(
    cells,
    i,
    address,
    ready,
    serving,
    terminating,
    nodeName ? intern(nodeName) : undefined,
  );
  return hints;
}

/**
 * Converts an EndpointSlice. Returns `null` for FQDN slices. Ports without a
 * number are dropped (the API allows them; they carry no traffic).
 *
 * `previous` is the record this object replaces, when there is one: an
 * address that stayed is the same string, and endpoints that all stayed as
 * they were are the previous list itself, so that an update leaves the
 * store, and the state built from it, sharing what they shared.
 */
export function convertEndpointSlice(
  obj: unknown,
  previous?: EndpointSliceInfo,
): EndpointSliceInfo | null {
  const r = metaOf("EndpointSlice", obj, true);
  const { o, labels, annotations, rv } = r;
  const name = r.name!, namespace = r.namespace!;
  const serviceName = r.str(labels[LABEL_SERVICE_NAME], SERVICE_NAME_FIELD);
  if (!serviceName) r.fail(SERVICE_NAME_FIELD, "missing");
  const addressType = r.str(o.addressType, "addressType");
  if (!addressType) r.fail("addressType", "missing");
  if (addressType === "FQDN") return null;
  if (addressType !== "IPv4" && addressType !== "IPv6") {
    r.fail("addressType", `must be one of IPv4, IPv6, FQDN, got ${show(addressType)}`);
  }
  const family = addressType as IpFamily;

  const ports: EndpointPortInfo[] = [];
  const rawPorts = r.arr(o.ports, "ports");
  for (let i = 0; i < rawPorts.length; i++) {
    const p = rawPorts[i];
    const po = isObj(p) ? p : r.obj(p, `ports[${i}]`)!;
    if (po.port === undefined || po.port === null) continue;
    ports.push({
      name: intern(optStr(po.name) ?? r.str(po.name, `ports[${i}].name`) ?? ""),
      port: isPort(po.port) ? po.port : r.port(po.port, `ports[${i}].port`),
      protocol: po.protocol === "TCP"
        ? "TCP"
        : r.oneOf(po.protocol, `ports[${i}].protocol`, PROTOCOLS, "TCP") as Protocol,
    });
  }

  const raw = r.arr(o.endpoints, "endpoints");
  const before = previous?.addressType === family && previous.endpoints.length > 0
    ? new PreviousEndpoints(previous.endpoints)
    : undefined;
  const cells: EndpointCell[] = new Array(raw.length * ENDPOINT_CELLS);
  let hints: (readonly string[] | undefined)[] | undefined;
  for (let i = 0; i < raw.length; i++) {
    hints = convertEndpoint(raw[i], i, r, family, before, cells, hints, raw.length);
  }
  const endpoints = raw.length === 0
    ? EndpointList.EMPTY
    : before !== undefined && sameEndpoints(before.list, cells, hints)
    ? before.list
    : new EndpointList(cells, hints);

  // The trigger time only feeds a metric: an unparsable one is ignored.
  const trigger = Date.parse(String(annotations[ANNOTATION_TRIGGER_TIME] ?? ""));
  const ns = intern(namespace);
  // The service name is not interned: most services have one slice, so a
  // table entry per service would cost more than the copies it saves.
  const svc = serviceName!;
  const sharedPortList = sharedPorts(ports);
  // One literal per shape: a property added later would take a second
  // allocation per slice.
  return Number.isFinite(trigger)
    ? {
      namespace: ns,
      name,
      serviceName: svc,
      resourceVersion: rv,
      addressType: family,
      ports: sharedPortList,
      endpoints,
      triggerTimeMs: trigger,
    }
    : {
      namespace: ns,
      name,
      serviceName: svc,
      resourceVersion: rv,
      addressType: family,
      ports: sharedPortList,
      endpoints,
    };
}

/** Whether packed `cells` and `hints` hold exactly the endpoints of `list`. */
function sameEndpoints(
  list: EndpointList,
  cells: readonly EndpointCell[],
  hints: readonly (readonly string[] | undefined)[] | undefined,
): boolean {
  const was = list.cells;
  if (was.length !== cells.length) return false;
  for (let i = 0; i < cells.length; i++) if (was[i] !== cells[i]) return false;
  const had = list.hints;
  if (had === undefined || hints === undefined) return had === hints;
  for (let i = 0; i < hints.length; i++) if (had[i] !== hints[i]) return false;
  return true;
}

/** Converts a Node. InternalIPs come with the first address of each family first. */
export function convertNode(obj: unknown): NodeInfo {
  const r = metaOf("Node", obj, false);
  const { o, labels, rv } = r;
  const name = r.name!;
  const spec = r.obj(o.spec, "spec", true) ?? {};
  const { internalIPs, podCIDRs } = nodeAddresses(o, r);
  const info: NodeInfo = { name, internalIPs, podCIDRs, resourceVersion: rv };
  const zone = r.str(labels[LABEL_ZONE], `metadata.labels[${LABEL_ZONE}]`);
  if (zone) info.zone = zone;
  const meta = r.obj(o.metadata, "metadata")!;
  const deletion = r.str(meta.deletionTimestamp, "metadata.deletionTimestamp");
  if (deletion) info.deletionTimestamp = deletion;
  const taints: NodeTaint[] = [];
  r.arr(spec.taints, "spec.taints").forEach((t, i) => {
    const f = `spec.taints[${i}]`;
    const to = r.obj(t, f)!;
    const key = r.str(to.key, `${f}.key`) || r.fail(`${f}.key`, "missing");
    const taint: NodeTaint = { key };
    const value = r.str(to.value, `${f}.value`);
    if (value) taint.value = value;
    const effect = r.str(to.effect, `${f}.effect`);
    if (effect) taint.effect = effect;
    taints.push(taint);
  });
  if (taints.length > 0) info.taints = taints;
  return info;
}

/**
 * Converts any Node into its {@linkcode NodePlacement}: name, pod CIDRs and
 * InternalIPs; every other field is left unread (and so cannot make it
 * malformed). Throws {@linkcode ConvertError} naming the node and the field.
 */
export function convertNodePlacement(obj: unknown): NodePlacement {
  const r = metaOf("Node", obj, false);
  const name = r.name!, o = r.o;
  return { name, ...nodeAddresses(o, r) };
}

/** A node's InternalIPs (first of each family first) and pod CIDRs (`spec.podCIDRs`, else `spec.podCIDR`). */
function nodeAddresses(
  o: Record<string, unknown>,
  r: Reader,
): { internalIPs: string[]; podCIDRs: string[] } {
  const spec = r.obj(o.spec, "spec", true) ?? {};
  const status = r.obj(o.status, "status", true) ?? {};
  const internal: string[] = [];
  r.arr(status.addresses, "status.addresses").forEach((a, i) => {
    const f = `status.addresses[${i}]`;
    const ao = r.obj(a, f)!;
    if (ao.type === "InternalIP") internal.push(r.ip(ao.address, `${f}.address`));
  });
  const firsts: string[] = [];
  for (const fam of ["IPv4", "IPv6"] as const) {
    const first = internal.find((ip) => ipFamilyOf(ip) === fam);
    if (first !== undefined) firsts.push(first);
  }
  firsts.sort((a, b) => internal.indexOf(a) - internal.indexOf(b));
  const internalIPs = [...firsts, ...internal.filter((ip) => !firsts.includes(ip))];
  let cidrs = r.arr(spec.podCIDRs, "spec.podCIDRs");
  let cidrField = "spec.podCIDRs";
  if (cidrs.length === 0 && spec.podCIDR) {
    cidrs = [spec.podCIDR];
    cidrField = "spec.podCIDR";
  }
  const podCIDRs = cidrs.map((c, i) =>
    r.cidr(c, cidrField === "spec.podCIDR" ? cidrField : `${cidrField}[${i}]`)
  );
  return { internalIPs, podCIDRs };
}
