/**
 * The real agent process on an l2bridge node (no source VIP, no provider
 * addresses), with every kind of service address: ClusterIP, NodePort,
 * external IPs, load-balancer ingress (plain, preserve-destination, ipMode
 * Proxy), externalTrafficPolicy Local with its health-check server, and
 * ClientIP affinity.
 */

import assert from "node:assert/strict";
import { AgentWorld, eventually, freePort, lbTableIs } from "./harness.ts";
import { l2bridgeHns, NODE, nodeObject, serviceObject, sliceObject } from "./fixtures.ts";

Deno.test("agent/l2bridge: every service address type converges; ETP Local health check answers", async () => {
  const hcPort = freePort();
  const world = await AgentWorld.create({
    hns: l2bridgeHns(),
    services: [
      serviceObject("web", {
        type: "NodePort",
        clusterIP: "10.96.0.10",
        ports: [{ port: 80, targetPort: 8080, nodePort: 30080 }],
        externalIPs: ["203.0.113.10"],
        sessionAffinity: "ClientIP",
      }),
      serviceObject("lb", {
        type: "LoadBalancer",
        clusterIP: "10.96.0.30",
        ports: [{ port: 443, targetPort: 8443, nodePort: 30443 }],
        ingress: [{ ip: "198.51.100.1" }, { ip: "198.51.100.2", ipMode: "Proxy" }],
        externalTrafficPolicy: "Local",
        healthCheckNodePort: hcPort,
      }),
      serviceObject("keep", {
        type: "LoadBalancer",
        clusterIP: "10.96.0.40",
        ports: [{ port: 53, targetPort: 5353, nodePort: 30053, protocol: "UDP" }],
        ingress: [{ ip: "198.51.100.4" }],
        annotations: { "preserve-destination": "true" },
      }),
    ],
    slices: [
      sliceObject("web", [
        { ip: "10.244.1.5", node: NODE },
        { ip: "10.244.2.7", node: "node-2" },
      ], { port: 8080 }),
      sliceObject("lb", [
        { ip: "10.244.1.6", node: NODE },
        { ip: "10.244.3.9", node: "node-3" },
      ], { port: 8443 }),
      sliceObject("keep", [
        { ip: "10.244.1.5", node: NODE },
        { ip: "10.244.2.8", node: "node-2" },
      ], { port: 5353, protocol: "UDP" }),
    ],
    node: nodeObject(),
  });
  try {
    const agent = world.startAgent(["--network-name", "cbr0"]);
    const want = [
      // web: ClusterIP, NodePort, external IP; ClientIP affinity everywhere (dt=2)
      "*:30080/tcp->8080 [10.244.1.5,10.244.2.7] flags=0 pm=18 dt=2",
      "10.96.0.10:80/tcp->8080 [10.244.1.5,10.244.2.7] flags=0 pm=0 dt=2",
      "203.0.113.10:80/tcp->8080 [10.244.1.5,10.244.2.7] flags=0 pm=16 dt=2",
      // lb: ETP Local: NodePort and ingress get local endpoints only, with DSR; Proxy ingress skipped
      "*:30443/tcp->8443 [10.244.1.6] flags=1 pm=18 dt=0",
      "10.96.0.30:443/tcp->8443 [10.244.1.6,10.244.3.9] flags=0 pm=0 dt=0",
      "198.51.100.1:443/tcp->8443 [10.244.1.6] flags=1 pm=16 dt=0",
      // keep: preserve-destination: ingress with UseMux|PreserveDIP (28), DSR, local endpoints
      "*:30053/udp->5353 [10.244.1.5] flags=0 pm=18 dt=0",
      "10.96.0.40:53/udp->5353 [10.244.1.5,10.244.2.8] flags=0 pm=0 dt=0",
      "198.51.100.4:53/udp->5353 [10.244.1.5] flags=1 pm=28 dt=0",
    ].sort();
    await lbTableIs(world, want, agent, "all service addresses");
    const hns = await world.hns();
    for (const lb of hns.LoadBalancers) {
      assert.equal(lb.SourceVIP, undefined, "no SourceVIP on l2bridge");
    }
    const remotes = hns.Endpoints.filter((e) => e.Flags === 1);
    assert.deepEqual(
      remotes.map((e) => e.IpConfigurations?.[0].IpAddress).sort(),
      ["10.244.2.7", "10.244.2.8", "10.244.3.9"],
      "remote endpoints for pods only (no service-VIP endpoints on l2bridge)",
    );
    for (const e of remotes) assert.equal(e.Policies, undefined, "no ProviderAddress on l2bridge");

    let answer: { status: number; body: Record<string, unknown> } | undefined;
    await eventually("health-check server", async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${hcPort}/`);
        answer = { status: res.status, body: await res.json() };
        return true;
      } catch {
        return false;
      }
    }, agent.log);
    assert.equal(answer!.status, 200);
    assert.deepEqual(answer!.body, {
      service: { namespace: "default", name: "lb" },
      localEndpoints: 1,
      serviceProxyHealthy: true,
    });

    world.api.update(
      "endpointslices",
      sliceObject("lb", [{ ip: "10.244.3.9", node: "node-3" }], { port: 8443 }),
    );
    await eventually("no local endpoints: 503", async () => {
      const res = await fetch(`http://127.0.0.1:${hcPort}/`);
      await res.body?.cancel();
      return res.status === 503;
    });
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});

