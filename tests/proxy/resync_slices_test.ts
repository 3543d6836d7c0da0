/**
 * The background resync compares its listing in slices while runs change
 * the state between them. Whatever changes in between, the run that takes
 * the result must find exactly what a comparison against a copy of the IDs
 * known when the listing started finds (the former design), and the
 * journals must tell exactly which IDs were known then.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { HcnEndpoint, HcnLoadBalancer, HnsClient } from "../../lib/hns/types.ts";
import { nullLogger } from "../../lib/log/types.ts";
import { IdListing } from "../../lib/hns/id_listing.ts";
import { IdJournal } from "../../lib/proxy/id_journal.ts";
import { LocalEndpoints } from "../../lib/proxy/local_endpoints.ts";
import type { ObservedEndpoint, ObservedLoadBalancer } from "../../lib/proxy/model.ts";
import { idKey, ObservedCache } from "../../lib/proxy/observed.ts";
import { OwnershipRecord } from "../../lib/proxy/ownership.ts";
import {
  findCandidates,
  type IdMark,
  markKnownIds,
  type Pacer,
  Resync,
  type Vanished,
  vanishedFrom,
} from "../../lib/proxy/resync.ts";
import { ctx } from "./core_fixtures.ts";
import { handedOver } from "../hns/handed_over.ts";
import { prng } from "../prng.ts";

Deno.test("id journal: tells which IDs were held at the mark, over random add/remove sequences", () => {
  for (let seed = 1; seed <= 200; seed++) {
    const rand = prng(seed);
    const held = new Set<string>();
    for (let i = 0; i < 8; i++) if (rand() < 0.5) held.add(`ID-${i}`);
    const atMark = new Set(held);
    const journal = new IdJournal();
    for (let step = 0; step < 30; step++) {
      const id = `ID-${Math.floor(rand() * 10)}`;
      if (held.has(id)) {
        held.delete(id);
        journal.removed(id);
      } else {
        held.add(id);
        journal.added(id);
      }
    }
    for (let i = 0; i < 10; i++) {
      const id = `ID-${i}`;
      assert.equal(journal.heldAtMark(id, held.has(id)), atMark.has(id), `seed ${seed}, ${id}`);
      assert.equal(journal.forgotten(id), atMark.has(id) && !held.has(id), `seed ${seed}, ${id}`);
    }
  }
});

/** HNS as far as the comparison cares: the IDs it holds. */
interface World {
  rand: () => number;
  cache: ObservedCache;
  record: OwnershipRecord;
  local: LocalEndpoints;
  hnsLbs: Set<string>;
  hnsEps: Set<string>;
  next: number;
}

const lbOf = (id: string, key: string, serviceKey?: string): ObservedLoadBalancer => ({
  key,
  id,
  hns: { ID: id, HostComputeEndpoints: [] } as unknown as HcnLoadBalancer,
  ...(serviceKey ? { serviceKey } : {}),
});
const epOf = (id: string, key: string): ObservedEndpoint => ({
  key,
  id,
  hns: { ID: id } as HcnEndpoint,
});

/** A new GUID-like ID, in upper or (sometimes) lower case as HNS may spell it. */
function newId(w: World, prefix: string): string {
  const id = `${prefix}-${(w.next++).toString(16).padStart(4, "0")}-ABCD`;
  return w.rand() < 0.2 ? id.toLowerCase() : id;
}

