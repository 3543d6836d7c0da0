import assert from "node:assert/strict";
import { type ApplyContext, applyPlan } from "../../lib/proxy/apply.ts";
import { Backoff } from "../../lib/proxy/backoff.ts";
import { ObservedCache } from "../../lib/proxy/observed.ts";
import { OwnershipRecord } from "../../lib/proxy/ownership.ts";
import type {
  CreateEndpointOp,
  CreateLoadBalancerOp,
  DesiredLoadBalancer,
  LoadBalancerConflict,
  Plan,
  PlanOp,
} from "../../lib/proxy/model.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import { createHnsClient } from "../../lib/hns/client.ts";
import { HnsError, HResult } from "../../lib/hns/errors.ts";
import { endpointFingerprint, loadBalancerFingerprint } from "../../lib/proxy/payload.ts";
import type { HcnEndpoint, HcnKind, HcnLoadBalancer } from "../../lib/hns/types.ts";
import { RecordingLogger } from "../kube/helpers.ts";

const NET = "11111111-1111-1111-1111-111111111111";
const LOCAL_EP = "22222222-2222-2222-2222-222222222222";

/** An overlay network with one CNI endpoint (10.244.1.5) on this node. */
function newHns() {
  const api = new MemoryHcnApi({
    state: {
      Networks: [{ ID: NET, Name: "vxlan0", Type: "Overlay" }],
      Endpoints: [{
        ID: LOCAL_EP,
        Name: "pod-a",
        HostComputeNetwork: NET,
        IpConfigurations: [{ IpAddress: "10.244.1.5", PrefixLength: 24 }],
        MacAddress: "00-15-5d-00-00-01",
      }],
    },
  });
  return { api, client: createHnsClient(api) };
}

function context(client: ReturnType<typeof createHnsClient>, extra: Partial<ApplyContext> = {}) {
  const conflicts: LoadBalancerConflict[] = [];
  const ctx: ApplyContext = {
    client,
    observed: new ObservedCache(),
    ownership: OwnershipRecord.inMemory(),
    backoff: new Backoff({ jitter: 0, clock: { now: () => 0 } }),
    existingEndpoints: new Map([["ep/local/10.244.1.5", LOCAL_EP]]),
    uncertain: new Set(),
    hooks: { onConflict: (c) => conflicts.push(c) },
    ...extra,
  };
  return { ctx, conflicts };
}

function remoteEp(
  ip: string,
  providerAddress = "192.168.1.12",
): CreateEndpointOp & { payload: HcnEndpoint } {
  const [a, b, c, d] = ip.split(".").map((x) => Number(x).toString(16).padStart(2, "0"));
  const mac = `02-11-${a}-${b}-${c}-${d}`;
  return {
    op: "createEndpoint",
    key: `ep/remote/${ip}`,
    networkId: NET,
    endpoint: {
      key: `ep/remote/${ip}`,
      ip,
      remote: true,
      family: "IPv4",
      mac,
      providerAddress,
      networkId: NET,
      role: "remote",
    },
    payload: {
      SchemaVersion: { Major: 2, Minor: 0 },
      HostComputeNetwork: NET,
      IpConfigurations: [{ IpAddress: ip }],
      MacAddress: mac,
      Flags: 1,
      Policies: [{ Type: "ProviderAddress", Settings: { ProviderAddress: providerAddress } }],
    },
  };
}

function lb(
  vip: string,
  port: number,
  backends: string[],
  extra: Partial<DesiredLoadBalancer> = {},
) {
  const desired: DesiredLoadBalancer = {
    key: `lb/tcp/${vip}:${port}`,
    kind: "clusterIP",
    serviceKey: `default/svc-${port}`,
    portName: "",
    family: "IPv4",
    protocol: 6,
    vip,
    externalPort: port,
    internalPort: 8080,
    flags: 0,
    portMappingFlags: 0,
    distributionType: 0,
    sourceVip: "10.244.1.250",
    backends: [...backends].sort(),
    ...extra,
  };
  return desired;
}

function createLb(desired: DesiredLoadBalancer): CreateLoadBalancerOp {
  return {
    op: "createLoadBalancer",
    key: desired.key,
    serviceKey: desired.serviceKey,
    loadBalancer: desired,
  };
}

function plan(...ops: PlanOp[]): Plan {
  return { ops, conflicts: [] };
}

async function lbsInHns(client: ReturnType<typeof createHnsClient>) {
  return (await client.listLoadBalancers()).map((l) => ({
    vip: l.FrontendVIPs?.[0],
    port: l.PortMappings[0].ExternalPort,
    backends: l.HostComputeEndpoints.length,
  })).sort((a, b) => a.port - b.port);
}

Deno.test("apply: creates endpoints then LBs with resolved backend IDs; records what HNS holds", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  const svc = lb("10.96.0.10", 80, ["ep/remote/10.244.2.7", "ep/local/10.244.1.5"]);
  const result = await applyPlan(
    plan(remoteEp("10.244.2.7"), createLb(svc)),
    ctx,
  );
  assert.equal(result.failed.length, 0);
  assert.equal(result.deferred.length, 0);
  assert.equal(result.writes, 2);
  assert.equal(result.retryAfterMs, undefined);

  const ep = ctx.observed.endpoints.get("ep/remote/10.244.2.7");
  const observedLb = ctx.observed.loadBalancers.get(svc.key);
  assert.ok(ep && observedLb);
  assert.deepEqual(
    [...observedLb.hns.HostComputeEndpoints].map((x) => x.toLowerCase()).sort(),
    [ep.id, LOCAL_EP].map((x) => x.toLowerCase()).sort(),
  );
  assert.equal(observedLb.serviceKey, "default/svc-80");
  assert.ok(ctx.ownership.owns(ep.id));
  assert.ok(ctx.ownership.owns(observedLb.id));
  assert.ok(!ctx.ownership.owns(LOCAL_EP), "the CNI's endpoint is never owned");
  assert.deepEqual(await lbsInHns(client), [{ vip: "10.96.0.10", port: 80, backends: 2 }]);
  assert.equal(api.openHandles(), 0);
});

