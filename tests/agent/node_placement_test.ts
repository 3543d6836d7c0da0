/**
 * Overlay placement follows the cluster as it grows: the agent (in this
 * process, in-memory HNS, fake API server) watches every Node, so a pod on a
 * node that joined after the agent started, whose route the CNI has not
 * added yet, gets that node's InternalIP as its provider address, and a pod
 * seen before its node (inside --cluster-cidr) waits, then is placed on it.
 */

import assert from "node:assert/strict";
import { startAgent } from "../../lib/agent.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import { nullLogger } from "../../lib/log/types.ts";
import { FakeApiServer, type FakeObject } from "../../lib/fake-apiserver/mod.ts";
import { eventually } from "./harness.ts";
import {
  inProcessConfig,
  NODE,
  NODE_IP,
  nodeObject,
  overlayHns,
  serviceObject,
  sliceObject,
  SOURCE_VIP,
} from "./fixtures.ts";

function otherNode(name: string, ip: string, cidr: string): FakeObject {
  return {
    metadata: { name },
    spec: { podCIDR: cidr, podCIDRs: [cidr] },
    status: { addresses: [{ type: "InternalIP", address: ip }] },
  };
}

Deno.test("agent/placement: pods on nodes that joined after start get their node's IP as provider address", async () => {
  const api = await new FakeApiServer().start();
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-placement-" });
  const hns = new MemoryHcnApi({ state: overlayHns() });
  const web = (eps: { ip: string; node: string }[]) => sliceObject("web", eps, { port: 8080 });
  api.create("nodes", nodeObject());
  api.create("nodes", otherNode("node-2", "192.168.1.12", "10.244.2.0/24"));
  api.create(
    "services",
    serviceObject("web", { clusterIP: "10.96.0.10", ports: [{ port: 80, targetPort: 8080 }] }),
  );
  api.create(
    "endpointslices",
    web([{ ip: "10.244.1.5", node: NODE }, { ip: "10.244.2.7", node: "node-2" }]),
  );
  const config = await inProcessConfig(api.url, dir, [
    "--sync-period",
    "1h",
    "--cluster-cidr",
    "10.244.0.0/16",
  ]);
  const agent = await startAgent(config, {
    logger: nullLogger,
    hcnApi: hns,
    serviceHealthChecks: false,
  });
  const pa = (ip: string) =>
    hns.dump().Endpoints.find((e) => e.IpConfigurations?.[0]?.IpAddress === ip)?.Policies?.find((
      p,
    ) => p.Type === "ProviderAddress")?.Settings?.ProviderAddress;
  const describe = () =>
    JSON.stringify(hns.dump().Endpoints.map((e) => [e.IpConfigurations, e.Policies]));
  try {
    await agent.ready;
    await eventually(
      "node-2's pod by its route",
      () => pa("10.244.2.7") === "192.168.1.12",
      describe,
    );

    // node-5 joins, then a pod on it; the CNI has not added node-5's route.
    api.create("nodes", otherNode("node-5", "192.168.1.15", "10.244.5.0/24"));
    await eventually("node-5 known", () => agent.store.nodePlacement("node-5") !== undefined);
    api.update(
      "endpointslices",
      web([
        { ip: "10.244.1.5", node: NODE },
        { ip: "10.244.2.7", node: "node-2" },
        { ip: "10.244.5.7", node: "node-5" },
      ]),
    );
    await eventually(
      "node-5's pod by its Node",
      () => pa("10.244.5.7") === "192.168.1.15",
      describe,
    );

    // A pod on node-6 arrives before node-6's Node object does: it waits (never
    // this node's IP as provider address), and is placed once the node is known.
    api.update(
      "endpointslices",
      web([
        { ip: "10.244.1.5", node: NODE },
        { ip: "10.244.2.7", node: "node-2" },
        { ip: "10.244.5.7", node: "node-5" },
        { ip: "10.244.6.8", node: "node-6" },
      ]),
    );
    await eventually(
      "web's slice with the node-6 pod taken",
      () => agent.store.slicesFor("default/web")[0]?.endpoints.length === 4,
    );
    await agent.idle();
    assert.equal(pa("10.244.6.8"), undefined, "in --cluster-cidr and not placed yet: it waits");
    assert.equal(hns.dump().LoadBalancers[0].SourceVIP, SOURCE_VIP);
    api.create("nodes", otherNode("node-6", "192.168.1.16", "10.244.6.0/24"));
    await eventually(
      "node-6's pod by its Node",
      () => pa("10.244.6.8") === "192.168.1.16",
      describe,
    );

    for (const ip of ["10.244.5.7", "10.244.6.8"]) assert.notEqual(pa(ip), NODE_IP);
    const lbs = hns.dump().LoadBalancers;
    assert.equal(lbs.length, 1);
    assert.equal(lbs[0].SourceVIP, SOURCE_VIP, "the SourceVIP stays the source VIP");
    const remote = hns.dump().Endpoints.filter((e) =>
      e.Policies?.some((p) => p.Type === "ProviderAddress")
    );
    assert.deepEqual(
      remote.map((e) => e.IpConfigurations?.[0]?.IpAddress).sort(),
      ["10.244.2.7", "10.244.5.7", "10.244.6.8", "10.96.0.10"],
      "one remote endpoint per remote pod (and the ClusterIP's), none left behind",
    );
  } finally {
    await agent.stop();
    await api.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
