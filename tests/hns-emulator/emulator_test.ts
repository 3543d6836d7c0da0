/**
 * Tests of the HNS emulator library, for real: the C check program
 * (emulator_check.c) loads the built library and checks every rule through its
 * exported ABI; state-file persistence runs across separate processes; and a
 * Deno.dlopen smoke test drives the same symbols from JS.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { buildCheckProgram, buildEmulator, BuildError, privateCopy, WINDOWS_CC } from "./build.ts";

const library = await buildEmulator();
const checkProgram = await buildCheckProgram();

/** The environment without any HNSEMU_* knob, plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!k.startsWith("HNSEMU_")) env[k] = v;
  }
  return { ...env, ...extra };
}

async function runCheck(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(checkProgram, {
    args: [library, ...args],
    env: cleanEnv(env),
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** One ctl line: the HRESULT, the output string and the error record. */
interface CtlLine {
  cmd: string;
  hr: string;
  out?: string | null;
  err?: string | null;
  count?: number;
  ok?: number;
  exists?: number;
  other?: number;
  strings?: number;
  handles?: number;
  invalidFrees?: number;
}

/** Run ctl commands in a separate process sharing `stateFile`. */
async function ctl(stateFile: string, ...cmds: string[]): Promise<CtlLine[]> {
  const r = await runCheck(["ctl", ...cmds], { HNSEMU_STATE_FILE: stateFile });
  assert.deepEqual(r.code, 0, `ctl ${cmds.join(" ")} failed:\n${r.stderr}`);
  return r.stdout.trim().split("\n").map((l) => JSON.parse(l) as CtlLine);
}

const NET_VXLAN = "2B3C4D5E-0000-4000-8000-00000000AA01";
const NET_CBR0 = "2B3C4D5E-0000-4000-8000-00000000AA02";
const EP_POD_A = "3C4D5E6F-0000-4000-8000-00000000BB01";
const EP_POD_B = "3c4d5e6f-0000-4000-8000-00000000bb02"; // lower case, as a hand-written file may have
const LB_OK = "4D5E6F70-0000-4000-8000-00000000CC01";
const LB_MALFORMED = "4D5E6F70-0000-4000-8000-00000000CC02";

/** A state file as a test writes it to seed HNS: what the CNI and an old proxy left. */
function seed() {
  return {
    Networks: [
      {
        ID: NET_VXLAN,
        Name: "vxlan0",
        Type: "Overlay",
        Policies: [
          {
            Type: "RemoteSubnetRoute",
            Settings: {
              DestinationPrefix: "10.244.2.0/24",
              IsolationId: 4096,
              ProviderAddress: "192.168.1.12",
              DistributedRouterMacAddress: "00-15-5D-00-00-02",
            },
          },
        ],
        Ipams: [{ Type: "Static", Subnets: [{ IpAddressPrefix: "10.244.1.0/24" }] }],
        SchemaVersion: { Major: 2, Minor: 0 },
      },
      { ID: NET_CBR0, Name: "cbr0", Type: "L2Bridge", SchemaVersion: { Major: 2, Minor: 0 } },
    ],
    Endpoints: [
      {
        ID: EP_POD_A,
        Name: "pod-a_eth0",
        HostComputeNetwork: NET_VXLAN,
        IpConfigurations: [{ IpAddress: "10.244.1.5", PrefixLength: 24 }],
        Flags: 0,
      },
      {
        ID: EP_POD_B,
        Name: "pod-b_eth0",
        HostComputeNetwork: NET_VXLAN,
        IpConfigurations: [{ IpAddress: "10.244.1.6", PrefixLength: 24 }],
        Flags: 0,
      },
    ],
    LoadBalancers: [
      {
        ID: LB_OK,
        HostComputeEndpoints: [EP_POD_A],
        FrontendVIPs: ["10.96.0.10"],
        PortMappings: [{ Protocol: 17, InternalPort: 53, ExternalPort: 53 }],
        SchemaVersion: { Major: 2, Minor: 0 },
      },
      // Malformed (no PortMappings): it must load and come back exactly as stored.
      { ID: LB_MALFORMED, HostComputeEndpoints: [EP_POD_B], FrontendVIPs: ["10.96.0.99"] },
    ],
  };
}

