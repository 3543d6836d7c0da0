/**
 * Restarts of the real agent process against the HNS emulator library: with
 * an intact ownership record it lists IDs and reads only the objects it does
 * not own and its own objects that changed; with a lost or corrupt record, or
 * with `--full-hns-read-on-start`, it reads every object. Calls are counted
 * by the agent's `hnsproxy_hns_calls_total`, which counts every HCN call.
 */

import assert from "node:assert/strict";
import {
  afterFirstSync as afterStart,
  AgentWorld,
  eventually,
  hnsCalls as calls,
  lbTableIs,
} from "./harness.ts";
import {
  createDb,
  FOREIGN_EP,
  FOREIGN_LB,
  FOREIGN_LB_LINE,
  moveWebPod,
  OVERLAY_ARGS,
  OVERLAY_WEB_LBS,
  overlayWebCluster,
  seededOverlayHns,
} from "./fixtures.ts";

/** Objects in HNS hnsproxy does not own: two CNI pods, a foreign LB and a foreign endpoint. */
const UNOWNED = 4;

const WEB_TABLE = [...OVERLAY_WEB_LBS, FOREIGN_LB_LINE];
/** hnsproxy's objects for the web cluster: 3 LBs, remote pods 2.7 and 3.9, 2 cluster-IP endpoints, the source VIP. */
const WEB_OWNED = 8;

const ALL = /^Hcn/;
const OPENS = /^HcnOpen(Endpoint|LoadBalancer)$/;
const WRITES = /^Hcn(Create|Modify|Delete)(LoadBalancer|Endpoint)$/;
const DELETES = /^HcnDelete/;

/** Program the web cluster with a first agent, then stop it (gracefully, or kill -9). */
async function firstLife(world: AgentWorld, kill = false): Promise<void> {
  const first = world.startAgent(OVERLAY_ARGS);
  await lbTableIs(world, WEB_TABLE, first, "first life programmed");
  await eventually(
    "record with fingerprints written",
    async () => {
      const owned = await world.owned();
      return owned.length === WEB_OWNED && owned.every((o) => o.fp !== undefined);
    },
    async () => JSON.stringify(await world.owned()),
  );
  if (kill) {
    first.child.kill("SIGKILL");
    await first.exited;
  } else {
    assert.equal(await world.stopAgent(first), 0);
  }
}

async function withWorld(body: (world: AgentWorld) => Promise<void>): Promise<void> {
  const world = await AgentWorld.create({ hns: seededOverlayHns(), ...overlayWebCluster() });
  try {
    await body(world);
  } finally {
    await world.close();
  }
}

Deno.test("agent/restart: an intact record means reads of what is not hnsproxy's only, and no write", async () => {
  await withWorld(async (world) => {
    await firstLife(world);
    const hnsBefore = await Deno.readTextFile(world.hnsFile);
    const ownedBefore = await world.owned();

    const second = world.startAgent(OVERLAY_ARGS);
    const metrics = await afterStart(world, second);
    assert.match(second.log(), /"Reading HNS" mode="trusted"/);
    assert.equal(calls(metrics, WRITES), 0, "no create, modify or delete");
    assert.equal(calls(metrics, OPENS), UNOWNED, "only the objects of others are read");
    const total = calls(metrics, ALL);
    assert.ok(total <= 3 * UNOWNED + 10, `${total} HNS calls at restart`);
    assert.match(second.log(), new RegExp(`"Programming HNS".*trusted=${WEB_OWNED}`));
    assert.equal(await Deno.readTextFile(world.hnsFile), hnsBefore, "HNS unchanged");
    assert.deepEqual(await world.owned(), ownedBefore);
    assert.deepEqual(await world.lbTable(), WEB_TABLE);
    assert.equal(await world.stopAgent(second), 0);
  });
});

