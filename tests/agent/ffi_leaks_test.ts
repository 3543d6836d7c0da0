/**
 * The sync cycle over both HNS backends — the emulator library through FFI
 * and the in-memory HNS — with injected HNS failures: it converges, and
 * afterwards no handle is open, no returned string unfreed, no free invalid.
 * Then cleanup removes exactly what hnsproxy owns.
 */

import assert from "node:assert/strict";
import { createHnsClient } from "../../lib/hns/client.ts";
import { HResult } from "../../lib/hns/errors.ts";
import type { HcnApi } from "../../lib/hns/types.ts";
import { convertEndpointSlice, convertService } from "../../lib/kube/convert.ts";
import type { ClusterStore } from "../../lib/kube/store.ts";
import { cleanupOwned } from "../../lib/proxy/cleanup.ts";
import { OwnershipRecord } from "../../lib/proxy/ownership.ts";
import { Syncer } from "../../lib/proxy/syncer.ts";
import { backendTest } from "../hns/harness.ts";
import { overlaySyncerOptions, syncedNodeStore } from "../proxy/syncer_fixtures.ts";
import { manualClock, NODE, overlayHns, serviceObject, sliceObject } from "./fixtures.ts";

/** Create the overlay fixture's network and CNI endpoints through the API itself. */
async function seed(api: HcnApi): Promise<string> {
  const state = overlayHns();
  const { ID: _id, ...network } = state.Networks![0];
  const net = await api.create("Network", "", JSON.stringify(network));
  const netId = JSON.parse(await api.query("Network", net, "{}")).ID as string;
  for (const ep of state.Endpoints!) {
    const { ID: _epId, ...body } = ep;
    const h = await api.create(
      "Endpoint",
      "",
      JSON.stringify({ ...body, HostComputeNetwork: netId }),
      net,
    );
    await api.close("Endpoint", h);
  }
  // A load balancer of someone else, which must survive everything.
  const foreign = await api.create(
    "LoadBalancer",
    "",
    JSON.stringify({
      HostComputeEndpoints: [],
      FrontendVIPs: ["10.99.0.1"],
      PortMappings: [{ Protocol: 6, InternalPort: 1, ExternalPort: 1 }],
    }),
  );
  const foreignId = JSON.parse(await api.query("LoadBalancer", foreign, "{}")).ID as string;
  await api.close("LoadBalancer", foreign);
  await api.close("Network", net);
  return foreignId;
}

function cluster(): ClusterStore {
  const store = syncedNodeStore();
  for (let i = 0; i < 5; i++) {
    store.upsertService(
      convertService(
        serviceObject(`svc-${i}`, { clusterIP: `10.96.0.${10 + i}`, ports: [{ port: 80 }] }),
      )!,
    );
    store.upsertSlice(
      convertEndpointSlice(sliceObject(`svc-${i}`, [
        { ip: "10.244.1.5", node: NODE },
        { ip: `10.244.2.${10 + i}`, node: "node-2" },
      ], { port: 80 }))!,
    );
  }
  return store;
}

backendTest(
  "sync converges through HNS failures without leaks; cleanup takes only ours",
  async (b) => {
    const foreignId = await seed(b.api);
    const client = createHnsClient(b.api);
    const clock = manualClock();
    const ownership = OwnershipRecord.inMemory();
    const syncer = new Syncer({
      ...overlaySyncerOptions({ client, cluster: cluster(), ownership, clock, api: b.api }),
      concurrency: 2,
    });
    const fail = HResult.MANAGER_STOPPED;
    b.control.failCall("HcnCreateEndpoint", 3, fail);
    b.control.failCall("HcnQueryEndpointProperties", 2, fail);
    b.control.failCall("HcnCreateLoadBalancer", 2, fail);
    b.control.failCall("HcnQueryLoadBalancerProperties", 1, fail);
    b.control.failCall("HcnOpenNetwork", 4, fail);
    b.control.failCall("HcnEnumerateEndpoints", 1, fail);

    let converged = false;
    for (let i = 0; i < 40 && !converged; i++) {
      try {
        const r = await syncer.sync();
        converged = r.kind !== "waiting" && r.next.retryAfterMs === undefined;
        clock.t += (r.next.retryAfterMs ?? 0) + 1;
      } catch {
        clock.t += 1000;
      }
    }
    assert.ok(converged, "converged");
    // Stop: the network's handle, kept open to re-read its routes, is closed.
    await syncer.close();
    const lbs = await client.listLoadBalancers();
    assert.equal(lbs.length, 6, "five services and the foreign LB, no duplicates");
    const eps = await client.listEndpoints();
    const ips = eps.map((e) => e.IpConfigurations?.[0]?.IpAddress);
    assert.equal(new Set(ips).size, ips.length, "no duplicate endpoints");
    for (const lb of lbs) {
      assert.equal(ownership.owns(lb.ID!), lb.ID!.toLowerCase() !== foreignId.toLowerCase());
    }
    for (const ep of eps.filter((e) => e.Flags === 1)) {
      assert.ok(
        ownership.owns(ep.ID!),
        "no leaked endpoint",
      );
    }

    const { remaining } = await cleanupOwned(client, ownership, { sleep: () => Promise.resolve() });
    assert.deepEqual(remaining, []);
    const left = await client.listLoadBalancers();
    assert.deepEqual(left.map((l) => l.ID!.toLowerCase()), [foreignId.toLowerCase()]);
    assert.deepEqual(
      (await client.listEndpoints()).map((e) => e.IpConfigurations?.[0]?.IpAddress).sort(),
      ["10.244.1.5", "10.244.1.6"],
    );
  },
);
