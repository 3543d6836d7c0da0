/**
 * The agent in this process (lib/agent.ts `startAgent`) against the fake API
 * server and the in-memory HNS: when the listings leave the calls' HNS thread
 * (they share it until the agent is ready, and only then).
 */

import assert from "node:assert/strict";
import { startAgent } from "../../lib/agent.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import { nullLogger } from "../../lib/log/types.ts";
import { FakeApiServer } from "../../lib/fake-apiserver/mod.ts";
import { eventually } from "./harness.ts";
import {
  inProcessConfig,
  nodeObject,
  overlayHns,
  serviceObject,
  sliceObject,
  webObjects,
} from "./fixtures.ts";

/** The in-memory HNS, with the threaded backend's switch for listings, recording what it was told. */
class ThreadSwitchingHns extends MemoryHcnApi {
  readonly told: boolean[] = [];
  keepListingsApart(apart: boolean): void {
    this.told.push(apart);
  }
}

Deno.test("agent: the listings leave the calls' thread once ready, and only then, whatever the holds", async () => {
  const api = await new FakeApiServer().start();
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-agent-" });
  try {
    const [web, webSlice] = webObjects("10.244.2.7", "node-2");
    api.create("services", web);
    api.create("endpointslices", webSlice);
    api.create("nodes", nodeObject());
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
    await api.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
