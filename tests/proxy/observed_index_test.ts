/**
 * The observed cache's index lookups (what a partial reconcile uses instead
 * of scanning) must answer as `indexObserved` does over the same state, and
 * reconcile must give the same plan from the cache as from a plain state.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { HcnEndpoint, HcnLoadBalancer } from "../../lib/hns/types.ts";
import type { EndpointSliceInfo, ServiceInfo } from "../../lib/kube/model.ts";
import { desiredState } from "../../lib/proxy/desired.ts";
import type { ObservedLoadBalancer, ObservedState, OwnedIds } from "../../lib/proxy/model.ts";
import { idKey, ObservedCache } from "../../lib/proxy/observed.ts";
import { adoptObserved, indexObserved, reconcile } from "../../lib/proxy/reconcile.ts";
import {
  ALL_FEATURES,
  ctx,
  emptyObserved,
  ep,
  NO_MODIFY_FEATURES,
  overlayCtx,
  simulate,
  slice,
  svc,
  view,
} from "./core_fixtures.ts";
import { prng } from "../prng.ts";

const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];

const EP_IDS = ["EP-1", "ep-2", "EP-3", "EP-4", "EP-5"];
const LB_IDS = ["LB-1", "LB-2", "lb-3", "LB-4", "LB-5", "LB-6"];
const LB_KEYS = ["lb/tcp/10.96.0.1:80", "lb/tcp/10.96.0.2:80", "lb/udp/nodeport:30053"];
const SERVICES = ["default/a", "default/b", undefined];

/** A random LB; one ID always has one key, as in HNS (the key is the LB's identity). */
function randomLb(rand: () => number, stray = false): ObservedLoadBalancer {
  const id = pick(rand, LB_IDS);
  const key = stray ? "stray" : LB_KEYS[LB_IDS.indexOf(id) % LB_KEYS.length];
  const refs = EP_IDS.filter(() => rand() < 0.4).map((x) => rand() < 0.5 ? x.toLowerCase() : x);
  const hns = { ID: id, HostComputeEndpoints: refs } as unknown as HcnLoadBalancer;
  const lb: ObservedLoadBalancer = { key, id, hns };
  const serviceKey = pick(rand, SERVICES);
  if (serviceKey !== undefined) lb.serviceKey = serviceKey;
  return lb;
}

function randomEndpoint(rand: () => number) {
  const id = pick(rand, EP_IDS);
  return { key: `ep/remote/10.244.2.${id.slice(3)}`, id, hns: { ID: id } as HcnEndpoint };
}

/** The cache's state as plain maps (copied, objects shared). */
function stateOf(cache: ObservedCache): ObservedState {
  return {
    loadBalancers: new Map(cache.loadBalancers),
    endpoints: new Map(cache.endpoints),
    foreignLoadBalancers: new Map(cache.foreignLoadBalancers),
    foreignEndpoints: new Map(cache.foreignEndpoints),
    strayLoadBalancers: new Map(cache.strayLoadBalancers),
    strayEndpoints: new Map(cache.strayEndpoints),
  };
}

/** The cache's answers and a fresh index's answers, for every ID and service. */
function assertSameIndex(cache: ObservedCache, label: string): void {
  const plain = indexObserved(stateOf(cache));
  const sorted = (xs: Iterable<string>) => [...xs].sort();
  for (const id of [...EP_IDS, ...EP_IDS.map((x) => x.toLowerCase())]) {
    assert.deepEqual(
      sorted(cache.loadBalancersReferencing(id)),
      sorted(plain.loadBalancersReferencing(id)),
      `${label}: LBs referencing ${id}`,
    );
    for (const stray of [false, true]) {
      assert.equal(
        cache.referencedByOthers(id, stray),
        plain.referencedByOthers(id, stray),
        `${label}: ${id} referenced by others (stray ${stray})`,
      );
    }
    assert.equal(cache.ownedEndpointById(id), plain.ownedEndpointById(id), `${label}: ${id}`);
    assert.equal(
      cache.endpointReferenced(id),
      plain.loadBalancersReferencing(id)[Symbol.iterator]().next().done === false,
    );
  }
  for (const s of ["default/a", "default/b"]) {
    assert.deepEqual(
      sorted(cache.loadBalancersOfService(s)),
      sorted(plain.loadBalancersOfService(s)),
      `${label}: LBs of ${s}`,
    );
  }
}

/** What vanished from a listing holding some of the IDs, against a scan of every object. */
function assertMissingFrom(cache: ObservedCache, rand: () => number, label: string): void {
  const listing = new Set(
    [...EP_IDS, ...LB_IDS, ...LB_IDS.map((x) => `STRAY-${x.slice(3)}`)].filter(() => rand() < 0.6)
      .map(idKey),
  );
  const snap = stateOf(cache);
  const ids = (xs: Iterable<{ id: string }>) => [...xs].map((x) => x.id).sort();
  const scan = <T extends { id: string }>(...maps: (ReadonlyMap<string, T> | undefined)[]) =>
    ids(
      maps.flatMap((m) => [...m?.values() ?? []]).filter((x) => !listing.has(idKey(x.id))),
    );
  assert.deepEqual(
    ids(cache.loadBalancersMissingFrom(listing)),
    scan(snap.loadBalancers, snap.foreignLoadBalancers, snap.strayLoadBalancers),
    `${label}: LBs missing`,
  );
  assert.deepEqual(
    ids(cache.endpointsMissingFrom(listing)),
    scan(snap.endpoints, snap.foreignEndpoints, snap.strayEndpoints),
    `${label}: endpoints missing`,
  );
}

