/**
 * The real agent process on an overlay node while the cluster grows: the
 * CNI adds, changes and removes the network's RemoteSubnetRoute policies
 * (hns_tool.ts, out of band, through the emulator) while the agent runs,
 * with no Node object for the joining nodes, so only the routes can place
 * their pods.
 */

import assert from "node:assert/strict";
import { AgentWorld, eventually } from "./harness.ts";
import type { MemoryHnsState } from "../../lib/hns/memory.ts";
import {
  NODE,
  NODE_IP,
  OVERLAY_ARGS,
  overlayHns,
  overlayWebCluster,
  sliceObject,
  SOURCE_VIP,
} from "./fixtures.ts";

const CLUSTER_CIDR = ["--cluster-cidr", "10.244.0.0/16"];

/** The remote endpoint of `ip` (ID and provider address), if HNS holds one. */
function remote(state: Required<MemoryHnsState>, ip: string) {
  const ep = state.Endpoints.find((e) => e.IpConfigurations?.[0]?.IpAddress === ip);
  if (!ep) return undefined;
  const pa = ep.Policies?.find((p) => p.Type === "ProviderAddress")?.Settings?.ProviderAddress;
  return { id: String(ep.ID), providerAddress: pa as string | undefined };
}

/** The value of an unlabelled metric, if exposed. */
function metricValue(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

const web = (eps: { ip: string; node: string }[]) => sliceObject("web", eps, { port: 8080 });
const WEB_BASE = [{ ip: "10.244.1.5", node: NODE }, { ip: "10.244.2.7", node: "node-2" }];

Deno.test("agent/overlay routes: a pod with no route waits (gauge), then a route added while the agent runs places it", async () => {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    // A long sync period: only the waiting pod's rate-limited re-read can find the new route.
    const agent = world.startAgent([...OVERLAY_ARGS, ...CLUSTER_CIDR, "--sync-period", "1h"]);
    const describe = async () =>
      (await world.lbTable()).join("\n") + "\n" + await world.metrics(agent).catch(() => "") +
      "\n" + agent.log();
    await eventually("initial", async () => (await world.lbTable()).length === 3, describe);

    // node-4 joins: its pod shows up before the CNI added node-4's route, and no Node object.
    world.api.update("endpointslices", web([...WEB_BASE, { ip: "10.244.4.7", node: "node-4" }]));
    await eventually(
      "the node-4 pod waits, counted",
      async () =>
        metricValue(await world.metrics(agent), "hnsproxy_endpoints_waiting_placement") === 1,
      describe,
    );
    let state = await world.hns();
    assert.equal(remote(state, "10.244.4.7"), undefined, "not programmed while it waits");
    for (const lb of state.LoadBalancers) assert.equal(lb.SourceVIP, SOURCE_VIP);
    const waitLines = () =>
      agent.log().split("\n").filter((l) =>
        l.includes("Endpoint waits for its placement") && l.includes("10.244.4.7")
      );
    assert.equal(waitLines().length, 1, "logged once");

    // The CNI adds node-4's route.
    await world.hnsTool("add-route", "vxlan0", "10.244.4.0/24", "192.168.1.14");
    await eventually(
      "the node-4 pod placed by its route",
      async () => remote(await world.hns(), "10.244.4.7")?.providerAddress === "192.168.1.14",
      describe,
      // Re-reads back off to 30 s apart (+10% jitter) while the pod waits.
      60_000,
    );
    await eventually(
      "web's LB uses it",
      async () =>
        (await world.lbTable()).includes(
          "10.96.0.10:80/tcp->8080 [10.244.1.5,10.244.2.7,10.244.4.7] flags=0 pm=0 dt=0",
        ),
      describe,
    );
    await eventually(
      "gauge back to 0",
      async () =>
        metricValue(await world.metrics(agent), "hnsproxy_endpoints_waiting_placement") === 0,
      describe,
    );
    state = await world.hns();
    for (const lb of state.LoadBalancers) {
      assert.equal(lb.SourceVIP, SOURCE_VIP, "the SourceVIP stays the source VIP");
    }
    assert.equal(waitLines().length, 1, "logged once, however many runs it waited");

    // node-5 joins as the CNI does it: route first, then a pod of the existing service.
    await world.hnsTool("add-route", "vxlan0", "10.244.5.0/24", "192.168.1.15");
    world.api.update(
      "endpointslices",
      web([...WEB_BASE, { ip: "10.244.4.7", node: "node-4" }, {
        ip: "10.244.5.8",
        node: "node-5",
      }]),
    );
    await eventually(
      "the node-5 pod placed by its route",
      async () => remote(await world.hns(), "10.244.5.8")?.providerAddress === "192.168.1.15",
      describe,
    );
    state = await world.hns();
    for (const ip of ["10.244.4.7", "10.244.5.8"]) {
      assert.notEqual(remote(state, ip)?.providerAddress, NODE_IP, ip);
    }
    for (const lb of state.LoadBalancers) assert.equal(lb.SourceVIP, SOURCE_VIP);
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});

Deno.test("agent/overlay routes: a changed route replaces the remote endpoint, a removed node's route and pods go", async () => {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    const agent = world.startAgent([
      ...OVERLAY_ARGS,
      ...CLUSTER_CIDR,
      "--sync-period",
      "1s",
      "--min-sync-period",
      "100ms",
    ]);
    const describe = async () =>
      JSON.stringify((await world.hns()).Endpoints.map((e) => [e.IpConfigurations, e.Policies])) +
      "\n" + (await world.lbTable()).join("\n") + "\n" + agent.log();
    await eventually("initial", async () => (await world.lbTable()).length === 3, describe);
    const before = remote(await world.hns(), "10.244.2.7")!;
    assert.equal(before.providerAddress, "192.168.1.12");

    // node-2's pod subnet moves to another provider address (the node was replaced).
    await world.hnsTool("remove-route", "vxlan0", "10.244.2.0/24");
    await world.hnsTool("add-route", "vxlan0", "10.244.2.0/24", "192.168.1.22");
    await eventually(
      "the node-2 pod's endpoint follows the route",
      async () => remote(await world.hns(), "10.244.2.7")?.providerAddress === "192.168.1.22",
      describe,
    );
    let state = await world.hns();
    assert.notEqual(remote(state, "10.244.2.7")!.id, before.id, "replaced, not patched");
    assert.equal(
      state.Endpoints.filter((e) => e.IpConfigurations?.[0]?.IpAddress === "10.244.2.7").length,
      1,
      "the old endpoint is gone",
    );
    for (const lb of state.LoadBalancers) assert.equal(lb.SourceVIP, SOURCE_VIP);

    // node-3 leaves: the CNI removes its route and its pod goes from np's slice.
    await world.hnsTool("remove-route", "vxlan0", "10.244.3.0/24");
    world.api.update("endpointslices", sliceObject("np", [], { port: 9090 }, "default", "np-abc"));
    await eventually(
      "node-3's pod and np's LBs gone",
      async () => {
        const s = await world.hns();
        return remote(s, "10.244.3.9") === undefined &&
          (await world.lbTable()).every((l) => !l.includes("10.244.3.9"));
      },
      describe,
    );
    state = await world.hns();
    assert.equal(remote(state, "10.244.2.7")?.providerAddress, "192.168.1.22");
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});
