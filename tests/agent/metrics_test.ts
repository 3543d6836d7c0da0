/**
 * The real agent process over HTTP: the change counters and the network
 * programming latency follow what the syncs applied (kube-proxy's names),
 * for the first programming and for partial syncs alike.
 */

import assert from "node:assert/strict";
import { ANNOTATION_TRIGGER_TIME } from "../../lib/kube/convert.ts";
import { parseExposition } from "../serve/prom.ts";
import { join } from "../../lib/path.ts";
import { API_VERSION, KIND } from "../../lib/config/file.ts";
import { afterFirstSync, type AgentWorld, eventually } from "./harness.ts";
import { HOST_MAC, remoteWebSlice, SOURCE_VIP } from "./fixtures.ts";
import { startProgrammed, webAgentWorld } from "./web_agent.ts";
import type { FakeObject } from "../../lib/fake-apiserver/mod.ts";

function webSlice(ips: string[], triggerTime: Date): FakeObject {
  const slice = remoteWebSlice(ips);
  (slice.metadata as Record<string, unknown>).annotations = {
    [ANNOTATION_TRIGGER_TIME]: triggerTime.toISOString(),
  };
  return slice;
}

/** The overlay node serving `web` with one remote pod, its slice last changed an hour ago. */
function webWorld(): Promise<AgentWorld> {
  return webAgentWorld(webSlice(["10.244.2.7"], new Date(Date.now() - 3600_000)));
}

/** Start the agent (overlay flags plus `args`) and wait until it programmed `web`. */
async function programmed(world: AgentWorld, args: string[] = []) {
  const { agent, describe } = await startProgrammed(world, args);
  /** The metrics now, as a lookup by sample name (0 when absent). */
  const sample = async () => {
    const { samples } = parseExposition(await world.metrics(agent));
    return (name: string) => samples.get(name) ?? 0;
  };
  return { agent, describe, sample };
}

const LATENCY_COUNT = 'kubeproxy_network_programming_duration_seconds_count{ip_family="IPv4"}';

Deno.test("agent/metrics: network programming latency is observed only for changes after the start, and for partial syncs", async () => {
  const world = await webWorld();
  try {
    const { agent, describe, sample } = await programmed(world);
    await afterFirstSync(world, agent);
    // Now is after the agent started: it has synced.
    const afterStart = new Date();
    const before = await sample();
    // As kube-proxy: the hour-old change listed at start is not a latency of this proxy.
    assert.equal(before(LATENCY_COUNT), 0, "the initial list's trigger time is not observed");

    // One more pod, its change stamped after the start and synced over a second later.
    await eventually("a second passed", () => Date.now() > afterStart.getTime() + 1000);
    world.api.update("endpointslices", webSlice(["10.244.2.7", "10.244.2.8"], afterStart));
    await eventually(
      "second backend programmed",
      async () => (await world.lbTable()).some((line) => line.includes("10.244.2.8")),
      describe,
    );
    await eventually("partial sync counted", async () => {
      const after = await sample();
      return after("kubeproxy_sync_proxy_rules_endpoint_changes_total") >
          before("kubeproxy_sync_proxy_rules_endpoint_changes_total") &&
        after(LATENCY_COUNT) > 0;
    }, describe);
    const after = await sample();
    assert.equal(after(LATENCY_COUNT), 1, "one change, one latency");
    // Measured from the annotation: over a second, so not in the le=1 bucket.
    const le1 = 'kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="1"}';
    assert.equal(after(le1), 0, "the latency counts from the trigger time, over 1 s ago");
    assert.ok(
      after('kubeproxy_sync_partial_proxy_rules_duration_seconds_count{ip_family="IPv4"}') >= 1,
      "the partial sync is timed",
    );
  } finally {
    await world.close();
  }
});

Deno.test("agent/metrics: every successful run stamps the last-sync gauge and the sync histograms, idle periodic runs included", async () => {
  const world = await webWorld();
  try {
    const { describe, sample } = await programmed(world, ["--sync-period", "1s"]);
    const last = 'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"}';
    const all = 'kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"}';
    const partial = 'kubeproxy_sync_partial_proxy_rules_duration_seconds_count{ip_family="IPv4"}';
    let before = await sample();
    await eventually("first sync stamped", async () => {
      before = await sample();
      return before(last) > 0;
    }, describe);
    // Nothing changes in the cluster or HNS: only the periodic resync runs, and finds nothing.
    await eventually("idle periodic runs stamped", async () => {
      const after = await sample();
      return after(last) > before(last) && after(all) >= before(all) + 2 &&
        after(partial) >= before(partial) + 2;
    }, describe);
    const after = await sample();
    assert.equal(
      after("kubeproxy_sync_proxy_rules_endpoint_changes_total"),
      before("kubeproxy_sync_proxy_rules_endpoint_changes_total"),
      "no change was synced meanwhile",
    );
  } finally {
    await world.close();
  }
});

Deno.test("agent/metrics: a node's YAML kubeconfig and YAML config file are read (the parser loaded when needed), and the metrics served", async () => {
  const world = await webWorld();
  try {
    // The usual files on a node: YAML, which `run` parses only after loading the YAML package.
    await Deno.writeTextFile(
      join(world.dir, "kubeconfig"),
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "  - name: fake",
        "    cluster:",
        `      server: ${world.api.url}`,
        "users:",
        "  - name: fake",
        "    user: {}",
        "contexts:",
        "  - name: fake",
        "    context: {cluster: fake, user: fake}",
        "current-context: fake",
      ].join("\n"),
    );
    const config = join(world.dir, "config.yaml");
    await Deno.writeTextFile(
      config,
      [
        "# The winkernel section, as kube-proxy's ConfigMap would carry it.",
        `apiVersion: ${API_VERSION}`,
        `kind: ${KIND}`,
        "winkernel:",
        "  networkName: vxlan0",
        `  sourceVip: ${SOURCE_VIP}`,
      ].join("\n"),
    );
    const agent = world.startAgent(["--config", config, "--host-mac", HOST_MAC]);
    await eventually("programmed", async () => (await world.lbTable()).length === 1, agent.log);
    // The network is the config file's, not a detected one.
    assert.match(agent.log(), /Starting hnsproxy.*vxlan0/);
    const text = await afterFirstSync(world, agent);
    assert.match(text, /^kubeproxy_sync_proxy_rules_duration_seconds_count(\{[^}]*\})? [1-9]/m);
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});
