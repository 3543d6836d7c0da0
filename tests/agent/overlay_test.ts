/**
 * The real agent process on an overlay node: fake API server, HNS emulator
 * library with a seeded state file. Each test polls until HNS converges.
 */

import assert from "node:assert/strict";
import { AgentWorld, eventually, lbTableIs } from "./harness.ts";
import { normalizeMac } from "../../lib/net/mac.ts";
import {
  FOREIGN_LB,
  FOREIGN_LB_LINE,
  HOST_MAC,
  LOCAL_EP_5,
  NODE,
  OVERLAY_ARGS,
  OVERLAY_WEB_LBS,
  overlayHns,
  overlayWebCluster,
  sliceObject,
  SOURCE_VIP,
} from "./fixtures.ts";

Deno.test("agent/overlay: ClusterIP and NodePort converge with provider addresses and source VIP", async () => {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    const agent = world.startAgent(OVERLAY_ARGS);
    await lbTableIs(world, OVERLAY_WEB_LBS, agent, "ClusterIP + NodePort LBs");
    const hns = await world.hns();
    const byIp = new Map(hns.Endpoints.map((e) => [e.IpConfigurations?.[0]?.IpAddress, e]));
    const pa = (ip: string) =>
      byIp.get(ip)?.Policies?.find((p) => p.Type === "ProviderAddress")?.Settings?.ProviderAddress;
    assert.equal(pa("10.244.2.7"), "192.168.1.12");
    assert.equal(pa("10.244.3.9"), "192.168.1.13");
    assert.equal(byIp.get("10.244.2.7")?.Flags, 1);
    assert.ok(byIp.has(SOURCE_VIP), "source-VIP endpoint");
    // The host's MAC (--host-mac) on the source-VIP and the per-ClusterIP endpoints, as kube-proxy.
    for (const ip of [SOURCE_VIP, "10.96.0.10", "10.96.0.20"]) {
      assert.equal(normalizeMac(byIp.get(ip)?.MacAddress), HOST_MAC, ip);
    }
    for (const lb of hns.LoadBalancers) assert.equal(lb.SourceVIP, SOURCE_VIP);
    assert.ok(hns.Endpoints.some((e) => e.ID === LOCAL_EP_5), "CNI endpoint untouched");
    // The ownership record is written after the HNS calls of a sync: wait for it.
    await eventually(
      "record written",
      async () => (await world.owned()).filter((o) => o.kind === "LoadBalancer").length === 3,
      async () => JSON.stringify(await world.owned()),
    );
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});

/** Lines of the metric `name` with a value other than 0, as `labels value`. */
function metricLines(text: string, name: string): string[] {
  return text.split("\n").filter((l) => l.startsWith(name + "{") || l.startsWith(name + " "));
}

const WRITE_CALLS = /operation="Hcn(Create|Modify|Delete)(LoadBalancer|Endpoint)"/;

Deno.test("agent/overlay: endpoint scale up and down, then service delete", async () => {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    // A long sync period: no full reconcile happens, so every deletion below comes from the
    // partial (dirty-services) sync of the change itself.
    const agent = world.startAgent([...OVERLAY_ARGS, "--sync-period", "1h"]);
    const table = async () => (await world.lbTable()).join("\n");
    await eventually("initial", async () => (await world.lbTable()).length === 3, table);
    const npLb = (await world.hns()).LoadBalancers.find((l) =>
      l.PortMappings[0].ExternalPort === 30080
    )!;

    world.api.update(
      "endpointslices",
      sliceObject("web", [
        { ip: "10.244.1.5", node: NODE },
        { ip: "10.244.1.6", node: NODE },
        { ip: "10.244.2.7", node: "node-2" },
        { ip: "10.244.2.8", node: "node-2" },
      ], { port: 8080 }),
    );
    await eventually(
      "scale up",
      async () =>
        (await world.lbTable()).includes(
          "10.96.0.10:80/tcp->8080 [10.244.1.5,10.244.1.6,10.244.2.7,10.244.2.8] flags=0 pm=0 dt=0",
        ),
      table,
    );

    world.api.update(
      "endpointslices",
      sliceObject("web", [{ ip: "10.244.2.8", node: "node-2" }], { port: 8080 }),
    );
    await eventually(
      "scale down",
      async () =>
        (await world.lbTable()).includes("10.96.0.10:80/tcp->8080 [10.244.2.8] flags=0 pm=0 dt=0"),
      table,
    );
    await eventually(
      "unused remote endpoint deleted",
      async () =>
        !(await world.hns()).Endpoints.some((e) =>
          e.IpConfigurations?.[0].IpAddress === "10.244.2.7"
        ),
    );

    world.api.delete("services", "default/web");
    world.api.delete("endpointslices", "default/web-abc");
    await eventually(
      "service deleted",
      async () => (await world.lbTable()).every((l) => !l.startsWith("10.96.0.10:")),
      table,
    );
    await eventually(
      "the service's remote endpoints, incl. its cluster-IP endpoint, deleted by the partial sync",
      async () =>
        !(await world.hns()).Endpoints.some((e) =>
          ["10.244.2.8", "10.96.0.10"].includes(e.IpConfigurations?.[0].IpAddress ?? "")
        ),
    );
    const hns = await world.hns();
    assert.ok(hns.LoadBalancers.some((l) => l.ID === npLb.ID), "the NodePort LB was never touched");
    assert.ok(hns.Endpoints.some((e) => e.ID === LOCAL_EP_5), "the CNI's endpoints stay");
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});

