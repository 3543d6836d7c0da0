/**
 * An in-memory HNS: {@link HcnApi} implemented in TypeScript with the rules of
 * the project's C emulator (tests/hns-emulator/store.c and hnsemu.c), so the
 * demo and the tests run with nothing but Deno and see what HNS would do:
 *
 * - IDs are assigned (upper-case GUIDs) when the given ID is zero; a given ID
 *   is honoured, and one already taken is `0x800700B7`.
 * - Settings must be JSON objects and queries JSON objects or empty (`0x803B001B`).
 * - Enumerate filters on `ID`, `Name` and, for endpoints, `VirtualNetwork` /
 *   `HostComputeNetwork` (strings compared without case); no match is `[]`.
 * - Endpoints need an open network handle (`0x80070006` for a bad handle,
 *   `0x803B0001` when its network is gone); an IP already used in the network
 *   is `0x800700B7`, an invalid one `0x803B001E`.
 * - Load balancers need one or more port mappings (`0x80070057`), existing
 *   endpoints (`0x803B0002`), and a (frontend VIP or none, protocol, external
 *   port) no other load balancer holds (`0x803B0013`). Modify needs HNS
 *   15.5–15.x or 16.0+ (else `0x80004001`) and follows the same rules.
 * - Below HNS 9.2 there is no HCN (v2) API: every call but HNSCall and Close
 *   is `0x80004001` (version 0.0, unreadable, keeps the API).
 * - Networks with endpoints and endpoints held by a load balancer cannot be
 *   deleted (`0x803B002C`).
 * - Not found: network `0x803B0001`, endpoint `0x803B0002`, LB `0x80070490`.
 * - Handles are counted; an unknown one is `0x80070006`.
 *
 * Failures are {@link HnsError}s built by the same code as on the FFI path,
 * from the same error record the emulator returns.
 *
 * @module
 */

import { HnsError, HResult } from "./errors.ts";
import { hcnFailure, hnsCallFailure, invalidGuidError } from "./ffi.ts";
import { isGuid, newGuid, normalizeGuid, ZERO_GUID } from "./guid.ts";
import { canonicalIp } from "../net/ip.ts";
import { allHcnFunctionNames, hcnFunctionName, HNS_CALL } from "./names.ts";
import { type IdListingData, idListingOfAnswer } from "./id_listing.ts";
import type {
  HcnApi,
  HcnEndpoint,
  HcnHandle,
  HcnKind,
  HcnLoadBalancer,
  HcnNetwork,
  HnsVersion,
} from "./types.ts";

/** Everything an in-memory HNS holds, in the emulator's state-file format. */
export interface MemoryHnsState {
  /** Networks, as HNS returns them. */
  Networks?: HcnNetwork[];
  /** Endpoints (local ones made by the CNI, remote ones made by a proxy). */
  Endpoints?: HcnEndpoint[];
  /** Load balancers. */
  LoadBalancers?: HcnLoadBalancer[];
}

/** Options of {@link MemoryHcnApi}. */
export interface MemoryHnsOptions {
  /** HNS version to report (default 15.5); 0.0 makes the version unreadable, as in the emulator. */
  version?: HnsVersion;
  /** Whether `HcnModifyLoadBalancer` is "exported" (default true). */
  hasModifyLoadBalancer?: boolean;
  /** Objects to start with (see {@link MemoryHcnApi.load}). */
  state?: MemoryHnsState;
}

type Doc = Record<string, unknown>;

interface Obj {
  kind: HcnKind;
  key: string;
  doc: Doc;
  /** Network: endpoints in it; endpoint: load balancers holding it. */
  refs: number;
  /** Endpoint: the network it is counted in. */
  netKey?: string;
  /** Endpoint: IP index keys; LB: frontend port keys. */
  idx: string[];
  /** LB: endpoints it holds. */
  epKeys: string[];
}

interface FailRule {
  fn: string;
  /** Calls until it fires; 0 fires on every call. */
  remaining: number;
  hresult: number;
}

