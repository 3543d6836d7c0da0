/**
 * The real agent process refuses to run where kube-proxy refuses to start:
 * no network name (the error lists HNS's networks), an Overlay network
 * without a source VIP or without the host's MAC. It exits 1 with the
 * reason and programs nothing. The host's MAC is found on this machine's
 * real interfaces when the node IP is one of its addresses.
 */

import assert from "node:assert/strict";
import { AgentWorld, eventually } from "./harness.ts";
import { HOST_MAC, NODE_IP, overlayHns, overlayWebCluster, SOURCE_VIP } from "./fixtures.ts";
import { normalizeMac } from "../../lib/net/mac.ts";

Deno.test("agent: no network name stops the agent with the networks HNS has; --detect-network opts in", async () => {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    const { code, log } = await world.runAgent([
      "--source-vip",
      SOURCE_VIP,
      "--host-mac",
      HOST_MAC,
    ]);
    assert.equal(code, 1, log);
    assert.match(log, /No HNS network is named/);
    assert.match(log, /HNS has \\"vxlan0\\" \(Overlay\)/);
    assert.deepEqual((await world.hns()).LoadBalancers, [], "nothing programmed");

    const agent = world.startAgent([
      "--source-vip",
      SOURCE_VIP,
      "--host-mac",
      HOST_MAC,
      "--detect-network",
    ]);
    await eventually(
      "programmed on the only Overlay network",
      async () => (await world.lbTable()).length === 3,
      () => agent.log(),
    );
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});

Deno.test("agent: an Overlay network without a source VIP stops the agent, as kube-proxy", async () => {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    const { code, log } = await world.runAgent([
      "--network-name",
      "vxlan0",
      "--host-mac",
      HOST_MAC,
    ]);
    assert.equal(code, 1, log);
    assert.match(log, /HNS network \\"vxlan0\\" is an Overlay network and no source VIP is set/);
    assert.match(log, /--source-vip/);
    const hns = await world.hns();
    assert.deepEqual(hns.LoadBalancers, [], "no LB programmed without a SourceVIP");
    assert.ok(!hns.Endpoints.some((e) => e.Flags === 1), "no remote endpoint created");
  } finally {
    await world.close();
  }
});

Deno.test("agent: on overlay without --host-mac, no interface holding the node IP stops the agent", async () => {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    const { code, log } = await world.runAgent([
      "--network-name",
      "vxlan0",
      "--source-vip",
      SOURCE_VIP,
    ]);
    assert.equal(code, 1, log);
    assert.match(log, /the host's MAC is unknown/);
    assert.ok(log.includes(`holds the node IP ${NODE_IP}`), log);
    assert.match(log, /interfaces seen: .*127\.0\.0\.1 00-00-00-00-00-00/);
    assert.match(log, /Set --host-mac/);
    assert.deepEqual((await world.hns()).LoadBalancers, []);
  } finally {
    await world.close();
  }
});

Deno.test("agent: the host's MAC is the MAC of this machine's interface holding the node IP", async () => {
  const nic = Deno.networkInterfaces().find((i) =>
    i.family === "IPv4" && i.mac !== "00:00:00:00:00:00" && i.mac !== ""
  );
  if (!nic) return; // a machine with loopback only has no MAC to find
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    // --bind-address makes the node IP an address of this machine (no traffic is sent to it).
    const agent = world.startAgent([
      "--network-name",
      "vxlan0",
      "--source-vip",
      SOURCE_VIP,
      "--bind-address",
      nic.address,
    ]);
    const sourceVipMac = async () =>
      (await world.hns()).Endpoints.find((e) => e.IpConfigurations?.[0]?.IpAddress === SOURCE_VIP)
        ?.MacAddress;
    await eventually(
      "source-VIP endpoint",
      async () => (await sourceVipMac()) !== undefined,
      () => agent.log(),
    );
    assert.equal(normalizeMac(await sourceVipMac()), normalizeMac(nic.mac));
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});