Deno.test("agent/overlay: a restart with an unchanged cluster makes zero HNS writes", async () => {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    const first = world.startAgent(OVERLAY_ARGS);
    await eventually("initial", async () => (await world.lbTable()).length === 3, first.log);
    await eventually("record written", async () => (await world.owned()).length === 3 + 5);
    assert.equal(await world.stopAgent(first), 0);
    const before = await Deno.readTextFile(world.hnsFile);
    const ownedBefore = await world.owned();

    const second = world.startAgent(OVERLAY_ARGS);
    await eventually(
      "second agent synced",
      async () =>
        metricLines(await world.metrics(second).catch(() => ""), "hnsproxy_owned_objects")
          .includes('hnsproxy_owned_objects{kind="LoadBalancer"} 3'),
      second.log,
    );
    const writes = metricLines(await world.metrics(second), "hnsproxy_hns_calls_total").filter((
      l,
    ) => WRITE_CALLS.test(l));
    assert.deepEqual(writes, [], "no create, modify or delete");
    assert.equal(await Deno.readTextFile(world.hnsFile), before, "HNS unchanged");
    assert.deepEqual(await world.owned(), ownedBefore);
    assert.match(second.log(), /"Programming HNS".*adopted=8 operations=0/);
    assert.equal(await world.stopAgent(second), 0);
  } finally {
    await world.close();
  }
});

Deno.test("agent/overlay: an LB deleted out of band is recreated within one resync", async () => {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    const agent = world.startAgent([...OVERLAY_ARGS, "--sync-period", "2s"]);
    await eventually("initial", async () => (await world.lbTable()).length === 3, agent.log);
    const want = await world.lbTable();
    const victim = (await world.hns()).LoadBalancers.find((l) =>
      l.FrontendVIPs?.[0] === "10.96.0.10"
    )!;
    await world.hnsTool("delete-lb", victim.ID!);
    assert.equal((await world.lbTable()).length, 2);
    await lbTableIs(world, want, agent, "LB recreated");
    assert.match(agent.log(), /Load balancer vanished from HNS; recreating it/);
    // The repair is counted when the sync that recreated the LB finishes, just after the LB shows.
    const repairs = async () =>
      metricLines(await world.metrics(agent), "hnsproxy_drift_repairs_total");
    await eventually(
      "drift repair counted",
      async () => (await repairs()).length > 0,
      async () => (await repairs()).join("\n"),
    );
    assert.deepEqual(await repairs(), ['hnsproxy_drift_repairs_total{kind="LoadBalancer"} 1']);
    assert.ok(!(await world.owned()).some((o) => o.id === victim.ID), "the old ID is forgotten");
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});

Deno.test("agent/overlay: HNS faults converge with no leaked, duplicate or foreign-deleted object", async () => {
  const world = await AgentWorld.create({
    hns: overlayHns({ LoadBalancers: [FOREIGN_LB] }),
    ...overlayWebCluster(),
  });
  try {
    const agent = world.startAgent(OVERLAY_ARGS, {
      HNSEMU_FAIL: [
        "HcnCreateEndpoint:2:0x803B0020",
        "HcnCreateLoadBalancer:1:0x803B0020",
        "HcnQueryLoadBalancerProperties:2:0x803B0020",
        "HcnEnumerateLoadBalancers:1:0x803B0020",
      ].join(","),
    });
    const want = [...OVERLAY_WEB_LBS, FOREIGN_LB_LINE];
    await lbTableIs(world, want, agent, "converged despite faults", 60_000);
    const hns = await world.hns();
    const ips = hns.Endpoints.map((e) => e.IpConfigurations?.[0].IpAddress).sort();
    assert.equal(new Set(ips).size, ips.length, "no duplicate endpoints");
    await eventually("record complete", async () => (await world.owned()).length === 3 + 5);
    const owned = new Set((await world.owned()).map((o) => o.id.toUpperCase()));
    for (const lb of hns.LoadBalancers) {
      assert.equal(
        owned.has(lb.ID!.toUpperCase()),
        lb.ID !== FOREIGN_LB.ID,
        `ownership of ${lb.ID}`,
      );
    }
    for (const ep of hns.Endpoints.filter((e) => e.Flags === 1)) {
      assert.ok(owned.has(ep.ID!.toUpperCase()), `remote endpoint ${ep.ID} is owned (not leaked)`);
    }
    assert.match(agent.log(), /failed; will retry|Run failed/);
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});

Deno.test("agent/overlay: --cleanup-and-exit removes what hnsproxy owns and nothing else", async () => {
  const world = await AgentWorld.create({
    hns: overlayHns({ LoadBalancers: [FOREIGN_LB] }),
    ...overlayWebCluster(),
  });
  try {
    const agent = world.startAgent(OVERLAY_ARGS);
    await eventually("initial", async () => (await world.lbTable()).length === 4, agent.log);
    await eventually("record written", async () => (await world.owned()).length === 8);
    assert.equal(await world.stopAgent(agent), 0);

    const { code, log } = await world.runAgent([...OVERLAY_ARGS, "--cleanup-and-exit"]);
    assert.equal(code, 0, log);
    const hns = await world.hns();
    assert.deepEqual(hns.LoadBalancers.map((l) => l.ID), [FOREIGN_LB.ID]);
    assert.deepEqual(
      hns.Endpoints.map((e) => e.IpConfigurations?.[0].IpAddress).sort(),
      ["10.244.1.5", "10.244.1.6"],
    );
    assert.equal(hns.Networks.length, 1);
    assert.deepEqual(await world.owned(), []);
  } finally {
    await world.close();
  }
});
