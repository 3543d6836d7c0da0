/**
 * The fast start of the real agent process: a restart that finds the synced
 * inputs (cluster, node context, config, record) as the last complete sync
 * recorded them, and HNS as that sync left it, is ready before it builds the
 * state, writes nothing, and builds the state right after (a change then is
 * applied). Anything that changed while it was down — a Service, a CNI
 * endpoint, a flag, an object of hnsproxy's deleted out of band, or a sync
 * killed midway and the API server restored to the state before it — makes
 * it build the state first, and HNS ends as the cluster asks.
 */

import assert from "node:assert/strict";
import type { HcnEndpoint } from "../../lib/hns/types.ts";
import {
  afterFirstSync as ready,
  type AgentProcess,
  AgentWorld,
  eventually,
  freePort,
  hnsCalls as calls,
  lbTableIs,
} from "./harness.ts";
import {
  createDb,
  LOCAL_EP_5,
  LOCAL_EP_6,
  moveWebPod,
  nodeObject,
  OVERLAY_ARGS as OVERLAY_FLAGS,
  OVERLAY_WEB_LBS,
  overlayHns,
  overlayWebCluster,
  serviceObject,
  sliceObject,
} from "./fixtures.ts";

/**
 * The overlay flags, with one healthz port for every agent of the file: the
 * port is part of the node context (health-check LBs), so a restart on
 * another port builds the state first.
 */
const OVERLAY_ARGS = [...OVERLAY_FLAGS, "--healthz-bind-address", `127.0.0.1:${freePort()}`];

const FAST = /startMode="fast"/;
const BUILT_FIRST = /"Building the state before ready" reason="([^"]*)"/;
const WRITES = /^Hcn(Create|Modify|Delete)(LoadBalancer|Endpoint)$/;

async function withWorld(body: (world: AgentWorld) => Promise<void>): Promise<void> {
  const world = await AgentWorld.create({ hns: overlayHns(), ...overlayWebCluster() });
  try {
    await body(world);
  } finally {
    await world.close();
  }
}

