/**
 * The real agent process killed (SIGKILL) in the middle of a sync: during a
 * long cold start (the emulator's per-call latency stretches it) and during
 * incremental syncs. While it is down the cluster changes (endpoints moved,
 * services deleted and added); restarted on the same HNS state and ownership
 * record, it must reach exactly the desired state with no orphan and no
 * conflict with its own objects, and `--cleanup-and-exit` must then leave
 * nothing it created and every foreign object as it was.
 *
 * Kill points are chosen by what HNS holds (polled from the emulator's state
 * file), never by time.
 */

import assert from "node:assert/strict";
import { type AgentProcess, AgentWorld, eventually } from "./harness.ts";
import {
  FOREIGN_EP,
  NODE,
  nodeObject,
  OVERLAY_ARGS,
  seededOverlayHns,
  serviceObject,
  sliceObject,
  SOURCE_VIP,
} from "./fixtures.ts";

/** Per HNS call while the agent is to be killed: a cold start of ~100 objects lasts seconds. */
const SLOW = { HNSEMU_LATENCY_US: "30000" };
/** The agent's flags while it is to be killed: one HNS call at a time, so each phase is long. */
const SLOW_ARGS = [...OVERLAY_ARGS, "--hns-concurrency", "1"];
/** Waits: generous, for a loaded machine (the test normally takes a fraction of this). */
const WAIT_MS = 25_000;

const SEEDED_IDS = new Set(
  [...seededOverlayHns().Endpoints!, ...seededOverlayHns().LoadBalancers!].map((o) =>
    o.ID!.toUpperCase()
  ),
);

/** The cluster: service name → its pod IPs (each on node-2 or node-3, by subnet). */
type Cluster = Map<string, string[]>;

/** `count` services `svc-<first>…`, ClusterIP 10.96.1.<i>, two remote pods each. */
function services(first: number, count: number): Cluster {
  const out: Cluster = new Map();
  for (let i = first; i < first + count; i++) {
    out.set(`svc-${i}`, [`10.244.2.${10 + i}`, `10.244.3.${10 + i}`]);
  }
  return out;
}

function clusterIp(name: string): string {
  return `10.96.1.${Number(name.slice(4))}`;
}

function nodeOf(ip: string): string {
  return ip.startsWith("10.244.1.") ? NODE : ip.startsWith("10.244.2.") ? "node-2" : "node-3";
}

function serviceOf(name: string) {
  return serviceObject(name, {
    clusterIP: clusterIp(name),
    ports: [{ port: 80, targetPort: 8080 }],
  });
}

function sliceOf(name: string, pods: string[]) {
  return sliceObject(name, pods.map((ip) => ({ ip, node: nodeOf(ip) })), { port: 8080 });
}

async function createWorld(cluster: Cluster): Promise<AgentWorld> {
  return await AgentWorld.create({
    hns: seededOverlayHns(),
    services: [...cluster.keys()].map(serviceOf),
    slices: [...cluster].map(([name, pods]) => sliceOf(name, pods)),
    node: nodeObject(),
  });
}

/** Apply `next` to the fake API server (it holds `current`); returns `next`. */
function changeCluster(world: AgentWorld, current: Cluster, next: Cluster): Cluster {
  for (const name of current.keys()) {
    if (next.has(name)) continue;
    world.api.delete("endpointslices", `default/${name}-abc`);
    world.api.delete("services", `default/${name}`);
  }
  for (const [name, pods] of next) {
    const before = current.get(name);
    if (!before) {
      world.api.create("services", serviceOf(name));
      world.api.create("endpointslices", sliceOf(name, pods));
    } else if (before.join() !== pods.join()) {
      world.api.update("endpointslices", sliceOf(name, pods));
    }
  }
  return next;
}

/**
 * The changes made while the agent is down: the pods of three services (of
 * `names`, default all) move (one to another node), the next three services
 * are deleted, three are added (`svc-<added>…`).
 */
function whileDown(cluster: Cluster, added: number, names = [...cluster.keys()]): Cluster {
  const next: Cluster = new Map(cluster);
  next.set(names[0], [`10.244.2.${200}`, `10.244.3.${10 + Number(names[0].slice(4))}`]);
  next.set(names[1], [`10.244.2.${201}`]);
  next.set(names[2], [`10.244.3.${202}`, "10.244.1.5"]);
  for (const name of names.slice(3, 6)) next.delete(name);
  for (const [name, pods] of services(added, 3)) next.set(name, pods);
  return next;
}

