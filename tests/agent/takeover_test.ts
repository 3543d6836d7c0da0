/**
 * The real agent process moving a node from kube-proxy: the HNS emulator
 * library seeded with what kube-proxy left (its JSON, from
 * lib/demo/kube_proxy_objects.ts) after the cluster changed while neither
 * proxy ran, next to a clean node with the same cluster.
 */

import assert from "node:assert/strict";
import type { MemoryHnsState } from "../../lib/hns/memory.ts";
import type { HcnEndpoint } from "../../lib/hns/types.ts";
import {
  DEMO_NODES,
  demoServices,
  nodeObject,
  serviceObject,
  sliceObjects,
  SOURCE_VIP,
  THIS_NODE,
} from "../../lib/demo/cluster.ts";
import {
  demoHnsState,
  FOREIGN_LB_ID,
  FORMER_WIN_NODE_2_IP,
  HOST_MAC,
  kubeProxyLeftoverState,
  NETWORK_NAME,
} from "../../lib/demo/hns_seed.ts";
import { AgentWorld, eventually, lbLines } from "./harness.ts";

type State = Required<MemoryHnsState>;

const ARGS = [
  "--hostname-override",
  THIS_NODE,
  "--network-name",
  NETWORK_NAME,
  "--source-vip",
  SOURCE_VIP,
  "--host-mac",
  HOST_MAC,
  "--min-sync-period",
  "0s",
];

async function world(hns: MemoryHnsState): Promise<AgentWorld> {
  return await AgentWorld.create({
    hns,
    services: demoServices().map(serviceObject),
    slices: demoServices().flatMap(sliceObjects),
    node: nodeObject(DEMO_NODES.find((n) => n.name === THIS_NODE)!),
  });
}

const paOf = (e: HcnEndpoint) =>
  String(
    (e.Policies ?? []).find((p) => p.Type === "ProviderAddress")?.Settings?.ProviderAddress ?? "",
  );
const without = (s: State, ids: Set<string>): State => ({
  ...s,
  LoadBalancers: s.LoadBalancers.filter((o) => !ids.has(String(o.ID).toUpperCase())),
  Endpoints: s.Endpoints.filter((o) => !ids.has(String(o.ID).toUpperCase())),
});

Deno.test("agent/takeover: a node moved from kube-proxy converges to what a clean node gets; unclaimed objects stay", async () => {
  const left = kubeProxyLeftoverState();
  // kube-proxy's objects on what no Service claims now (shop/legacy, a moved pod), and the tool's.
  const unclaimedLbs = left.LoadBalancers.filter((lb) =>
    lb.ID === FOREIGN_LB_ID || lb.FrontendVIPs?.[0] === "10.96.10.90" ||
    lb.PortMappings[0].ExternalPort === 30090
  );
  const unclaimedEps = left.Endpoints.filter((e) =>
    ["10.244.2.9", "10.244.3.90", "10.96.10.90"].includes(e.IpConfigurations![0].IpAddress)
  );
  const untouched = new Set([...unclaimedLbs, ...unclaimedEps].map((o) => String(o.ID)));
  assert.equal(untouched.size, 6);

  const migrated = await world(left);
  const clean = await world(demoHnsState());
  try {
    const a = migrated.startAgent(ARGS);
    const b = clean.startAgent(ARGS);
    const settled = async (w: AgentWorld, lbs: number) =>
      (await w.owned()).filter((o) => o.kind === "LoadBalancer").length === lbs;
    // The clean node: everything it programs is owned once the record is written.
    await eventually("clean node programmed", async () => {
      const s = await clean.hns();
      return s.LoadBalancers.length > 10 && await settled(clean, s.LoadBalancers.length - 1);
    }, () => b.log());
    const want = lbLines(without(await clean.hns(), new Set([FOREIGN_LB_ID])));
    await eventually(
      "the migrated node programs exactly what the clean node has",
      async () =>
        JSON.stringify(lbLines(without(await migrated.hns(), untouched))) ===
          JSON.stringify(want) && await settled(migrated, want.length),
      async () =>
        lbLines(without(await migrated.hns(), untouched)).join("\n") + "\n---\n" +
        want.join("\n") + "\n" + a.log(),
    );
    const got = await migrated.hns();
    // Unclaimed objects: still there, as kube-proxy left them.
    assert.deepEqual(
      lbLines({ ...got, LoadBalancers: got.LoadBalancers.filter((lb) => untouched.has(lb.ID!)) }),
      lbLines({ ...left, LoadBalancers: unclaimedLbs } as State),
    );
    for (const e of unclaimedEps) {
      const now = got.Endpoints.find((x) => x.ID === e.ID);
      assert.ok(now, `${e.ID} kept`);
      assert.equal(paOf(now), paOf(e));
      assert.equal(now.MacAddress, e.MacAddress);
    }
    // Claimed endpoints no longer point at the replaced node.
    assert.deepEqual(
      got.Endpoints.filter((e) => paOf(e) === FORMER_WIN_NODE_2_IP && !untouched.has(e.ID!))
        .map((e) => e.IpConfigurations![0].IpAddress),
      [],
    );
    assert.match(a.log(), /Taking over an HNS object of others/);
    assert.equal(await migrated.stopAgent(a), 0);
    assert.equal(await clean.stopAgent(b), 0);
  } finally {
    await migrated.close();
    await clean.close();
  }
});
