/**
 * The real agent process across HNS versions (the emulator's HNSEMU_VERSION):
 * on each it converges to exactly what that version supports, and an endpoint
 * change reaches HNS, in place where HNS has ModifyLoadbalancer (15.5–15.x,
 * 16.0+) and by delete + create elsewhere, also where HNS claims the version
 * but answers "not implemented". HNS without the V2 API, or without DSR under
 * `--enable-dsr`, stops the agent at start with a clear error.
 */

import assert from "node:assert/strict";
import { AgentWorld, eventually, freePort } from "./harness.ts";
import { l2bridgeHns, NODE, nodeObject, serviceObject, sliceObject } from "./fixtures.ts";

/** What each version in the matrix supports (hcsshim's ranges; spelled out, not computed). */
const MATRIX: Array<{ version: string; dsr: boolean; affinity: boolean; modify: boolean }> = [
  { version: "10.0", dsr: false, affinity: false, modify: false },
  { version: "12.0", dsr: true, affinity: true, modify: false },
  { version: "14.0", dsr: true, affinity: true, modify: false },
  { version: "15.4", dsr: true, affinity: true, modify: false },
  { version: "15.5", dsr: true, affinity: true, modify: true },
  { version: "16.0", dsr: true, affinity: true, modify: true },
];

const WEB_SLICE = (remote: string) =>
  sliceObject("web", [
    { ip: "10.244.1.5", node: NODE },
    { ip: remote, node: "node-2" },
  ], { port: 8080 });

/** `web`: NodePort with ClientIP affinity; `loc`: NodePort with externalTrafficPolicy Local. */
function cluster() {
  return {
    services: [
      serviceObject("web", {
        type: "NodePort",
        clusterIP: "10.96.0.10",
        ports: [{ port: 80, targetPort: 8080, nodePort: 30080 }],
        sessionAffinity: "ClientIP",
      }),
      serviceObject("loc", {
        type: "NodePort",
        clusterIP: "10.96.0.30",
        ports: [{ port: 443, targetPort: 8443, nodePort: 30443 }],
        externalTrafficPolicy: "Local",
        healthCheckNodePort: freePort(),
      }),
    ],
    slices: [
      WEB_SLICE("10.244.2.7"),
      sliceObject("loc", [
        { ip: "10.244.1.6", node: NODE },
        { ip: "10.244.3.9", node: "node-3" },
      ], { port: 8443 }),
    ],
    node: nodeObject(),
  };
}

function want(f: { dsr: boolean; affinity: boolean }, webRemote: string): string[] {
  const dt = f.affinity ? 2 : 0;
  return [
    `*:30080/tcp->8080 [10.244.1.5,${webRemote}] flags=0 pm=18 dt=${dt}`,
    `10.96.0.10:80/tcp->8080 [10.244.1.5,${webRemote}] flags=0 pm=0 dt=${dt}`,
    `*:30443/tcp->8443 [10.244.1.6] flags=${f.dsr ? 1 : 0} pm=18 dt=0`,
    "10.96.0.30:443/tcp->8443 [10.244.1.6,10.244.3.9] flags=0 pm=0 dt=0",
  ].sort();
}

/** Sum of `hnsproxy_hns_calls_total` for one C function. */
function calls(metrics: string, fn: string): number {
  return metrics.split("\n")
    .filter((l) => l.startsWith("hnsproxy_hns_calls_total{") && l.includes(`"${fn}"`))
    .reduce((n, l) => n + Number(l.trim().split(/\s+/).pop()), 0);
}

/** HNS holds exactly `table`, the remote endpoints `remotes`, and the record lists just those. */
async function expectExactly(world: AgentWorld, table: string[], remotes: string[]) {
  const describe = async () => (await world.lbTable()).join("\n");
  await eventually(
    `load balancers ${table.join("; ")}`,
    async () => JSON.stringify(await world.lbTable()) === JSON.stringify(table),
    describe,
  );
  const remoteIps = async () =>
    (await world.hns()).Endpoints.filter((e) => e.Flags === 1)
      .map((e) => e.IpConfigurations?.[0]?.IpAddress).sort();
  await eventually(
    `remote endpoints ${remotes.join(",")}`,
    async () => JSON.stringify(await remoteIps()) === JSON.stringify([...remotes].sort()),
    async () => (await remoteIps()).join(","),
  );
  const hns = await world.hns();
  const made = [
    ...hns.LoadBalancers.map((l) => l.ID!),
    ...hns.Endpoints.filter((e) => e.Flags === 1).map((e) => e.ID!),
  ].map((id) => id.toUpperCase()).sort();
  await eventually(
    "the ownership record lists exactly what hnsproxy made",
    async () =>
      JSON.stringify((await world.owned()).map((o) => o.id.toUpperCase()).sort()) ===
        JSON.stringify(made),
    async () => JSON.stringify(await world.owned()),
  );
}