Deno.test("apply: every create is on disk in the ownership record before HNS is asked; one write per phase", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/state.json`;
    const { api, client } = newHns();
    const { ctx } = context(client, { ownership: await OwnershipRecord.load(path) });
    let writes = 0;
    const flush = ctx.ownership.flush.bind(ctx.ownership);
    ctx.ownership.flush = (...args) => {
      writes++;
      return flush(...args);
    };
    const unlisted: string[] = [];
    const create = api.create.bind(api);
    api.create = async (kind, id, settings, network) => {
      // What a crash right now would leave: the record on disk.
      if (!(await OwnershipRecord.load(path)).owns(id)) unlisted.push(`${kind} ${id}`);
      return await create(kind, id, settings, network);
    };
    const ips = ["10.244.2.7", "10.244.2.8", "10.244.2.9"];
    const lbs = ips.map((ip, i) => lb(`10.96.0.${10 + i}`, 80, [`ep/remote/${ip}`]));
    const result = await applyPlan(plan(...ips.map((ip) => remoteEp(ip)), ...lbs.map(createLb)), {
      ...ctx,
      concurrency: 2,
    });
    assert.equal(result.failed.length, 0, String(result.failed[0]?.error));
    assert.equal(api.objectCount("LoadBalancer"), 3);
    assert.deepEqual(unlisted, [], "created before it was recorded");
    assert.equal(writes, 2, "one write for the endpoint creates, one for the LB creates");
    // What is left for the sync's own write: the fingerprints of what HNS made.
    assert.ok(ctx.ownership.list().every((o) => o.fp !== undefined));
    await ctx.ownership.flush();
    assert.deepEqual((await OwnershipRecord.load(path)).list(), ctx.ownership.list());
    assert.equal(ctx.ownership.size, 6);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("apply: a create that made nothing (refused, blocked) is not left in the ownership record", async () => {
  const { api, client } = newHns();
  const foreignId = (await client.createLoadBalancer({
    HostComputeEndpoints: [LOCAL_EP],
    FrontendVIPs: ["10.96.0.10"],
    PortMappings: [{ Protocol: 6, InternalPort: 1234, ExternalPort: 80 }],
  })).ID!;
  const { ctx } = context(client);
  api.failCall("HcnCreateEndpoint", 1, HResult.E_INVALIDARG);
  const refused = lb("10.96.0.10", 80, ["ep/local/10.244.1.5"]);
  const blocked = lb("10.96.0.11", 80, ["ep/remote/10.244.2.7"]);
  const result = await applyPlan(
    plan(remoteEp("10.244.2.7"), createLb(refused), createLb(blocked)),
    ctx,
  );
  assert.equal(result.applied.length, 0);
  assert.equal(ctx.ownership.size, 0, ctx.ownership.list().map((o) => o.key).join(", "));
  assert.deepEqual((await client.listLoadBalancers()).map((l) => l.ID), [foreignId]);
});

Deno.test("apply: an endpoint create without a payload sends the desired endpoint's HNS JSON", async () => {
  const { client } = newHns();
  const { ctx } = context(client);
  const { payload, ...bare } = remoteEp("10.244.2.7");
  const result = await applyPlan(plan(bare), ctx);
  assert.equal(result.failed.length, 0);
  assert.equal(result.writes, 1);
  const ep = ctx.observed.endpoints.get("ep/remote/10.244.2.7");
  assert.ok(ep);
  const [inHns] = (await client.listEndpoints(NET)).filter((e) => e.ID === ep.id);
  assert.ok(inHns);
  assert.deepEqual(inHns.IpConfigurations?.map((c) => c.IpAddress), ["10.244.2.7"]);
  assert.equal(inHns.MacAddress, payload.MacAddress);
  assert.equal(inHns.Flags, payload.Flags);
  assert.deepEqual(inHns.Policies, payload.Policies);
});

Deno.test("apply: endpoints created in requests of many are recorded with the fingerprint of what HNS holds", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  // As reconcile plans them (no payload), one on its network as the desired endpoint names it,
  // one whose op names the network in upper case, one with no provider address, one not remote (a source VIP).
  const ops: CreateEndpointOp[] = ["10.244.2.7", "10.244.2.8", "10.244.2.9", "10.244.1.9"]
    .map((ip) => {
      const { payload: _, ...bare } = remoteEp(ip);
      return bare;
    });
  ops[1] = { ...ops[1], networkId: NET.toUpperCase() };
  ops[2] = { ...ops[2], endpoint: { ...ops[2].endpoint, providerAddress: undefined } };
  ops[3] = { ...ops[3], endpoint: { ...ops[3].endpoint, remote: false, role: "sourceVip" } };
  const result = await applyPlan(plan(...ops), ctx);
  assert.equal(result.failed.length, 0, String(result.failed[0]?.error));
  assert.equal(result.writes, 4);
  const held = await client.listEndpoints(NET);
  for (const op of ops) {
    const id = ctx.observed.endpoints.get(op.key)?.id;
    const inHns = held.find((e) => e.ID === id);
    assert.ok(id && inHns, op.key);
    assert.equal(ctx.ownership.get(id)?.fp, endpointFingerprint(inHns), op.key);
  }
  assert.equal(api.openHandles(), 0);
});

Deno.test("apply: load balancers created in requests of many are recorded with the fingerprint of what HNS holds", async () => {
  const { client } = newHns();
  const { ctx } = context(client);
  const eps = ["10.244.2.7", "10.244.2.8"].map((ip) => remoteEp(ip));
  const backends = [...eps.map((e) => e.key), "ep/local/10.244.1.5"];
  // Shapes whose fingerprints differ in every field the fingerprint covers: a VIP spelled as
  // HNS would not (IPv6, upper case), no VIP (a NodePort's), no source VIP, DSR and port
  // mapping flags, another protocol and distribution, no backends.
  const lbs = [
    lb("10.96.0.10", 80, backends),
    lb("FD00::A", 81, backends, { family: "IPv6", key: "lb/tcp/[fd00::a]:81" }),
    lb("10.96.0.12", 82, backends.slice(0, 1), { vip: undefined, key: "lb/tcp/nodeport:82" }),
    lb("10.96.0.13", 83, backends, { sourceVip: undefined, flags: 1, portMappingFlags: 2 }),
    lb("10.96.0.14", 84, backends, { protocol: 17, distributionType: 1, key: "lb/udp/x:84" }),
    lb("10.96.0.15", 85, []),
  ];
  const result = await applyPlan(plan(...eps, ...lbs.map(createLb)), ctx);
  assert.equal(result.failed.length, 0, String(result.failed[0]?.error));
  const held = await client.listLoadBalancers();
  assert.equal(held.length, lbs.length);
  const fps = new Set<string>();
  for (const want of lbs) {
    const id = ctx.observed.loadBalancers.get(want.key)?.id;
    const inHns = held.find((l) => l.ID === id);
    assert.ok(id && inHns, want.key);
    const fp = ctx.ownership.get(id)?.fp;
    assert.equal(fp, loadBalancerFingerprint(inHns), want.key);
    fps.add(fp!);
  }
  assert.equal(fps.size, lbs.length, "each shape has its own fingerprint");
});

Deno.test("apply: afterEndpointCreates comes once, between the endpoint creates and the later steps", async () => {
  const eps = ["10.244.2.7", "10.244.2.8", "10.244.2.9"].map((ip) => remoteEp(ip));
  const lbOps = [80, 81].map((port) => createLb(lb("10.96.0.10", port, eps.map((e) => e.key))));
  const cases: { ops: PlanOp[]; seen: string[] }[] = [
    // Each call notes how many endpoints and load balancers HNS held at that moment.
    { ops: [...eps, ...lbOps], seen: ["3 endpoints, 0 LBs"] },
    { ops: eps, seen: [] }, // nothing after them: the apply's end is the caller's
    { ops: [lbOps[0]].map((op) => createLb({ ...op.loadBalancer, backends: [] })), seen: [] },
  ];
  for (const { ops, seen } of cases) {
    const { api, client } = newHns();
    const calls: string[] = [];
    const { ctx } = context(client, {
      afterEndpointCreates: () =>
        calls.push(
          `${api.callCounts().HcnCreateEndpoint ?? 0} endpoints, ${
            api.callCounts().HcnCreateLoadBalancer ?? 0
          } LBs`,
        ),
    });
    const result = await applyPlan(plan(...ops), ctx);
    assert.equal(result.failed.length, 0, String(result.failed[0]?.error));
    assert.equal(result.applied.length, ops.length);
    assert.deepEqual(calls, seen);
  }
});

Deno.test("apply: an LB backend held by a foreign endpoint resolves to it; the endpoint stays foreign", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  // Someone else (e.g. kube-proxy, or a lost record) made the remote endpoint of 10.244.2.7.
  const foreign = await client.createEndpoint(NET, remoteEp("10.244.2.7").payload);
  ctx.observed.setForeignEndpoint({ key: "ep/remote/10.244.2.7", id: foreign.ID!, hns: foreign });
  const svc = lb("10.96.0.10", 80, ["ep/remote/10.244.2.7", "ep/local/10.244.1.5"]);
  const result = await applyPlan(plan(createLb(svc)), ctx);
  assert.deepEqual(result.failed.map((f) => String(f.error)), []);
  assert.equal(result.deferred.length, 0);
  const created = ctx.observed.loadBalancers.get(svc.key);
  assert.ok(created);
  assert.deepEqual(
    [...created.hns.HostComputeEndpoints].map((x) => x.toLowerCase()).sort(),
    [foreign.ID!, LOCAL_EP].map((x) => x.toLowerCase()).sort(),
  );
  assert.ok(!ctx.ownership.owns(foreign.ID!), "a foreign endpoint is used, never owned");
  assert.ok(ctx.observed.foreignEndpoints.has("ep/remote/10.244.2.7"));
  assert.equal(api.openHandles(), 0);
});

Deno.test("apply: a create refused because a foreign endpoint holds the IP; the LB uses that endpoint", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  const foreign = await client.createEndpoint(NET, remoteEp("10.244.2.7").payload);
  const svc = lb("10.96.0.10", 80, ["ep/remote/10.244.2.7"]);
  const result = await applyPlan(plan(remoteEp("10.244.2.7"), createLb(svc)), ctx);
  assert.deepEqual(result.failed.map((f) => f.op.key), ["ep/remote/10.244.2.7"]);
  assert.equal(ctx.observed.foreignEndpoints.get("ep/remote/10.244.2.7")?.id, foreign.ID);
  assert.deepEqual(
    ctx.observed.loadBalancers.get(svc.key)?.hns.HostComputeEndpoints.map((x) => x.toLowerCase()),
    [foreign.ID!.toLowerCase()],
    "the LB is created on the foreign endpoint",
  );
  assert.equal((await client.listEndpoints(NET)).length, 2, "no duplicate endpoint");
  assert.ok(!ctx.ownership.owns(foreign.ID!));
  assert.equal(api.openHandles(), 0);
});

for (const concurrency of [1, 4]) {
  Deno.test(`apply: a plan's endpoint creates open the network once (concurrency ${concurrency})`, async () => {
    const { api, client } = newHns();
    const { ctx } = context(client, { concurrency });
    const ips = ["10.244.2.7", "10.244.2.8", "10.244.3.9", "10.244.3.10"];
    const svc = lb("10.96.0.10", 80, ips.map((ip) => `ep/remote/${ip}`));
    const result = await applyPlan(plan(...ips.map((ip) => remoteEp(ip)), createLb(svc)), ctx);
    assert.deepEqual(result.failed, []);
    assert.equal(api.callCount("HcnCreateEndpoint"), 4);
    assert.equal(api.callCount("HcnOpenNetwork"), 1);
    assert.equal(api.callCount("HcnCloseNetwork"), 1);
    assert.equal(api.openHandles(), 0);
  });
}

