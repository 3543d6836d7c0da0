/**
 * The real agent process when the API server is restored from a backup (or
 * its storage wiped): resourceVersions restart lower, the objects are another
 * set, and a watch from the resourceVersion the agent holds stays silent.
 * HNS must come to match the restored cluster: deleted services lose their
 * load balancers, new ones get theirs.
 */

import assert from "node:assert/strict";
import { AgentWorld, eventually } from "./harness.ts";
import { LIST_PAGE_SIZE } from "../../lib/kube/reflector.ts";
import {
  NODE,
  nodeObject,
  OVERLAY_ARGS,
  overlayHns,
  overlayWebCluster,
  serviceObject,
  sliceObject,
} from "./fixtures.ts";
import { WATCH_PROGRESS_TIMEOUT_ENV } from "../../lib/kube/cluster.ts";

/** The cluster of the backup: `web` with other pods, `np` gone, `api` new. */
function restoredCluster() {
  return {
    services: [
      serviceObject("web", { clusterIP: "10.96.0.10", ports: [{ port: 80, targetPort: 8080 }] }),
      serviceObject("api", { clusterIP: "10.96.0.30", ports: [{ port: 443, targetPort: 8443 }] }),
    ],
    endpointslices: [
      sliceObject("web", [
        { ip: "10.244.1.5", node: NODE },
        { ip: "10.244.2.8", node: "node-2" },
      ], { port: 8080 }),
      sliceObject("api", [{ ip: "10.244.3.10", node: "node-3" }], { port: 8443 }),
    ],
    nodes: [nodeObject()],
  };
}

const RESTORED_LBS = [
  "10.96.0.10:80/tcp->8080 [10.244.1.5,10.244.2.8] flags=0 pm=0 dt=0",
  "10.96.0.30:443/tcp->8443 [10.244.3.10] flags=0 pm=0 dt=0",
];

const INITIAL_LBS = 3;

/**
 * The overlay web cluster behind an API server that sends bookmarks every
 * 200 ms (a healthy one: no relist while nothing is wrong), and the agent on
 * it with a 2 s progress limit, no periodic relist and no periodic HNS
 * resync (only the progress limit can notice a silent watch), once it has
 * programmed the initial load balancers. `table` shows HNS and the agent's
 * log for a failed wait.
 */
async function agentOnBookmarkingServer() {
  const world = await AgentWorld.create({
    hns: overlayHns(),
    ...overlayWebCluster(),
    api: { bookmarkIntervalMs: 200 },
  });
  try {
    const agent = world.startAgent(
      [...OVERLAY_ARGS, "--config-sync-period", "0", "--sync-period", "1h"],
      { [WATCH_PROGRESS_TIMEOUT_ENV]: "2s" },
    );
    const table = async () => (await world.lbTable()).join("\n") + "\n---\n" + agent.log();
    await eventually("initial", async () => (await world.lbTable()).length === INITIAL_LBS, table);
    return { world, agent, table };
  } catch (err) {
    await world.close();
    throw err;
  }
}