/** The emulator's messages for the HRESULTs it returns (hnsemu.c `hr_message`). */
const MESSAGES: Record<number, string> = {
  0x80004001: "Not implemented",
  0x80004003: "Invalid pointer",
  0x80004005: "Unspecified error",
  0x80070005: "Access is denied.",
  0x80070006: "The handle is invalid.",
  0x8007000d: "The data is invalid.",
  0x80070057: "The parameter is incorrect.",
  0x800700b7: "Cannot create a file when that file already exists.",
  0x80070490: "Element not found.",
  0x803b0001: "The network was not found.",
  0x803b0002: "The endpoint was not found.",
  0x803b000f: "The operation is not valid for a remote endpoint.",
  0x803b0013: "The specified port already exists.",
  0x803b001b: "The JSON document is invalid.",
  0x803b001e: "The IP address is invalid.",
  0x803b0020: "The HNS manager is stopped.",
  0x803b002c: "The object has references and cannot be deleted.",
  0x803b002f: "The address is invalid or reserved.",
};

/** The message HNS gives for an HRESULT. */
export function hresultMessage(hr: number): string {
  return MESSAGES[hr >>> 0] ?? "The operation failed.";
}

const NOT_FOUND: Record<HcnKind, number> = {
  Network: HResult.NETWORK_NOT_FOUND,
  Endpoint: HResult.ENDPOINT_NOT_FOUND,
  LoadBalancer: HResult.ERROR_NOT_FOUND,
};

/** A rule broken inside a call: becomes the call's HRESULT and error record. */
class Refusal {
  constructor(readonly hresult: number, readonly detail = "") {}
}

function refuse(hresult: number, detail?: string): never {
  throw new Refusal(hresult, detail);
}

/** The key under which `doc` holds `key`: exact first, then ASCII case-insensitive. */
function findKey(doc: Doc, key: string): string | undefined {
  if (Object.hasOwn(doc, key)) return key;
  const lower = key.toLowerCase();
  return Object.keys(doc).find((k) => k.toLowerCase() === lower);
}

function member(doc: unknown, key: string): unknown {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return undefined;
  const k = findKey(doc as Doc, key);
  return k === undefined ? undefined : (doc as Doc)[k];
}

/** Set a member in place (keeping its spelling) or append it. */
function setMember(doc: Doc, key: string, value: unknown): void {
  doc[findKey(doc, key) ?? key] = value;
}

/** Set a member in place, or add it as the first member. */
function setFirst(doc: Doc, key: string, value: unknown): Doc {
  const existing = findKey(doc, key);
  if (existing !== undefined) {
    doc[existing] = value;
    return doc;
  }
  return { [key]: value, ...doc };
}

function isAbsent(v: unknown): boolean {
  return v === undefined || v === null;
}

function isObject(v: unknown): v is Doc {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Parse an argument that must be a JSON object (or empty, when allowed). */
function parseArg(text: string, allowEmpty: boolean): Doc | undefined {
  if (text === "" && allowEmpty) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    refuse(HResult.INVALID_JSON, (err as Error).message);
  }
  if (!isObject(value)) refuse(HResult.INVALID_JSON, "not a JSON object");
  return value;
}

/** The index key of an ID: canonical GUID, else the upper-cased text. */
function idKey(id: string): string {
  return isGuid(id) ? normalizeGuid(id) : id.toUpperCase();
}

/** An integer member within [lo, hi]; absent is 0; anything else is E_INVALIDARG. */
function intField(obj: unknown, name: string, lo: number, hi: number): number | undefined {
  const v = member(obj, name);
  if (isAbsent(v)) return 0;
  return typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi ? v : undefined;
}

/**
 * The IP index keys of an endpoint. strict: bad input is refused (create);
 * otherwise skipped (loading a state file takes objects as they are).
 */
