import assert from "node:assert/strict";
import { createHnsClient } from "../../lib/hns/client.ts";
import { HResult } from "../../lib/hns/errors.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import { cleanupOwned } from "../../lib/proxy/cleanup.ts";
import { OwnershipRecord } from "../../lib/proxy/ownership.ts";

const NET = "11111111-1111-4111-8111-111111111111";

async function setup() {
  const api = new MemoryHcnApi({
    state: { Networks: [{ ID: NET, Name: "cbr0", Type: "L2Bridge" }] },
  });
  const client = createHnsClient(api);
  const ep = (ip: string) =>
    client.createEndpoint(NET, { IpConfigurations: [{ IpAddress: ip }], Flags: 1 });
  const mine = await ep("10.244.2.7");
  const theirs = await ep("10.244.2.8");
  const lb = (vip: string, backends: string[]) =>
    client.createLoadBalancer({
      HostComputeEndpoints: backends,
      FrontendVIPs: [vip],
      PortMappings: [{ Protocol: 6, InternalPort: 80, ExternalPort: 80 }],
    });
  const myLb = await lb("10.96.0.10", [mine.ID!]);
  const theirLb = await lb("10.96.0.11", [theirs.ID!]);
  const ownership = OwnershipRecord.inMemory([
    { kind: "Endpoint", id: mine.ID!, key: "ep/remote/10.244.2.7" },
    { kind: "LoadBalancer", id: myLb.ID!, key: "lb/tcp/10.96.0.10:80" },
    { kind: "Endpoint", id: "22222222-2222-4222-8222-222222222222", key: "ep/remote/10.244.9.9" },
  ]);
  return { api, client, ownership, mine, theirs, myLb, theirLb };
}

const noSleep = { sleep: () => Promise.resolve() };

Deno.test("cleanup: deletes LBs then endpoints it owns, nothing else; listed objects HNS lacks are reported absent", async () => {
  const { api, client, ownership, theirs, theirLb } = await setup();
  const result = await cleanupOwned(client, ownership, noSleep);
  assert.deepEqual(result.remaining, []);
  assert.deepEqual(result.deleted.map((o) => o.kind), ["LoadBalancer", "Endpoint"]);
  assert.deepEqual(result.absent.map((o) => o.key), ["ep/remote/10.244.9.9"]);
  assert.equal(ownership.size, 0);
  assert.deepEqual((await client.listLoadBalancers()).map((l) => l.ID), [theirLb.ID]);
  assert.deepEqual((await client.listEndpoints()).map((e) => e.ID), [theirs.ID]);
  assert.equal(api.openHandles(), 0);
});

Deno.test("cleanup: failures are retried; what cannot go is reported and kept in the record", async () => {
  const { api, client, ownership, mine, theirLb } = await setup();
  api.failCall("HcnDeleteLoadBalancer", 1, HResult.MANAGER_STOPPED);
  // An LB of someone else now uses our endpoint: HNS refuses to delete it.
  await client.modifyLoadBalancer(theirLb.ID!, {
    HostComputeEndpoints: [mine.ID!],
    FrontendVIPs: ["10.96.0.11"],
    PortMappings: [{ Protocol: 6, InternalPort: 80, ExternalPort: 80 }],
  });
  const delays: number[] = [];
  const result = await cleanupOwned(client, ownership, {
    attempts: 3,
    sleep: (ms) => {
      delays.push(ms);
      return Promise.resolve();
    },
  });
  assert.deepEqual(delays, [1000, 2000]);
  assert.deepEqual(result.remaining.map((r) => r.object.id), [mine.ID]);
  assert.match(result.remaining[0].error, /0x803B002C/);
  assert.ok(ownership.owns(mine.ID!));
  assert.equal((await client.listLoadBalancers()).length, 1, "our LB went on the retry");
});