Deno.test("agent/restore: a restored API server (silent watches, lower resourceVersions) is noticed by the progress limit and HNS matches it", async () => {
  const { world, agent, table } = await agentOnBookmarkingServer();
  try {
    const listsBefore = world.api.count("list");
    assert.ok(!/progress limit/.test(agent.log()));

    world.api.restoreFromBackup(restoredCluster(), 100);
    // Detection (2 s) plus one sync; the deadline is generous for a loaded machine.
    await eventually(
      "HNS matches the restored cluster",
      async () => JSON.stringify(await world.lbTable()) === JSON.stringify(RESTORED_LBS),
      table,
    );
    assert.match(agent.log(), /progress limit/);
    assert.match(agent.log(), /went back in time/);
    const relists = world.api.requests.slice(0).filter((r) => r.verb === "list").slice(listsBefore);
    assert.ok(relists.length >= 2, "services and endpointslices relisted");
    for (const r of relists) assert.equal(r.query.resourceVersion, undefined, "consistent reads");

    // The watches resumed from the restored server's resourceVersions work.
    world.api.delete("services", "default/api");
    await eventually(
      "a change after the restore",
      async () => (await world.lbTable()).length === 1,
      table,
    );
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});

Deno.test("agent/restore: --config-sync-period relists in full and repairs a restore the watches cannot see", async () => {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    const agent = world.startAgent([
      ...OVERLAY_ARGS,
      "--config-sync-period",
      "2s",
      "--sync-period",
      "1h",
    ]);
    const table = async () => (await world.lbTable()).join("\n") + "\n---\n" + agent.log();
    await eventually("initial", async () => (await world.lbTable()).length === INITIAL_LBS, table);
    // A backup already ahead of what the agent holds: its watches resume
    // without an error and without the objects that changed.
    const held = Number(world.api.resourceVersion);
    world.api.restoreFromBackup(restoredCluster(), held - 2);
    await eventually(
      "HNS matches the restored cluster",
      async () => JSON.stringify(await world.lbTable()) === JSON.stringify(RESTORED_LBS),
      table,
    );
    const lists = world.api.requests.filter((r) => r.verb === "list");
    for (const r of lists) assert.equal(r.query.limit, String(LIST_PAGE_SIZE), "paginated");
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});

Deno.test("agent/restore: a restore between two pages of the agent's first list (its continue token now a future revision) is listed again from scratch, and HNS matches the restored cluster", async () => {
  const cluster = overlayWebCluster();
  // More services than one page of the agent's lists, so the services list has a second page.
  const extra = Array.from(
    { length: LIST_PAGE_SIZE + 20 },
    (_, i) =>
      serviceObject(`svc-${String(i).padStart(3, "0")}`, {
        clusterIP: `10.96.${2 + Math.floor(i / 250)}.${1 + i % 250}`,
        ports: [{ port: 80, targetPort: 8080 }],
      }),
  );
  const world = await AgentWorld.create({
    hns: overlayHns(),
    ...cluster,
    services: [...cluster.services, ...extra],
  });
  try {
    // The server is restored right after it answered the services list's first page.
    world.api.afterNextListPage(
      "services",
      () => world.api.restoreFromBackup(restoredCluster(), 100),
    );
    const agent = world.startAgent([...OVERLAY_ARGS, "--config-sync-period", "0"]);
    const table = async () => (await world.lbTable()).join("\n") + "\n---\n" + agent.log();
    await eventually(
      "HNS matches the restored cluster",
      async () => JSON.stringify(await world.lbTable()) === JSON.stringify(RESTORED_LBS),
      table,
    );
    const lists = world.api.requests.filter((r) =>
      r.verb === "list" && r.path.endsWith("/services")
    );
    const refused = lists.findIndex((r) => r.status === 500);
    assert.ok(refused > 0, `a continued page was refused: ${JSON.stringify(lists)}`);
    assert.ok(lists[refused].query.continue, "the refused page continued the first list");
    assert.ok(
      lists.slice(refused + 1).some((r) => r.status === 200 && r.query.continue === undefined),
      "the services were listed again from the first page",
    );
    assert.match(agent.log(), /list services failed/);
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});

Deno.test("agent/restore: after an API server restart its watches get no bookmark until their resources change; the progress limit relists them and HNS is left as it is", async () => {
  const { world, agent, table } = await agentOnBookmarkingServer();
  try {
    const lbIds = async () => (await world.hns()).LoadBalancers.map((lb) => lb.ID).sort();
    const before = await lbIds();
    // A healthy server's bookmarks: past the progress limit, and still no relist.
    await new Promise((r) => setTimeout(r, 3_000));
    assert.ok(!/progress limit/.test(agent.log()), agent.log());
    const listsBefore = world.api.count("list");

    // Restarted: the watches resume from the resourceVersions they hold, and the server's
    // caches, which have seen no event since, send no bookmark.
    await world.api.outage();
    await world.api.endOutage();
    await eventually(
      "relisted by the progress limit",
      () =>
        Promise.resolve(
          /progress limit/.test(agent.log()) && world.api.count("list") > listsBefore,
        ),
      table,
    );
    assert.deepEqual(await lbIds(), before, "the relist found nothing to change in HNS");

    // A change after the restart still arrives.
    world.api.delete("services", "default/web");
    await eventually(
      "web's load balancer removed",
      async () => (await world.lbTable()).length === INITIAL_LBS - 1,
      table,
    );
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});