function endpointIpKeys(doc: Doc, netKey: string, strict: boolean): string[] {
  const cfgs = member(doc, "IpConfigurations");
  if (isAbsent(cfgs)) return [];
  if (!Array.isArray(cfgs)) return strict ? refuse(HResult.E_INVALIDARG) : [];
  const out: string[] = [];
  for (const c of cfgs) {
    if (!isObject(c)) {
      if (strict) refuse(HResult.E_INVALIDARG);
      continue;
    }
    const ip = member(c, "IpAddress");
    if (isAbsent(ip)) continue;
    const canon = typeof ip === "string" ? canonicalIp(ip) : undefined;
    if (canon === undefined) {
      if (strict) refuse(HResult.INVALID_IP);
      continue;
    }
    out.push(`${netKey}|${canon}`);
  }
  return out;
}

/** The frontend keys (VIP or "", protocol, external port) a load balancer claims. */
function lbPortKeys(doc: Doc, strict: boolean): string[] {
  const pms = member(doc, "PortMappings");
  if (!Array.isArray(pms) || pms.length === 0) return strict ? refuse(HResult.E_INVALIDARG) : [];
  const vips: string[] = [];
  const fv = member(doc, "FrontendVIPs");
  if (!isAbsent(fv)) {
    if (!Array.isArray(fv)) {
      if (strict) refuse(HResult.E_INVALIDARG);
    } else {
      for (const v of fv) {
        const canon = typeof v === "string" ? canonicalIp(v) : undefined;
        if (canon === undefined) {
          if (strict) refuse(HResult.INVALID_IP);
          continue;
        }
        vips.push(canon);
      }
    }
  }
  if (vips.length === 0) vips.push("");
  const out: string[] = [];
  for (const pm of pms) {
    const proto = isObject(pm) ? intField(pm, "Protocol", 0, 255) : undefined;
    const port = isObject(pm) ? intField(pm, "ExternalPort", 0, 65535) : undefined;
    if (proto === undefined || port === undefined) {
      if (strict) refuse(HResult.E_INVALIDARG);
      continue;
    }
    for (const vip of vips) out.push(`${vip}|${proto}|${port}`);
  }
  return out;
}

/**
 * The in-memory HNS. Besides {@link HcnApi} it has the emulator's control
 * surface (reset, version, failure injection, counters) and state load/dump.
 * Handles are numbers.
 */
