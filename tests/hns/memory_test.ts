/**
 * The in-memory HNS: seeding and dumping state, its control surface, backend
 * selection, and a differential test that runs the same random operations
 * against it and the C emulator and requires the same answers.
 */

import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { createHnsClient } from "../../lib/hns/client.ts";
import { HnsError, HResult } from "../../lib/hns/errors.ts";
import { MemoryHcnApi, type MemoryHnsState } from "../../lib/hns/memory.ts";
import { openHnsBackend, resolveHnsLibrary } from "../../lib/hns/open.ts";
import type { HcnApi, HcnKind } from "../../lib/hns/types.ts";
import { clusterIpLb, expectHnsError, GUID_RE } from "./fixtures.ts";
import { BACKENDS, emulatorLibrary } from "./harness.ts";
import { prng } from "../prng.ts";

const NET = "3C4E1E30-1A1B-4C5D-9E8F-0A1B2C3D4E5F";
const EP_A = "AAAAAAAA-1A1B-4C5D-9E8F-0A1B2C3D4E5F";
const EP_B = "BBBBBBBB-1A1B-4C5D-9E8F-0A1B2C3D4E5F";
const LB_1 = "CCCCCCCC-1A1B-4C5D-9E8F-0A1B2C3D4E5F";

/** A node after the CNI ran, plus one LB, with IDs in mixed forms. */
function seed(): MemoryHnsState {
  return {
    Networks: [{ ID: NET.toLowerCase(), Name: "cbr0", Type: "L2Bridge" }, { Name: "nat" }],
    Endpoints: [
      {
        ID: `{${EP_A}}`,
        HostComputeNetwork: NET.toLowerCase(),
        IpConfigurations: [{ IpAddress: "10.244.1.5" }],
      },
      { ID: EP_B, VirtualNetwork: NET, IpConfigurations: [{ IpAddress: "10.244.1.6" }] },
      { ID: EP_B.toLowerCase(), Name: "duplicate, dropped" },
    ],
    LoadBalancers: [
      { ID: LB_1, ...clusterIpLb("10.96.0.10", 80, [EP_A]) },
      { HostComputeEndpoints: [EP_B] } as never, // malformed (no PortMappings): still loads
    ],
  };
}

Deno.test("memory: a seeded state loads as the emulator loads its state file", async () => {
  const api = new MemoryHcnApi({ state: seed() });
  const dump = api.dump();
  equal(dump.Networks[0].ID, NET);
  match(dump.Networks[1].ID, GUID_RE);
  deepEqual(dump.Endpoints.map((e) => e.ID), [EP_A, EP_B]);
  equal(dump.LoadBalancers.length, 2);
  equal(Object.keys(dump.LoadBalancers[1])[0], "ID", "an assigned ID goes first");
  equal(api.objectCount("Endpoint"), 2);

  const client = createHnsClient(api);
  // References and indexes are rebuilt from the seed.
  await expectHnsError(client.deleteEndpoint(EP_A), HResult.ENTITY_HAS_REFERENCES);
  await expectHnsError(api.delete("Network", NET), HResult.ENTITY_HAS_REFERENCES);
  await expectHnsError(
    client.createEndpoint(NET, { IpConfigurations: [{ IpAddress: "10.244.1.6" }] }),
    HResult.ERROR_ALREADY_EXISTS,
  );
  await expectHnsError(
    client.createLoadBalancer(clusterIpLb("10.96.0.10", 80, [EP_B])),
    HResult.PORT_ALREADY_EXISTS,
  );
  deepEqual((await client.listEndpoints(NET)).map((e) => e.ID), [EP_A, EP_B]);
  // The malformed LB is listed as HNS holds it, and can be deleted.
  const malformed = (await client.listLoadBalancers()).find((l) => !l.PortMappings);
  ok(malformed);
  await client.deleteLoadBalancer(malformed.ID!);
  await client.deleteEndpoint(EP_B);
  equal(api.openHandles(), 0);
});

Deno.test("memory: a state document of the wrong shape is a one-line TypeError", () => {
  const api = new MemoryHcnApi();
  throws(
    () => api.load({ Networks: {} } as never),
    /^TypeError: HNS state: "Networks" is not an array$/,
  );
  throws(() => api.load({ Endpoints: [1] } as never), /Endpoints\[0\] is not an object/);
  equal(api.objectCount("Network"), 0);
});

Deno.test("memory: control surface", async () => {
  const api = new MemoryHcnApi({ version: { major: 12, minor: 0 } });
  throws(() => api.failCall("HcnExplode", 1, 1), /unknown HCN function "HcnExplode"/);
  api.failCall("hcnenumeratenetworks", 1, HResult.MANAGER_STOPPED);
  await expectHnsError(api.enumerate("Network", ""), HResult.MANAGER_STOPPED);
  equal(api.callCount("HcnEnumerateNetworks"), 1);
  api.setVersion(15, 4);
  await api.hnsCall("GET", "/globals/version", "");
  equal(api.callCount(), 1, "HNSCall is not an HCN call");
  api.reset();
  equal(api.callCount("HcnEnumerateNetworks"), 0);
  deepEqual(await createHnsClient(api).version(), { major: 12, minor: 0 });
  api.dispose();
  const err = await api.enumerate("Network", "").catch((e) => e);
  ok(err instanceof Error && /closed/.test(err.message));
});

