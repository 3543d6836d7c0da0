/**
 * LocalEndpoints keeps only the endpoint IDs nothing else classifies (CNI,
 * other networks, strays); the remote endpoints the observed cache holds
 * (ours and others') are classified by it. Whatever it keeps, no endpoint ID
 * is queried twice: a start, the resyncs and the lookups for new pods query
 * exactly the IDs never classified.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHnsClient } from "../../lib/hns/client.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import { EndpointFlags, type HcnEndpoint } from "../../lib/hns/types.ts";
import { nullLogger } from "../../lib/log/types.ts";
import { remoteEndpointKey } from "../../lib/proxy/keys.ts";
import { LocalEndpoints } from "../../lib/proxy/local_endpoints.ts";
import type { NodeContext } from "../../lib/proxy/model.ts";
import { idKey, ObservedCache } from "../../lib/proxy/observed.ts";
import { OwnershipRecord } from "../../lib/proxy/ownership.ts";
import { forgetVanished, vanishedFrom } from "../../lib/proxy/resync.ts";
import { ctx, NET_ID } from "./core_fixtures.ts";

const guid = (n: number) =>
  `E0000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`.toUpperCase();

function endpoint(id: string, ip: string, remote: boolean, net = NET_ID): HcnEndpoint {
  return {
    ID: id,
    HostComputeNetwork: net,
    IpConfigurations: [{ IpAddress: ip, PrefixLength: 24 }],
    Flags: remote ? EndpointFlags.RemoteEndpoint : 0,
    SchemaVersion: { Major: 2, Minor: 0 },
  };
}

/**
 * A node after a start: HNS holds `owned` remote endpoints of hnsproxy (in
 * the record and the cache), `foreign` remote endpoints of others (in the
 * cache), `cni` pods' endpoints (in the node context) and one endpoint of
 * another network; LocalEndpoints restarted with HNS's listing.
 */
async function node(owned: number, foreign: number, cni: number) {
  const remote = Array.from(
    { length: owned },
    (_, i) => endpoint(guid(i + 1), `10.244.2.${i + 1}`, true),
  );
  const others = Array.from(
    { length: foreign },
    (_, i) => endpoint(guid(1000 + i), `10.244.3.${i + 1}`, true),
  );
  const pods = Array.from(
    { length: cni },
    (_, i) => endpoint(guid(2000 + i), `10.244.1.${i + 1}`, false),
  );
  const elsewhere = endpoint(guid(3000), "10.9.0.1", false, "0A0B0C0D-0000-0000-0000-0000000000FF");
  const api = new MemoryHcnApi({
    state: {
      Networks: [
        { ID: NET_ID, Name: "cbr0", Type: "L2Bridge" },
        { ID: "0A0B0C0D-0000-0000-0000-0000000000FF", Name: "other", Type: "L2Bridge" },
      ],
      Endpoints: [...remote, ...others, ...pods, elsewhere],
      LoadBalancers: [],
    },
  });
  const client = createHnsClient(api);
  const record = OwnershipRecord.inMemory();
  const cache = new ObservedCache();
  for (const ep of remote) {
    const key = remoteEndpointKey(ep.IpConfigurations![0].IpAddress!);
    record.add({ kind: "Endpoint", id: ep.ID!, key });
    cache.setEndpoint({ key, id: ep.ID!, hns: ep });
  }
  for (const ep of others) {
    const key = remoteEndpointKey(ep.IpConfigurations![0].IpAddress!);
    cache.setForeignEndpoint({ key, id: ep.ID!, hns: ep });
  }
  const local = new LocalEndpoints({
    client,
    ownership: record,
    observed: cache,
    clock: { now: () => 0 },
    logger: nullLogger,
  });
  // What a start lists: every endpoint ID (the resync's listing spans the networks too).
  local.restart([...await client.listIds("Endpoint")]);
  const n = {
    api,
    client,
    record,
    cache,
    local,
    ctx: ctx({
      localEndpoints: new Map(pods.map((ep) => [ep.IpConfigurations![0].IpAddress!, ep.ID!])),
    }) as NodeContext,
    /** Endpoint queries so far (one Open, Query, Close each). */
    queries: () => api.callCounts().HcnQueryEndpointProperties ?? 0,
    /** A resync as the syncer compares it: what vanished is forgotten, then the refresh. */
    async resync(): Promise<void> {
      const lbIds = await client.listIds("LoadBalancer");
      const epIds = await client.listIds("Endpoint");
      forgetVanished(
        vanishedFrom(lbIds, epIds, undefined, cache, record),
        cache,
        record,
        nullLogger,
      );
      n.ctx = (await local.refresh(n.ctx, undefined, epIds, false)).ctx;
    },
  };
  return n;
}