export class MemoryHcnApi implements HcnApi {
  /** Whether `HcnModifyLoadBalancer` is present. */
  readonly hasModifyLoadBalancer: boolean;
  readonly #defaultVersion: HnsVersion;
  #version: HnsVersion;
  readonly #byId: Record<HcnKind, Map<string, Obj>> = {
    Network: new Map(),
    Endpoint: new Map(),
    LoadBalancer: new Map(),
  };
  /** `<network key>|<canonical ip>` → endpoint. */
  readonly #epIp = new Map<string, Obj>();
  /** `<canonical vip or empty>|<protocol>|<external port>` → load balancer. */
  readonly #lbPort = new Map<string, Obj>();
  readonly #handles = new Map<number, { kind: HcnKind; key: string }>();
  #nextHandle = 0x10000;
  readonly #calls = new Map<string, number>();
  #rules: FailRule[] = [];
  #disposed = false;

  /** An in-memory HNS; see {@link MemoryHnsOptions}. */
  constructor(options: MemoryHnsOptions = {}) {
    this.hasModifyLoadBalancer = options.hasModifyLoadBalancer ?? true;
    this.#defaultVersion = { ...(options.version ?? { major: 15, minor: 5 }) };
    this.#version = { ...this.#defaultVersion };
    if (options.state) this.load(options.state);
  }

  // ---- control surface (the emulator's HnsEmu* functions) ----

  /** Forget every object, handle, call count and injected failure; the version goes back to its default. */
  reset(): void {
    this.#clearStore();
    this.#handles.clear();
    this.#calls.clear();
    this.#rules = [];
    this.#version = { ...this.#defaultVersion };
  }

  /** Report HNS `major.minor` from now on; 0.0 makes the version unreadable. */
  setVersion(major: number, minor: number): void {
    this.#version = { major, minor };
  }

  /**
   * Make the `nth` call of C function `fn` from now fail with `hresult`
   * (once); `nth` 0 fails every call. Throws for an unknown function name.
   */
  failCall(fn: string, nth: number, hresult: number): void {
    const name = [...allHcnFunctionNames(), HNS_CALL].find((n) =>
      n.toLowerCase() === fn.toLowerCase()
    );
    if (!name) throw new TypeError(`unknown HCN function "${fn}"`);
    this.#rules.push({ fn: name, remaining: nth, hresult: hresult | 0 });
  }

  /** Drop every injected failure. */
  clearFailures(): void {
    this.#rules = [];
  }

  /** Handles opened or created and not yet closed. */
  openHandles(): number {
    return this.#handles.size;
  }

  /** Returned strings not yet freed: always 0 (JS strings need no freeing). */
  outstandingStrings(): number {
    return 0;
  }

  /** Calls of C function `fn` so far (failed ones included); without `fn`, all HCN calls. */
  callCount(fn?: string): number {
    if (fn === undefined) {
      let n = 0;
      for (const [name, c] of this.#calls) if (name !== HNS_CALL) n += c;
      return n;
    }
    return this.#calls.get(fn) ?? 0;
  }

  /** Calls of every C function so far, by name. */
  callCounts(): Record<string, number> {
    return Object.fromEntries(this.#calls);
  }

  /** Objects held of a kind. */
  objectCount(kind: HcnKind): number {
    return this.#byId[kind].size;
  }

  #clearStore(): void {
    for (const m of Object.values(this.#byId)) m.clear();
    this.#epIp.clear();
    this.#lbPort.clear();
  }

  /**
   * Replace the contents with `state`, as the emulator loads its state file:
   * objects are taken as they are (a malformed load balancer still loads),
   * missing IDs are assigned, GUID IDs upper-cased, duplicates dropped, and
   * references and indexes rebuilt. Handles stay as they were.
   * Throws a one-line `TypeError` when the document has the wrong shape.
   */
  load(state: MemoryHnsState): void {
    this.#clearStore();
    if (!isObject(state)) throw new TypeError("HNS state: the document is not a JSON object");
    const arrays: Array<[HcnKind, string]> = [
      ["Network", "Networks"],
      ["Endpoint", "Endpoints"],
      ["LoadBalancer", "LoadBalancers"],
    ];
    for (const [kind, name] of arrays) {
      const arr = member(state, name);
      if (isAbsent(arr)) continue;
      if (!Array.isArray(arr)) {
        this.#clearStore();
        throw new TypeError(`HNS state: "${name}" is not an array`);
      }
      arr.forEach((raw, i) => {
        if (!isObject(raw)) {
          this.#clearStore();
          throw new TypeError(`HNS state: ${name}[${i}] is not an object`);
        }
        let doc: Doc = structuredClone(raw);
        const id = member(doc, "ID");
        let key: string;
        if (typeof id !== "string" || id === "") {
          key = this.#freshKey(kind);
          doc = setFirst(doc, "ID", key);
        } else if (isGuid(id)) {
          key = normalizeGuid(id);
          doc = setFirst(doc, "ID", key);
        } else {
          key = idKey(id);
        }
        if (this.#byId[kind].has(key)) return; // the emulator drops duplicates too
        const obj: Obj = { kind, key, doc, refs: 0, idx: [], epKeys: [] };
        if (kind === "Endpoint") {
          let nv = member(doc, "HostComputeNetwork");
          if (typeof nv !== "string") nv = member(doc, "VirtualNetwork");
          const net = this.#byId.Network.get(idKey(typeof nv === "string" ? nv : ""));
          const netKey = net?.key ?? idKey(typeof nv === "string" ? nv : "");
          obj.idx = endpointIpKeys(doc, netKey, false);
          if (net) obj.netKey = net.key;
        } else if (kind === "LoadBalancer") {
          obj.idx = lbPortKeys(doc, false);
          obj.epKeys = this.#lbEndpointKeys(doc, false);
        }
        this.#link(obj);
      });
    }
  }

  /** Everything held, in the state-file format, each object as HNS returns it. */
  dump(): Required<MemoryHnsState> {
    const docs = <T>(kind: HcnKind) =>
      [...this.#byId[kind].values()].map((o) => structuredClone(o.doc) as T);
    return {
      Networks: docs<HcnNetwork>("Network"),
      Endpoints: docs<HcnEndpoint>("Endpoint"),
      LoadBalancers: docs<HcnLoadBalancer>("LoadBalancer"),
    };
  }

  // ---- store ----

  #freshKey(kind: HcnKind): string {
    let key = newGuid();
    while (this.#byId[kind].has(key)) key = newGuid();
    return key;
  }

  /** Add an object and take what it claims: index keys and references. */
  #link(obj: Obj): void {
    this.#byId[obj.kind].set(obj.key, obj);
    this.#attach(obj);
  }

  #attach(obj: Obj): void {
    const index = obj.kind === "Endpoint" ? this.#epIp : this.#lbPort;
    for (const k of obj.idx) if (!index.has(k)) index.set(k, obj);
    if (obj.netKey) {
      const net = this.#byId.Network.get(obj.netKey);
      if (net) net.refs++;
    }
    for (const k of obj.epKeys) {
      const ep = this.#byId.Endpoint.get(k);
      if (ep) ep.refs++;
    }
  }

  #detach(obj: Obj): void {
    const index = obj.kind === "Endpoint" ? this.#epIp : this.#lbPort;
    for (const k of obj.idx) if (index.get(k) === obj) index.delete(k);
    if (obj.netKey) {
      const net = this.#byId.Network.get(obj.netKey);
      if (net) net.refs--;
    }
    for (const k of obj.epKeys) {
      const ep = this.#byId.Endpoint.get(k);
      if (ep) ep.refs--;
    }
  }

  /** The endpoints a load balancer references; strict: each must exist. */
  #lbEndpointKeys(doc: Doc, strict: boolean): string[] {
    const eps = member(doc, "HostComputeEndpoints");
    if (isAbsent(eps)) return [];
    if (!Array.isArray(eps)) return strict ? refuse(HResult.E_INVALIDARG) : [];
    const out: string[] = [];
    for (const e of eps) {
      if (typeof e !== "string") {
        if (strict) refuse(HResult.E_INVALIDARG);
        continue;
      }
      const ep = this.#byId.Endpoint.get(idKey(e));
      if (!ep) {
        if (strict) refuse(HResult.ENDPOINT_NOT_FOUND);
        continue;
      }
      out.push(ep.key);
    }
    return out;
  }

  #checkFree(index: Map<string, Obj>, keys: string[], self: Obj | undefined, hr: number): void {
    for (const k of keys) {
      const holder = index.get(k);
      if (holder && holder !== self) refuse(hr);
    }
  }

  // ---- the call envelope ----

  /** Count the call, apply a due injected failure, run it, and turn refusals into HnsErrors. */
  #call<T>(
    fn: string,
    object: string | undefined,
    body: () => T,
    toError: (r: Refusal) => HnsError = (r) => this.#error(fn, r, object),
  ): Promise<T> {
    if (this.#disposed) {
      return Promise.reject(new Error(`HNS backend is closed; cannot call ${fn}`));
    }
    this.#calls.set(fn, (this.#calls.get(fn) ?? 0) + 1);
    let injected: number | undefined;
    this.#rules = this.#rules.filter((r) => {
      if (r.fn !== fn) return true;
      if (r.remaining === 0) {
        injected ??= r.hresult;
        return true;
      }
      if (--r.remaining === 0) {
        injected ??= r.hresult;
        return false;
      }
      return true;
    });
    try {
      if (injected !== undefined) refuse(injected);
      if (fn !== HNS_CALL && !fn.startsWith("HcnClose") && !v2ApiSupported(this.#version)) {
        refuse(HResult.E_NOTIMPL, "the HCN (v2) API needs HNS 9.2 or later");
      }
      return Promise.resolve(body());
    } catch (err) {
      if (err instanceof Refusal) return Promise.reject(toError(err));
      return Promise.reject(err);
    }
  }

  /** The HnsError the FFI path would build from the emulator's answer. */
  #error(fn: string, refusal: Refusal, object: string | undefined): HnsError {
    const message = hresultMessage(refusal.hresult) +
      (refusal.detail ? ` (${refusal.detail})` : "");
    if (fn.startsWith("HcnClose")) return hcnFailure(fn, refusal.hresult, undefined, object)!;
    const record = JSON.stringify({
      Success: false,
      Error: message,
      ErrorCode: refusal.hresult >>> 0,
    });
    return hcnFailure(fn, refusal.hresult, record, object)!;
  }

  #newHandle(kind: HcnKind, key: string): number {
    const h = this.#nextHandle;
    this.#nextHandle += 8;
    this.#handles.set(h, { kind, key });
    return h;
  }

  #findHandle(handle: HcnHandle, kind: HcnKind): { kind: HcnKind; key: string } | undefined {
    const h = typeof handle === "number" ? this.#handles.get(handle) : undefined;
    return h?.kind === kind ? h : undefined;
  }

  /** An ID argument as the canonical GUID (as the FFI path checks it before any call). */
  #guid(fn: string, id: string): string {
    if (id !== "" && !isGuid(id)) throw invalidGuidError(fn, id);
    return normalizeGuid(id);
  }

  // ---- HcnApi ----

  async enumerateIds(kind: HcnKind, query: string): Promise<IdListingData> {
    return idListingOfAnswer(kind, await this.enumerate(kind, query));
  }

  enumerate(kind: HcnKind, query: string): Promise<string> {
    return this.#call(hcnFunctionName("enumerate", kind), undefined, () => {
      const q = parseArg(query, true);
      let filter: Doc | undefined;
      const f = q ? member(q, "Filter") : undefined;
      if (typeof f === "string" && f !== "") {
        let parsed: unknown;
        try {
          parsed = JSON.parse(f);
        } catch (err) {
          refuse(HResult.INVALID_JSON, `Filter: ${(err as Error).message}`);
        }
        if (!isObject(parsed)) refuse(HResult.INVALID_JSON, "Filter: not a JSON object");
        filter = parsed;
      } else if (isObject(f)) {
        filter = f;
      } else if (f !== undefined && f !== null && typeof f !== "string") {
        refuse(HResult.INVALID_JSON, "Filter must be a string");
      }
      const ids: string[] = [];
      const fid = filter ? member(filter, "ID") : undefined;
      const candidates = typeof fid === "string"
        ? [this.#byId[kind].get(idKey(fid))].filter((o): o is Obj => o !== undefined)
        : this.#byId[kind].values();
      for (const o of candidates) {
        if (matches(o, filter)) {
          const id = member(o.doc, "ID");
          ids.push(typeof id === "string" ? id : o.key);
        }
      }
      return JSON.stringify(ids);
    });
  }

  open(kind: HcnKind, id: string): Promise<HcnHandle> {
    const fn = hcnFunctionName("open", kind);
    let key: string;
    try {
      key = this.#guid(fn, id);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#call(fn, id, () => {
      if (!this.#byId[kind].has(key)) refuse(NOT_FOUND[kind]);
      return this.#newHandle(kind, key);
    });
  }

  create(kind: HcnKind, id: string, settings: string, network?: HcnHandle): Promise<HcnHandle> {
    const fn = hcnFunctionName("create", kind);
    let given: string;
    try {
      given = this.#guid(fn, id);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#call(fn, id || undefined, () => {
      let net: Obj | undefined;
      if (kind === "Endpoint") {
        const nh = this.#findHandle(network, "Network");
        if (!nh) refuse(HResult.E_HANDLE);
        net = this.#byId.Network.get(nh.key);
      }
      let doc = parseArg(settings, false)!;
      if (kind === "Endpoint" && !net) refuse(HResult.NETWORK_NOT_FOUND);
      let key: string;
      if (given !== ZERO_GUID) {
        if (this.#byId[kind].has(given)) refuse(HResult.ERROR_ALREADY_EXISTS);
        key = given;
      } else {
        key = this.#freshKey(kind);
      }
      const obj: Obj = { kind, key, doc, refs: 0, idx: [], epKeys: [] };
      if (kind === "Endpoint") {
        obj.idx = endpointIpKeys(doc, net!.key, true);
        this.#checkFree(this.#epIp, obj.idx, undefined, HResult.ERROR_ALREADY_EXISTS);
        setMember(doc, "HostComputeNetwork", member(net!.doc, "ID") ?? null);
        obj.netKey = net!.key;
      } else if (kind === "LoadBalancer") {
        obj.idx = lbPortKeys(doc, true);
        obj.epKeys = this.#lbEndpointKeys(doc, true);
        this.#checkFree(this.#lbPort, obj.idx, undefined, HResult.PORT_ALREADY_EXISTS);
      }
      doc = setFirst(doc, "ID", key);
      obj.doc = doc;
      this.#link(obj);
      return this.#newHandle(kind, key);
    });
  }

  modify(kind: HcnKind, handle: HcnHandle, settings: string): Promise<void> {
    const fn = hcnFunctionName("modify", kind);
    if (kind === "LoadBalancer" && !this.hasModifyLoadBalancer) {
      return Promise.reject(
        new HnsError({
          hresult: HResult.E_NOTIMPL,
          operation: fn,
          hnsMessage: `the in-memory HNS does not export ${fn}`,
        }),
      );
    }
    return this.#call(fn, undefined, () => {
      if (kind === "LoadBalancer" && !modifyLoadBalancerSupported(this.#version)) {
        refuse(
          HResult.E_NOTIMPL,
          "in-place load balancer update needs HNS 15.5-15.x or 16.0+",
        );
      }
      const h = this.#findHandle(handle, kind);
      if (!h) refuse(HResult.E_HANDLE);
      const obj = this.#byId[kind].get(h.key);
      if (!obj) refuse(NOT_FOUND[kind]);
      const doc = parseArg(settings, false)!;
      if (kind === "LoadBalancer") this.#modifyLoadBalancer(obj, doc);
      else modifyPolicies(obj, doc);
    });
  }

  #modifyLoadBalancer(obj: Obj, settings: Doc): void {
    const idx = lbPortKeys(settings, true);
    const epKeys = this.#lbEndpointKeys(settings, true);
    this.#checkFree(this.#lbPort, idx, obj, HResult.PORT_ALREADY_EXISTS);
    this.#detach(obj);
    obj.doc = setFirst(settings, "ID", member(obj.doc, "ID") ?? null);
    obj.idx = idx;
    obj.epKeys = epKeys;
    this.#attach(obj);
  }

  query(kind: HcnKind, handle: HcnHandle, query: string): Promise<string> {
    return this.#call(hcnFunctionName("query", kind), undefined, () => {
      const h = this.#findHandle(handle, kind);
      if (!h) refuse(HResult.E_HANDLE);
      parseArg(query, true);
      const obj = this.#byId[kind].get(h.key);
      if (!obj) refuse(NOT_FOUND[kind]);
      return JSON.stringify(obj.doc);
    });
  }

  delete(kind: HcnKind, id: string): Promise<void> {
    const fn = hcnFunctionName("delete", kind);
    let key: string;
    try {
      key = this.#guid(fn, id);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#call(fn, id, () => {
      const obj = this.#byId[kind].get(key);
      if (!obj) refuse(NOT_FOUND[kind]);
      if (obj.refs > 0) refuse(HResult.ENTITY_HAS_REFERENCES);
      this.#detach(obj);
      this.#byId[kind].delete(key);
    });
  }

  close(kind: HcnKind, handle: HcnHandle): Promise<void> {
    return this.#call(hcnFunctionName("close", kind), undefined, () => {
      if (!this.#findHandle(handle, kind)) refuse(HResult.E_HANDLE);
      this.#handles.delete(handle as number);
    });
  }

  hnsCall(method: string, path: string, _request: string): Promise<string> {
    // HNSCall has no error record: the failure is described by the response document.
    const toError = (r: Refusal) =>
      hnsCallFailure(
        r.hresult,
        JSON.stringify({ Success: false, Error: hresultMessage(r.hresult) }),
        method,
        path,
      );
    return this.#call(HNS_CALL, `${method} ${path}`, () => {
      if (method.toUpperCase() !== "GET" || path.toLowerCase() !== "/globals/version") {
        refuse(HResult.E_NOTIMPL);
      }
      const { major, minor } = this.#version;
      // An HNS too old to report its version answers "not found".
      if (major === 0 && minor === 0) refuse(HResult.ERROR_NOT_FOUND);
      return JSON.stringify({ Success: true, Error: "", Output: { Major: major, Minor: minor } });
    }, toError);
  }

  /** No further calls; the state stays readable through {@link MemoryHcnApi.dump}. */
  dispose(): void {
    this.#disposed = true;
  }
}

