/**
 * The agent in this process (lib/agent.ts `startAgent`) against the fake API
 * server and the in-memory HNS: what a stop releases.
 */

import assert from "node:assert/strict";
import { startAgent } from "../../lib/agent.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { nullLogger } from "../../lib/log/types.ts";
import { inProcessConfig, overlayHns, webWorld } from "./fixtures.ts";

Deno.test("agent: stop releases the API client it made (no HTTP client left open)", async () => {
  // Count KubeClient.close calls (the real method still runs).
  let closed = 0;
  const realClose = KubeClient.prototype.close;
  KubeClient.prototype.close = function (this: KubeClient) {
    closed++;
    realClose.call(this);
  };
  const { api, dir, close } = await webWorld();
  try {
    const config = await inProcessConfig(api.url, dir);
    const hns = new MemoryHcnApi({ state: overlayHns() });
    const agent = await startAgent(config, { logger: nullLogger, hcnApi: hns });
    await agent.ready;
    assert.equal(hns.dump().LoadBalancers.length, 1);
    assert.equal(closed, 0);
    await agent.stop();
    assert.equal(closed, 1, "the agent closed the API client it connected");
    await agent.stop();
    assert.equal(closed, 1, "stop is idempotent");
  } finally {
    KubeClient.prototype.close = realClose;
    await close();
  }
});