Deno.test("local endpoints: a start keeps the IDs of the CNI's and other networks' endpoints only, not those the observed cache holds", async () => {
  const n = await node(40, 5, 10);
  assert.equal(n.local.knownCount, 11, "10 pods and the endpoint of another network");
  for (const id of n.ctx.localEndpoints.values()) assert.ok(n.local.knows(idKey(id)));
  assert.ok(n.local.knows(guid(3000)));
  assert.ok(!n.local.knows(guid(1)), "ours: classified by the cache");
  assert.ok(!n.local.knows(guid(1000)), "others': classified by the cache");
  const before = n.queries();
  await n.resync();
  await n.resync();
  assert.equal(n.queries(), before, "nothing is queried: every listed ID is classified");
  assert.equal(n.local.knownCount, 11);
});

Deno.test("local endpoints: an endpoint hnsproxy creates after the start is neither queried nor copied by a resync", async () => {
  const n = await node(3, 1, 2);
  const created = await n.client.createEndpoint(NET_ID, endpoint("", "10.244.2.200", true));
  const key = remoteEndpointKey("10.244.2.200");
  n.record.add({ kind: "Endpoint", id: created.ID!, key });
  n.cache.setEndpoint({ key, id: created.ID!, hns: created });
  const before = n.queries();
  await n.resync();
  assert.equal(n.queries(), before);
  assert.equal(n.local.knownCount, 3);
  assert.ok(!n.local.knows(idKey(created.ID!)));
});

Deno.test("local endpoints: an owned endpoint that vanished is forgotten by the cache and the record, and nothing is queried", async () => {
  const n = await node(4, 1, 2);
  await n.client.deleteEndpoint(guid(2));
  const before = n.queries();
  await n.resync();
  assert.equal(n.cache.endpointById(guid(2)), undefined);
  assert.equal(n.record.owns(guid(2)), false);
  assert.equal(n.cache.endpoints.size, 3);
  assert.equal(n.local.knownCount, 3);
  await n.resync();
  assert.equal(n.queries(), before);
});

Deno.test("local endpoints: a CNI endpoint that vanished leaves the node context and the known IDs; nothing is queried", async () => {
  const n = await node(4, 1, 3);
  const gone = guid(2001);
  await n.client.deleteEndpoint(gone);
  const before = n.queries();
  await n.resync();
  assert.deepEqual([...n.ctx.localEndpoints.keys()].sort(), ["10.244.1.1", "10.244.1.3"]);
  assert.ok(!n.local.knows(gone));
  assert.ok(![...n.local.knownIds()].includes(gone));
  assert.equal(n.local.knownCount, 3);
  assert.equal(n.queries(), before);
});

Deno.test("local endpoints: a new pod's endpoint is queried once, by the lookup; later lookups and resyncs do not query it", async () => {
  const n = await node(5, 2, 2);
  const pod = await n.client.createEndpoint(NET_ID, endpoint("", "10.244.1.50", false));
  const before = n.queries();
  const found = await n.local.lookUp(n.ctx, undefined);
  assert.equal(
    n.queries() - before,
    1,
    "only the new ID: neither ours, others' nor the pods known",
  );
  n.ctx = found.ctx;
  assert.equal(n.ctx.localEndpoints.get("10.244.1.50"), pod.ID);
  assert.ok(n.local.knows(idKey(pod.ID!)));
  await n.local.lookUp(n.ctx, undefined);
  await n.resync();
  assert.equal(n.queries() - before, 1);
  assert.equal(n.local.knownCount, 4, "3 pods and the endpoint of another network");
});

Deno.test("local endpoints: a new remote endpoint of others is queried once and then classified by the cache", async () => {
  const n = await node(3, 0, 1);
  const theirs = await n.client.createEndpoint(NET_ID, endpoint("", "10.244.3.77", true));
  const before = n.queries();
  await n.resync();
  assert.equal(n.queries() - before, 1);
  assert.equal(n.cache.endpointById(theirs.ID!)?.key, remoteEndpointKey("10.244.3.77"));
  await n.resync();
  await n.local.lookUp(n.ctx, undefined);
  assert.equal(n.queries() - before, 1);
});