/** hcsshim's V2ApiSupport (9.2+); 0.0, the unreadable version, keeps the API as the emulator does. */
function v2ApiSupported(v: HnsVersion): boolean {
  return (v.major === 0 && v.minor === 0) || v.major > 9 || (v.major === 9 && v.minor >= 2);
}

/** hcsshim's ModifyLoadbalancerVersion: 15.5–15.x and 16.0+. */
function modifyLoadBalancerSupported(v: HnsVersion): boolean {
  return (v.major === 15 && v.minor >= 5) || v.major >= 16;
}

/** Whether an object passes an Enumerate filter (unknown filter keys are ignored, as HNS does). */
function matches(o: Obj, filter: Doc | undefined): boolean {
  if (!filter) return true;
  for (const [key, want] of Object.entries(filter)) {
    const k = key.toLowerCase();
    let have: unknown;
    if (k === "id") have = member(o.doc, "ID");
    else if (k === "name") have = member(o.doc, "Name");
    else if (o.kind === "Endpoint" && (k === "virtualnetwork" || k === "hostcomputenetwork")) {
      have = member(o.doc, "HostComputeNetwork") ?? member(o.doc, "VirtualNetwork");
    } else continue;
    if (have === undefined) return false;
    if (typeof have === "string" && typeof want === "string") {
      if (have.toLowerCase() !== want.toLowerCase()) return false;
    } else if (JSON.stringify(have) !== JSON.stringify(want)) {
      return false;
    }
  }
  return true;
}

