/**
 * The root HNS endpoint (`--root-hnsendpoint-name`, backend of the
 * health-check VIP LBs of `--forward-healthcheck-vip`) follows HNS while the
 * agent runs: recreated with a new ID (an HNS restart, a CNI reinstall), the
 * health-check LB ends up on the new one.
 */

import assert from "node:assert/strict";
import { AgentWorld, eventually } from "./harness.ts";
import { HOST_EP, l2bridgeHns, NODE, nodeObject, serviceObject, sliceObject } from "./fixtures.ts";

Deno.test("agent: a recreated root HNS endpoint becomes the health-check LB's backend", async () => {
  const world = await AgentWorld.create({
    hns: l2bridgeHns(),
    services: [serviceObject("lb", {
      type: "LoadBalancer",
      clusterIP: "10.96.0.30",
      ports: [{ port: 443, targetPort: 8443, nodePort: 30443 }],
      ingress: [{ ip: "198.51.100.1" }],
    })],
    slices: [sliceObject("lb", [{ ip: "10.244.1.6", node: NODE }], { port: 8443 })],
    node: nodeObject(),
  });
  try {
    const agent = world.startAgent([
      "--network-name",
      "cbr0",
      "--forward-healthcheck-vip",
      "--sync-period",
      "1s",
    ]);
    const describe = async () => (await world.lbTable()).join("\n") + "\n" + agent.log();
    /** Backends of the LBs on the ingress IP at the healthz port (the health-check LBs). */
    const healthCheckBackends = async () =>
      (await world.hns()).LoadBalancers.filter((lb) =>
        lb.FrontendVIPs?.[0] === "198.51.100.1" &&
        lb.PortMappings[0].ExternalPort === agent.healthzPort
      ).map((lb) => lb.HostComputeEndpoints.join(","));
    await eventually(
      "health-check LB on the root endpoint",
      async () => (await healthCheckBackends()).join() === HOST_EP,
      describe,
    );

    const newId = await world.hnsTool("recreate-ep", HOST_EP);
    assert.notEqual(newId.toUpperCase(), HOST_EP);
    await eventually(
      "health-check LB on the recreated root endpoint",
      async () => (await healthCheckBackends()).join().toUpperCase() === newId.toUpperCase(),
      describe,
    );
    assert.equal(
      (await world.hns()).LoadBalancers.filter((lb) => lb.FrontendVIPs?.[0] === "198.51.100.1")
        .length,
      2,
      "the ingress LB and one health-check LB",
    );
  } finally {
    await world.close();
  }
});
