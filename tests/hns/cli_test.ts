/**
 * `main.ts hns ...` as an operator runs it: a subprocess against the emulator
 * library with a seeded HNSEMU_STATE_FILE.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { MemoryHnsState } from "../../lib/hns/memory.ts";
import { builtEmulatorLibrary } from "./harness.ts";

const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));
const NET = "3C4E1E30-1A1B-4C5D-9E8F-0A1B2C3D4E5F";
const EP_A = "AAAAAAAA-1A1B-4C5D-9E8F-0A1B2C3D4E5F";
const EP_B = "BBBBBBBB-1A1B-4C5D-9E8F-0A1B2C3D4E5F";

/** A node with a network, a local and a remote endpoint, a ClusterIP and a NodePort LB. */
const STATE: Required<MemoryHnsState> = {
  Networks: [{
    ID: NET,
    Name: "cbr0",
    Type: "L2Bridge",
    Ipams: [{ Type: "Static", Subnets: [{ IpAddressPrefix: "10.244.1.0/24" }] }],
    Policies: [{ Type: "RemoteSubnetRoute", Settings: { DestinationPrefix: "10.244.2.0/24" } }],
    SchemaVersion: { Major: 2, Minor: 0 },
  }],
  Endpoints: [
    {
      ID: EP_A,
      Name: "pod-a_ünïcode",
      HostComputeNetwork: NET,
      IpConfigurations: [{ IpAddress: "10.244.1.5", PrefixLength: 24 }],
      MacAddress: "00-15-5D-00-00-01",
      Flags: 0,
    },
    {
      ID: EP_B,
      HostComputeNetwork: NET,
      IpConfigurations: [{ IpAddress: "10.244.2.7" }],
      MacAddress: "02-11-0a-f4-02-07",
      Flags: 1,
      Policies: [{ Type: "ProviderAddress", Settings: { ProviderAddress: "192.168.1.12" } }],
    },
  ],
  LoadBalancers: [
    {
      ID: "CCCCCCCC-1A1B-4C5D-9E8F-0A1B2C3D4E5F",
      HostComputeEndpoints: [EP_A, EP_B],
      FrontendVIPs: ["10.96.0.10"],
      PortMappings: [{ Protocol: 17, InternalPort: 53, ExternalPort: 53, DistributionType: 2 }],
      Flags: 1,
      SchemaVersion: { Major: 2, Minor: 0 },
    },
    {
      ID: "DDDDDDDD-1A1B-4C5D-9E8F-0A1B2C3D4E5F",
      HostComputeEndpoints: [EP_A],
      SourceVIP: "10.244.1.2",
      PortMappings: [{ Protocol: 6, InternalPort: 8080, ExternalPort: 30080, Flags: 18 }],
      SchemaVersion: { Major: 2, Minor: 0 },
    },
  ],
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `main.ts hns ARGS` with the state file seeded from `state`; also return what the file holds after. */
async function hns(
  args: string[],
  options: { state?: unknown; env?: Record<string, string> } = {},
): Promise<Run & { after: MemoryHnsState }> {
  const dir = await Deno.makeTempDir({ prefix: "hns-cli-" });
  try {
    const stateFile = join(dir, "hns-state.json");
    await Deno.writeTextFile(stateFile, JSON.stringify(options.state ?? STATE));
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-check", MAIN, "hns", ...args],
      env: { HNSEMU_STATE_FILE: stateFile, NO_COLOR: "1", ...options.env },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const after = JSON.parse(await Deno.readTextFile(stateFile));
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
      after,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const library = builtEmulatorLibrary();

Deno.test("cli: list --json prints exactly what the emulator holds", async () => {
  for (
    const [what, key] of [
      ["loadbalancers", "LoadBalancers"],
      ["endpoints", "Endpoints"],
      ["networks", "Networks"],
    ] as const
  ) {
    const run = await hns(["list", what, "--json", "--hns-library", library]);
    equal(run.stderr, "");
    equal(run.code, 0);
    const printed = JSON.parse(run.stdout);
    deepEqual(printed, run.after[key]);
    deepEqual(printed, STATE[key]);
  }
});

Deno.test("cli: the library comes from HNSPROXY_HNS_LIBRARY without the flag", async () => {
  const run = await hns(["list", "lbs", "--json"], { env: { HNSPROXY_HNS_LIBRARY: library } });
  equal(run.code, 0, run.stderr);
  equal(JSON.parse(run.stdout).length, 2);
});

Deno.test("cli: tables for people, flags in words", async () => {
  const lbs = await hns(["list", "loadbalancers", "--hns-library", library]);
  equal(lbs.code, 0, lbs.stderr);
  const lines = lbs.stdout.trimEnd().split("\n");
  match(lines[0], /^ID\s+FRONTEND\s+PORTS\s+PROTOCOL\s+BACKENDS\s+SOURCE VIP\s+FLAGS$/);
  match(lines[1], /^CCCCCCCC-\S+\s+10\.96\.0\.10\s+53->53\s+UDP\s+2\s+-\s+DSR affinity:SourceIP$/);
  match(
    lines[2],
    /^DDDDDDDD-\S+\s+\(node ports\)\s+30080->8080\s+TCP\s+1\s+10\.244\.1\.2\s+LocalRoutedVIP VipExternalIP$/,
  );
  equal(lines[3], "2 load balancers");

  const eps = await hns(["list", "endpoints", "--hns-library", library]);
  match(
    eps.stdout,
    /AAAAAAAA-\S+\s+pod-a_ünïcode\s+10\.244\.1\.5\s+00-15-5D-00-00-01\s+3C4E1E30-\S+\s+local/,
  );
  match(eps.stdout, /BBBBBBBB-\S+\s+-\s+10\.244\.2\.7\s+.*remote\s+192\.168\.1\.12/);

  const nets = await hns(["list", "networks", "--hns-library", library]);
  match(nets.stdout, /3C4E1E30-\S+\s+cbr0\s+L2Bridge\s+10\.244\.1\.0\/24\s+RemoteSubnetRoute/);
});

Deno.test("cli: version, with the features in words or as JSON", async () => {
  const text = await hns(["version", "--hns-library", library], {
    env: { HNSEMU_VERSION: "12.0" },
  });
  equal(text.code, 0, text.stderr);
  equal(text.stdout, "HNS version: 12.0\nfeatures: api dsr ipv6DualStack sessionAffinity\n");
  const json = await hns(["version", "--json", "--hns-library", library]);
  deepEqual(JSON.parse(json.stdout), {
    version: { major: 15, minor: 5 },
    features: {
      api: true,
      dsr: true,
      ipv6DualStack: true,
      sessionAffinity: true,
      modifyLoadBalancer: true,
    },
  });
  const unknown = await hns(["version", "--hns-library", library], {
    env: { HNSEMU_VERSION: "0.0" },
  });
  match(unknown.stdout, /^HNS version: unknown/);
  match(unknown.stdout, /hnsproxy cannot start here: cannot read the HNS version/);
  const old = await hns(["version", "--hns-library", library], {
    env: { HNSEMU_VERSION: "9.1" },
  });
  match(old.stdout, /hnsproxy cannot start here: HNS 9\.1 has no HCN \(v2\) API/);
  const noDsr = await hns(["version", "--hns-library", library], {
    env: { HNSEMU_VERSION: "10.0" },
  });
  equal(
    noDsr.stdout,
    "HNS version: 10.0\nfeatures: api\nhnsproxy starts here, but not with --enable-dsr: " +
      "HNS 10.0 has no Direct Server Return (needs HNS 9.3–9.x or 10.2+); " +
      "remove the flag (enableDSR in the config file) or update Windows\n",
  );
});

Deno.test("cli: the memory backend is an empty HNS", async () => {
  const run = await hns(["list", "loadbalancers", "--json", "--hns-backend", "memory"]);
  equal(run.code, 0, run.stderr);
  deepEqual(JSON.parse(run.stdout), []);
});

/** Exit 1 and exactly one line on stderr (plus the usage hint for usage errors), no stack trace. */
function oneLineFailure(run: Run, re: RegExp): void {
  equal(run.code, 1, run.stdout);
  equal(run.stdout, "");
  const lines = run.stderr.trimEnd().split("\n");
  match(lines[0], re);
  ok(lines.length === 1 || /--help/.test(lines[1]), run.stderr);
  ok(!/\n\s+at /.test(run.stderr), `no stack trace: ${run.stderr}`);
}

Deno.test("cli: failures are one line and exit 1", async () => {
  const missing = join(Deno.cwd(), "no-such-dir", "hns.lib");
  oneLineFailure(
    await hns(["list", "lbs", "--hns-library", missing]),
    /^hns: cannot load HNS library .*no-such-dir.*hns\.lib: /,
  );
  oneLineFailure(
    await hns(["list", "lbs", "--hns-library", library], {
      env: { HNSEMU_FAIL: "HcnEnumerateLoadBalancers:1:0x803B0020" },
    }),
    /^hns: listLoadBalancers \(HcnEnumerateLoadBalancers\) failed with 0x803B0020 \(HNS manager stopped\); object load balancers; HNS says: The HNS manager is stopped\.$/,
  );
  oneLineFailure(await hns(["list", "pods"]), /^hns: cannot list "pods"/);
  oneLineFailure(await hns(["list"]), /^hns: list what\?/);
  oneLineFailure(await hns(["frobnicate"]), /^hns: unknown subcommand "frobnicate"/);
  oneLineFailure(await hns(["list", "lbs", "--bogus"]), /^hns: Unknown option '--bogus'/);
  oneLineFailure(
    await hns(["list", "lbs", "--hns-backend", "wmi"]),
    /^hns: --hns-backend must be ffi or memory/,
  );
  if (Deno.build.os !== "windows") {
    oneLineFailure(
      await hns(["list", "lbs"], { env: { HNSPROXY_HNS_LIBRARY: "" } }),
      /^hns: HNS exists only on Windows/,
    );
  }
});

Deno.test("cli: --help", async () => {
  const run = await hns(["--help"]);
  equal(run.code, 0);
  match(run.stdout, /hnsproxy hns list networks\|endpoints\|loadbalancers/);
});