/**
 * Networks and endpoints: either `{"Policies":[...]}` (replace), or the
 * request form hcsshim sends: `{"ResourceType":"Policy","RequestType":
 * "Add|Remove|Update|Refresh","Settings":{"Policies":[...]}}`.
 */
function modifyPolicies(obj: Obj, settings: Doc): void {
  const req = member(settings, "RequestType");
  let policies: unknown;
  let mode = "update";
  if (!isAbsent(req)) {
    const res = member(settings, "ResourceType");
    if (!isAbsent(res) && (typeof res !== "string" || res.toLowerCase() !== "policy")) {
      refuse(HResult.E_NOTIMPL);
    }
    if (typeof req !== "string") refuse(HResult.E_INVALIDARG);
    mode = req.toLowerCase();
    policies = member(member(settings, "Settings"), "Policies");
  } else {
    policies = member(settings, "Policies");
  }
  if (!Array.isArray(policies)) refuse(HResult.E_INVALIDARG);
  let cur = member(obj.doc, "Policies");
  if (!Array.isArray(cur)) {
    cur = [];
    setMember(obj.doc, "Policies", cur);
  }
  const list = cur as unknown[];
  if (mode === "add") {
    for (const p of policies) list.push(structuredClone(p));
  } else if (mode === "remove") {
    for (const p of policies) {
      const at = list.findIndex((c) => JSON.stringify(c) === JSON.stringify(p));
      if (at >= 0) list.splice(at, 1);
    }
  } else if (mode === "update" || mode === "refresh") {
    setMember(obj.doc, "Policies", structuredClone(policies));
  } else {
    refuse(HResult.E_INVALIDARG);
  }
}