Deno.test("memory: without the Modify symbol, modify is E_NOTIMPL and never reaches HNS", async () => {
  const api = new MemoryHcnApi({ state: seed(), hasModifyLoadBalancer: false });
  const client = createHnsClient(api);
  equal((await client.features()).modifyLoadBalancer, false);
  const err = await expectHnsError(
    client.modifyLoadBalancer(LB_1, clusterIpLb("10.96.0.10", 81, [EP_A])),
    HResult.E_NOTIMPL,
  );
  equal(err.operation, "modifyLoadBalancer (HcnModifyLoadBalancer)");
  equal(api.callCount("HcnModifyLoadBalancer"), 0);
  equal(api.openHandles(), 0);
});

Deno.test("open: backend selection", async () => {
  const memory = openHnsBackend({ backend: "memory" });
  ok(memory instanceof MemoryHcnApi);
  const ffi = openHnsBackend({ backend: "ffi", library: emulatorLibrary() });
  equal(typeof (await ffi.enumerate("LoadBalancer", "")), "string");
  ffi.dispose();
  throws(() => openHnsBackend({ backend: "wmi" as never }), /unknown HNS backend "wmi"/);
  equal(resolveHnsLibrary("/x/hns.so"), "/x/hns.so");
  equal(resolveHnsLibrary(), Deno.env.get("HNSPROXY_HNS_LIBRARY") || undefined);
});

// ---- differential: memory vs the C emulator ----

type Step = { op: string; run: (api: HcnApi) => Promise<unknown> };

