/**
 * Scenario 7: kube-proxy's HNS calls for the benchmark's scenarios, from the
 * pure model of its documented behaviour (lib/demo/kube_proxy_model.ts), for
 * the same generated cluster: cold start, one endpoint added to one service,
 * the periodic sync, and a restart with nothing changed.
 *
 * @module
 */

import { type CallCounts, summarizeCalls } from "../lib/demo/calls.ts";
import {
  kubeProxyCalls,
  type KubeProxyModelOptions,
  type KubeProxyServicePort,
} from "../lib/demo/kube_proxy_model.ts";
import {
  endpointsOf,
  extraEndpoint,
  localEndpointIps,
  nodePortOf,
  type ScenarioSpec,
  serviceKey,
} from "./scenario.ts";

/** kube-proxy's calls per scenario, by C function. */
export interface KubeProxyCalls {
  /** Start with empty HNS (except the CNI's endpoints) and program everything. */
  coldStart: CallCounts;
  /** One endpoint added to one ClusterIP-only service (LBs deleted and re-created). */
  incremental: CallCounts;
  /** The same with in-place LB updates (newer kube-proxy on HNS 15.5+). */
  incrementalModify: CallCounts;
  /** One endpoint added to one service that is also NodePort. */
  incrementalNodePort: CallCounts;
  /** The periodic sync with nothing changed. */
  periodic: CallCounts;
  /** A restart with the cluster unchanged. */
  restart: CallCounts;
}

function servicePort(spec: ScenarioSpec, i: number, extra = 0): KubeProxyServicePort {
  const remotes = endpointsOf(spec, i).filter((e) => !e.local).map((e) => e.ip);
  for (let k = 0; k < extra; k++) remotes.push(extraEndpoint(1_000_000 + i * 10 + k).ip);
  return {
    id: `${serviceKey(spec, i)}:http/TCP/IPv4`,
    loadBalancers: nodePortOf(spec, i) !== undefined ? 2 : 1,
    remoteEndpoints: remotes,
  };
}

/** The model's calls for `spec`; see the module notes. */
export function kubeProxyModelCalls(spec: ScenarioSpec): KubeProxyCalls {
  const options: KubeProxyModelOptions = {
    overlay: false,
    existingEndpoints: localEndpointIps(spec),
  };
  const ports = Array.from({ length: spec.services }, (_, i) => servicePort(spec, i));
  // Service 1 is ClusterIP only, service 0 also NodePort (every fifth is).
  const clusterOnly = 1;
  const withNodePort = 0;
  const changed = (i: number) => {
    const next = [...ports];
    next[i] = servicePort(spec, i, 1);
    return { kind: "sync" as const, servicePorts: next, changed: [next[i].id] };
  };
  const run = (opts: KubeProxyModelOptions, i: number) =>
    kubeProxyCalls(opts, [{ kind: "start", servicePorts: ports }, changed(i)]);
  const base = kubeProxyCalls(options, [
    { kind: "start", servicePorts: ports },
    { kind: "periodic" },
    { kind: "start", servicePorts: ports },
  ]);
  return {
    coldStart: base[0].calls,
    periodic: base[1].calls,
    restart: base[2].calls,
    incremental: run(options, clusterOnly)[1].calls,
    incrementalModify: run({ ...options, modifyLoadBalancer: true }, clusterOnly)[1].calls,
    incrementalNodePort: run(options, withNodePort)[1].calls,
  };
}

/** Reads, writes and total of a tally (re-exported for the report). */
export { summarizeCalls };
