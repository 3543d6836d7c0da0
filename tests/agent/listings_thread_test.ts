/**
 * The agent in this process (lib/agent.ts `startAgent`) against the fake API
 * server and the in-memory HNS: when the listings leave the calls' HNS thread
 * (they share it until the agent is ready, and only then), after a cold start
 * and after a fast start (ready before its state is built); and the hold's
 * collection after the first ready run, which waits until ready is heard.
 */

import assert from "node:assert/strict";
import { startAgent } from "../../lib/agent.ts";
import { HeapCollector } from "../../lib/heap_collector.ts";
import { MemoryHcnApi, type MemoryHnsState } from "../../lib/hns/memory.ts";
import type { Syncer } from "../../lib/proxy/syncer.ts";
import { nullLogger } from "../../lib/log/types.ts";
import { eventually } from "./harness.ts";
import { inProcessConfig, overlayHns, serviceObject, sliceObject, webWorld } from "./fixtures.ts";

/** The in-memory HNS, with the threaded backend's switch for listings, recording what it was told and whether the state was built then. */
class ThreadSwitchingHns extends MemoryHcnApi {
  readonly told: boolean[] = [];
  readonly built: boolean[] = [];
  syncer: Syncer | undefined;
  keepListingsApart(apart: boolean): void {
    this.told.push(apart);
    this.built.push(this.syncer?.desired !== undefined);
  }
}

Deno.test("agent: the listings leave the calls' thread once ready, and only then, whatever the holds", async () => {
  const { api, dir, close } = await webWorld();
  try {
    const config = await inProcessConfig(api.url, dir, [
      // Holds shorter than a worker's start, as when runs fill minSyncPeriod back to back.
      "--min-sync-period",
      "300ms",
    ]);
    const hns = new ThreadSwitchingHns({ state: overlayHns() });
    const agent = await startAgent(config, { logger: nullLogger, hcnApi: hns });
    try {
      await agent.ready;
      assert.deepEqual(hns.told, [false, true], "listed on the calls' thread until ready");
      // Changes, one run each: nothing switches again.
      for (let i = 1; i <= 3; i++) {
        const ip = `10.96.0.${10 + i}`;
        api.create(
          "services",
          serviceObject(`web-${i}`, { clusterIP: ip, ports: [{ port: 80, targetPort: 8080 }] }),
        );
        api.create(
          "endpointslices",
          sliceObject(`web-${i}`, [{ ip: `10.244.2.${10 + i}`, node: "node-2" }], {
            port: 8080,
          }),
        );
        await eventually(
          `service web-${i} programmed`,
          () => hns.dump().LoadBalancers.some((lb) => lb.FrontendVIPs?.includes(ip)),
        );
      }
      assert.deepEqual(hns.told, [false, true]);
    } finally {
      await agent.stop();
    }
  } finally {
    await close();
  }
});

Deno.test("agent: after a fast start the listings leave the calls' thread at ready, the state is built after it", async () => {
  const { api, dir, close } = await webWorld();
  try {
    const config = await inProcessConfig(api.url, dir);
    let state: MemoryHnsState = overlayHns();
    {
      const hns = new ThreadSwitchingHns({ state });
      const agent = await startAgent(config, { logger: nullLogger, hcnApi: hns });
      await agent.ready;
      await agent.idle();
      await agent.stop();
      state = hns.dump();
    }
    const hns = new ThreadSwitchingHns({ state });
    const agent = await startAgent(config, { logger: nullLogger, hcnApi: hns });
    hns.syncer = agent.syncer;
    try {
      await agent.ready;
      assert.equal(
        agent.syncer.desired,
        undefined,
        "a fast start: ready before the state is built",
      );
      assert.deepEqual(hns.told, [false, true]);
      assert.deepEqual(hns.built, [false, false], "switched at ready, before the build");
      await eventually("the state built", () => agent.syncer.desired !== undefined);
      assert.equal(hns.told.length, 2, "no switch after the build");
      // A change after it is applied.
      api.create(
        "services",
        serviceObject("api", { clusterIP: "10.96.0.11", ports: [{ port: 80, targetPort: 8080 }] }),
      );
      api.create(
        "endpointslices",
        sliceObject("api", [{ ip: "10.244.2.9", node: "node-2" }], { port: 8080 }),
      );
      await eventually(
        "service api programmed",
        () => hns.dump().LoadBalancers.some((lb) => lb.FrontendVIPs?.includes("10.96.0.11")),
      );
    } finally {
      await agent.stop();
    }
  } finally {
    await close();
  }
});

Deno.test("agent: the collection in the hold after the first ready run comes after ready is heard", async () => {
  const { api, dir, close } = await webWorld();
  try {
    const config = await inProcessConfig(api.url, dir);
    let readyHeard = false;
    const heardAtCollection: boolean[] = [];
    const heapCollector = new HeapCollector({
      collect: () => heardAtCollection.push(readyHeard),
      compact: () => heardAtCollection.push(readyHeard),
    });
    const hns = new ThreadSwitchingHns({ state: overlayHns() });
    // No health-check servers: their update would yield after ready, hiding the order.
    const agent = await startAgent(config, {
      logger: nullLogger,
      hcnApi: hns,
      heapCollector,
      serviceHealthChecks: false,
    });
    try {
      agent.ready.then(() => (readyHeard = true));
      await agent.ready;
      await eventually("the first hold's collection", () => heardAtCollection.length > 0);
      assert.equal(heardAtCollection[0], true, "ready was heard before the collection");
    } finally {
      await agent.stop();
    }
  } finally {
    await close();
  }
});
