/**
 * The real agent process, run with the V8 flags the compiled executable has
 * baked in: its first run's garbage is collected by the agent itself once
 * the run made it ready (a compacting collection when no change waits,
 * otherwise in the minSyncPeriod hold that follows the run), and changes are
 * programmed as before afterwards.
 */

import { AgentWorld, eventually } from "./harness.ts";
import { nodeObject, OVERLAY_ARGS, overlayHns, serviceObject, sliceObject } from "./fixtures.ts";

const web = serviceObject("web", {
  clusterIP: "10.96.0.10",
  ports: [{ port: 80, targetPort: 8080 }],
});

function webSlice(ips: string[]) {
  return sliceObject("web", ips.map((ip) => ({ ip, node: "node-2" })), { port: 8080 });
}

Deno.test("agent/heap: the first run is followed by a full collection once ready, and later changes are still programmed", async () => {
  const world = await AgentWorld.create({
    hns: overlayHns(),
    services: [web],
    slices: [webSlice(["10.244.2.7"])],
    node: nodeObject(),
  });
  try {
    const agent = world.startAgent(OVERLAY_ARGS);
    const describe = () => agent.log();
    await eventually("programmed", async () => (await world.lbTable()).length === 1, describe);
    await eventually(
      "collected after the first run",
      // Either as the module notes say: a change that came meanwhile makes it the hold's (the
      // at-ready compaction alone is tests/agent/ready_compaction_test.ts's).
      () =>
        Promise.resolve(
          /Collected the heap (after building the state|while changes were held)/.test(agent.log()),
        ),
      describe,
    );

    world.api.update("endpointslices", webSlice(["10.244.2.7", "10.244.2.8", "10.244.2.9"]));
    await eventually(
      "the next change programmed",
      async () => (await world.lbTable()).some((line) => line.includes("10.244.2.9")),
      describe,
    );
  } finally {
    await world.close();
  }
});
