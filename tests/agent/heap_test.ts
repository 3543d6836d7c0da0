/**
 * The real agent process, run with the V8 flags the compiled executable has
 * baked in: its first run's garbage is collected by the agent itself once
 * the run made it ready (a compacting collection when no change waits,
 * otherwise in the minSyncPeriod hold that follows the run), and changes are
 * programmed as before afterwards.
 */

import { eventually } from "./harness.ts";
import { remoteWebSlice } from "./fixtures.ts";
import { startProgrammed, webAgentWorld } from "./web_agent.ts";

Deno.test("agent/heap: the first run is followed by a full collection once ready, and later changes are still programmed", async () => {
  const world = await webAgentWorld();
  try {
    const { agent, describe } = await startProgrammed(world);
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

    world.api.update("endpointslices", remoteWebSlice(["10.244.2.7", "10.244.2.8", "10.244.2.9"]));
    await eventually(
      "the next change programmed",
      async () => (await world.lbTable()).some((line) => line.includes("10.244.2.9")),
      describe,
    );
  } finally {
    await world.close();
  }
});