const webLbIds = async (world: AgentWorld) =>
  (await world.hns()).LoadBalancers
    .filter((l) => l.PortMappings[0].InternalPort === 8080)
    .map((l) => l.ID!).sort();

for (const v of MATRIX) {
  Deno.test(`agent/versions: HNS ${v.version} converges, and an endpoint change reaches HNS`, async () => {
    const world = await AgentWorld.create({ hns: l2bridgeHns(), ...cluster() });
    try {
      const agent = world.startAgent(["--network-name", "cbr0"], { HNSEMU_VERSION: v.version });
      await expectExactly(world, want(v, "10.244.2.7"), ["10.244.2.7", "10.244.3.9"])
        .catch((err) => {
          throw new Error(`${err.message}\n${agent.log()}`);
        });
      assert.match(agent.log(), new RegExp(`"HNS version read" version="${v.version}"`));
      const before = await webLbIds(world);

      world.api.update("endpointslices", WEB_SLICE("10.244.2.9"));
      await expectExactly(world, want(v, "10.244.2.9"), ["10.244.2.9", "10.244.3.9"])
        .catch((err) => {
          throw new Error(`${err.message}\n${agent.log()}`);
        });
      const after = await webLbIds(world);
      const modifies = calls(await world.metrics(agent), "HcnModifyLoadBalancer");
      if (v.modify) {
        assert.deepEqual(after, before, "updated in place: same IDs");
        assert.equal(modifies, 2);
      } else {
        assert.equal(after.filter((id) => before.includes(id)).length, 0, "replaced: new IDs");
        assert.equal(modifies, 0, "no modify is tried where HNS has none");
      }
      assert.doesNotMatch(agent.log(), /HNS operation failed/);
      assert.equal(await world.stopAgent(agent), 0);
    } finally {
      await world.close();
    }
  });
}

Deno.test("agent/versions: an HNS that answers E_NOTIMPL to modify gets delete + create, asked once", async () => {
  const world = await AgentWorld.create({ hns: l2bridgeHns(), ...cluster() });
  try {
    const agent = world.startAgent(["--network-name", "cbr0"], {
      HNSEMU_VERSION: "16.0",
      HNSEMU_FAIL: "HcnModifyLoadBalancer:0:0x80004001",
    });
    const f = { dsr: true, affinity: true };
    await expectExactly(world, want(f, "10.244.2.7"), ["10.244.2.7", "10.244.3.9"]);
    world.api.update("endpointslices", WEB_SLICE("10.244.2.9"));
    await expectExactly(world, want(f, "10.244.2.9"), ["10.244.2.9", "10.244.3.9"])
      .catch((err) => {
        throw new Error(`${err.message}\n${agent.log()}`);
      });
    const asked = calls(await world.metrics(agent), "HcnModifyLoadBalancer");
    // Two LBs changed; with calls in flight at once both may ask before the first answer.
    assert.ok(asked >= 1 && asked <= 2, `modify asked ${asked} times`);

    world.api.update("endpointslices", WEB_SLICE("10.244.2.11"));
    await expectExactly(world, want(f, "10.244.2.11"), ["10.244.2.11", "10.244.3.9"]);
    assert.equal(calls(await world.metrics(agent), "HcnModifyLoadBalancer"), asked, "not again");
    const warnings = agent.log().split("\n").filter((l) =>
      l.includes("cannot update load balancers in place")
    );
    assert.equal(warnings.length, 1, agent.log());
    assert.doesNotMatch(agent.log(), /HNS operation failed/);
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});

Deno.test("agent/versions: no V2 API, an unreadable version, or --enable-dsr without DSR stop the start", async () => {
  const cases: Array<{ env: Record<string, string>; args: string[]; error: RegExp }> = [
    { env: { HNSEMU_VERSION: "9.1" }, args: [], error: /HNS 9\.1 has no HCN \(v2\) API/ },
    { env: { HNSEMU_VERSION: "0.0" }, args: [], error: /cannot read the HNS version/ },
    {
      env: { HNSEMU_VERSION: "10.0" },
      args: ["--enable-dsr"],
      error:
        /--enable-dsr: HNS 10\.0 has no Direct Server Return \(needs HNS 9\.3–9\.x or 10\.2\+\)/,
    },
  ];
  for (const c of cases) {
    const world = await AgentWorld.create({ hns: l2bridgeHns(), ...cluster() });
    try {
      const run = await world.runAgent(["--network-name", "cbr0", ...c.args], c.env);
      assert.equal(run.code, 1, run.log);
      assert.match(run.log, /hnsproxy cannot run/);
      assert.match(run.log, c.error);
      const hns = await world.hns();
      assert.equal(hns.LoadBalancers.length, 0, "nothing programmed");
    } finally {
      await world.close();
    }
  }
});