Deno.test("agent/l2bridge: DSR, dual-stack, ITP Local, terminating fallback and zone hints", async () => {
  const hns = l2bridgeHns();
  hns.Endpoints!.push({
    ID: "10CA1000-0000-4000-8000-000000000605",
    Name: "pod-a-v6",
    HostComputeNetwork: hns.Networks![0].ID,
    IpConfigurations: [{ IpAddress: "fd00:244:1::5", PrefixLength: 64 }],
    MacAddress: "00-15-5D-01-00-65",
    Flags: 0,
  });
  const world = await AgentWorld.create({
    hns,
    services: [
      serviceObject("dual", {
        clusterIP: "10.96.0.50",
        clusterIPs: ["10.96.0.50", "fd00:96::50"],
        ports: [{ port: 80, targetPort: 8080 }],
      }),
      serviceObject("itp", {
        clusterIP: "10.96.0.60",
        internalTrafficPolicy: "Local",
        ports: [{ port: 80, targetPort: 8080 }],
      }),
      serviceObject("term", { clusterIP: "10.96.0.70", ports: [{ port: 80, targetPort: 8080 }] }),
      serviceObject("zoned", { clusterIP: "10.96.0.80", ports: [{ port: 80, targetPort: 8080 }] }),
    ],
    slices: [
      sliceObject("dual", [
        { ip: "10.244.1.5", node: NODE },
        { ip: "10.244.2.7", node: "node-2" },
      ], { port: 8080 }),
      sliceObject(
        "dual",
        [
          { ip: "fd00:244:1::5", node: NODE },
          { ip: "fd00:244:2::7", node: "node-2" },
        ],
        { port: 8080 },
        "default",
        "dual-v6",
      ),
      sliceObject("itp", [
        { ip: "10.244.1.6", node: NODE },
        { ip: "10.244.2.9", node: "node-2" },
      ], { port: 8080 }),
      // None ready: the serving-and-terminating ones are used.
      sliceObject("term", [
        { ip: "10.244.2.10", node: "node-2", ready: false, serving: true, terminating: true },
        { ip: "10.244.2.11", node: "node-2", ready: false, serving: false, terminating: true },
      ], { port: 8080 }),
      // Every endpoint hinted: only the ones for this node's zone (zone-a).
      sliceObject("zoned", [
        { ip: "10.244.2.20", node: "node-2", hints: ["zone-a"] },
        { ip: "10.244.3.21", node: "node-3", hints: ["zone-b"] },
      ], { port: 8080 }),
    ],
    node: nodeObject(),
  });
  try {
    const agent = world.startAgent(["--network-name", "cbr0", "--enable-dsr"]);
    const want = [
      "10.96.0.50:80/tcp->8080 [10.244.1.5,10.244.2.7] flags=1 pm=0 dt=0",
      "fd00:96::50:80/tcp->8080 [fd00:244:1::5,fd00:244:2::7] flags=3 pm=0 dt=0",
      "10.96.0.60:80/tcp->8080 [10.244.1.6] flags=1 pm=0 dt=0",
      "10.96.0.70:80/tcp->8080 [10.244.2.10] flags=1 pm=0 dt=0",
      "10.96.0.80:80/tcp->8080 [10.244.2.20] flags=1 pm=0 dt=0",
    ].sort();
    await lbTableIs(world, want, agent, "converged");
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});
