/**
 * The real agent on the overlay node serving one ClusterIP Service, `web`,
 * with pods on node-2: for tests that have it program `web` and then look at
 * its health, metrics or heap.
 *
 * @module
 */

import type { FakeObject } from "../../lib/fake-apiserver/mod.ts";
import { type AgentProcess, AgentWorld, eventually } from "./harness.ts";
import { nodeObject, OVERLAY_ARGS, overlayHns, remoteWebSlice, webService } from "./fixtures.ts";

/** The overlay node (its HNS and Node object) serving {@link webService} with the pods of `slice`. */
export function webAgentWorld(
  slice: FakeObject = remoteWebSlice(["10.244.2.7"]),
): Promise<AgentWorld> {
  return AgentWorld.create({
    hns: overlayHns(),
    services: [webService()],
    slices: [slice],
    node: nodeObject(),
  });
}

/**
 * Start the agent (overlay flags plus `args`) and wait until it programmed
 * `web` (one load balancer); `describe` returns the agent's log.
 */
export async function startProgrammed(
  world: AgentWorld,
  args: string[] = [],
): Promise<{ agent: AgentProcess; describe: () => string }> {
  const agent = world.startAgent([...OVERLAY_ARGS, ...args]);
  const describe = () => agent.log();
  await eventually("programmed", async () => (await world.lbTable()).length === 1, describe);
  return { agent, describe };
}
