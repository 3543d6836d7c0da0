import assert from "node:assert/strict";
import {
  checkStartContext,
  detectNetwork,
  networkNameError,
  StartupError,
} from "../../lib/proxy/preconditions.ts";
import type { HcnNetwork } from "../../lib/hns/types.ts";
import type { NodeContext } from "../../lib/proxy/model.ts";
import { overlayCtx } from "./core_fixtures.ts";

const net = (Name: string, Type: string): HcnNetwork => ({ ID: `id-${Name}`, Name, Type });

Deno.test("networkNameError lists every network HNS has, with its type", () => {
  const cases: [HcnNetwork[], string][] = [
    [[], "HNS has no network yet"],
    [[net("nat", "NAT")], 'HNS has "nat" (NAT)'],
    [
      [net("nat", "NAT"), net("vxlan0", "Overlay"), net("cbr0", "L2Bridge")],
      'HNS has "nat" (NAT), "vxlan0" (Overlay), "cbr0" (L2Bridge)',
    ],
    [[{ ID: "x" }], 'HNS has "" (?)'],
  ];
  for (const [networks, want] of cases) {
    const err = networkNameError(networks);
    assert.ok(err instanceof StartupError);
    assert.ok(err.message.startsWith("No HNS network is named: set --network-name"), err.message);
    assert.ok(err.message.includes(want), `${err.message} lacks ${want}`);
    assert.ok(err.message.includes("--detect-network"));
    assert.ok(!err.message.includes("\n"));
  }
});

Deno.test("detectNetwork: the only Overlay/L2Bridge/L2Tunnel network, else none", () => {
  const cases: [HcnNetwork[], string | undefined][] = [
    [[], undefined],
    [[net("nat", "NAT")], undefined],
    [[net("nat", "NAT"), net("vxlan0", "Overlay")], "vxlan0"],
    [[net("cbr0", "l2bridge")], "cbr0"],
    [[net("vxlan0", "Overlay"), net("cbr0", "L2Bridge")], undefined],
  ];
  for (const [networks, want] of cases) assert.equal(detectNetwork(networks)?.Name, want);
});

Deno.test("checkStartContext: overlay needs a source VIP and the host's MAC; L2Bridge neither", () => {
  const settings = {
    nodeName: "n",
    nodeIPOverride: [],
    sourceVips: [],
    enableDSR: false,
    forwardHealthCheckVip: false,
    rootHnsEndpointName: "cbr0",
    healthzPort: 10256,
    hostInterfaces: () => [{ name: "eth0", address: "10.1.0.4", mac: "00:15:5d:11:22:33" }],
  };
  const table: Array<[Partial<NodeContext>, RegExp | undefined]> = [
    [{ sourceVips: ["10.244.1.250"], hostMac: "00-15-5d-11-22-33" }, undefined],
    [{ network: { ...overlayCtx().network, type: "l2bridge" }, sourceVips: [] }, undefined],
    [
      { sourceVips: [], hostMac: "00-15-5d-11-22-33" },
      /^HNS network "vxlan0" is an Overlay network and no source VIP is set: set --source-vip/,
    ],
    [
      { sourceVips: ["10.244.1.250"], hostMac: undefined, nodeIPs: ["192.168.1.10"] },
      /Overlay network and the host's MAC is unknown: no host interface with a hardware address holds the node IP 192\.168\.1\.10; interfaces seen: eth0 10\.1\.0\.4 00-15-5d-11-22-33\. Set --host-mac/,
    ],
  ];
  for (const [extra, want] of table) {
    const ctx = overlayCtx({ ...extra });
    if ("hostMac" in extra && extra.hostMac === undefined) delete ctx.hostMac;
    if (want === undefined) checkStartContext(ctx, settings);
    else {assert.throws(() =>
        checkStartContext(ctx, settings), (e) =>
        e instanceof StartupError && want.test(e.message), JSON.stringify(extra));}
  }
});