Deno.test("apply: the network handle is closed when endpoint creates fail", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  api.failCall("HcnCreateEndpoint", 0, HResult.MANAGER_STOPPED);
  const result = await applyPlan(plan(remoteEp("10.244.2.7"), remoteEp("10.244.2.8")), ctx);
  assert.equal(result.failed.length, 2);
  assert.equal(api.callCount("HcnOpenNetwork"), 1);
  assert.equal(api.openHandles(), 0);
});

Deno.test("apply: deletes LBs before endpoints; not-found deletes count as done", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  const svc = lb("10.96.0.10", 80, ["ep/remote/10.244.2.7"]);
  await applyPlan(plan(remoteEp("10.244.2.7"), createLb(svc)), ctx);
  const lbId = ctx.observed.loadBalancers.get(svc.key)!.id;
  const epId = ctx.observed.endpoints.get("ep/remote/10.244.2.7")!.id;

  // An owned endpoint that vanished out of band: its delete is a no-op success.
  const gone = "33333333-3333-3333-3333-333333333333";
  ctx.ownership.add({ kind: "Endpoint", id: gone, key: "ep/remote/10.244.3.3" });

  const result = await applyPlan(
    plan(
      { op: "deleteLoadBalancer", key: svc.key, id: lbId, reason: "stale" },
      { op: "deleteEndpoint", key: "ep/remote/10.244.2.7", id: epId, reason: "stale" },
      { op: "deleteEndpoint", key: "ep/remote/10.244.3.3", id: gone, reason: "stale" },
    ),
    ctx,
  );
  assert.equal(result.failed.length, 0, String(result.failed[0]?.error));
  assert.equal(api.objectCount("LoadBalancer"), 0);
  assert.equal(api.objectCount("Endpoint"), 1, "only the CNI's endpoint is left");
  assert.equal(ctx.ownership.size, 0);
  assert.equal(ctx.observed.loadBalancers.size + ctx.observed.endpoints.size, 0);
});

