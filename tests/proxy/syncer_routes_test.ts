/**
 * The syncer follows the overlay network's RemoteSubnetRoute policies as the
 * CNI changes them (in-memory HNS, HcnModifyNetwork in hcsshim's request
 * form): a waiting pod asks for a rate-limited read, the resync re-reads
 * them, each read is one call through the network's handle kept open, and a
 * failed read reopens it.
 */

import assert from "node:assert/strict";
import { createHnsClient } from "../../lib/hns/client.ts";
import { HResult } from "../../lib/hns/errors.ts";
import { delegateHcnApi } from "../../lib/hns/delegate.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import type { HcnApi, HcnHandle, HcnKind } from "../../lib/hns/types.ts";
import { convertEndpointSlice, convertService } from "../../lib/kube/convert.ts";
import { OwnershipRecord } from "../../lib/proxy/ownership.ts";
import { MIN_READ_INTERVAL_MS } from "../../lib/proxy/placement_waits.ts";
import { LISTING_ALIGN_MS } from "../../lib/proxy/resync.ts";
import { Syncer } from "../../lib/proxy/syncer.ts";
import { modifyNetworkPolicies, remoteSubnetRoute } from "../agent/hns_tool.ts";
import {
  type EndpointSpec,
  manualClock,
  NODE,
  OVERLAY_NET,
  OVERLAY_SETTINGS,
  overlayHns,
  serviceObject,
  sliceObject,
  SOURCE_VIP,
} from "../agent/fixtures.ts";
import { RecordingLogger } from "../kube/helpers.ts";
import { overlaySyncerOptions, syncedNodeStore } from "./syncer_fixtures.ts";

/** Holds back the answer of the next network Query (read before the hold) until released. */
class QueryHold {
  #held: { issued: () => void; released: Promise<void> } | undefined;
  /** Hold the next network Query's answer; resolves `issued` once it was read. */
  hold(): { issued: Promise<void>; release: () => void } {
    let issued!: () => void, release!: () => void;
    const issuedP = new Promise<void>((r) => (issued = r));
    const released = new Promise<void>((r) => (release = r));
    this.#held = { issued, released };
    return { issued: issuedP, release };
  }
  wrap(api: MemoryHcnApi): HcnApi {
    return delegateHcnApi(api, {
      query: async (kind: HcnKind, handle: HcnHandle, q: string) => {
        const answer = await api.query(kind, handle, q);
        const held = kind === "Network" ? this.#held : undefined;
        if (held) {
          this.#held = undefined;
          held.issued();
          await held.released;
        }
        return answer;
      },
    });
  }
}

function node(options: { inBackground?: boolean } = {}) {
  const api = new MemoryHcnApi({ state: overlayHns() });
  const queries = new QueryHold();
  const store = syncedNodeStore();
  const clock = manualClock();
  const logger = new RecordingLogger();
  const syncer = new Syncer({
    ...overlaySyncerOptions({
      client: createHnsClient(queries.wrap(api)),
      cluster: store,
      ownership: OwnershipRecord.inMemory(),
      clock,
      api,
    }),
    settings: { ...OVERLAY_SETTINGS, clusterCidrs: ["10.244.0.0/16"] },
    syncPeriodMs: 3_600_000,
    logger,
    resyncInBackground: options.inBackground ?? false,
  });
  const web = (endpoints: EndpointSpec[]) => {
    store.upsertService(
      convertService(
        serviceObject("web", { clusterIP: "10.96.0.10", ports: [{ port: 80, targetPort: 8080 }] }),
      )!,
    );
    store.upsertSlice(convertEndpointSlice(sliceObject("web", endpoints, { port: 8080 }))!);
  };
  /** The CNI changes the network's routes (HcnModifyNetwork, request form). */
  const modifyRoutes = (requestType: "Add" | "Remove", prefix: string, pa: string) =>
    modifyNetworkPolicies(api, OVERLAY_NET, requestType, [remoteSubnetRoute(prefix, pa)]);
  const pa = (ip: string) =>
    api.dump().Endpoints.find((e) => e.IpConfigurations?.[0]?.IpAddress === ip)?.Policies?.find(
      (p) => p.Type === "ProviderAddress",
    )?.Settings?.ProviderAddress;
  const calls = () => ({ ...api.callCounts() });
  return { api, queries, store, clock, logger, syncer, web, modifyRoutes, pa, calls };
}

/** HNS calls made between two `calls()` snapshots, by function, zeros left out. */
function delta(before: Record<string, number>, after: Record<string, number>) {
  const out: Record<string, number> = {};
  for (const [fn, n] of Object.entries(after)) {
    if (n !== (before[fn] ?? 0)) out[fn] = n - (before[fn] ?? 0);
  }
  return out;
}

const BASE: EndpointSpec[] = [{ ip: "10.244.1.5", node: NODE }, {
  ip: "10.244.2.7",
  node: "node-2",
}];