Deno.test("ObservedCache index lookups follow every change (random sequences)", () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rand = prng(seed);
    const cache = new ObservedCache();
    for (let step = 0; step < 60; step++) {
      const r = rand();
      if (r < 0.3) cache.setLoadBalancer(randomLb(rand));
      else if (r < 0.45) cache.setForeignLoadBalancer(randomLb(rand));
      else if (r < 0.55) cache.removeLoadBalancerById(pick(rand, LB_IDS).toLowerCase());
      else if (r < 0.65) cache.setEndpoint(randomEndpoint(rand));
      else if (r < 0.72) cache.setForeignEndpoint(randomEndpoint(rand));
      else if (r < 0.8) cache.removeEndpointById(pick(rand, EP_IDS));
      else if (r < 0.87) {
        const lb = randomLb(rand);
        cache.adoptLoadBalancer(lb.key, lb.id, pick(rand, ["default/a", "default/b"]));
      } else if (r < 0.93) {
        // A fresh read with strays, as at start.
        // Stray IDs are never those of keyed objects (adoption puts an ID in one place).
        const keyed = randomLb(rand, true);
        const strayId = `STRAY-${keyed.id.slice(3)}`;
        const stray = { ...keyed, id: strayId, hns: { ...keyed.hns, ID: strayId } };
        const state: ObservedState = {
          ...stateOf(cache),
          strayLoadBalancers: new Map([[stray.id, { ...stray, key: `stray/${stray.id}` }]]),
        };
        cache.replace(state);
      } else if (r < 0.96) {
        cache.clear();
      } else {
        cache.adoptEndpoint(randomEndpoint(rand).key, pick(rand, EP_IDS));
      }
      assertSameIndex(cache, `seed ${seed}, step ${step}`);
      assertMissingFrom(cache, rand, `seed ${seed}, step ${step}`);
    }
  }
});

/** Two services sharing a pod, converged, then changed while the agent was down. */
function changedWorld(overlay: boolean) {
  const c = overlay ? overlayCtx() : ctx();
  const services: ServiceInfo[] = [
    svc({
      name: "a",
      clusterIPs: ["10.96.0.1"],
      type: "NodePort",
      ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: 8080, nodePort: 30001 }],
    }),
    svc({ name: "b", clusterIPs: ["10.96.0.2"] }),
    svc({ name: "c", clusterIPs: ["10.96.0.3"] }),
  ];
  const slices = (aEps: string[], bEps: string[]): EndpointSliceInfo[] => [
    slice(aEps.map((ip) => ep(ip)), { name: "a-1", serviceName: "a" }),
    slice(bEps.map((ip) => ep(ip)), { name: "b-1", serviceName: "b" }),
    slice([ep("10.244.3.1")], { name: "c-1", serviceName: "c" }),
  ];
  const before = desiredState(
    view(services, slices(["10.244.2.7"], ["10.244.2.7", "10.244.3.9"])),
    c,
  );
  const sim = simulate(
    undefined,
    reconcile(before, emptyObserved(), { features: ALL_FEATURES }),
    before,
  );
  // A foreign LB that references one of ours, and a stray.
  const foreign = {
    ID: "KP-1",
    HostComputeEndpoints: [sim.observed.endpoints.get("ep/remote/10.244.3.9")!.id],
    FrontendVIPs: ["10.96.9.9"],
    PortMappings: [{ Protocol: 6, InternalPort: 1, ExternalPort: 1 }],
  } as HcnLoadBalancer;
  const stray = { ID: "OWN-BROKEN", HostComputeEndpoints: [] } as unknown as HcnLoadBalancer;
  // b is gone (minus c), a moved to another pod.
  const after = desiredState(
    view([services[0], services[2]], slices(["10.244.2.8"], [])),
    c,
  );
  const owned: OwnedIds = {
    loadBalancers: [...sim.lbs.keys(), "OWN-BROKEN"],
    endpoints: [...sim.eps.keys()],
  };
  const adoption = adoptObserved(
    [...sim.lbs.values(), foreign, stray],
    [...sim.eps.values()],
    owned,
    after,
  );
  return { desired: after, observed: adoption.observed };
}

Deno.test("reconcile: the same plan from the observed cache as from a plain observed state", () => {
  for (const overlay of [false, true]) {
    const { desired, observed } = changedWorld(overlay);
    const cache = new ObservedCache(observed);
    for (const features of [ALL_FEATURES, NO_MODIFY_FEATURES]) {
      const dirtySets = [
        undefined,
        new Set(["default/a"]),
        new Set(["default/b"]),
        new Set(["default/a", "default/b"]),
        new Set(["default/c"]),
      ];
      for (const dirty of dirtySets) {
        const opts = dirty ? { features, dirty } : { features };
        const plain = reconcile(desired, observed, opts);
        assert.deepEqual(
          reconcile(desired, cache, opts),
          plain,
          `overlay ${overlay}, ${[...dirty ?? ["full"]]}`,
        );
      }
    }
    assert.ok(reconcile(desired, cache, { features: ALL_FEATURES }).ops.length > 0);
  }
});