Deno.test("apply: never deletes what the ownership record does not list", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  const result = await applyPlan(
    plan({ op: "deleteEndpoint", key: "ep/local/10.244.1.5", id: LOCAL_EP, reason: "stale" }),
    ctx,
  );
  assert.equal(result.failed.length, 1);
  assert.match(String(result.failed[0].error), /not owned/);
  assert.equal(result.writes, 0);
  assert.equal(api.objectCount("Endpoint"), 1);
});

Deno.test("apply: a failed endpoint blocks only the LBs that need it; a retry converges", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  api.failCall("HcnCreateEndpoint", 1, HResult.MANAGER_STOPPED);
  const a = lb("10.96.0.10", 80, ["ep/remote/10.244.2.7"]);
  const b = lb("10.96.0.11", 81, ["ep/remote/10.244.2.8"]);
  const c = lb("10.96.0.12", 82, ["ep/local/10.244.1.5"]);
  const first = await applyPlan(
    plan(remoteEp("10.244.2.7"), remoteEp("10.244.2.8"), createLb(a), createLb(b), createLb(c)),
    ctx,
  );
  assert.deepEqual(first.failed.map((f) => f.op.key), ["ep/remote/10.244.2.7"]);
  assert.deepEqual(first.deferred.map((o) => o.key), [a.key]);
  assert.deepEqual(
    first.applied.map((o) => o.key).sort(),
    [
      "ep/remote/10.244.2.8",
      b.key,
      c.key,
    ].sort(),
  );
  assert.equal(first.retryAfterMs, 1000);
  assert.equal(ctx.backoff.get("ep/remote/10.244.2.7")?.failures, 1);

  // Still backing off: not even tried.
  const early = await applyPlan(plan(remoteEp("10.244.2.7"), createLb(a)), ctx);
  assert.equal(early.writes, 0);
  assert.equal(early.deferred.length, 2);

  const later = { ...ctx, backoff: new Backoff({ jitter: 0 }) };
  const second = await applyPlan(plan(remoteEp("10.244.2.7"), createLb(a)), later);
  assert.equal(second.failed.length + second.deferred.length, 0);
  assert.deepEqual((await lbsInHns(client)).map((l) => l.port), [80, 81, 82]);
  assert.equal(api.openHandles(), 0);
});