/** One change a run (or HNS, or CNI) may make while the listing is compared. */
async function mutate(w: World): Promise<void> {
  const r = w.rand();
  const cachedLbs = [...w.cache.idKeys("LoadBalancer")];
  const cachedEps = [...w.cache.idKeys("Endpoint")];
  const pick = (xs: string[]) => xs[Math.floor(w.rand() * xs.length)];
  if (r < 0.2) {
    // A run creates an LB (listed in the record first).
    const id = newId(w, "LB");
    w.record.add({ kind: "LoadBalancer", id, key: `lb/${id}` });
    w.cache.setLoadBalancer(lbOf(id, `lb/${id}`, "default/a"));
    w.hnsLbs.add(idKey(id));
  } else if (r < 0.35) {
    const id = newId(w, "EP");
    w.record.add({ kind: "Endpoint", id, key: `ep/${id}` });
    w.cache.setEndpoint(epOf(id, `ep/${id}`));
    w.hnsEps.add(idKey(id));
  } else if (r < 0.45 && cachedLbs.length > 0) {
    // A run deletes an LB.
    const id = pick(cachedLbs);
    w.cache.removeLoadBalancerById(id);
    w.record.remove(id);
    w.hnsLbs.delete(id);
  } else if (r < 0.55 && cachedEps.length > 0) {
    const id = pick(cachedEps);
    w.cache.removeEndpointById(id);
    w.record.remove(id);
    w.hnsEps.delete(id);
  } else if (r < 0.65 && cachedLbs.length > 0) {
    // Someone deletes an LB out of band: HNS only.
    w.hnsLbs.delete(pick(cachedLbs));
  } else if (r < 0.72 && cachedEps.length > 0) {
    w.hnsEps.delete(pick(cachedEps));
  } else if (r < 0.8) {
    // Others create a remote endpoint, and a run learns of it.
    const id = newId(w, "EP");
    w.hnsEps.add(idKey(id));
    w.cache.setForeignEndpoint(epOf(id, `ep/foreign/${id}`));
  } else if (r < 0.88) {
    // CNI creates an endpoint and a run's lookup classifies it (a known ID).
    const id = newId(w, "EP");
    w.hnsEps.add(idKey(id));
    await w.local.refresh(ctx(), undefined, new Set([idKey(id)]), true);
  } else if (r < 0.94 && cachedLbs.length > 0) {
    // A run modifies an LB in place (same ID).
    const id = pick(cachedLbs);
    const lb = w.cache.loadBalancerById(id);
    if (lb && w.cache.ownsLoadBalancer(lb)) {
      w.cache.setLoadBalancer({ key: lb.key, id: lb.id, serviceKey: lb.serviceKey, hns: lb.hns });
    }
  } else if (cachedLbs.length > 0) {
    // A foreign LB is adopted... or replaced under its key by another.
    const id = newId(w, "LB");
    w.hnsLbs.add(idKey(id));
    w.cache.setForeignLoadBalancer(lbOf(id, `lb/foreign/${w.next % 3}`));
  }
}

function world(seed: number): World {
  const rand = prng(seed);
  const noLookups = {
    getEndpoint: () => Promise.resolve(undefined),
  } as unknown as HnsClient;
  const cache = new ObservedCache();
  const record = OwnershipRecord.inMemory();
  const local = new LocalEndpoints({
    client: noLookups,
    ownership: record,
    observed: cache,
    clock: { now: () => 0 },
    logger: nullLogger,
  });
  const w: World = {
    rand,
    cache,
    record,
    local,
    hnsLbs: new Set(),
    hnsEps: new Set(),
    next: 1,
  };
  // Strays and CNI endpoints known from the start.
  const strays = new Map<string, ObservedLoadBalancer>();
  for (let i = 0; i < 3; i++) {
    const id = newId(w, "LB");
    strays.set(id, lbOf(id, "stray"));
    w.hnsLbs.add(idKey(id));
  }
  cache.replace({
    loadBalancers: new Map(),
    endpoints: new Map(),
    foreignLoadBalancers: new Map(),
    foreignEndpoints: new Map(),
    strayLoadBalancers: strays,
    strayEndpoints: new Map(),
  });
  const cni: string[] = [];
  for (let i = 0; i < 4; i++) {
    const id = newId(w, "EP");
    cni.push(id);
    w.hnsEps.add(idKey(id));
  }
  local.restart(cni);
  return w;
}

/** The IDs known now, as the former design copied them. */
function knownNow(w: World): Set<string> {
  const out = w.cache.ids();
  for (const id of w.local.knownIds()) out.add(id);
  return out;
}

const ids = (v: Vanished) => ({
  loadBalancers: v.loadBalancers.map((x) => idKey(x.id)).sort(),
  endpoints: v.endpoints.map((x) => idKey(x.id)).sort(),
  others: v.others.map((x) => `${x.kind} ${idKey(x.id)}`).sort(),
  ownedIds: v.ownedIds.map(idKey).sort(),
});

