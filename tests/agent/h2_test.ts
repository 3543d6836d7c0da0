/**
 * The real agent process against an API server over TLS that offers HTTP/2,
 * as kube-apiserver does: its lists, watches and event writes run as HTTP/2
 * streams on one connection, authenticated by its client certificate, and a
 * restart of the API server (GOAWAY, watches closed, the port closed while
 * the cluster changes) is ridden out without a relist; a connection that
 * goes dead without a reset is left for a new one.
 */

import assert from "node:assert/strict";
import { AgentWorld, eventually } from "./harness.ts";
import {
  NODE,
  OVERLAY_ARGS,
  overlayHns,
  overlayWebCluster,
  serviceObject,
  sliceObject,
} from "./fixtures.ts";
import { hasOpenssl, makePki, type Pki } from "../kube/pki.ts";
import { WATCH_PROGRESS_TIMEOUT_ENV } from "../../lib/kube/cluster.ts";

const INITIAL_LBS = 3;

const b64 = (text: string) => btoa(text);

function tlsKubeconfig(pki: Pki): (server: string) => string {
  return (server) =>
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{
        name: "fake",
        cluster: { server, "certificate-authority-data": b64(pki.ca) },
      }],
      users: [{
        name: "node",
        user: {
          "client-certificate-data": b64(pki.clientCert),
          "client-key-data": b64(pki.clientKey),
        },
      }],
      contexts: [{ name: "fake", context: { cluster: "fake", user: "node" } }],
      "current-context": "fake",
    });
}

/** A world whose API server is over TLS and authenticates the agent by its client certificate. */
async function tlsWorld(pki: Pki, api: { bookmarkIntervalMs?: number } = {}): Promise<AgentWorld> {
  return await AgentWorld.create({
    hns: overlayHns(),
    ...overlayWebCluster(),
    api: {
      tls: { cert: pki.serverCert, key: pki.serverKey, clientCA: pki.ca },
      tokens: ["not-the-agents"],
      ...api,
    },
    kubeconfig: tlsKubeconfig(pki),
  });
}

/** Starts the agent and waits for its first sync and its three watches; `table` describes it. */
async function startWatching(world: AgentWorld, args: string[], env: Record<string, string> = {}) {
  const agent = world.startAgent(args, env);
  const table = async () => (await world.lbTable()).join("\n") + "\n---\n" + agent.log();
  await eventually("initial", async () => (await world.lbTable()).length === INITIAL_LBS, table);
  await eventually("watches open", () => Promise.resolve(world.api.openWatches() >= 3), table);
  return { agent, table };
}

/** A service "late" (10.96.0.40) with one local endpoint. */
function createLate(world: AgentWorld): void {
  world.api.create(
    "services",
    serviceObject("late", { clusterIP: "10.96.0.40", ports: [{ port: 80, targetPort: 8080 }] }),
  );
  world.api.create(
    "endpointslices",
    sliceObject("late", [{ ip: "10.244.1.6", node: NODE }], { port: 8080 }),
  );
}

Deno.test({
  name: "agent/h2: over TLS the agent speaks HTTP/2 on one connection and rides out a restart",
  ignore: !hasOpenssl,
  async fn() {
    const pki = await makePki();
    const world = await tlsWorld(pki);
    try {
      const { agent, table } = await startWatching(world, [...OVERLAY_ARGS]);
      const before = world.api.requests.slice();
      assert.ok(before.length > 0);
      for (const r of before) {
        assert.equal(r.protocol, "h2", `${r.verb} ${r.path}`);
        assert.equal(r.user, "cert:system:kube-proxy");
      }
      const watches = before.filter((r) => r.verb === "watch");
      assert.deepEqual(
        [...new Set(watches.map((r) => r.resource))].sort(),
        ["endpointslices", "nodes", "services"],
      );
      assert.equal(new Set(watches.map((r) => r.connection)).size, 1, "one connection");
      const lists = world.api.count("list");

      // A restart as kube-apiserver's: GOAWAY, watches closed, then the port
      // closed while the cluster changes.
      assert.ok(world.api.goAway() >= 1);
      world.api.closeWatches();
      await world.api.outage();
      createLate(world);
      world.api.delete("services", "default/np");
      await world.api.endOutage();
      await eventually(
        "the changes made while the API server was down",
        async () => {
          const lbs = await world.lbTable();
          return lbs.some((l) => l.startsWith("10.96.0.40:")) &&
            !lbs.some((l) => l.startsWith("10.96.0.20:"));
        },
        table,
      );
      const after = world.api.requests.slice(before.length);
      assert.ok(after.some((r) => r.verb === "watch"));
      for (const r of after) assert.equal(r.protocol, "h2");
      assert.ok(after.every((r) => r.connection !== watches[0].connection), "a new connection");
      assert.equal(world.api.count("list"), lists, "no relist");
      assert.equal(await world.stopAgent(agent), 0);
    } finally {
      await world.close();
      await Deno.remove(pki.dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "agent/h2: its API-server connection frozen (dead without a reset), the agent moves to a new one and keeps up",
  ignore: !hasOpenssl,
  async fn() {
    const pki = await makePki();
    // A healthy server's bookmarks: the progress limit fires only on the frozen connection.
    const world = await tlsWorld(pki, { bookmarkIntervalMs: 200 });
    try {
      const { agent, table } = await startWatching(
        world,
        [...OVERLAY_ARGS, "--config-sync-period", "0"],
        { [WATCH_PROGRESS_TIMEOUT_ENV]: "2s" },
      );
      const before = world.api.requests.length;
      const used = new Set(world.api.requests.map((r) => r.connection));

      // The connection goes dead: every stream on it with it, and nothing tells the agent.
      assert.equal(world.api.freezeConnections(), 1);
      createLate(world);
      // The progress limit (2 s) ends the silent watches; the relist and the
      // watches after it must not wait on the dead connection (a list's own
      // timeout is a minute, past this deadline).
      await eventually(
        "the change made after the freeze",
        async () => (await world.lbTable()).some((l) => l.startsWith("10.96.0.40:")),
        table,
      );
      assert.match(agent.log(), /progress limit/);
      // The relist brought it; then the watches resume, and carry what follows.
      await eventually(
        "the watches resumed",
        () => world.api.requests.slice(before).filter((r) => r.verb === "watch").length >= 3,
        table,
      );
      world.api.delete("services", "default/late");
      await eventually(
        "a change after the watches resumed",
        async () => !(await world.lbTable()).some((l) => l.startsWith("10.96.0.40:")),
        table,
      );
      const after = world.api.requests.slice(before);
      assert.ok(after.some((r) => r.verb === "list"));
      for (const r of after) {
        assert.equal(r.protocol, "h2");
        assert.ok(!used.has(r.connection), `${r.verb} ${r.path} on a new connection`);
      }
      assert.equal(await world.stopAgent(agent), 0);
    } finally {
      await world.close();
      await Deno.remove(pki.dir, { recursive: true });
    }
  },
});