async function withStateDir(fn: (stateFile: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hnsemu-state-" });
  try {
    await fn(join(dir, "hns.json"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("emulator: every HNS rule holds, checked through the exported ABI", async () => {
  const r = await runCheck(["rules"]);
  assert.deepEqual(r.code, 0, `emulator_check rules failed:\n${r.stderr}${r.stdout}`);
  assert.match(r.stdout, /^\d+ checks, 0 failed$/m);
});

Deno.test({
  name:
    "emulator: its blocks are off malloc, on resident pages HnsEmuHeapBytes counts; HnsEmuHeapInUse counts the bytes asked for",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    // Without the per-thread cache a block the check itself frees leaves malloc's in-use count
    // at once, so malloc's count must not move while only the library works.
    const r = await runCheck(["heap"], { GLIBC_TUNABLES: "glibc.malloc.tcache_count=0" });
    assert.deepEqual(r.code, 0, `emulator_check heap failed:\n${r.stderr}${r.stdout}`);
    assert.doesNotMatch(r.stdout, /skipped/, "the check must compare against mallinfo2, not skip");
    assert.match(r.stdout, /^heap unit: .* a name 1001 bytes longer costs 1001 bytes more$/m);
    assert.match(r.stdout, /^heap: \d+ objects: .* malloc in use \+0$/m);
    assert.match(r.stdout, /^[1-9]\d* checks, 0 failed$/m);
  },
});

Deno.test({
  name:
    "emulator: a heap reserve holds its blocks, large ones and a reset included, without HnsEmuHeapBytes moving; past it pages are mapped",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const r = await runCheck(["reserve"]);
    assert.deepEqual(r.code, 0, `emulator_check reserve failed:\n${r.stderr}${r.stdout}`);
    assert.doesNotMatch(r.stdout, /skipped/, "the check must run on Linux, not skip");
    assert.match(r.stdout, /^reserve: 68157440 bytes reserved, pages \+68157440, /m);
    assert.match(r.stdout, /^reserve: 40001 objects .*: pages \+0, .* pages \+0, /m);
    assert.match(r.stdout, /^reserve: 80001 objects outgrow it: pages \+[1-9]\d*$/m);
    assert.match(r.stdout, /^[1-9]\d* checks, 0 failed$/m);
  },
});

Deno.test("emulator: HNSEMU_VERSION, HNSEMU_FAIL and HNSEMU_LATENCY_US configure a process", async () => {
  const r = await runCheck(["env"], {
    HNSEMU_VERSION: "9.3",
    HNSEMU_LATENCY_US: "1000",
    HNSEMU_FAIL: "HcnCreateNetwork:2:0x803B0020,HcnDeleteNetwork:0:0x80070005,NotAFunction:1:1",
  });
  assert.deepEqual(r.code, 0, `emulator_check env failed:\n${r.stderr}${r.stdout}`);
  assert.match(r.stderr, /ignoring HNSEMU_FAIL entry "NotAFunction:1:1"/);
});

Deno.test("emulator: a hand-written state file seeds HNS, malformed LB included", async () => {
  await withStateDir(async (file) => {
    const seeded = seed();
    await Deno.writeTextFile(file, JSON.stringify(seeded, null, 2));
    const filter = (name: string) =>
      JSON.stringify({
        SchemaVersion: { Major: 2, Minor: 0 },
        Flags: 0,
        Filter: JSON.stringify({ Name: name }),
      });
    const out = await ctl(
      file,
      ...["enum", "network", filter("VXLAN0")],
      ...["get", "network", NET_VXLAN],
      ...["get", "lb", LB_MALFORMED],
      ...[
        "enum",
        "endpoint",
        JSON.stringify({ Filter: JSON.stringify({ VirtualNetwork: NET_VXLAN }) }),
      ],
      // The indexes were rebuilt from the file: the same rules apply to seeded objects.
      ...[
        "create-lb",
        JSON.stringify({
          FrontendVIPs: ["10.96.0.10"],
          PortMappings: [{ Protocol: 17, ExternalPort: 53 }],
        }),
      ],
      ...[
        "create-ep",
        NET_VXLAN,
        JSON.stringify({ IpConfigurations: [{ IpAddress: "10.244.1.6" }] }),
      ],
      ...["delete", "endpoint", EP_POD_A],
      ...["delete", "network", NET_VXLAN],
      "leaks",
    );
    assert.deepEqual(out[0].out, JSON.stringify([NET_VXLAN]));
    assert.deepEqual(JSON.parse(out[1].out!), seeded.Networks[0]);
    assert.deepEqual(out[2].hr, "0x00000000");
    assert.deepEqual(out[2].out, JSON.stringify(seeded.LoadBalancers[1]));
    assert.deepEqual(JSON.parse(out[3].out!), [EP_POD_A, EP_POD_B.toUpperCase()]);
    assert.deepEqual(out[4].hr, "0x803B0013");
    assert.deepEqual(JSON.parse(out[4].err!).Error, "The specified port already exists.");
    assert.deepEqual(out[5].hr, "0x800700B7");
    assert.deepEqual(out[6].hr, "0x803B002C");
    assert.deepEqual(out[7].hr, "0x803B002C");
    assert.deepEqual(out[8], { cmd: "leaks", strings: 0, handles: 0, invalidFrees: 0 });

    // IDs were normalized and written back for every process to share.
    const stored = JSON.parse(await Deno.readTextFile(file));
    assert.deepEqual(stored.Endpoints[1].ID, EP_POD_B.toUpperCase());
    assert.deepEqual(stored.LoadBalancers[1], seeded.LoadBalancers[1]);
  });
});

Deno.test("emulator: HNSEMU_LOAD_STATE starts a process with a saved HNS; HNSEMU_HEAP_REPORT writes its heap at exit", async () => {
  await withStateDir(async (file) => {
    const seeded = seed();
    await Deno.writeTextFile(file, JSON.stringify(seeded));
    const report = `${file}.heap`;
    const r = await runCheck(
      ["ctl", "count", "network", "count", "endpoint", "count", "lb", "get", "network", NET_VXLAN],
      { HNSEMU_LOAD_STATE: file, HNSEMU_HEAP_REPORT: report },
    );
    assert.deepEqual(r.code, 0, r.stderr);
    const out = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as CtlLine);
    assert.deepEqual(out.slice(0, 3).map((l) => l.count), [
      seeded.Networks.length,
      seeded.Endpoints.length,
      seeded.LoadBalancers.length,
    ]);
    assert.deepEqual(JSON.parse(out[3].out!), seeded.Networks[0]);
    // The process held the loaded objects when it exited; the file it loaded is left as it was.
    const heap = JSON.parse(await Deno.readTextFile(report)) as { heapBytes: number };
    assert.ok(heap.heapBytes > JSON.stringify(seeded).length, JSON.stringify(heap));
    assert.deepEqual(JSON.parse(await Deno.readTextFile(file)), seeded);

    // A file that is not a saved state: HNS starts empty and stderr says why.
    await Deno.writeTextFile(file, "not json");
    const bad = await runCheck(["ctl", "count", "endpoint"], { HNSEMU_LOAD_STATE: file });
    assert.deepEqual(bad.code, 0, bad.stderr);
    assert.deepEqual(JSON.parse(bad.stdout.trim()).count, 0);
    assert.match(bad.stderr, /HnsEmuLoadState .*hns\.json: invalid JSON/);
  });
});

Deno.test("emulator: HNSEMU_VERSION decides in-place update and the HCN API of a process", async () => {
  await withStateDir(async (file) => {
    const run = async (version: string, ...cmds: string[]) => {
      const r = await runCheck(["ctl", ...cmds], {
        HNSEMU_STATE_FILE: file,
        HNSEMU_VERSION: version,
      });
      assert.deepEqual(r.code, 0, r.stderr);
      return r.stdout.trim().split("\n").map((l) => JSON.parse(l) as CtlLine);
    };
    const [net] = await run(
      "10.0",
      "create-net",
      JSON.stringify({ Name: "cbr0", Type: "L2Bridge" }),
    );
    const [ep] = await run(
      "10.0",
      ...[
        "create-ep",
        net.out!,
        JSON.stringify({ IpConfigurations: [{ IpAddress: "10.244.1.5" }] }),
      ],
    );
    const lb = {
      HostComputeEndpoints: [ep.out],
      FrontendVIPs: ["10.96.0.1"],
      PortMappings: [{ Protocol: 6, InternalPort: 6443, ExternalPort: 443 }],
    };
    const [created] = await run("10.0", "create-lb", JSON.stringify(lb));
    const changed = JSON.stringify({ ...lb, HostComputeEndpoints: [] });
    for (const version of ["10.0", "14.0", "15.4"]) {
      const [m] = await run(version, "modify-lb", created.out!, changed);
      assert.deepEqual(m.hr, "0x80004001", version);
      assert.match(m.err!, /needs HNS 15\.5-15\.x or 16\.0\+/);
    }
    for (const version of ["15.5", "16.0"]) {
      const [m] = await run(version, "modify-lb", created.out!, changed);
      assert.deepEqual(m.hr, "0x00000000", version);
    }
    // No HCN (v2) API below 9.2: the objects are there, but no call reaches them.
    const [listed] = await run("9.1", "enum", "lb", "-");
    assert.deepEqual(listed.hr, "0x80004001");
    assert.deepEqual(JSON.parse((await run("9.2", "enum", "lb", "-"))[0].out!), [created.out]);
  });
});

Deno.test("emulator: state file: what one process writes, the next one sees", async () => {
  await withStateDir(async (file) => {
    const [net] = await ctl(
      file,
      "create-net",
      JSON.stringify({ Name: "vxlan0", Type: "Overlay" }),
    );
    assert.deepEqual(net.hr, "0x00000000");
    const netId = net.out!;
    const [ep] = await ctl(
      file,
      "create-ep",
      netId,
      JSON.stringify({
        Name: "remote",
        IpConfigurations: [{ IpAddress: "10.244.2.15" }],
        Flags: 1,
      }),
    );
    const lbSettings = {
      HostComputeEndpoints: [ep.out],
      FrontendVIPs: ["10.96.0.1"],
      PortMappings: [{ Protocol: 6, InternalPort: 6443, ExternalPort: 443 }],
    };
    const [lb] = await ctl(file, "create-lb", JSON.stringify(lbSettings));
    assert.deepEqual(lb.hr, "0x00000000");

    // A third process: objects, indexes and references are all there.
    const seen = await ctl(
      file,
      ...["get", "lb", lb.out!],
      ...["create-lb", JSON.stringify(lbSettings)],
      ...["delete", "endpoint", ep.out!],
      ...["modify-lb", lb.out!, JSON.stringify({ ...lbSettings, HostComputeEndpoints: [] })],
      ...["delete", "endpoint", ep.out!],
      ...["count", "endpoint"],
    );
    assert.deepEqual(JSON.parse(seen[0].out!), { ID: lb.out, ...lbSettings });
    assert.deepEqual(seen[1].hr, "0x803B0013");
    assert.deepEqual(seen[2].hr, "0x803B002C");
    assert.deepEqual(seen[3].hr, "0x00000000");
    assert.deepEqual(seen[4].hr, "0x00000000");
    assert.deepEqual(seen[5].count, 0);

    const stored = JSON.parse(await Deno.readTextFile(file));
    assert.deepEqual(stored.Networks.map((n: { ID: string }) => n.ID), [netId]);
    assert.deepEqual(stored.Endpoints, []);
    assert.deepEqual(stored.LoadBalancers[0].HostComputeEndpoints, []);

    // Edited by hand while no one runs: the next call reloads it. Removed: HNS is empty.
    stored.LoadBalancers = [];
    await Deno.writeTextFile(file, JSON.stringify(stored));
    assert.deepEqual((await ctl(file, "count", "lb"))[0].count, 0);
    await Deno.remove(file);
    assert.deepEqual((await ctl(file, "count", "network"))[0].count, 0);
  });
});

Deno.test("emulator: `<library>.env` configures a process without environment; the environment wins", async () => {
  await withStateDir(async (file) => {
    const copy = await privateCopy(library);
    try {
      const viaSidecar = `${file}.sidecar.json`;
      await Deno.writeTextFile(
        `${copy}.env`,
        `# written by the test\r\n\r\n  HNSEMU_STATE_FILE=${viaSidecar}\r\n`,
      );
      const run = async (env: Record<string, string>, ...cmds: string[]) => {
        const out = await new Deno.Command(checkProgram, {
          args: [copy, "ctl", ...cmds],
          env: cleanEnv(env),
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
        }).output();
        const dec = new TextDecoder();
        assert.equal(out.code, 0, dec.decode(out.stderr));
        return dec.decode(out.stdout).trim().split("\n").map((l) => JSON.parse(l) as CtlLine);
      };
      const [net] = await run({}, "create-net", JSON.stringify({ Name: "cbr0" }));
      assert.equal(net.hr, "0x00000000");
      const stored = JSON.parse(await Deno.readTextFile(viaSidecar));
      assert.deepEqual(stored.Networks.map((n: { ID: string }) => n.ID), [net.out]);
      // A variable that is set wins over the sidecar's line.
      await run({ HNSEMU_STATE_FILE: file }, "create-net", JSON.stringify({ Name: "other" }));
      assert.equal(JSON.parse(await Deno.readTextFile(file)).Networks.length, 1);
      assert.equal(JSON.parse(await Deno.readTextFile(viaSidecar)).Networks.length, 1);
    } finally {
      await Deno.remove(join(copy, ".."), { recursive: true });
    }
  });
});

Deno.test("emulator: state file: two processes racing stay consistent", async () => {
  await withStateDir(async (file) => {
    const [net] = await ctl(file, "create-net", JSON.stringify({ Name: "cbr0", Type: "L2Bridge" }));
    const n = 300;
    // Both create the same 300 IPs at once: each IP is won exactly once.
    const [a, b] = await Promise.all([
      ctl(file, "create-eps", net.out!, "10.244", String(n)),
      ctl(file, "create-eps", net.out!, "10.244", String(n)),
    ]);
    assert.deepEqual(a[0].other, 0);
    assert.deepEqual(b[0].other, 0);
    assert.deepEqual(a[0].ok! + b[0].ok!, n);
    assert.deepEqual(a[0].exists! + b[0].exists!, n);
    const stored = JSON.parse(await Deno.readTextFile(file));
    const ips = stored.Endpoints.map((e: { IpConfigurations: { IpAddress: string }[] }) =>
      e.IpConfigurations[0].IpAddress
    );
    assert.deepEqual(ips.length, n);
    assert.deepEqual(new Set(ips).size, n);
  });
});

Deno.test("emulator: a state file that is not JSON fails calls with a clear record", async () => {
  await withStateDir(async (file) => {
    await Deno.writeTextFile(file, "{ not json");
    const [r] = await ctl(file, "enum", "network", "");
    assert.deepEqual(r.hr, "0x8007000D");
    assert.match(JSON.parse(r.err!).Error, /HNSEMU_STATE_FILE .*hns\.json: invalid JSON/);
  });
});

// ---- Deno FFI: the ABI as the agent's binding sees it --------------------------------

const SYMBOLS = {
  HcnCreateNetwork: { parameters: ["buffer", "buffer", "buffer", "buffer"], result: "i32" },
  HcnCreateLoadBalancer: {
    parameters: ["buffer", "buffer", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  HcnQueryNetworkProperties: {
    parameters: ["pointer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  HcnEnumerateLoadBalancers: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  HcnCloseNetwork: { parameters: ["pointer"], result: "i32" },
  HcnCloseLoadBalancer: { parameters: ["pointer"], result: "i32" },
  HNSCall: { parameters: ["buffer", "buffer", "buffer", "buffer"], result: "i32" },
  CoTaskMemFree: { parameters: ["pointer"], result: "void" },
  HnsEmuReset: { parameters: [], result: "void" },
  HnsEmuSetLatencyMicros: { parameters: ["u32"], result: "void" },
  HnsEmuOpenHandles: { parameters: [], result: "i64" },
  HnsEmuOutstandingStrings: { parameters: [], result: "i64" },
  HnsEmuObjectCount: { parameters: ["buffer"], result: "i64" },
} as const;

function wide(s: string): Uint16Array<ArrayBuffer> {
  const w = new Uint16Array(s.length + 1);
  for (let i = 0; i < s.length; i++) w[i] = s.charCodeAt(i);
  return w;
}

function cstr(s: string): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(s.length + 1);
  b.set(new TextEncoder().encode(s));
  return b;
}

Deno.test("emulator: Deno.dlopen sees UTF-16 strings, GUIDs and handles as HNS gives them", async () => {
  const copy = await privateCopy(library);
  const lib = Deno.dlopen(copy, SYMBOLS);
  const s = lib.symbols;
  const take = (slot: BigUint64Array): string | null => {
    const p = Deno.UnsafePointer.create(slot[0]);
    if (p === null) return null;
    const view = new Deno.UnsafePointerView(p);
    let text = "";
    for (let off = 0;; off += 2) {
      const unit = view.getUint16(off);
      if (unit === 0) break;
      text += String.fromCharCode(unit);
    }
    s.CoTaskMemFree(p);
    return text;
  };
  try {
    s.HnsEmuReset();
    const response = new BigUint64Array(1);
    assert.deepEqual(s.HNSCall(wide("GET"), wide("/globals/version"), wide(""), response), 0);
    assert.deepEqual(JSON.parse(take(response)!).Output, { Major: 15, Minor: 5 });

    // GUID bytes: Data1..3 little-endian, Data4 in order.
    const guid = new Uint8Array([
      0xf4,
      0xa6,
      0x8d,
      0x5b,
      0x6a,
      0x0e,
      0x53,
      0x4c,
      0x9e,
      0x33,
      0x7a,
      0xf1,
      0xc1,
      0xd7,
      0xe0,
      0xa1,
    ]);
    const handle = new BigUint64Array(1);
    const err = new BigUint64Array([0xdeadn]);
    const name = "cbr0-é-😀";
    const settings = wide(JSON.stringify({ Name: name, Type: "L2Bridge" }));
    assert.deepEqual(s.HcnCreateNetwork(guid, settings, handle, err), 0);
    assert.deepEqual(err[0], 0n); // success clears the error record
    const h = Deno.UnsafePointer.create(handle[0]);
    const props = new BigUint64Array(1);
    assert.deepEqual(s.HcnQueryNetworkProperties(h, wide(""), props, err), 0);
    assert.deepEqual(JSON.parse(take(props)!), {
      ID: "5B8DA6F4-0E6A-4C53-9E33-7AF1C1D7E0A1",
      Name: name,
      Type: "L2Bridge",
    });
    assert.deepEqual(s.HcnCloseNetwork(h), 0);

    // Nonblocking calls overlap on worker threads; the port rule still admits one winner.
    s.HnsEmuSetLatencyMicros(2000);
    const lb = wide(JSON.stringify({
      FrontendVIPs: ["10.96.0.10"],
      PortMappings: [{ Protocol: 6, InternalPort: 80, ExternalPort: 80 }],
    }));
    const zero = new Uint8Array(16);
    const calls = Array.from({ length: 6 }, async () => {
      const out = new BigUint64Array(1);
      const e = new BigUint64Array(1);
      const hr = (await s.HcnCreateLoadBalancer(zero, lb, out, e)) >>> 0;
      const record = take(e);
      if (out[0] !== 0n) s.HcnCloseLoadBalancer(Deno.UnsafePointer.create(out[0]));
      return { hr, record };
    });
    const results = await Promise.all(calls);
    s.HnsEmuSetLatencyMicros(0);
    assert.deepEqual(results.filter((r) => r.hr === 0).length, 1);
    for (const r of results.filter((r) => r.hr !== 0)) {
      assert.deepEqual(r.hr, 0x803b0013);
      assert.deepEqual(JSON.parse(r.record!), {
        Success: false,
        Error: "The specified port already exists.",
        ErrorCode: 0x803b0013,
      });
    }
    assert.deepEqual(s.HnsEmuObjectCount(cstr("LoadBalancer")), 1n);
    const ids = new BigUint64Array(1);
    assert.deepEqual(s.HcnEnumerateLoadBalancers(wide(""), ids, err), 0);
    assert.deepEqual(JSON.parse(take(ids)!).length, 1);

    assert.deepEqual(s.HnsEmuOutstandingStrings(), 0n);
    assert.deepEqual(s.HnsEmuOpenHandles(), 0n);
  } finally {
    lib.close();
    await Deno.remove(join(copy, ".."), { recursive: true });
  }
});

Deno.test("emulator: the build names a missing compiler in one line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const err = await buildEmulator({
      compiler: "no-such-cc-hnsemu",
      force: true,
      output: join(dir, "x.so"),
    }).then(() => undefined, (e) => e);
    assert.ok(err instanceof BuildError);
    assert.deepEqual(
      err.message,
      'C compiler "no-such-cc-hnsemu" not found: install it (apt-get install -y gcc libc6-dev)',
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Whether the mingw cross compiler runs here (spawning a missing program throws synchronously). */
async function commandRuns(program: string): Promise<boolean> {
  try {
    const out = await new Deno.Command(program, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

const hasMingw = await commandRuns(WINDOWS_CC);

Deno.test({
  name: "emulator: the Windows DLL builds with mingw and exports the ABI",
  ignore: !hasMingw,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const dll = await buildEmulator({
        windows: true,
        force: true,
        output: join(dir, "hnsemu.dll"),
      });
      const bytes = await Deno.readFile(dll);
      assert.deepEqual(String.fromCharCode(bytes[0], bytes[1]), "MZ");
      const text = new TextDecoder("latin1").decode(bytes);
      for (const name of [...Object.keys(SYMBOLS), "HcnDeleteEndpoint", "HnsEmuFailCall"]) {
        assert.ok(text.includes(name + "\0"), `the DLL does not export ${name}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