/** What HNS must hold for `cluster`: LB lines (as `lbTable`) and every endpoint IP. */
function desiredHns(cluster: Cluster): { lbs: string[]; endpointIps: string[] } {
  const lbs = [`10.99.0.1:1/tcp->1 [10.244.1.5] flags=0 pm=0 dt=0`];
  const ips = new Set(["10.244.1.5", "10.244.1.6", "10.244.3.250", SOURCE_VIP]);
  for (const [name, pods] of cluster) {
    lbs.push(`${clusterIp(name)}:80/tcp->8080 [${[...pods].sort().join(",")}] flags=0 pm=0 dt=0`);
    ips.add(clusterIp(name)); // overlay: a remote endpoint per cluster IP
    for (const ip of pods) ips.add(ip);
  }
  return { lbs: lbs.sort(), endpointIps: [...ips].sort() };
}

async function endpointIps(world: AgentWorld): Promise<string[]> {
  return (await world.hns()).Endpoints.map((e) => e.IpConfigurations?.[0]?.IpAddress ?? "?")
    .sort();
}

/** IDs of the HNS objects not seeded (made by the agent), upper case. */
async function madeIds(world: AgentWorld): Promise<{ lbs: string[]; eps: string[] }> {
  const hns = await world.hns();
  const made = (objects: Array<{ ID?: string }>) =>
    objects.map((o) => String(o.ID).toUpperCase()).filter((id) => !SEEDED_IDS.has(id));
  return { lbs: made(hns.LoadBalancers), eps: made(hns.Endpoints) };
}

/** SIGKILL the agent once `check` holds for what HNS holds. */
async function killWhen(
  world: AgentWorld,
  agent: AgentProcess,
  what: string,
  check: (made: { lbs: string[]; eps: string[] }) => boolean,
): Promise<void> {
  await eventually(
    what,
    async () => check(await madeIds(world)),
    async () => JSON.stringify(await madeIds(world)) + "\n" + agent.log(),
    WAIT_MS,
  );
  agent.child.kill("SIGKILL");
  await agent.exited;
}

/** Wait until HNS holds exactly what `cluster` wants. */
async function converged(world: AgentWorld, agent: AgentProcess, cluster: Cluster) {
  const want = desiredHns(cluster);
  await eventually(
    "exactly the desired state",
    async () =>
      JSON.stringify(await world.lbTable()) === JSON.stringify(want.lbs) &&
      JSON.stringify(await endpointIps(world)) === JSON.stringify(want.endpointIps),
    async () =>
      `want:\n${want.lbs.join("\n")}\n${want.endpointIps}\nhave:\n${
        (await world.lbTable()).join("\n")
      }\n${await endpointIps(world)}\n${agent.log()}`,
    WAIT_MS,
  );
}

/**
 * Restart on the same HNS and record and require: exactly the desired state,
 * no conflict with its own objects, every object it made owned; then
 * `--cleanup-and-exit` removes all of them and nothing else.
 */
async function restartAndCheck(world: AgentWorld, cluster: Cluster): Promise<void> {
  const agent = world.startAgent(OVERLAY_ARGS);
  await converged(world, agent, cluster);
  assert.equal(await world.stopAgent(agent), 0);
  assert.doesNotMatch(agent.log(), /does not own/, "a conflict with hnsproxy's own object");
  const made = await madeIds(world);
  const owned = (await world.owned()).map((o) => o.id.toUpperCase()).sort();
  assert.deepEqual(owned, [...made.lbs, ...made.eps].sort(), "the record lists what it made");

  const { code, log } = await world.runAgent([...OVERLAY_ARGS, "--cleanup-and-exit"]);
  assert.equal(code, 0, log);
  assert.match(log, /remaining=0/);
  const hns = await world.hns();
  const seeded = seededOverlayHns();
  assert.deepEqual(hns.LoadBalancers, seeded.LoadBalancers, "only the foreign LB, untouched");
  assert.deepEqual(
    hns.Endpoints.map((e) => e.ID).sort(),
    seeded.Endpoints!.map((e) => e.ID).sort(),
    "only the CNI's and the foreign endpoints",
  );
  assert.deepEqual(
    hns.Endpoints.find((e) => e.ID === FOREIGN_EP.ID),
    seeded.Endpoints!.find((e) => e.ID === FOREIGN_EP.ID),
  );
  assert.deepEqual(await world.owned(), []);
}

/** Objects the agent makes for `cluster`: per service an LB, its pods and its VIP; the source VIP. */
function objectsFor(cluster: Cluster): number {
  let n = 1;
  for (const pods of cluster.values()) n += 2 + pods.filter((ip) => nodeOf(ip) !== NODE).length;
  return n;
}

