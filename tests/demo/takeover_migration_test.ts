/**
 * Moving a node from kube-proxy to hnsproxy, end to end: HNS starts with what
 * kube-proxy left behind (its JSON, lib/demo/kube_proxy_objects.ts), the
 * cluster changed while neither proxy ran (a pod moved, a service deleted, a
 * service added, a node replaced), and the real agent (watches over HTTP,
 * core, runner, apply) starts on it.
 */
import assert from "node:assert/strict";
import { FakeApiServer } from "../../lib/fake-apiserver/mod.ts";
import { MemoryHcnApi, type MemoryHnsState } from "../../lib/hns/memory.ts";
import type { HcnEndpoint, HcnLoadBalancer } from "../../lib/hns/types.ts";
import { OwnershipRecord } from "../../lib/proxy/ownership.ts";
import { type DemoAgent, startDemoAgent, until } from "../../lib/demo/agent_host.ts";
import {
  DEMO_NODES,
  demoServices,
  nodeObject,
  serviceObject,
  sliceObjects,
} from "../../lib/demo/cluster.ts";
import {
  demoHnsState,
  FOREIGN_LB_ID,
  FORMER_WIN_NODE_2_IP,
  kubeProxyLeftoverState,
} from "../../lib/demo/hns_seed.ts";
import { kubeProxyRemoteMac } from "../../lib/demo/kube_proxy_objects.ts";

type State = Required<MemoryHnsState>;

interface Node {
  memory: MemoryHcnApi;
  server: FakeApiServer;
  dir: string;
  agent?: DemoAgent;
  start(extraArgs?: string[]): Promise<DemoAgent>;
  close(): Promise<void>;
}

