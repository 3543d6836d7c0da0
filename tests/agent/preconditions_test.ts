/**
 * The real agent process refuses to run where kube-proxy refuses to start:
 * no network name (the error lists HNS's networks). It exits 1 with the
 * reason and programs nothing.
 */

import assert from "node:assert/strict";
import { AgentWorld, eventually } from "./harness.ts";
import { overlayHns, overlayWebCluster } from "./fixtures.ts";

Deno.test("agent: no network name stops the agent with the networks HNS has; --detect-network opts in", async () => {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    const { code, log } = await world.runAgent(["--source-vip", "10.244.1.250"]);
    assert.equal(code, 1, log);
    assert.match(log, /No HNS network is named/);
    assert.match(log, /HNS has \\"vxlan0\\" \(Overlay\)/);
    assert.deepEqual((await world.hns()).LoadBalancers, [], "nothing programmed");

    const agent = world.startAgent(["--source-vip", "10.244.1.250", "--detect-network"]);
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