Deno.test("apply: a step's creates go to HNS in requests of many; a failed one alone is retried, the rest recorded", async () => {
  const { api, client } = newHns();
  const requests: string[] = [];
  const createEndpoints = client.createEndpoints.bind(client);
  client.createEndpoints = (networkId, endpoints) => {
    requests.push(`ep ${endpoints.length}`);
    return createEndpoints(networkId, endpoints);
  };
  const createLoadBalancers = client.createLoadBalancers.bind(client);
  client.createLoadBalancers = (lbs) => {
    requests.push(`lb ${lbs.length}`);
    return createLoadBalancers(lbs);
  };
  const operations: string[] = [];
  const { ctx } = context(client, {
    hooks: { onOperation: (op, outcome) => operations.push(`${op.key} ${outcome}`) },
  });
  const eps = Array.from({ length: 100 }, (_, i) => remoteEp(`10.244.2.${i + 1}`));
  // The 70th create fails and made nothing: the LB that needs it waits.
  api.failCall("HcnCreateEndpoint", 70, HResult.MANAGER_STOPPED);
  const a = lb("10.96.0.10", 80, ["ep/remote/10.244.2.7", "ep/local/10.244.1.5"]);
  const b = lb("10.96.0.11", 81, ["ep/remote/10.244.2.70"]);
  const result = await applyPlan(plan(...eps, createLb(a), createLb(b)), ctx);
  assert.deepEqual(requests, ["ep 48", "ep 48", "ep 4", "lb 1"], "b waits for its endpoint");
  assert.deepEqual(result.failed.map((f) => f.op.key), ["ep/remote/10.244.2.70"]);
  const err = result.failed[0].error as HnsError;
  assert.equal(err.hresult, HResult.MANAGER_STOPPED);
  assert.equal(err.operation, "createEndpoint (HcnCreateEndpoint)");
  assert.deepEqual(result.deferred.map((o) => o.key), [b.key]);
  assert.equal(result.applied.length, 100);
  assert.equal(result.writes, 101, "one per create tried; the look-up after the failure reads");
  assert.equal(operations.length, 102, "each operation reported once");
  assert.equal(api.objectCount("Endpoint"), 100, "the CNI's and 99 remote ones");
  assert.equal(ctx.ownership.size, 100, "what HNS holds, nothing more");
  for (const ep of eps.filter((e) => e.key !== "ep/remote/10.244.2.70")) {
    const held = ctx.observed.endpoints.get(ep.key);
    assert.ok(held && ctx.ownership.owns(held.id), ep.key);
  }
  assert.deepEqual(await lbsInHns(client), [{ vip: "10.96.0.10", port: 80, backends: 2 }]);
  assert.equal(api.openHandles(), 0);

  const later = { ...ctx, backoff: new Backoff({ jitter: 0 }) };
  const retry = await applyPlan(plan(eps[69], createLb(b)), later);
  assert.equal(retry.failed.length + retry.deferred.length, 0);
  assert.equal(api.objectCount("LoadBalancer"), 2);
});

Deno.test("apply: endpoint creates on two networks each go to their own network", async () => {
  const NET2 = "33333333-3333-3333-3333-333333333333";
  const api = new MemoryHcnApi({
    state: {
      Networks: [{ ID: NET, Name: "vxlan0", Type: "Overlay" }, {
        ID: NET2,
        Name: "vxlan1",
        Type: "Overlay",
      }],
    },
  });
  const client = createHnsClient(api);
  const { ctx } = context(client);
  const onNet2 = (ip: string) => {
    const op = remoteEp(ip);
    return {
      ...op,
      networkId: NET2,
      endpoint: { ...op.endpoint, networkId: NET2 },
      payload: { ...op.payload, HostComputeNetwork: NET2 },
    };
  };
  const ops = [remoteEp("10.244.2.1"), onNet2("10.245.2.1"), remoteEp("10.244.2.2")];
  const result = await applyPlan(plan(...ops), ctx);
  assert.equal(result.failed.length, 0, String(result.failed[0]?.error));
  const networkOf = new Map(
    api.dump().Endpoints.map((ep) => [ep.IpConfigurations![0].IpAddress, ep.HostComputeNetwork]),
  );
  assert.deepEqual(Object.fromEntries(networkOf), {
    "10.244.2.1": NET,
    "10.245.2.1": NET2,
    "10.244.2.2": NET,
  });
  assert.equal(ctx.observed.endpoints.get("ep/remote/10.245.2.1")?.hns.HostComputeNetwork, NET2);
  assert.equal(api.openHandles(), 0);
});

Deno.test("apply: a failed replace-delete blocks only that key's re-create", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  const a = lb("10.96.0.10", 80, ["ep/local/10.244.1.5"]);
  const b = lb("10.96.0.11", 81, ["ep/local/10.244.1.5"]);
  await applyPlan(plan(createLb(a), createLb(b)), ctx);
  const idA = ctx.observed.loadBalancers.get(a.key)!.id;
  const idB = ctx.observed.loadBalancers.get(b.key)!.id;
  api.failCall("HcnDeleteLoadBalancer", 1, HResult.MANAGER_STOPPED);
  const a2 = { ...a, internalPort: 9090 };
  const b2 = { ...b, internalPort: 9090 };
  const result = await applyPlan(
    plan(
      { op: "deleteLoadBalancer", key: a.key, id: idA, reason: "replace" },
      { op: "deleteLoadBalancer", key: b.key, id: idB, reason: "replace" },
      createLb(a2),
      createLb(b2),
    ),
    ctx,
  );
  assert.deepEqual(result.failed.map((f) => f.op.key), [a.key]);
  assert.deepEqual(result.deferred.map((o) => o.key), [a.key]);
  const held = await client.listLoadBalancers();
  const ports = held.map((l) =>
    `${l.PortMappings[0].ExternalPort}->${l.PortMappings[0].InternalPort}`
  );
  assert.deepEqual(ports.sort(), ["80->8080", "81->9090"], "a keeps working with its old LB");
  assert.ok(ctx.ownership.owns(idA));
});

Deno.test("apply: a port conflict with an owned LB the cache forgot is resolved by replacing it", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  const a = lb("10.96.0.10", 80, ["ep/local/10.244.1.5"]);
  await applyPlan(plan(createLb(a)), ctx);
  const oldId = ctx.observed.loadBalancers.get(a.key)!.id;
  const forgetful = { ...ctx, observed: new ObservedCache() };
  const result = await applyPlan(plan(createLb({ ...a, internalPort: 9090 })), forgetful);
  assert.equal(result.failed.length, 0, String(result.failed[0]?.error));
  const held = await client.listLoadBalancers();
  assert.equal(held.length, 1);
  assert.notEqual(held[0].ID?.toLowerCase(), oldId.toLowerCase());
  assert.equal(held[0].PortMappings[0].InternalPort, 9090);
  assert.ok(!ctx.ownership.owns(oldId));
  assert.ok(ctx.ownership.owns(held[0].ID!));
  assert.equal(api.openHandles(), 0);
});

