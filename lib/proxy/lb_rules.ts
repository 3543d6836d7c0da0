/**
 * The load balancers one service port gets in one IP family, as kube-proxy's
 * winkernel proxier builds them: one entry per kind, saying which VIPs and
 * port it serves, which endpoints it forwards to, its flags, and its
 * SourceVIP on overlay networks. desired.ts applies the entries in this
 * order; within a service the first LB of a key wins (a later one of another
 * kind gets a `DuplicateLoadBalancer` warning).
 *
 * Every kind is programmed only when it has backends. IPv6 LBs also get
 * LoadBalancerFlags.IPv6, added by the caller.
 *
 * @module
 */

import { LoadBalancerFlags, PortMappingFlags } from "../hns/types.ts";
import type { LbKind } from "./model.ts";

/** The service's traffic settings the rules read (DSR already checked against HNS). */
export interface ServicePolicy {
  /** HNS supports DSR. */
  dsr: boolean;
  /** `--enable-dsr`: DSR on ClusterIP LBs. */
  enableDSR: boolean;
  /** externalTrafficPolicy Local. */
  etpLocal: boolean;
  /** internalTrafficPolicy Local. */
  itpLocal: boolean;
  /** The `preserve-destination` annotation, in effect only with DSR. */
  preserveDip: boolean;
}

/** Which endpoints a load balancer forwards to. */
export type Backends =
  /** The service's usable endpoints, filtered by topology hints. */
  | "all"
  /** The usable endpoints on this node. */
  | "local"
  /** The host endpoint named by `rootHnsEndpointName`. */
  | "rootHostEndpoint";

/** The rules of one kind of load balancer. */
export interface LbRule {
  /** The kind. */
  readonly kind: LbKind;
  /**
   * Its frontend VIPs, one LB each: the family's cluster IP, none (NodePort),
   * each external IP, or each load-balancer ingress IP of the family.
   */
  readonly vips: "clusterIP" | "none" | "externalIPs" | "ingressIPs";
  /**
   * Its external port: the service port, the node port, or the health-check
   * port (healthCheckNodePort, else the proxy's healthz port). A kind whose
   * port the service does not have is not programmed.
   */
  readonly port: "service" | "nodePort" | "healthCheck";
  /** `service`: the service port's protocol; `tcp`: always TCP. */
  readonly protocol: "service" | "tcp";
  /** Which endpoints it forwards to. */
  backends(p: ServicePolicy): Backends;
  /** When set, programmed only while this endpoint subset has a ready (not only terminating) endpoint. */
  readyIn?(p: ServicePolicy): Backends;
  /** LoadBalancerFlags (DSR). */
  flags(p: ServicePolicy): number;
  /** PortMappingFlags. */
  portMappingFlags(p: ServicePolicy): number;
  /** Whether ClientIP session affinity applies (DistributionType SourceIP). */
  readonly affinity: boolean;
  /**
   * SourceVIP on overlay: `followBackends` is the node IP when a backend is a
   * "public" IP or a node IP (as kube-proxy), else `--source-vip`;
   * `sourceVip` is always `--source-vip`.
   */
  readonly sourceVip: "followBackends" | "sourceVip";
  /** One LB serves all the service's ports: a second one of the same key is skipped silently. */
  readonly perService?: boolean;
}

const DSR = LoadBalancerFlags.DSR;
const NONE = LoadBalancerFlags.None;
const PRESERVE_DIP = PortMappingFlags.UseMux | PortMappingFlags.PreserveDIP;

/** External traffic: local endpoints with externalTrafficPolicy Local or preserve-destination. */
const externalBackends = (p: ServicePolicy): Backends =>
  p.etpLocal || p.preserveDip ? "local" : "all";

/** The rules, in the order they are applied to a service port. */
export const LB_RULES: readonly LbRule[] = [
  {
    kind: "clusterIP",
    vips: "clusterIP",
    port: "service",
    protocol: "service",
    backends: (p) => (p.itpLocal ? "local" : "all"),
    flags: (p) => (p.enableDSR && p.dsr ? DSR : NONE),
    portMappingFlags: () => PortMappingFlags.None,
    affinity: true,
    sourceVip: "followBackends",
  },
  {
    kind: "nodePort",
    vips: "none",
    port: "nodePort",
    protocol: "service",
    backends: externalBackends,
    flags: (p) => (p.etpLocal && p.dsr ? DSR : NONE),
    portMappingFlags: () => PortMappingFlags.LocalRoutedVIP | PortMappingFlags.VipExternalIP,
    affinity: true,
    sourceVip: "followBackends",
  },
  {
    kind: "externalIP",
    vips: "externalIPs",
    port: "service",
    protocol: "service",
    backends: (p) => (p.etpLocal ? "local" : "all"),
    flags: (p) => (p.etpLocal && p.dsr ? DSR : NONE),
    portMappingFlags: () => PortMappingFlags.VipExternalIP,
    affinity: true,
    sourceVip: "followBackends",
  },
  {
    kind: "ingress",
    vips: "ingressIPs",
    port: "service",
    protocol: "service",
    backends: externalBackends,
    flags: (p) => ((p.etpLocal || p.preserveDip) && p.dsr ? DSR : NONE),
    portMappingFlags: (p) => PortMappingFlags.VipExternalIP | (p.preserveDip ? PRESERVE_DIP : 0),
    affinity: true,
    sourceVip: "followBackends",
  },
  {
    // `forwardHealthCheckVip`: the cloud's probe of an ingress IP reaches the
    // node's health check. Always TCP since the check is HTTP (kube-proxy
    // reuses the service port's protocol). Only while the ingress LB has a
    // ready endpoint, so that a node with nothing ready fails the probe.
    kind: "healthCheck",
    vips: "ingressIPs",
    port: "healthCheck",
    protocol: "tcp",
    backends: () => "rootHostEndpoint",
    readyIn: externalBackends,
    flags: () => NONE,
    portMappingFlags: (p) => (p.preserveDip ? PRESERVE_DIP : 0),
    affinity: false,
    sourceVip: "sourceVip",
    perService: true,
  },
];