Deno.test("background resync: a comparison in slices finds exactly what vanished, whatever runs change between slices", async () => {
  for (let seed = 1; seed <= 150; seed++) {
    const w = world(seed);
    for (let i = 0; i < 25; i++) await mutate(w);
    // The listing starts: the IDs known now are marked, HNS's IDs are listed.
    const before = knownNow(w);
    const mark: IdMark = markKnownIds(w.cache, w.local, []);
    // As HNS threads hand listings over (IdListing), or as plain sets.
    const listing = (ids: Set<string>) => seed % 2 ? IdListing.of(ids) : new Set(ids);
    const lbIds = listing(w.hnsLbs);
    const epIds = listing(w.hnsEps);
    // Runs go on while the listing is in flight and while it is compared in slices.
    const inFlight = Math.floor(w.rand() * 6);
    for (let i = 0; i < inFlight; i++) await mutate(w);
    const pacer: Pacer = {
      step: () => (w.rand() < 0.15 ? mutate(w) : undefined),
    };
    const candidates = await findCandidates(lbIds, epIds, mark, {
      observed: w.cache,
      ownership: w.record,
      knownIds: () => w.local.knownIds(),
      knows: (id) => w.local.knows(id),
    }, pacer);
    // And after, until the run that compares.
    const after = Math.floor(w.rand() * 3);
    for (let i = 0; i < after; i++) await mutate(w);

    const universe = new Set([...before, ...knownNow(w), ...lbIds, ...epIds]);
    for (const id of universe) {
      assert.equal(mark.existed(id), before.has(id), `seed ${seed}: was ${id} known at the mark?`);
    }

    const sliced = vanishedFrom(lbIds, epIds, { mark, candidates }, w.cache, w.record);
    const full = vanishedFrom(lbIds, epIds, undefined, w.cache, w.record);
    const existedThen = <T extends { id: string }>(xs: T[]) =>
      xs.filter((x) => before.has(idKey(x.id)));
    const expected: Vanished = {
      loadBalancers: existedThen(full.loadBalancers),
      endpoints: existedThen(full.endpoints),
      others: existedThen(full.others),
      ownedIds: full.ownedIds.filter((id) => before.has(idKey(id))),
    };
    assert.deepEqual(ids(sliced), ids(expected), `seed ${seed}`);

    // What LocalEndpoints.refresh must look at is among the candidates.
    for (const id of w.local.knownIds()) {
      if (!epIds.has(id) && before.has(id)) {
        assert.ok(candidates.unlistedKnown.has(id), `seed ${seed}: known ${id} unlisted`);
      }
    }
    for (const id of epIds) {
      if (!w.local.knows(id) && !w.cache.hasId(id) && !before.has(id)) {
        assert.ok(candidates.unknownListed.has(id), `seed ${seed}: listed ${id} is new`);
      }
    }
    mark.end();
  }
});

Deno.test("background resync: the mark reads the node context's local endpoint IDs in paced slices, before the comparison asks", async () => {
  const w = world(3);
  const local = Array.from({ length: 1000 }, () => newId(w, "CNI"));
  let iterations = 0;
  const localIds = {
    *[Symbol.iterator]() {
      iterations++;
      yield* local;
    },
  };
  const mark = markKnownIds(w.cache, w.local, localIds);
  let steps = 0;
  await mark.prepare({ step: () => void steps++ });
  assert.ok(steps >= local.length, "one pacer step per local endpoint");
  for (const id of local) assert.equal(mark.existed(idKey(id)), true, id);
  assert.equal(mark.existed(idKey(newId(w, "CNI"))), false, "created since");
  assert.equal(iterations, 1, "read once, by prepare");
  mark.end();
});

Deno.test("background resync: the listings are read in paced slices that wait while a run is in flight", async () => {
  const w = world(4);
  const network = "0F3E4A1C-6B2D-4C8E-9A7F-1D2E3F4A5B6C";
  const epIds = Array.from({ length: 3000 }, () => crypto.randomUUID().toUpperCase());
  const answers = { LoadBalancer: handedOver("[]"), Endpoint: handedOver(JSON.stringify(epIds)) };
  const resync: Resync = new Resync({
    client: {
      listIds: (kind: "LoadBalancer" | "Endpoint", pace?: Pacer) => {
        // A change's run begins while HNS lists the endpoints.
        if (kind === "Endpoint") resync.runStarted();
        return IdListing.read(kind, answers[kind].answer, pace);
      },
    } as unknown as HnsClient,
    periodMs: 1000,
    clock: { now: () => 0 },
    logger: nullLogger,
    inBackground: true,
    networkIds: () => Promise.resolve([network]),
  });
  const settled = resync.start("cbr0", network, () => markKnownIds(w.cache, w.local, []), {
    observed: w.cache,
    ownership: w.record,
    knownIds: () => w.local.knownIds(),
    knows: (id) => w.local.knows(id),
  });
  assert.ok(settled);
  let done = false;
  settled.then(() => (done = true));
  for (let i = 0; i < 30; i++) await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(done, false, "the read waits for the run's end");
  assert.equal(answers.Endpoint.releases(), 0, "the answer is not read yet");
  resync.runEnded();
  await settled;
  assert.equal(answers.Endpoint.releases(), 1);
  assert.equal(answers.LoadBalancer.releases(), 1);
  const arrived = resync.take(network);
  assert.equal(arrived?.listing.epIds?.size, 3000);
  for (const id of epIds) assert.ok(arrived!.listing.epIds!.has(id), id);
  arrived?.since?.mark.end();
});
