/**
 * Content verification: read HNS back and check that every expected load
 * balancer exists once with all its service's backends, and that there are
 * as many as expected. Runs in the agent host (where the emulated HNS is),
 * outside the measured window; a mismatch is a correctness failure.
 *
 * @module
 */

import { createHnsClient } from "../lib/hns/client.ts";
import type { HcnApi } from "../lib/hns/types.ts";
import { lbIdentity } from "./probe.ts";
import {
  clusterIpOf,
  endpointsOf,
  type ExpectedHns,
  nodePortOf,
  type ScenarioSpec,
  SERVICE_PORT,
} from "./scenario.ts";

/**
 * The failures found in what `api` holds, each prefixed with `label`;
 * `extraBackends` counts endpoints added to a service during the run.
 */
export async function contentFailures(
  api: HcnApi,
  spec: ScenarioSpec,
  expected: ExpectedHns,
  label: string,
  extraBackends: ReadonlyMap<number, number> = new Map(),
): Promise<string[]> {
  const failures: string[] = [];
  const client = createHnsClient(api, { listConcurrency: 8 });
  const lbs = await client.listLoadBalancers();
  const endpoints = await client.listEndpoints();
  const ipById = new Map<string, string>();
  for (const ep of endpoints) {
    const ip = ep.IpConfigurations?.[0]?.IpAddress;
    if (ep.ID && ip) ipById.set(ep.ID.toUpperCase(), ip);
  }
  const byIdentity = new Map<string, string[]>();
  for (const lb of lbs) {
    const id = lbIdentity(lb.FrontendVIPs?.[0], lb.PortMappings?.[0]?.ExternalPort ?? 0);
    if (byIdentity.has(id)) {
      failures.push(`${label}: two load balancers for ${id}`);
      continue;
    }
    byIdentity.set(
      id,
      (lb.HostComputeEndpoints ?? []).map((e) => ipById.get(e.toUpperCase()) ?? `?${e}`).sort(),
    );
  }
  let bad = 0;
  for (let i = 0; i < spec.services; i++) {
    const want = endpointsOf(spec, i).map((e) => e.ip);
    const ids = [lbIdentity(clusterIpOf(i), SERVICE_PORT)];
    const np = nodePortOf(spec, i);
    if (np !== undefined) ids.push(lbIdentity(undefined, np));
    for (const id of ids) {
      const got = byIdentity.get(id);
      const extra = extraBackends.get(i) ?? 0;
      if (!got || got.length !== want.length + extra || !want.every((ip) => got.includes(ip))) {
        if (bad++ < 3) {
          failures.push(
            `${label}: LB ${id} of service ${i} has backends ${JSON.stringify(got)}, want ${
              JSON.stringify(want)
            }${extra ? ` plus ${extra} added` : ""}`,
          );
        }
      }
    }
  }
  if (bad > 3) failures.push(`${label}: ${bad} load balancers wrong in all`);
  if (lbs.length !== expected.loadBalancers) {
    failures.push(`${label}: ${lbs.length} load balancers, want ${expected.loadBalancers}`);
  }
  return failures;
}