Deno.test("apply: a port conflict with a foreign LB is reported and retried, never deleted", async () => {
  const { api, client } = newHns();
  const foreign: HcnLoadBalancer = {
    HostComputeEndpoints: [LOCAL_EP],
    FrontendVIPs: ["10.96.0.10"],
    PortMappings: [{ Protocol: 6, InternalPort: 1234, ExternalPort: 80 }],
  };
  const foreignId = (await client.createLoadBalancer(foreign)).ID!;
  const { ctx, conflicts } = context(client);
  const a = lb("10.96.0.10", 80, ["ep/local/10.244.1.5"]);
  const result = await applyPlan(plan(createLb(a)), ctx);
  assert.equal(result.failed.length, 0, "a conflict, not a failure to retry at once");
  assert.deepEqual(conflicts.map((c) => [c.key, c.serviceKey, c.foreignId]), [
    [a.key, a.serviceKey, foreignId],
  ]);
  assert.deepEqual(result.conflicts.map((c) => c.key), [a.key]);
  assert.ok(result.retryAfterMs !== undefined);
  assert.ok(ctx.backoff.ready(a.key), "no per-operation backoff: the conflict tracker paces it");
  assert.equal(ctx.observed.foreignLoadBalancers.get(a.key)?.id, foreignId);
  const held = await client.listLoadBalancers();
  assert.deepEqual(held.map((l) => l.ID), [foreignId]);
  assert.equal(api.openHandles(), 0);
});

Deno.test("apply: plan conflicts are reported and scheduled for a retry", async () => {
  const { client } = newHns();
  const { ctx, conflicts } = context(client);
  const conflict = { key: "lb/tcp/10.96.0.10:80", serviceKey: "default/a", foreignId: "x" };
  const result = await applyPlan({ ops: [], conflicts: [conflict] }, ctx);
  assert.deepEqual(result.conflicts, [conflict]);
  assert.deepEqual(conflicts, [conflict]);
  assert.ok(result.retryAfterMs !== undefined && result.retryAfterMs > 0);
});

/** HNS makes the first object of each kind in `lost` but the create's answer is lost. */
function loseCreateAnswers(api: MemoryHcnApi, lost: Set<HcnKind>) {
  const create = api.create.bind(api);
  api.create = async (kind, id, settings, network) => {
    const handle = await create(kind, id, settings, network);
    if (!lost.delete(kind)) return handle;
    await api.close(kind, handle);
    throw new HnsError({ hresult: HResult.MANAGER_STOPPED, operation: `HcnCreate${kind}` });
  };
}

Deno.test("apply: a create whose answer was lost is found in HNS under its GUID and kept", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  loseCreateAnswers(api, new Set<HcnKind>(["Endpoint", "LoadBalancer"]));
  const a = lb("10.96.0.10", 80, ["ep/remote/10.244.2.7"]);
  const b = lb("10.96.0.11", 81, ["ep/local/10.244.1.5"]);
  const result = await applyPlan(plan(remoteEp("10.244.2.7"), createLb(a), createLb(b)), ctx);
  assert.equal(result.failed.length, 0, String(result.failed[0]?.error));
  assert.equal(api.objectCount("LoadBalancer"), 2);
  assert.equal(api.objectCount("Endpoint"), 2);
  for (const held of await client.listLoadBalancers()) assert.ok(ctx.ownership.owns(held.ID!));
  assert.equal(ctx.ownership.size, 3, "what HNS holds, nothing more");
  assert.equal(api.openHandles(), 0);
});

Deno.test("apply: a create whose answer was lost and HNS unreachable stays owned; a retry takes it, nothing leaks", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  loseCreateAnswers(api, new Set<HcnKind>(["Endpoint", "LoadBalancer"]));
  // The look-ups after the lost answers fail too.
  api.failCall("HcnOpenEndpoint", 1, HResult.MANAGER_STOPPED);
  api.failCall("HcnOpenLoadBalancer", 1, HResult.MANAGER_STOPPED);
  const a = lb("10.96.0.10", 80, ["ep/remote/10.244.2.7"]);
  const b = lb("10.96.0.11", 81, ["ep/local/10.244.1.5"]);
  const first = await applyPlan(plan(remoteEp("10.244.2.7"), createLb(a), createLb(b)), ctx);
  assert.deepEqual(first.failed.map((f) => f.op.key).sort(), ["ep/remote/10.244.2.7", b.key]);
  assert.equal(api.objectCount("LoadBalancer"), 1, "HNS did make b");
  assert.equal(api.objectCount("Endpoint"), 2, "HNS did make the remote endpoint");
  for (const held of await client.listLoadBalancers()) {
    assert.ok(ctx.ownership.owns(held.ID!), "what HNS may hold stays owned");
  }
  assert.equal(ctx.ownership.size, 2, "a, never tried, is not listed");

  const retry = { ...ctx, backoff: new Backoff({ jitter: 0 }) };
  const second = await applyPlan(plan(remoteEp("10.244.2.7"), createLb(a), createLb(b)), retry);
  assert.equal(second.failed.length, 0, String(second.failed[0]?.error));
  assert.equal(api.objectCount("LoadBalancer"), 2);
  assert.equal(api.objectCount("Endpoint"), 2);
  for (const held of await client.listLoadBalancers()) assert.ok(ctx.ownership.owns(held.ID!));
  assert.equal(ctx.ownership.size, 3);
  assert.equal(api.openHandles(), 0);
});

