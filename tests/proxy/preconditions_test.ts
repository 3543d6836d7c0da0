import assert from "node:assert/strict";
import { detectNetwork, networkNameError, StartupError } from "../../lib/proxy/preconditions.ts";
import type { HcnNetwork } from "../../lib/hns/types.ts";

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