/** Random operations over small pools of IDs, IPs and ports, so the rules collide often. */
function script(seedValue: number, length: number): Step[] {
  const r = prng(seedValue);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const id = (kind: string, n: number) =>
    `${kind}0000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
  const nets = [1, 2].map((n) => id("A", n));
  const eps = [1, 2, 3, 4, 5, 6].map((n) => id("B", n));
  const lbs = [1, 2, 3, 4, 5, 6].map((n) => id("C", n));
  const ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::1", "FD00:0::1", "10.0.0.300"];
  const vips = [[], ["10.96.0.1"], ["10.96.0.2"], ["10.96.0.1", "10.96.0.2"], ["bad"]];
  const lbDoc = () =>
    JSON.stringify({
      HostComputeEndpoints: eps.filter(() => r() < 0.3),
      FrontendVIPs: pick(vips),
      PortMappings: r() < 0.1 ? [] : [{
        Protocol: pick([6, 17]),
        InternalPort: 8080,
        ExternalPort: pick([80, 443]),
      }],
      Flags: pick([0, 1]),
    });
  const withOpen =
    (kind: HcnKind, target: string, body: (api: HcnApi, h: unknown) => Promise<unknown>) =>
    async (api: HcnApi) => {
      const h = await api.open(kind, target);
      try {
        return await body(api, h);
      } finally {
        await api.close(kind, h);
      }
    };
  const steps: Step[] = [];
  for (let i = 0; i < length; i++) {
    const choice = r();
    if (choice < 0.1) {
      const [n, name] = [pick(nets), pick(["cbr0", "vxlan0"])];
      steps.push({
        op: `create network ${n}`,
        run: async (api) =>
          await api.close(
            "Network",
            await api.create("Network", n, JSON.stringify({ Name: name })),
          ),
      });
    } else if (choice < 0.35) {
      const [n, e, ip] = [pick(nets), pick(eps), pick(ips)];
      steps.push({
        op: `create endpoint ${e} ${ip} on ${n}`,
        run: withOpen(
          "Network",
          n,
          (api, h) =>
            api.create("Endpoint", e, JSON.stringify({ IpConfigurations: [{ IpAddress: ip }] }), h)
              .then((ep) => api.close("Endpoint", ep)),
        ),
      });
    } else if (choice < 0.6) {
      const [l, doc] = [pick(lbs), lbDoc()];
      steps.push({
        op: `create lb ${l} ${doc}`,
        run: async (api) =>
          await api.close("LoadBalancer", await api.create("LoadBalancer", l, doc)),
      });
    } else if (choice < 0.75) {
      const [l, doc] = [pick(lbs), lbDoc()];
      steps.push({
        op: `modify lb ${l} ${doc}`,
        run: withOpen("LoadBalancer", l, (api, h) => api.modify("LoadBalancer", h, doc)),
      });
    } else if (choice < 0.85) {
      const l = pick(lbs);
      steps.push({ op: `delete lb ${l}`, run: (api) => api.delete("LoadBalancer", l) });
    } else if (choice < 0.95) {
      const e = pick(eps);
      steps.push({ op: `delete endpoint ${e}`, run: (api) => api.delete("Endpoint", e) });
    } else {
      const n = pick(nets);
      steps.push({ op: `delete network ${n}`, run: (api) => api.delete("Network", n) });
    }
  }
  return steps;
}

/** What a step did: ok, or the HRESULT and message (without parser details). */
async function outcome(step: Step, api: HcnApi): Promise<string> {
  try {
    await step.run(api);
    return "ok";
  } catch (err) {
    if (!(err instanceof HnsError)) throw err;
    return `${err.hresult.toString(16)} ${err.hnsMessage?.replace(/ \(.*\)$/, "")}`;
  }
}

/** Every object of every kind, by ID. */
async function snapshot(api: HcnApi): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const kind of ["Network", "Endpoint", "LoadBalancer"] as const) {
    const ids: string[] = JSON.parse(await api.enumerate(kind, ""));
    out[kind] = [];
    for (const id of ids.sort()) {
      const h = await api.open(kind, id);
      try {
        out[kind].push(JSON.parse(await api.query(kind, h, "")));
      } finally {
        await api.close(kind, h);
      }
    }
  }
  return out;
}

Deno.test("differential: the in-memory HNS answers as the C emulator does", async () => {
  const outcomes = new Map<string, number>();
  for (const seedValue of [1, 2, 3, 4, 5]) {
    const steps = script(seedValue, 150);
    const [ffi, memory] = BACKENDS.map((b) => b.open());
    try {
      for (const [i, step] of steps.entries()) {
        const a = await outcome(step, ffi.api);
        const b = await outcome(step, memory.api);
        equal(b, a, `seed ${seedValue} step ${i}: ${step.op}`);
        const code = a.split(" ")[0];
        outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
      }
      deepEqual(await snapshot(memory.api), await snapshot(ffi.api), `seed ${seedValue}`);
      equal(memory.control.openHandles(), 0);
      equal(ffi.control.openHandles(), 0);
      equal(ffi.control.outstandingStrings(), 0);
    } finally {
      ffi.dispose();
      memory.dispose();
    }
  }
  // The script must reach the rules, not just bounce off one error.
  ok((outcomes.get("ok") ?? 0) > 100, `successes: ${JSON.stringify([...outcomes])}`);
  for (
    const hr of ["803b0013", "800700b7", "803b0002", "803b002c", "80070490", "80070057", "803b001e"]
  ) {
    ok(outcomes.has(hr), `the script produced ${hr}: ${JSON.stringify([...outcomes])}`);
  }
});

function match(value: string | undefined, re: RegExp): void {
  ok(value !== undefined && re.test(value), `${value} matches ${re}`);
}

Deno.test("differential: the in-memory HNS and the C emulator read IP spellings by one rule set", async () => {
  // Each spelling is created next to an endpoint at 10.0.0.1 / fd00::1: the same address
  // conflicts, another one is created, a non-address is refused — the same in both.
  // [spelling, "same" address as the first endpoint, "other" address, "bad" text]
  const spellings: Array<[string, "same" | "other" | "bad"]> = [
    ["10.0.0.1", "same"],
    ["010.0.0.1", "same"],
    ["010.000.000.001", "same"],
    ["::ffff:10.0.0.1", "same"],
    ["::FFFF:a00:1", "same"],
    ["10.0.0.2", "other"],
    ["FD00:0:0::1", "same"],
    ["fd00::2", "other"],
    ["fe80::1%eth0", "bad"],
    ["0x0a.0.0.1", "bad"],
    ["10.0.0.256", "bad"],
  ];
  for (const [ip, kind] of spellings) {
    const answers: string[] = [];
    for (const backend of BACKENDS) {
      const b = backend.open();
      try {
        const net = await b.api.create("Network", NET, JSON.stringify({ Name: "cbr0" }));
        const create = async (id: string, addr: string) =>
          await b.api.close(
            "Endpoint",
            await b.api.create(
              "Endpoint",
              id,
              JSON.stringify({ IpConfigurations: [{ IpAddress: addr }] }),
              net,
            ),
          );
        await create(EP_A, ip.includes(":") && !/ffff/i.test(ip) ? "fd00::1" : "10.0.0.1");
        try {
          await create(EP_B, ip);
          answers.push(`${b.name}: ok`);
        } catch (err) {
          if (!(err instanceof HnsError)) throw err;
          answers.push(`${b.name}: ${err.hresult.toString(16)}`);
        }
        await b.api.close("Network", net);
      } finally {
        b.dispose();
      }
    }
    const [ffi, memory] = answers.map((a) => a.split(": ")[1]);
    equal(memory, ffi, `${ip}: ${answers.join(", ")}`);
    const conflict = (HResult.ERROR_ALREADY_EXISTS >>> 0).toString(16);
    if (kind === "same") equal(ffi, conflict, `${ip} is the address already held`);
    else if (kind === "other") equal(ffi, "ok", `${ip} is another address`);
    else ok(ffi !== "ok" && ffi !== conflict, `${ip} is refused: ${ffi}`);
  }
});