Deno.test("apply: modify in place; a modify of a vanished LB creates it afresh", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  const a = lb("10.96.0.10", 80, ["ep/local/10.244.1.5"]);
  await applyPlan(plan(remoteEp("10.244.2.7"), createLb(a)), ctx);
  const id = ctx.observed.loadBalancers.get(a.key)!.id;
  const a2 = lb("10.96.0.10", 80, ["ep/local/10.244.1.5", "ep/remote/10.244.2.7"]);
  const modified = await applyPlan(
    plan({ op: "modifyLoadBalancer", key: a.key, id, serviceKey: a.serviceKey, loadBalancer: a2 }),
    ctx,
  );
  assert.equal(modified.failed.length, 0, String(modified.failed[0]?.error));
  assert.equal((await client.getLoadBalancer(id))?.HostComputeEndpoints.length, 2);
  assert.equal(ctx.observed.loadBalancers.get(a.key)?.id, id);

  await client.deleteLoadBalancer(id); // out of band
  const recreated = await applyPlan(
    plan({ op: "modifyLoadBalancer", key: a.key, id, serviceKey: a.serviceKey, loadBalancer: a2 }),
    ctx,
  );
  assert.equal(recreated.failed.length, 0, String(recreated.failed[0]?.error));
  const held = await client.listLoadBalancers();
  assert.equal(held.length, 1);
  assert.ok(ctx.ownership.owns(held[0].ID!));
  assert.ok(!ctx.ownership.owns(id));
  assert.equal(api.openHandles(), 0);
});

Deno.test("apply: where HNS cannot modify, a plan's replacing modifies are listed in the record in one write", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  const lbs = [80, 81, 82].map((port) => lb("10.96.0.10", port, ["ep/local/10.244.1.5"]));
  await applyPlan(plan(...lbs.map(createLb)), ctx);
  // The first refused modify teaches the client; the next plan knows it from the start.
  api.failCall("HcnModifyLoadBalancer", 1, HResult.E_NOTIMPL);
  const modify = (d: DesiredLoadBalancer): PlanOp => ({
    op: "modifyLoadBalancer",
    key: d.key,
    id: ctx.observed.loadBalancers.get(d.key)!.id,
    serviceKey: d.serviceKey,
    loadBalancer: { ...d, internalPort: 9090 },
  });
  await applyPlan(plan(modify(lbs[0])), ctx);
  assert.equal(client.modifyUnsupported, true);
  let writes = 0;
  const flush = ctx.ownership.flush.bind(ctx.ownership);
  ctx.ownership.flush = (...args) => {
    writes++;
    return flush(...args);
  };
  const result = await applyPlan(plan(modify(lbs[1]), modify(lbs[2])), ctx);
  assert.equal(result.failed.length, 0, String(result.failed[0]?.error));
  assert.equal(writes, 1, "one write lists both replacements");
  const held = await client.listLoadBalancers();
  assert.deepEqual(held.map((l) => l.PortMappings[0].InternalPort), [9090, 9090, 9090]);
  for (const l of held) assert.ok(ctx.ownership.owns(l.ID!));
  assert.equal(ctx.ownership.size, 3);
});

Deno.test("apply: a modify HNS answers E_NOTIMPL becomes delete + create, and no modify is tried again", async () => {
  const { api, client } = newHns();
  const logger = new RecordingLogger();
  const { ctx } = context(client, { logger });
  const a = lb("10.96.0.10", 80, ["ep/remote/10.244.2.7"]);
  const b = lb("10.96.0.11", 443, ["ep/remote/10.244.2.7"]);
  await applyPlan(plan(remoteEp("10.244.2.7"), createLb(a), createLb(b)), ctx);
  const oldIds = [a, b].map((x) => ctx.observed.loadBalancers.get(x.key)!.id);
  const oldEp = ctx.observed.endpoints.get("ep/remote/10.244.2.7")!.id;

  // The pod moved: both LBs now need 10.244.2.8. Plan order as reconcile makes it with
  // ModifyLoadbalancer on: create the new endpoint, modify both LBs, then delete the old one.
  api.failCall("HcnModifyLoadBalancer", 1, HResult.E_NOTIMPL);
  const a2 = lb("10.96.0.10", 80, ["ep/remote/10.244.2.8"]);
  const b2 = lb("10.96.0.11", 443, ["ep/remote/10.244.2.8"]);
  const modify = (d: DesiredLoadBalancer, id: string): PlanOp => ({
    op: "modifyLoadBalancer",
    key: d.key,
    id,
    serviceKey: d.serviceKey,
    loadBalancer: d,
  });
  const result = await applyPlan(
    plan(
      remoteEp("10.244.2.8"),
      modify(a2, oldIds[0]),
      modify(b2, oldIds[1]),
      { op: "deleteEndpoint", key: "ep/remote/10.244.2.7", id: oldEp, reason: "stale" },
    ),
    ctx,
  );
  assert.equal(result.failed.length, 0, String(result.failed[0]?.error));
  assert.equal(result.deferred.length, 0);
  // One refused modify, then delete + create per LB: no modify of the second LB.
  assert.equal(api.callCount("HcnModifyLoadBalancer"), 1);
  assert.equal(result.writes, 1 + 1 + 2 + 2 + 1);
  assert.equal(client.modifyUnsupported, true);

  const newEp = ctx.observed.endpoints.get("ep/remote/10.244.2.8")!.id;
  const held = await client.listLoadBalancers();
  assert.equal(held.length, 2);
  for (const l of held) assert.deepEqual(l.HostComputeEndpoints, [newEp]);
  assert.deepEqual(
    (await client.listEndpoints(NET)).map((e) => e.ID).sort(),
    [LOCAL_EP, newEp].sort(),
  );
  // The record owns the new IDs and forgot the old ones; the cache agrees with HNS.
  for (const id of oldIds) assert.ok(!ctx.ownership.owns(id) && !ctx.observed.loadBalancerById(id));
  for (const l of held) {
    assert.ok(ctx.ownership.owns(l.ID!));
    assert.ok([...ctx.observed.loadBalancers.values()].some((o) => o.id === l.ID));
  }
  assert.equal(ctx.ownership.size, 3);

  // Later plans of the process: modify ops are replaced without asking HNS again.
  const a3 = lb("10.96.0.10", 80, ["ep/local/10.244.1.5", "ep/remote/10.244.2.8"]);
  const later = await applyPlan(
    plan(modify(a3, ctx.observed.loadBalancers.get(a.key)!.id)),
    ctx,
  );
  assert.equal(later.failed.length, 0, String(later.failed[0]?.error));
  assert.equal(api.callCount("HcnModifyLoadBalancer"), 1);
  assert.equal(later.writes, 2);
  assert.equal((await client.listLoadBalancers()).length, 2);
  assert.equal(
    (await client.getLoadBalancer(ctx.observed.loadBalancers.get(a.key)!.id))
      ?.HostComputeEndpoints.length,
    2,
  );
  const warnings = logger.lines.filter((l) =>
    /cannot update load balancers in place/.test(l.message)
  );
  assert.equal(warnings.length, 1);
  assert.equal(api.openHandles(), 0);
});

