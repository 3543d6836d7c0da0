/**
 * The real agent against an API server that compresses as kube-apiserver
 * does: by default its large lists arrive gzipped (and are decompressed);
 * with `disable-compression: true` in the kubeconfig every request asks for
 * uncompressed answers, and the agent programs the same load balancers.
 */

import assert from "node:assert/strict";
import { join } from "../../lib/path.ts";
import { type FakeObject, GZIP_THRESHOLD_BYTES } from "../../lib/fake-apiserver/mod.ts";
import { LIST_PAGE_SIZE } from "../../lib/kube/reflector.ts";
import { afterFirstSync, AgentWorld } from "./harness.ts";
import { nodeObject, OVERLAY_ARGS, overlayHns, serviceObject, sliceObject } from "./fixtures.ts";

/**
 * An annotation long enough that a full page of the agent's Services is over
 * the size from which the API server compresses, whatever else a Service
 * holds (real ones often carry kubectl's last-applied-configuration).
 */
const NOTE = "x".repeat(Math.ceil(GZIP_THRESHOLD_BYTES / LIST_PAGE_SIZE));

/** Service `svc-i` and its slice with one remote pod. */
function objects(i: number): [FakeObject, FakeObject] {
  const name = `svc-${i}`;
  return [
    serviceObject(name, {
      clusterIP: `10.96.${i >> 8}.${i & 255}`,
      ports: [{ port: 80, targetPort: 8080 }],
      annotations: { "example.com/note": NOTE },
    }),
    sliceObject(name, [{ ip: `10.244.${2 + (i >> 8)}.${i & 255}`, node: "node-2" }], {
      port: 8080,
    }),
  ];
}

/** More than two full pages of the agent's lists. */
const COUNT = 2 * LIST_PAGE_SIZE + 100;

Deno.test("agent/compression: lists arrive gzipped by default and uncompressed with the kubeconfig's disable-compression", async () => {
  const all = Array.from({ length: COUNT }, (_, i) => objects(i));
  const world = await AgentWorld.create({
    hns: overlayHns(),
    services: all.map(([s]) => s),
    slices: all.map(([, s]) => s),
    node: nodeObject(),
  });
  try {
    const lists = (from: number) =>
      world.api.requests.slice(from).filter((r) =>
        r.verb === "list" && (r.resource === "services" || r.resource === "endpointslices")
      );

    let agent = world.startAgent(OVERLAY_ARGS);
    await afterFirstSync(world, agent);
    assert.equal((await world.lbTable()).length, COUNT);
    const gzipped = lists(0).filter((r) => r.contentEncoding === "gzip");
    assert.ok(gzipped.length >= 2, `gzipped lists: ${JSON.stringify(lists(0))}`);
    assert.equal(await world.stopAgent(agent), 0);

    // While the agent is down: one more service, and the node's kubeconfig turns compression off.
    const [svc, slice] = objects(COUNT);
    world.api.create("services", svc);
    world.api.create("endpointslices", slice);
    await Deno.writeTextFile(
      join(world.dir, "kubeconfig"),
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{
          name: "fake",
          cluster: { server: world.api.url, "disable-compression": true },
        }],
        users: [{ name: "fake", user: {} }],
        contexts: [{ name: "fake", context: { cluster: "fake", user: "fake" } }],
        "current-context": "fake",
      }),
    );
    const from = world.api.requests.length;
    agent = world.startAgent(OVERLAY_ARGS);
    await afterFirstSync(world, agent);
    assert.equal((await world.lbTable()).length, COUNT + 1);
    assert.ok(lists(from).length >= 2);
    for (const r of world.api.requests.slice(from)) {
      const what = `${r.verb} ${r.path} ${JSON.stringify(r.query)}`;
      assert.equal(r.acceptEncoding, "identity", what);
      assert.equal(r.contentEncoding, undefined, what);
    }
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});