for (
  const [point, check] of [
    ["a third of the endpoints made", (m: { eps: string[] }) => m.eps.length >= 25],
    ["all endpoints and some LBs made", (m: { lbs: string[] }) => m.lbs.length >= 6],
  ] as const
) {
  Deno.test(`agent/crash: killed in a cold start (${point}), cluster changed, restarted: exact state, no orphan, cleanup complete`, async () => {
    let cluster = services(0, 24);
    const world = await createWorld(cluster);
    try {
      const agent = world.startAgent(SLOW_ARGS, SLOW);
      await killWhen(
        world,
        agent,
        point,
        check as (m: { lbs: string[]; eps: string[] }) => boolean,
      );
      const made = await madeIds(world);
      assert.ok(
        made.lbs.length + made.eps.length < objectsFor(cluster),
        "killed before the cold start ended",
      );
      cluster = changeCluster(world, cluster, whileDown(cluster, 40));
      await restartAndCheck(world, cluster);
    } finally {
      await world.close();
    }
  });
}

Deno.test("agent/crash: killed twice in a row mid-sync, then restarted: exact state, no orphan, cleanup complete", async () => {
  let cluster = services(0, 24);
  const world = await createWorld(cluster);
  try {
    const first = world.startAgent(SLOW_ARGS, SLOW);
    await killWhen(world, first, "some LBs made", (m) => m.lbs.length >= 3);
    cluster = changeCluster(world, cluster, whileDown(cluster, 40));
    // The restart's own sync (deletes, updates, creates) is killed too.
    const second = world.startAgent(SLOW_ARGS, SLOW);
    const target = Math.min((await madeIds(world)).lbs.length + 4, cluster.size);
    await killWhen(world, second, "more LBs made", (m) => m.lbs.length >= target);
    cluster = changeCluster(world, cluster, whileDown(cluster, 50));
    await restartAndCheck(world, cluster);
  } finally {
    await world.close();
  }
});

Deno.test("agent/crash: killed in an incremental sync that creates, cluster changed, restarted: exact state, no orphan", async () => {
  let cluster = services(0, 4);
  const world = await createWorld(cluster);
  try {
    const agent = world.startAgent(SLOW_ARGS, SLOW);
    await converged(world, agent, cluster);
    const before = (await madeIds(world)).eps.length;
    cluster = changeCluster(world, cluster, new Map([...cluster, ...services(10, 20)]));
    await killWhen(world, agent, "some new endpoints made", (m) => m.eps.length >= before + 15);
    const fresh = [...services(10, 20).keys()];
    cluster = changeCluster(world, cluster, whileDown(cluster, 40, fresh));
    await restartAndCheck(world, cluster);
  } finally {
    await world.close();
  }
});

Deno.test("agent/crash: killed in an incremental sync that deletes, cluster changed, restarted: exact state, no orphan", async () => {
  let cluster = services(0, 20);
  const world = await createWorld(cluster);
  try {
    const agent = world.startAgent(SLOW_ARGS, SLOW);
    await converged(world, agent, cluster);
    const kept = new Map([...cluster].slice(12));
    cluster = changeCluster(world, cluster, kept);
    await killWhen(world, agent, "some LBs deleted", (m) => m.lbs.length <= 16);
    cluster = changeCluster(world, cluster, whileDown(cluster, 40));
    await restartAndCheck(world, cluster);
  } finally {
    await world.close();
  }
});

Deno.test("agent/crash: killed in a cold start, then --cleanup-and-exit: nothing it made is left, nothing else touched", async () => {
  const cluster = services(0, 24);
  const world = await createWorld(cluster);
  try {
    const agent = world.startAgent(SLOW_ARGS, SLOW);
    await killWhen(world, agent, "some LBs made", (m) => m.lbs.length >= 4);
    const made = await madeIds(world);
    assert.ok(made.lbs.length + made.eps.length < objectsFor(cluster), "killed mid-sync");
    const { code, log } = await world.runAgent([...OVERLAY_ARGS, "--cleanup-and-exit"]);
    assert.equal(code, 0, log);
    assert.match(log, new RegExp(`deleted=${made.lbs.length + made.eps.length}\\b`));
    assert.match(log, /remaining=0/);
    const hns = await world.hns();
    const seeded = seededOverlayHns();
    assert.deepEqual(hns.LoadBalancers, seeded.LoadBalancers);
    assert.deepEqual(hns.Endpoints, seeded.Endpoints);
    assert.deepEqual(await world.owned(), []);
  } finally {
    await world.close();
  }
});
