/**
 * Ctrl-C: the real agent process stops on SIGINT exactly as on SIGTERM (and as a Windows
 * service stop): exit code 0, the ownership record written, HNS left as it is.
 */

import assert from "node:assert/strict";
import { AgentWorld, eventually } from "./harness.ts";
import { l2bridgeHns, NODE, nodeObject, serviceObject, sliceObject } from "./fixtures.ts";

Deno.test("agent: SIGINT stops the agent gracefully; the record and HNS stay as they were", async () => {
  const world = await AgentWorld.create({
    hns: l2bridgeHns(),
    services: [
      serviceObject("web", { clusterIP: "10.96.0.10", ports: [{ port: 80, targetPort: 8080 }] }),
    ],
    slices: [sliceObject("web", [{ ip: "10.244.1.5", node: NODE }], { port: 8080 })],
    node: nodeObject(),
  });
  try {
    const agent = world.startAgent(["--network-name", "cbr0"]);
    const want = ["10.96.0.10:80/tcp->8080 [10.244.1.5] flags=0 pm=0 dt=0"];
    await eventually(
      "the service programmed and recorded",
      async () =>
        JSON.stringify(await world.lbTable()) === JSON.stringify(want) &&
        // Recorded with its fingerprint: the create's answer was journaled too.
        (await world.owned()).some((o) => o.kind === "LoadBalancer" && o.fp !== undefined),
      async () => (await world.lbTable()).join("\n") + "\n" + agent.log(),
    );
    const owned = await world.owned();

    agent.child.kill("SIGINT");
    assert.equal(await agent.exited, 0, agent.log());
    assert.match(agent.log(), /"Received signal" signal="SIGINT"/);
    assert.match(agent.log(), /Stopping hnsproxy; HNS is left as it is/);
    assert.deepEqual(await world.owned(), owned);
    assert.deepEqual(await world.lbTable(), want);
  } finally {
    await world.close();
  }
});