/** A node whose HNS holds `state`, in a cluster of the demo's current services. */
async function node(
  state: MemoryHnsState,
  hns: { version?: { major: number; minor: number }; modify?: boolean } = {},
): Promise<Node> {
  const memory = new MemoryHcnApi({
    state,
    version: hns.version ?? { major: 16, minor: 0 },
    hasModifyLoadBalancer: hns.modify ?? true,
  });
  const server = await new FakeApiServer().start();
  for (const n of DEMO_NODES) server.create("nodes", nodeObject(n));
  for (const svc of demoServices()) {
    server.create("services", serviceObject(svc));
    for (const s of sliceObjects(svc)) server.create("endpointslices", s);
  }
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-takeover-" });
  const n: Node = {
    memory,
    server,
    dir,
    async start(extraArgs = []) {
      const agent = await startDemoAgent({
        masterUrl: server.url,
        stateFile: `${dir}/state.json`,
        logFile: `${dir}/hnsproxy.log`,
        verbose: false,
        extraArgs,
      }, memory);
      n.agent = agent;
      await agent.agent.ready;
      await agent.agent.idle();
      return agent;
    },
    async close() {
      await n.agent?.stop();
      await server.stop();
      memory.dispose();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  return n;
}

const ipOf = (ep: HcnEndpoint) => ep.IpConfigurations?.[0]?.IpAddress ?? "?";
const paOf = (ep: HcnEndpoint) =>
  String(
    (ep.Policies ?? []).find((p) => p.Type === "ProviderAddress")?.Settings?.ProviderAddress ?? "",
  );

/** An LB as what it programs, backends by IP and placement instead of ID. */
function lbText(state: State, lb: HcnLoadBalancer): string {
  const eps = new Map(state.Endpoints.map((e) => [String(e.ID).toUpperCase(), e]));
  const pm = lb.PortMappings[0];
  const backends = lb.HostComputeEndpoints.map((id) => {
    const ep = eps.get(String(id).toUpperCase());
    if (!ep) return `missing ${id}`;
    return (ep.Flags ?? 0) & 1
      ? `${ipOf(ep)} via ${paOf(ep)} ${String(ep.MacAddress).toLowerCase()}`
      : `${ipOf(ep)} local`;
  }).sort();
  return `${pm.Protocol}/${lb.FrontendVIPs?.[0] ?? "node"}:${pm.ExternalPort}→${pm.InternalPort}` +
    ` pm${pm.Flags ?? 0} dt${pm.DistributionType ?? 0} f${lb.Flags ?? 0} src ${
      lb.SourceVIP ?? "-"
    }` +
    ` [${backends.join(", ")}]`;
}

/** Remote endpoints as what they program. Cluster-IP endpoints: any MAC serves (as for kube-proxy). */
function remoteText(state: State, clusterIps: Set<string>): string[] {
  return state.Endpoints.filter((e) => (e.Flags ?? 0) & 1).map((e) =>
    `${ipOf(e)} via ${paOf(e)}${
      clusterIps.has(ipOf(e)) ? "" : ` ${String(e.MacAddress).toLowerCase()}`
    }`
  ).sort();
}

const CLUSTER_IPS = new Set([...demoServices().flatMap((s) => s.clusterIPs), "10.96.10.90"]);
/** kube-proxy's objects on what no Service claims now: shop/legacy (deleted) and web-old's pod. */
const UNCLAIMED_LB_FRONTENDS = ["10.96.10.90:80", "node:30090"];
const UNCLAIMED_EP_IPS = ["10.244.2.9", "10.244.3.90", "10.96.10.90"];

function unclaimed(state: State): Array<HcnEndpoint | HcnLoadBalancer> {
  const lbs = state.LoadBalancers.filter((lb) =>
    lb.ID === FOREIGN_LB_ID ||
    UNCLAIMED_LB_FRONTENDS.includes(
      `${lb.FrontendVIPs?.[0] ?? "node"}:${lb.PortMappings[0].ExternalPort}`,
    )
  );
  const eps = state.Endpoints.filter((e) => UNCLAIMED_EP_IPS.includes(ipOf(e)));
  return [...lbs, ...eps];
}

const WRITES = [
  "HcnCreateLoadBalancer",
  "HcnModifyLoadBalancer",
  "HcnDeleteLoadBalancer",
  "HcnCreateEndpoint",
  "HcnDeleteEndpoint",
];
const writes = (m: MemoryHcnApi) => WRITES.reduce((n, fn) => n + m.callCount(fn), 0);

for (
  const hns of [
    { name: "HNS 16.0 (in-place update)", version: { major: 16, minor: 0 }, modify: true },
    { name: "HNS without HcnModifyLoadBalancer", version: { major: 16, minor: 0 }, modify: false },
  ]
) {
  Deno.test(`migration from kube-proxy, ${hns.name}: ends in exactly the desired state, unclaimed objects untouched`, async () => {
    const left = kubeProxyLeftoverState();
    // The premise: kube-proxy's objects are there, on both claimed and unclaimed keys.
    const kpUnclaimed = unclaimed(left as State);
    assert.equal(kpUnclaimed.length, 1 + UNCLAIMED_LB_FRONTENDS.length + UNCLAIMED_EP_IPS.length);
    const kpStale = left.Endpoints.filter((e) => paOf(e) === FORMER_WIN_NODE_2_IP);
    assert.ok(
      kpStale.some((e) => ipOf(e) === "10.244.2.20"),
      "api-1's endpoint was on the old node",
    );
    assert.equal(kpStale[0].MacAddress, kubeProxyRemoteMac(ipOf(kpStale[0])));

    const migrated = await node(left, hns);
    const clean = await node(demoHnsState(), hns);
    try {
      await clean.start();
      await migrated.start();
      const got = migrated.memory.dump();
      const want = clean.memory.dump();

      // Every foreign object outside the claimed keys exactly as kube-proxy left it.
      assert.deepEqual(unclaimed(got), kpUnclaimed);
      const untouched = new Set(kpUnclaimed.map((o) => o.ID));
      // The rest is exactly what hnsproxy programs on a clean node.
      assert.deepEqual(
        got.LoadBalancers.filter((lb) => !untouched.has(lb.ID)).map((lb) => lbText(got, lb)).sort(),
        want.LoadBalancers.filter((lb) => lb.ID !== FOREIGN_LB_ID).map((lb) => lbText(want, lb))
          .sort(),
      );
      assert.deepEqual(
        remoteText(
          { ...got, Endpoints: got.Endpoints.filter((e) => !untouched.has(e.ID)) },
          CLUSTER_IPS,
        ),
        remoteText(want, CLUSTER_IPS),
      );
      // No endpoint a Service uses still points at the replaced node.
      assert.deepEqual(
        got.Endpoints.filter((e) => paOf(e) === FORMER_WIN_NODE_2_IP && !untouched.has(e.ID))
          .map(ipOf),
        [],
      );

      // Taken-over objects are owned now: every LB on a claimed key is in the ownership record.
      await migrated.agent!.stop();
      migrated.agent = undefined;
      const record = await OwnershipRecord.load(`${migrated.dir}/state.json`);
      for (const lb of got.LoadBalancers.filter((lb) => !untouched.has(lb.ID))) {
        assert.ok(record.owns(lb.ID!), `${lbText(got, lb)} owned`);
      }
      const kpIds = new Set([...left.Endpoints, ...left.LoadBalancers].map((o) => o.ID));
      const kept = got.LoadBalancers.filter((lb) => kpIds.has(lb.ID) && !untouched.has(lb.ID));
      if (hns.modify) assert.ok(kept.length > 0, "some of kube-proxy's LBs updated in place");
      else assert.deepEqual(kept.filter((lb) => lbText(got, lb) !== lbText(left as State, lb)), []);

      // A restart finds nothing to do: the state is exactly the desired one.
      const before = writes(migrated.memory);
      await migrated.start();
      assert.equal(writes(migrated.memory), before, "restart after the takeover writes nothing");
    } finally {
      await migrated.close();
      await clean.close();
    }
  });
}

Deno.test("kube-proxy's objects for the same cluster are adopted as they are: its JSON is what hnsproxy programs", async () => {
  const left = kubeProxyLeftoverState(demoServices(), {});
  const migrated = await node(left);
  try {
    await migrated.start();
    const got = migrated.memory.dump();
    // Every one of kube-proxy's objects is still there, unchanged, and hnsproxy added nothing
    // (single-stack on overlay, as kube-proxy).
    for (const kp of [...left.LoadBalancers, ...left.Endpoints]) {
      const now = [...got.LoadBalancers, ...got.Endpoints].find((o) => o.ID === kp.ID);
      assert.deepEqual(now, kp);
    }
    assert.equal(got.LoadBalancers.length, left.LoadBalancers.length);
    assert.equal(got.Endpoints.length, left.Endpoints.length);
  } finally {
    await migrated.close();
  }
});

Deno.test("migration with --take-over-foreign=false: kube-proxy's objects are left as they are", async () => {
  const left = kubeProxyLeftoverState();
  const migrated = await node(left);
  try {
    await migrated.start(["--take-over-foreign=false"]);
    const got = migrated.memory.dump();
    const kpLbs = new Set(left.LoadBalancers.map((lb) => lb.ID));
    // web's ClusterIP LB still forwards to the pod that moved away, and blocks the service.
    const web = got.LoadBalancers.find((lb) => lb.FrontendVIPs?.[0] === "10.96.10.20")!;
    assert.ok(kpLbs.has(web.ID), "web's LB is kube-proxy's");
    assert.match(lbText(got, web), /10\.244\.2\.9 via/);
    // The endpoints on the replaced node are still used.
    assert.ok(got.Endpoints.some((e) => paOf(e) === FORMER_WIN_NODE_2_IP));
    for (const kp of left.LoadBalancers) {
      const now = got.LoadBalancers.find((lb) => lb.ID === kp.ID);
      assert.ok(now, `kube-proxy's LB ${kp.ID} still there`);
    }
  } finally {
    await migrated.close();
  }
});

Deno.test("after start, a foreign LB appearing on a claimed key is reported and left alone (no flapping)", async () => {
  const migrated = await node(kubeProxyLeftoverState());
  try {
    const running = await migrated.start(["--sync-period=1s"]);
    const key = "lb/tcp/10.96.10.20:80";
    const ours = migrated.memory.dump().LoadBalancers.find((lb) =>
      lb.FrontendVIPs?.[0] === "10.96.10.20"
    )!;
    // A second proxy (kube-proxy started again by mistake) deletes hnsproxy's LB and makes its own.
    const rival: HcnLoadBalancer = {
      ID: "BADC0FFE-0000-4000-8000-000000000001",
      HostComputeEndpoints: ours.HostComputeEndpoints.slice(0, 1),
      FrontendVIPs: ["10.96.10.20"],
      PortMappings: [{ Protocol: 6, InternalPort: 8080, ExternalPort: 80 }],
      SchemaVersion: { Major: 2, Minor: 0 },
    };
    await migrated.memory.delete("LoadBalancer", ours.ID!);
    const h = await migrated.memory.create("LoadBalancer", rival.ID!, JSON.stringify(rival));
    await migrated.memory.close("LoadBalancer", h);
    const enumerations = () => migrated.memory.callCount("HcnEnumerateLoadBalancers");
    // The periodic resync finds its LB gone, tries to recreate it and finds the rival's.
    await until(
      () => running.agent.syncer.observed.foreignLoadBalancers.has(key),
      "the rival LB to be seen as foreign",
    );
    const seen = enumerations();
    await until(() => enumerations() >= seen + 2, "two more resyncs");
    const now = migrated.memory.dump().LoadBalancers.filter((lb) =>
      lb.FrontendVIPs?.[0] === "10.96.10.20"
    );
    assert.equal(now.length, 1);
    assert.equal(now[0].ID, rival.ID, "the rival's LB was not deleted");
    assert.deepEqual(now[0].HostComputeEndpoints, rival.HostComputeEndpoints, "nor modified");
  } finally {
    await migrated.close();
  }
});