Deno.test("agent/restart: the cluster changed while it was down (killed): exactly the desired state, reads only for what changed", async () => {
  await withWorld(async (world) => {
    await firstLife(world, true);
    // While down: web's remote pod moved, np deleted, db added.
    moveWebPod(world.api);
    world.api.delete("services", "default/np");
    world.api.delete("endpointslices", "default/np-abc");
    createDb(world.api, "10.244.3.20");

    const second = world.startAgent(OVERLAY_ARGS);
    const want = [
      "10.96.0.10:80/tcp->8080 [10.244.1.5,10.244.2.8] flags=0 pm=0 dt=0",
      "10.96.0.30:5432/tcp->5432 [10.244.3.20] flags=0 pm=0 dt=0",
      FOREIGN_LB_LINE,
    ];
    await lbTableIs(world, want, second, "exactly the desired state");
    const metrics = await afterStart(world, second);
    assert.match(second.log(), /"Reading HNS" mode="trusted"/);
    // Read: web's LB and its old remote pod; np's two LBs, its pod and its cluster-IP endpoint.
    // Trusted: the source-VIP endpoint and web's cluster-IP endpoint. (A modify opens its LB.)
    const read = calls(metrics, OPENS) - UNOWNED - calls(metrics, /^HcnModifyLoadBalancer$/);
    assert.equal(read, 6, `objects of hnsproxy's read\n${second.log()}`);
    assert.match(second.log(), /"Programming HNS".*trusted=2/);
    const hns = await world.hns();
    const ips = hns.Endpoints.map((e) => e.IpConfigurations?.[0]?.IpAddress).sort();
    assert.deepEqual(ips, [
      "10.244.1.250", // the source VIP
      "10.244.1.5",
      "10.244.1.6",
      "10.244.2.8",
      "10.244.3.20",
      "10.244.3.250", // foreign
      "10.96.0.10",
      "10.96.0.30",
    ]);
    await eventually("record lists exactly HNS's objects of hnsproxy", async () => {
      const owned = new Set((await world.owned()).map((o) => o.id.toUpperCase()));
      const held = [...hns.Endpoints, ...hns.LoadBalancers].map((o) => o.ID!.toUpperCase());
      const seeded = new Set([...seededOverlayHns().Endpoints!, FOREIGN_LB].map((o) => o.ID!));
      const ours = held.filter((id) => !seeded.has(id));
      return ours.length === 7 && owned.size === 7 && ours.every((id) => owned.has(id));
    });
    assert.equal(await world.stopAgent(second), 0);
  });
});

Deno.test("agent/restart: an object of hnsproxy's deleted out of band while it was down is recreated", async () => {
  await withWorld(async (world) => {
    await firstLife(world);
    const victim = (await world.hns()).LoadBalancers.find((l) =>
      l.FrontendVIPs?.[0] === "10.96.0.20"
    )!;
    await world.hnsTool("delete-lb", victim.ID!);
    const second = world.startAgent(OVERLAY_ARGS);
    await lbTableIs(world, WEB_TABLE, second, "LB recreated");
    const metrics = await afterStart(world, second);
    assert.match(second.log(), /"Reading HNS" mode="trusted"/);
    assert.equal(calls(metrics, OPENS), UNOWNED, "nothing of hnsproxy's read");
    assert.equal(calls(metrics, WRITES), 1, "one create");
    assert.ok(!(await world.owned()).some((o) => o.id === victim.ID), "the old ID forgotten");
    assert.equal(await world.stopAgent(second), 0);
  });
});

for (const damage of ["corrupt", "missing"] as const) {
  Deno.test(`agent/restart: a ${damage} record means a full read, and no object deleted`, async () => {
    await withWorld(async (world) => {
      await firstLife(world);
      if (damage === "corrupt") {
        await Deno.writeTextFile(world.stateFile, '{"version":3,"generation":');
      } else {
        await Deno.remove(world.stateFile);
        await Deno.remove(world.stateFile + ".journal");
      }
      const second = world.startAgent(OVERLAY_ARGS);
      const metrics = await afterStart(world, second);
      assert.match(second.log(), /"Reading HNS" mode="full" reason=/);
      assert.equal(calls(metrics, OPENS), UNOWNED + WEB_OWNED, "every object read");
      assert.equal(calls(metrics, DELETES), 0, "nothing deleted");
      assert.deepEqual(await world.lbTable(), WEB_TABLE);
      assert.ok((await world.hns()).Endpoints.some((e) => e.ID === FOREIGN_EP.ID));
      assert.equal(await world.stopAgent(second), 0);
    });
  });
}

Deno.test("agent/restart: --full-hns-read-on-start reads every object", async () => {
  await withWorld(async (world) => {
    await firstLife(world);
    const second = world.startAgent([...OVERLAY_ARGS, "--full-hns-read-on-start"]);
    const metrics = await afterStart(world, second);
    assert.match(second.log(), /"Reading HNS" mode="full" reason="--full-hns-read-on-start"/);
    assert.equal(calls(metrics, OPENS), UNOWNED + WEB_OWNED, "every object read");
    assert.equal(calls(metrics, WRITES), 0);
    assert.deepEqual(await world.lbTable(), WEB_TABLE);
    assert.equal(await world.stopAgent(second), 0);
  });
});
