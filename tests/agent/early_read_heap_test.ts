/**
 * The agent in this process (lib/agent.ts `startAgent`) against the fake API
 * server and the in-memory HNS: what the start's early read of HNS returned
 * (every CNI endpoint as HNS gave it) is let go once the start used it; the
 * agent keeps only what it derived (the node context's IP → ID map).
 */

import assert from "node:assert/strict";
import { startAgent } from "../../lib/agent.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import { nullLogger } from "../../lib/log/types.ts";
import { FakeApiServer } from "../../lib/fake-apiserver/mod.ts";
import { stringsInHeap } from "../heap_strings.ts";
import { inProcessConfig, NODE, nodeObject, overlayHnsWithPods, webObjects } from "./fixtures.ts";

const PODS = 20;

/**
 * The name of CNI endpoint `i`: longer than 10 characters (JSON.parse gives
 * each its own string) and built from a number, so that this file holds no
 * copy of it.
 */
function podName(i: number): string {
  return `cni-endpoint-of-pod-${1000 + i}`;
}

Deno.test("agent: after its start, nothing the early read of HNS returned stays in the heap", async () => {
  const api = await new FakeApiServer().start();
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-agent-" });
  try {
    const [web, webSlice] = webObjects("10.244.1.20", NODE);
    api.create("services", web);
    api.create("endpointslices", webSlice);
    api.create("nodes", nodeObject());
    const config = await inProcessConfig(api.url, dir);
    const hns = new MemoryHcnApi({ state: overlayHnsWithPods(PODS, podName, 20) });
    const agent = await startAgent(config, { logger: nullLogger, hcnApi: hns });
    try {
      await agent.ready;
      assert.ok(
        hns.dump().LoadBalancers.some((lb) => lb.FrontendVIPs?.includes("10.96.0.10")),
        "the service is programmed with its local pod",
      );
      // The in-memory HNS holds each name once; a control name that nothing else holds shows
      // what the count's own arguments add. Any other copy is the agent's.
      const names = Array.from({ length: PODS }, (_, i) => podName(i));
      const [control, ...counts] = stringsInHeap(`${podName(-999)}`, ...names);
      assert.deepEqual(counts, names.map(() => control + 1));
    } finally {
      await agent.stop();
    }
  } finally {
    await api.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
