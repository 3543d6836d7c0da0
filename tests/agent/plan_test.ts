/**
 * `plan` as an operator runs it: the same flags as the agent, one read of the
 * cluster and HNS, a report, and no writes anywhere.
 */

import assert from "node:assert/strict";
import { AgentWorld, eventually } from "./harness.ts";
import { OVERLAY_ARGS, overlayHns, overlayWebCluster } from "./fixtures.ts";

Deno.test("plan: shows what a first sync would create and writes nothing", async () => {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    const before = await Deno.readTextFile(world.hnsFile);
    const run = await world.plan([...OVERLAY_ARGS, "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    assert.equal(report.network.name, "vxlan0");
    assert.deepEqual(
      report.desired.loadBalancers.map((l: { key: string }) => l.key).sort(),
      ["lb/tcp/10.96.0.10:80", "lb/tcp/10.96.0.20:80", "lb/tcp/nodeport:30080"],
    );
    const ops = report.plan.ops.map((o: { op: string; key: string }) => `${o.op} ${o.key}`);
    assert.ok(ops.includes("createEndpoint ep/remote/10.244.2.7"));
    assert.ok(ops.includes("createLoadBalancer lb/tcp/nodeport:30080"));
    assert.equal(ops.filter((o: string) => o.startsWith("create")).length, 3 + 5);
    assert.equal(await Deno.readTextFile(world.hnsFile), before, "HNS unchanged");
    await assert.rejects(Deno.stat(world.stateFile), Deno.errors.NotFound, "no ownership record");

    const text = await world.plan(OVERLAY_ARGS);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^Network vxlan0 \(overlay, /);
    assert.match(
      text.stdout,
      /Desired load balancers \(3\)\nKEY +SERVICE +KIND +INTERNAL +FLAGS +BACKENDS/,
    );
    assert.match(
      text.stdout,
      /lb\/tcp\/nodeport:30080 +default\/np +nodePort +9090 +LocalRoutedVIP VipExternalIP/,
    );
    assert.match(text.stdout, /Plan: 8 HNS operations, 0 objects adopted as they are/);
  } finally {
    await world.close();
  }
});

Deno.test("plan: after the agent converged, nothing to do", async () => {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    const agent = world.startAgent(OVERLAY_ARGS);
    await eventually("converged", async () => (await world.owned()).length === 8, agent.log);
    assert.equal(await world.stopAgent(agent), 0);
    const run = await world.plan([...OVERLAY_ARGS, "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const ops: Array<{ op: string }> = JSON.parse(run.stdout).plan.ops;
    assert.equal(ops.length, 8);
    assert.ok(ops.every((o) => o.op.startsWith("adopt")), JSON.stringify(ops));
  } finally {
    await world.close();
  }
});

Deno.test("plan: a missing network is a one-line error", async () => {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    const run = await world.plan(["--network-name", "nope"]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /hnsproxy plan: HNS network "nope" not found/);
  } finally {
    await world.close();
  }
});