Deno.test("apply: an endpoint still used by an LB whose update failed is not deleted yet", async () => {
  const { client } = newHns();
  const { ctx } = context(client);
  const a = lb("10.96.0.10", 80, ["ep/remote/10.244.2.7"]);
  await applyPlan(plan(remoteEp("10.244.2.7"), createLb(a)), ctx);
  const epId = ctx.observed.endpoints.get("ep/remote/10.244.2.7")!.id;
  const result = await applyPlan(
    plan({ op: "deleteEndpoint", key: "ep/remote/10.244.2.7", id: epId, reason: "stale" }),
    ctx,
  );
  assert.equal(result.writes, 0);
  assert.deepEqual(result.deferred.map((o) => o.key), ["ep/remote/10.244.2.7"]);
  assert.ok(result.retryAfterMs !== undefined);
});

Deno.test("apply: with concurrency the outcome is the same", async () => {
  for (const concurrency of [1, 4]) {
    const { api, client } = newHns();
    const { ctx } = context(client, { concurrency });
    const ops: PlanOp[] = [];
    const lbs: PlanOp[] = [];
    for (let i = 1; i <= 20; i++) {
      ops.push(remoteEp(`10.244.2.${i}`));
      lbs.push(
        createLb(lb(`10.96.0.${i}`, 80, [`ep/remote/10.244.2.${i}`, "ep/local/10.244.1.5"])),
      );
    }
    const result = await applyPlan(plan(...ops, ...lbs), ctx);
    assert.equal(result.failed.length, 0);
    assert.equal(result.writes, 40);
    assert.equal(api.objectCount("LoadBalancer"), 20);
    assert.equal(ctx.ownership.size, 40);
    assert.equal(api.openHandles(), 0);
  }
});

Deno.test("apply: adoption records ownership without any HNS call", async () => {
  const { api, client } = newHns();
  const { ctx } = context(client);
  const held = await client.createLoadBalancer({
    HostComputeEndpoints: [LOCAL_EP],
    FrontendVIPs: ["10.96.0.10"],
    PortMappings: [{ Protocol: 6, InternalPort: 8080, ExternalPort: 80 }],
  });
  ctx.observed.setForeignLoadBalancer({ key: "lb/tcp/10.96.0.10:80", id: held.ID!, hns: held });
  const calls = Object.values(api.callCounts()).reduce((a, b) => a + b, 0);
  const result = await applyPlan(
    plan({
      op: "adoptLoadBalancer",
      key: "lb/tcp/10.96.0.10:80",
      id: held.ID!,
      serviceKey: "default/a",
      wasForeign: true,
    }),
    ctx,
  );
  assert.equal(result.applied.length, 1);
  assert.equal(Object.values(api.callCounts()).reduce((a, b) => a + b, 0), calls);
  assert.ok(ctx.ownership.owns(held.ID!));
  assert.equal(ctx.observed.loadBalancers.get("lb/tcp/10.96.0.10:80")?.serviceKey, "default/a");
  assert.equal(ctx.observed.foreignLoadBalancers.size, 0);
});

Deno.test("apply: a modify's old fingerprint is off the disk before HNS is asked, in the plan's one write", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/state.json`;
    const { api, client } = newHns();
    const { ctx } = context(client, { ownership: await OwnershipRecord.load(path) });
    const web = lb("10.96.0.10", 80, ["ep/remote/10.244.2.7"]);
    await applyPlan(plan(remoteEp("10.244.2.7"), createLb(web)), ctx);
    await ctx.ownership.flush();
    const id = ctx.observed.loadBalancers.get(web.key)!.id;
    assert.ok((await OwnershipRecord.load(path)).get(id)?.fp, "the created LB has its fingerprint");

    // The pod moved: a create of its new endpoint, and a modify of the LB.
    let writes = 0;
    const flush = ctx.ownership.flush.bind(ctx.ownership);
    ctx.ownership.flush = (...args) => {
      writes++;
      return flush(...args);
    };
    const onDisk: Array<string | undefined> = [];
    const modify = api.modify.bind(api);
    api.modify = async (kind, handle, settings) => {
      onDisk.push((await OwnershipRecord.load(path)).get(id)?.fp);
      return await modify(kind, handle, settings);
    };
    const moved = lb("10.96.0.10", 80, ["ep/remote/10.244.2.8"]);
    const result = await applyPlan(
      plan(remoteEp("10.244.2.8"), {
        op: "modifyLoadBalancer",
        key: moved.key,
        id,
        serviceKey: moved.serviceKey,
        loadBalancer: moved,
      }),
      ctx,
    );
    assert.equal(result.failed.length, 0, String(result.failed[0]?.error));
    assert.deepEqual(onDisk, [undefined], "no fingerprint on disk while the modify runs");
    assert.equal(writes, 1, "one write: the endpoint's create and the dropped fingerprint");
    const fp = ctx.ownership.get(id)?.fp;
    assert.ok(fp, "the new fingerprint, written with the sync");
    await ctx.ownership.flush();
    assert.equal((await OwnershipRecord.load(path)).get(id)?.fp, fp);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
