/**
 * The real agent process over HTTP: `/healthz` follows the node's
 * eligibility (deletion, the autoscaler's to-be-deleted taint), and the
 * metrics count services whose Local traffic policy finds no local endpoint.
 */

import assert from "node:assert/strict";
import { parseExposition } from "../serve/prom.ts";
import { type AgentProcess, AgentWorld, eventually } from "./harness.ts";
import {
  NODE,
  nodeObject,
  OVERLAY_ARGS,
  overlayHns,
  serviceObject,
  sliceObject,
} from "./fixtures.ts";
import { startProgrammed, webAgentWorld } from "./web_agent.ts";

async function get(agent: AgentProcess, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${agent.healthzPort}${path}`);
  return { status: res.status, body: await res.text() };
}

Deno.test("agent/health: /healthz is 503 while the node is tainted for deletion or being deleted", async () => {
  const world = await webAgentWorld();
  try {
    const { agent, describe } = await startProgrammed(world);
    await eventually(
      "healthy",
      async () => (await get(agent, "/healthz")).status === 200,
      describe,
    );
    assert.match((await get(agent, "/healthz")).body, /"nodeEligible": true/);

    const tainted = nodeObject();
    (tainted.spec as Record<string, unknown>).taints = [
      { key: "ToBeDeletedByClusterAutoscaler", value: "1735787045", effect: "NoSchedule" },
    ];
    world.api.update("nodes", tainted);
    await eventually(
      "ineligible when tainted",
      async () => (await get(agent, "/healthz")).status === 503,
      describe,
    );
    assert.match((await get(agent, "/healthz")).body, /"nodeEligible": false/);
    assert.equal((await get(agent, "/livez")).status, 200, "/livez ignores eligibility");

    world.api.update("nodes", nodeObject());
    await eventually(
      "eligible when the taint goes",
      async () => (await get(agent, "/healthz")).status === 200,
      describe,
    );

    world.api.delete("nodes", NODE);
    await eventually(
      "ineligible once the Node object is gone",
      async () => (await get(agent, "/healthz")).status === 503,
      describe,
    );
    world.api.create("nodes", nodeObject());
    await eventually(
      "eligible when it is back",
      async () => (await get(agent, "/healthz")).status === 200,
      describe,
    );

    const deleting = nodeObject();
    (deleting.metadata as Record<string, unknown>).deletionTimestamp = "2025-01-02T03:04:05Z";
    world.api.update("nodes", deleting);
    await eventually(
      "ineligible while being deleted",
      async () => (await get(agent, "/healthz")).status === 503,
      describe,
    );
    const metrics = await world.metrics(agent);
    assert.match(metrics, /kubeproxy_proxy_healthz_total\{code="503"\} [1-9]/);
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});

/** The value of one sample (`name{sorted labels}`) of the metrics text, or undefined. */
function sample(text: string, series: string): number | undefined {
  return parseExposition(text).samples.get(series);
}

const NO_LOCAL = "kubeproxy_sync_proxy_rules_no_local_endpoints_total";

Deno.test("agent/health: services with a Local policy and no local endpoint are counted per policy and family", async () => {
  const world = await AgentWorld.create({
    hns: overlayHns(),
    services: [
      // ETP Local, endpoints on other nodes only: counted (external), with two ports.
      serviceObject("ext", {
        type: "NodePort",
        clusterIP: "10.96.0.20",
        externalTrafficPolicy: "Local",
        ports: [
          { name: "a", port: 80, targetPort: 8080, nodePort: 30080 },
          { name: "b", port: 81, targetPort: 8081, nodePort: 30081 },
        ],
      }),
      // ITP Local, remote endpoints only: counted (internal).
      serviceObject("int", {
        clusterIP: "10.96.0.30",
        internalTrafficPolicy: "Local",
        ports: [{ port: 80, targetPort: 8080 }],
      }),
      // ITP Local with a local endpoint: not counted.
      serviceObject("intok", {
        clusterIP: "10.96.0.31",
        internalTrafficPolicy: "Local",
        ports: [{ port: 80, targetPort: 8080 }],
      }),
      // ITP Local without any endpoint: not counted (as kube-proxy: no endpoints at all).
      serviceObject("empty", {
        clusterIP: "10.96.0.32",
        internalTrafficPolicy: "Local",
        ports: [{ port: 80, targetPort: 8080 }],
      }),
    ],
    slices: [
      {
        ...sliceObject("ext", [{ ip: "10.244.2.7", node: "node-2" }], { name: "a", port: 8080 }),
        ports: [
          { name: "a", port: 8080, protocol: "TCP" },
          { name: "b", port: 8081, protocol: "TCP" },
        ],
      },
      sliceObject("int", [{ ip: "10.244.3.9", node: "node-3" }], { port: 8080 }),
      sliceObject("intok", [{ ip: "10.244.1.5", node: NODE }], { port: 8080 }),
    ],
    node: nodeObject(),
  });
  try {
    const agent = world.startAgent(OVERLAY_ARGS);
    const text = () => world.metrics(agent).catch(() => "");
    const series = (policy: string, family = "IPv4") =>
      `${NO_LOCAL}{ip_family="${family}",traffic_policy="${policy}"}`;
    const counts = async () => {
      const t = await text();
      return [sample(t, series("internal")), sample(t, series("external"))];
    };
    await eventually(
      "counted after the first sync",
      async () => JSON.stringify(await counts()) === JSON.stringify([1, 2]),
      async () => `${JSON.stringify(await counts())}\n${await text()}`,
    );
    const t = await text();
    assert.equal(sample(t, series("internal", "IPv6")), 0);
    assert.equal(sample(t, series("external", "IPv6")), 0);

    // A local endpoint for "int" appears: it no longer counts.
    world.api.update(
      "endpointslices",
      sliceObject("int", [{ ip: "10.244.1.6", node: NODE }], { port: 8080 }),
    );
    await eventually(
      "recounted after a partial sync",
      async () => JSON.stringify(await counts()) === JSON.stringify([0, 2]),
      async () => `${JSON.stringify(await counts())}\n${agent.log()}`,
    );
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});