/** The recorded synced-inputs digest, if a valid one is on disk. */
async function recorded(world: AgentWorld): Promise<Record<string, unknown> | undefined> {
  try {
    const d = JSON.parse(await Deno.readTextFile(world.stateFile + ".synced"));
    return typeof d.cluster === "string" ? d : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Program the web cluster with a first agent and wait until it recorded the
 * synced inputs (the sync period's quiet run after the last write, or the
 * start when no change waits), then stop it gracefully.
 */
async function firstLife(world: AgentWorld): Promise<void> {
  const first = world.startAgent([...OVERLAY_ARGS, "--sync-period", "1s"]);
  await lbTableIs(world, OVERLAY_WEB_LBS, first);
  await eventually("digest recorded", async () => (await recorded(world)) !== undefined, first.log);
  assert.equal(await world.stopAgent(first), 0);
  assert.ok(await recorded(world), "still recorded after the stop");
}

/** The agent built the state before ready, for a reason matching `why`. */
function builtFirst(agent: AgentProcess, why: RegExp): void {
  assert.doesNotMatch(agent.log(), FAST);
  const reason = BUILT_FIRST.exec(agent.log())?.[1];
  assert.ok(reason !== undefined, "the reason is logged");
  assert.match(reason, why);
}

Deno.test("agent/fast start: nothing changed: ready with no write before the state is built, built right after, a change then applied", async () => {
  await withWorld(async (world) => {
    await firstLife(world);
    // The CNI endpoints, named for the next start to read at once.
    assert.deepEqual(((await recorded(world))?.endpointIds as string[]).toSorted(), [
      LOCAL_EP_5,
      LOCAL_EP_6,
    ]);
    const hnsBefore = await Deno.readTextFile(world.hnsFile);
    const second = world.startAgent(OVERLAY_ARGS);
    const metrics = await ready(world, second);
    assert.match(second.log(), FAST);
    assert.equal(calls(metrics, WRITES), 0);
    // The state is built after ready, from the same read, and finds nothing to write.
    await eventually("state built", () => /"Programming HNS"/.test(second.log()), second.log);
    assert.match(second.log(), /"Programming HNS".*operations=0/);
    assert.doesNotMatch(second.log(), /differs from HNS/);
    assert.equal(await Deno.readTextFile(world.hnsFile), hnsBefore, "HNS unchanged");
    const built = await world.metrics(second);
    assert.equal(calls(built, WRITES), 0);
    assert.equal(calls(built, /^HcnOpenEndpoint$/), 2, "each CNI endpoint read once, nothing else");

    moveWebPod(world.api);
    await lbTableIs(world, [
      OVERLAY_WEB_LBS[0],
      "10.96.0.10:80/tcp->8080 [10.244.1.5,10.244.2.8] flags=0 pm=0 dt=0",
      OVERLAY_WEB_LBS[2],
    ], second);
    assert.equal(await world.stopAgent(second), 0);
    // Recorded again at the stop, for the state after the change: the third start is fast too.
    const third = world.startAgent(OVERLAY_ARGS);
    await ready(world, third);
    assert.match(third.log(), FAST);
    assert.equal(await world.stopAgent(third), 0);
  });
});

Deno.test("agent/fast start: a Service and a slice changed while it was down: the state is built first", async () => {
  await withWorld(async (world) => {
    await firstLife(world);
    moveWebPod(world.api);
    createDb(world.api, "10.244.3.4");
    const second = world.startAgent(OVERLAY_ARGS);
    await ready(world, second);
    builtFirst(second, /cluster/);
    await lbTableIs(world, [
      OVERLAY_WEB_LBS[0],
      "10.96.0.10:80/tcp->8080 [10.244.1.5,10.244.2.8] flags=0 pm=0 dt=0",
      OVERLAY_WEB_LBS[2],
      "10.96.0.30:5432/tcp->5432 [10.244.3.4] flags=0 pm=0 dt=0",
    ], second);
    assert.equal(await world.stopAgent(second), 0);
  });
});

Deno.test("agent/fast start: a flag changed between runs: the state is built first", async () => {
  await withWorld(async (world) => {
    await firstLife(world);
    const second = world.startAgent([...OVERLAY_ARGS, "--bind-address-hard-fail"]);
    await ready(world, second);
    builtFirst(second, /config/);
    await lbTableIs(world, OVERLAY_WEB_LBS, second);
    assert.equal(await world.stopAgent(second), 0);
  });
});

const CNI_CHANGES: [string, (eps: HcnEndpoint[]) => HcnEndpoint[]][] = [
  ["added", (eps) => [...eps, { ...eps[0], ID: "10CA1000-0000-4000-8000-000000000007" }]],
  // pod-b (10.244.1.6) backs no service: only the node context changes.
  ["removed", (eps) => eps.filter((ep) => ep.Name !== "pod-b")],
];
for (const [what, change] of CNI_CHANGES) {
  Deno.test(`agent/fast start: a CNI endpoint ${what} on the node while it was down: the state is built first`, async () => {
    await withWorld(async (world) => {
      await firstLife(world);
      const hns = await world.hns();
      const cni = hns.Endpoints.filter((ep) => ep.Flags === 0 && ep.Name?.startsWith("pod-"));
      const others = hns.Endpoints.filter((ep) => !cni.includes(ep));
      const changed = change(cni).map((ep, i) =>
        i < cni.length ? ep : {
          ...ep,
          Name: "pod-c",
          IpConfigurations: [{ IpAddress: "10.244.1.7", PrefixLength: 24 }],
          MacAddress: "00-15-5D-01-00-07",
        }
      );
      await Deno.writeTextFile(
        world.hnsFile,
        JSON.stringify({ ...hns, Endpoints: [...others, ...changed] }),
      );
      const second = world.startAgent(OVERLAY_ARGS);
      await ready(world, second);
      builtFirst(second, /context/);
      await lbTableIs(world, OVERLAY_WEB_LBS, second);
      assert.equal(await world.stopAgent(second), 0);
    });
  });
}

Deno.test("agent/fast start: a node joined the cluster while it was down: the state is built first and its pods get its address", async () => {
  await withWorld(async (world) => {
    await firstLife(world);
    world.api.create("nodes", {
      metadata: { name: "node-2" },
      spec: { podCIDR: "10.244.2.0/24", podCIDRs: ["10.244.2.0/24"] },
      status: { addresses: [{ type: "InternalIP", address: "192.168.1.12" }] },
    });
    const second = world.startAgent(OVERLAY_ARGS);
    await ready(world, second);
    builtFirst(second, /context/);
    await lbTableIs(world, OVERLAY_WEB_LBS, second);
    const providerAddress = (await world.hns()).Endpoints
      .find((ep) => ep.IpConfigurations?.[0]?.IpAddress === "10.244.2.7")?.Policies
      ?.find((p) => p.Type === "ProviderAddress")?.Settings?.ProviderAddress;
    assert.equal(providerAddress, "192.168.1.12", "node-2's pod is reached through node-2");
    assert.equal(await world.stopAgent(second), 0);
  });
});

Deno.test("agent/fast start: an object of hnsproxy's deleted out of band while it was down: the state is built first and it is recreated", async () => {
  await withWorld(async (world) => {
    await firstLife(world);
    const lb = (await world.hns()).LoadBalancers[0];
    await world.hnsTool("delete-lb", lb.ID!);
    assert.equal((await world.lbTable()).length, OVERLAY_WEB_LBS.length - 1);
    const second = world.startAgent(OVERLAY_ARGS);
    await ready(world, second);
    builtFirst(second, /owned objects HNS does not list/);
    await lbTableIs(world, OVERLAY_WEB_LBS, second);
    assert.equal(await world.stopAgent(second), 0);
  });
});

/** `count` more ClusterIP services (svc-1…), one remote pod each. */
function moreServices(count: number) {
  const services = [], slices = [];
  for (let i = 1; i <= count; i++) {
    services.push(serviceObject(`svc-${i}`, { clusterIP: `10.96.1.${i}`, ports: [{ port: 80 }] }));
    slices.push(
      sliceObject(`svc-${i}`, [{ ip: `10.244.2.${100 + i}`, node: "node-2" }], { port: 80 }),
    );
  }
  return { services, slices };
}

Deno.test("agent/fast start: killed in the middle of a sync, the API server restored to before it: the state is built first and HNS matches the restored cluster", async () => {
  await withWorld(async (world) => {
    await firstLife(world);
    const before = overlayWebCluster();
    // A slow HNS, one call at a time: the sync of 20 new services takes seconds.
    const second = world.startAgent([...OVERLAY_ARGS, "--hns-concurrency", "1"], {
      HNSEMU_LATENCY_US: "30000",
    });
    await ready(world, second);
    assert.match(second.log(), FAST);
    await eventually("state built", () => /"Programming HNS"/.test(second.log()), second.log);
    const more = moreServices(20);
    for (const s of more.services) world.api.create("services", s);
    for (const s of more.slices) world.api.create("endpointslices", s);
    await eventually(
      "the sync is under way",
      async () => (await world.lbTable()).length > OVERLAY_WEB_LBS.length,
      second.log,
    );
    second.child.kill("SIGKILL");
    await second.exited;
    const partial = (await world.lbTable()).length;
    assert.ok(partial < OVERLAY_WEB_LBS.length + 20, `killed midway (${partial} LBs)`);

    // The cluster as it was when the digest was recorded: same content, other resourceVersions.
    world.api.restoreFromBackup({
      services: before.services,
      endpointslices: before.slices,
      nodes: [nodeObject()],
    }, 5000);
    const third = world.startAgent(OVERLAY_ARGS);
    await ready(world, third);
    builtFirst(third, /synced-inputs digest/);
    await lbTableIs(world, OVERLAY_WEB_LBS, third);
    assert.equal(await world.stopAgent(third), 0);
  });
});
