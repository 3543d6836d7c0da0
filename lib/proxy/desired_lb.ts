/**
 * The record of a desired load balancer, made compact: the desired state
 * holds one per LB for as long as the LB is wanted, so its small numeric and
 * enumerated fields (kind, family, protocol, flags, port-mapping flags,
 * distribution type) share one packed integer read through accessors, and
 * every field is declared up front (no property added after construction).
 *
 * Values that do not fit the packing (none that the proxy makes today) give
 * a plain object instead, so a record always reads back what it was given.
 * Copy a record field by field (or through its `toJSON`), never by spread.
 *
 * @module
 */

import type { IpFamily } from "../kube/model.ts";
import type { DesiredLoadBalancer, EpKey, LbKey, LbKind } from "./model.ts";
import type { ObjectKey } from "../kube/model.ts";

const KINDS: readonly LbKind[] = ["clusterIP", "nodePort", "externalIP", "ingress", "healthCheck"];

// Bit layout of PackedLoadBalancer.#bits (24 bits: always a small integer).
const PROTOCOL_BITS = 8, FLAGS_BITS = 4, PMF_BITS = 6, DIST_BITS = 2;
const FLAGS_AT = PROTOCOL_BITS;
const PMF_AT = FLAGS_AT + FLAGS_BITS;
const DIST_AT = PMF_AT + PMF_BITS;
const FAMILY_AT = DIST_AT + DIST_BITS;
const KIND_AT = FAMILY_AT + 1;

const mask = (bits: number) => (1 << bits) - 1;
const fits = (v: number, bits: number) => Number.isInteger(v) && v >= 0 && v <= mask(bits);

/** A desired LB whose small fields share one packed integer. */
class PackedLoadBalancer implements DesiredLoadBalancer {
  readonly key: LbKey;
  readonly serviceKey: ObjectKey;
  readonly portName: string;
  readonly vip: string | undefined;
  readonly externalPort: number;
  readonly internalPort: number;
  readonly sourceVip: string | undefined;
  readonly backends: readonly EpKey[];
  readonly #bits: number;

  constructor(lb: DesiredLoadBalancer, bits: number) {
    this.key = lb.key;
    this.serviceKey = lb.serviceKey;
    this.portName = lb.portName;
    this.vip = lb.vip;
    this.externalPort = lb.externalPort;
    this.internalPort = lb.internalPort;
    this.sourceVip = lb.sourceVip;
    this.backends = lb.backends;
    this.#bits = bits;
  }

  get kind(): LbKind {
    return KINDS[this.#bits >>> KIND_AT];
  }

  get family(): IpFamily {
    return (this.#bits >>> FAMILY_AT) & 1 ? "IPv6" : "IPv4";
  }

  get protocol(): number {
    return this.#bits & mask(PROTOCOL_BITS);
  }

  get flags(): number {
    return (this.#bits >>> FLAGS_AT) & mask(FLAGS_BITS);
  }

  get portMappingFlags(): number {
    return (this.#bits >>> PMF_AT) & mask(PMF_BITS);
  }

  get distributionType(): number {
    return (this.#bits >>> DIST_AT) & mask(DIST_BITS);
  }

  /** The plain object of the same LB (as `JSON.stringify` shows it). */
  toJSON(): DesiredLoadBalancer {
    return plainLoadBalancer(this);
  }
}

/** A plain-object copy of `lb`, fields in their usual order, optional ones only when set. */
export function plainLoadBalancer(lb: DesiredLoadBalancer): DesiredLoadBalancer {
  const out: DesiredLoadBalancer = {
    key: lb.key,
    kind: lb.kind,
    serviceKey: lb.serviceKey,
    portName: lb.portName,
    family: lb.family,
    protocol: lb.protocol,
    externalPort: lb.externalPort,
    internalPort: lb.internalPort,
    flags: lb.flags,
    portMappingFlags: lb.portMappingFlags,
    distributionType: lb.distributionType,
    backends: lb.backends,
  };
  if (lb.vip !== undefined) out.vip = lb.vip;
  if (lb.sourceVip !== undefined) out.sourceVip = lb.sourceVip;
  return out;
}

/**
 * The record the desired state keeps for `lb`: packed when its small fields
 * fit, else a plain object. Reads back field for field as `lb`.
 */
export function desiredLoadBalancer(lb: DesiredLoadBalancer): DesiredLoadBalancer {
  const kind = KINDS.indexOf(lb.kind);
  if (
    kind < 0 || !fits(lb.protocol, PROTOCOL_BITS) || !fits(lb.flags, FLAGS_BITS) ||
    !fits(lb.portMappingFlags, PMF_BITS) || !fits(lb.distributionType, DIST_BITS) ||
    (lb.family !== "IPv4" && lb.family !== "IPv6")
  ) {
    return plainLoadBalancer(lb);
  }
  const bits = lb.protocol | (lb.flags << FLAGS_AT) | (lb.portMappingFlags << PMF_AT) |
    (lb.distributionType << DIST_AT) | ((lb.family === "IPv6" ? 1 : 0) << FAMILY_AT) |
    (kind << KIND_AT);
  return new PackedLoadBalancer(lb, bits);
}
