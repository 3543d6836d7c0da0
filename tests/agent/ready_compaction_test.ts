/**
 * The agent in this process (lib/agent.ts `startAgent`) against the fake API
 * server and the in-memory HNS: once a cold start is ready and no change
 * waits, the room its heap grew to is given back at once (a compacting
 * collection), not only at the first change's hold.
 */

import assert from "node:assert/strict";
import { startAgent } from "../../lib/agent.ts";
import { HeapCollector } from "../../lib/heap_collector.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import { nullLogger } from "../../lib/log/types.ts";
import { eventually } from "./harness.ts";
import { inProcessConfig, overlayHns, webWorld } from "./fixtures.ts";

Deno.test("agent: a cold start compacts its heap once ready, with no change to wait for it", async () => {
  const { api, dir, close } = await webWorld();
  try {
    const config = await inProcessConfig(api.url, dir);
    const made: string[] = [];
    const heapCollector = new HeapCollector({
      collect: () => made.push("regular"),
      compact: () => made.push("compacting"),
      // A heap no hold's window is long enough for: only a collection asked for is made.
      heapUsed: () => 1e15,
      external: () => 0,
      heapResident: () => 1e15,
    });
    const agent = await startAgent(config, {
      logger: nullLogger,
      hcnApi: new MemoryHcnApi({ state: overlayHns() }),
      heapCollector,
      serviceHealthChecks: false,
    });
    try {
      await agent.ready;
      await eventually("the collection after ready", () => made.length > 0);
      assert.deepEqual(made, ["compacting"]);
    } finally {
      await agent.stop();
    }
  } finally {
    await close();
  }
});