Deno.test("syncer/routes: a waiting pod reads the routes (one call, rate-limited); a route added meanwhile places it", async () => {
  const n = node();
  n.web(BASE);
  await n.syncer.sync();
  assert.equal(n.api.openHandles(), 1, "the network's handle, kept open");

  n.web([...BASE, { ip: "10.244.4.7", node: "node-4" }]);
  let before = n.calls();
  const first = await n.syncer.sync();
  assert.deepEqual(
    delta(before, n.calls()).HcnQueryNetworkProperties,
    1,
    "the new waiting pod asked for one read in its own run",
  );
  assert.equal(n.pa("10.244.4.7"), undefined, "waits");
  assert.equal(n.syncer.waitingPlacement, 1);
  assert.ok(first.next.retryAfterMs !== undefined, "another read is scheduled");

  // The CNI adds node-4's route; nothing happens before the rate limit allows a read.
  await n.modifyRoutes("Add", "10.244.4.0/24", "192.168.1.14");
  n.clock.t += 100;
  before = n.calls();
  await n.syncer.sync();
  assert.deepEqual(delta(before, n.calls()), {}, "no HNS call before the backoff is due");
  n.clock.t += MIN_READ_INTERVAL_MS * 2;
  before = n.calls();
  await n.syncer.sync();
  const spent = delta(before, n.calls());
  assert.equal(spent.HcnQueryNetworkProperties, 1);
  // Creates open and close the network themselves; the kept handle is neither reopened nor closed.
  assert.equal(
    spent.HcnOpenNetwork ?? 0,
    spent.HcnCloseNetwork ?? 0,
    "through the handle kept open",
  );
  assert.equal(n.api.openHandles(), 1);
  assert.equal(n.pa("10.244.4.7"), "192.168.1.14");
  assert.equal(n.syncer.waitingPlacement, 0);
  for (const lb of n.api.dump().LoadBalancers) assert.equal(lb.SourceVIP, SOURCE_VIP);

  await n.syncer.close();
  assert.equal(n.api.openHandles(), 0);
});

Deno.test("syncer/routes: the resync re-reads the routes; a changed route replaces the endpoint; a failed read reopens the network", async () => {
  const n = node();
  n.web(BASE);
  await n.syncer.sync();
  const id = () =>
    n.api.dump().Endpoints.find((e) => e.IpConfigurations?.[0]?.IpAddress === "10.244.2.7")?.ID;
  const oldId = id();

  await n.modifyRoutes("Remove", "10.244.2.0/24", "192.168.1.12");
  await n.modifyRoutes("Add", "10.244.2.0/24", "192.168.1.22");
  n.api.failCall("HcnQueryNetworkProperties", 1, HResult.MANAGER_STOPPED);
  n.clock.t += 3_600_000;
  await n.syncer.sync();
  assert.equal(n.pa("10.244.2.7"), "192.168.1.12", "the read failed: the old route holds");
  assert.ok(n.logger.lines.some((l) => l.message.includes("Cannot read the HNS network's routes")));
  assert.equal(n.api.openHandles(), 0, "the failed handle was closed");

  n.clock.t += 3_600_000;
  const before = n.calls();
  await n.syncer.sync();
  const spent = delta(before, n.calls());
  assert.equal((spent.HcnOpenNetwork ?? 0) - (spent.HcnCloseNetwork ?? 0), 1, "reopened, kept");
  assert.equal(n.pa("10.244.2.7"), "192.168.1.22");
  assert.notEqual(id(), oldId, "replaced");
  assert.equal(n.api.openHandles(), 1);
  await n.syncer.close();
  assert.equal(n.api.openHandles(), 0);
});

Deno.test("syncer/routes: a background resync's routes, read before a run read newer ones, are not taken", async () => {
  const n = node({ inBackground: true });
  n.web(BASE);
  await n.syncer.sync();
  n.clock.t += 3_600_000 + LISTING_ALIGN_MS;
  // This run starts the background listing as it ends; its routes read is held back.
  const held = n.queries.hold();
  const due = await n.syncer.sync();
  await held.issued;
  // Meanwhile the CNI moves node-2's subnet, and a waiting pod makes a run read the routes.
  await n.modifyRoutes("Remove", "10.244.2.0/24", "192.168.1.12");
  await n.modifyRoutes("Add", "10.244.2.0/24", "192.168.1.22");
  n.web([...BASE, { ip: "10.244.4.7", node: "node-4" }]);
  const running = n.syncer.sync();
  await new Promise((r) => setTimeout(r, 10));
  held.release();
  await running;
  assert.equal(n.pa("10.244.2.7"), "192.168.1.22", "the run's read is taken");
  await due.next.listingArrived;
  await n.syncer.sync();
  assert.equal(n.pa("10.244.2.7"), "192.168.1.22", "the listing's older routes are not");
  await n.syncer.listingSettled();
  await n.syncer.close();
  assert.equal(n.api.openHandles(), 0);
});
