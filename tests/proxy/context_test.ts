import assert from "node:assert/strict";
import type { HcnEndpoint } from "../../lib/hns/types.ts";
import type { NodeInfo } from "../../lib/kube/model.ts";
import {
  buildNodeContext,
  contextChanged,
  contextForNode,
  contextWithRoot,
  endpointIps,
  localEndpointsOf,
} from "../../lib/proxy/context.ts";
import { desiredForService } from "../../lib/proxy/desired.ts";
import { ALL_FEATURES, ctx, ep, NET_ID, overlayCtx, slice, svc } from "./core_fixtures.ts";

const OTHER_NET = "0A0B0C0D-0000-0000-0000-000000000002";

const cni = (id: string, ips: string[], extra: Partial<HcnEndpoint> = {}): HcnEndpoint => ({
  ID: id,
  HostComputeNetwork: NET_ID,
  IpConfigurations: ips.map((IpAddress) => ({ IpAddress })),
  ...extra,
});

Deno.test("localEndpointsOf: every IP of a dual-stack CNI endpoint is indexed", () => {
  const local = localEndpointsOf(
    [
      cni("DUAL", ["10.244.1.7", "FD00:10:244:1:0::7"]),
      cni("V4", ["10.244.1.8"]),
      cni("REMOTE", ["10.244.2.9"], { Flags: 1 }),
      cni("OWNED", ["10.244.1.9"]),
      cni("ELSEWHERE", ["10.244.1.10"], { HostComputeNetwork: OTHER_NET }),
    ],
    NET_ID,
    (id) => id === "OWNED",
  );
  assert.deepEqual(
    [...local],
    [["10.244.1.7", "DUAL"], ["fd00:10:244:1::7", "DUAL"], ["10.244.1.8", "V4"]],
  );
});

Deno.test("endpointIps: canonical, in order, without duplicates or garbage", () => {
  assert.deepEqual(
    endpointIps(cni("X", ["10.0.0.1", "fd00::0:1", "nonsense", "10.0.0.1"])),
    ["10.0.0.1", "fd00::1"],
  );
  assert.deepEqual(endpointIps({ ID: "Y" }), []);
});

Deno.test("a dual-stack pod on this node backs the IPv6 LB with its one CNI endpoint", () => {
  const ctx = buildNodeContext({
    settings: {
      nodeName: "node-a",
      nodeIPOverride: ["192.168.1.10", "fd00:1::10"],
      sourceVips: [],
      enableDSR: false,
      forwardHealthCheckVip: false,
      rootHnsEndpointName: "cbr0",
      healthzPort: 10256,
    },
    network: { id: NET_ID, name: "cbr0", type: "l2bridge", remoteSubnetRoutes: [] },
    features: ALL_FEATURES,
    endpoints: [cni("DUAL", ["10.244.1.7", "fd00:10:244:1::7"])],
    owns: () => false,
  });
  const sd = desiredForService(
    svc({ clusterIPs: ["fd00:10:96::10"], ipFamilies: ["IPv6"] }),
    [slice([ep("fd00:10:244:1::7", { nodeName: "node-a" })], { addressType: "IPv6" })],
    ctx,
  );
  assert.deepEqual(sd.loadBalancers.map((lb) => lb.backends), [["ep/local/fd00:10:244:1::7"]]);
  assert.deepEqual(sd.existingEndpoints, [{ key: "ep/local/fd00:10:244:1::7", id: "DUAL" }]);
  assert.ok(!sd.diagnostics.some((d) => d.reason === "LocalEndpointNotFound"));
});

Deno.test("contextForNode: a changed Node's IPs and zone make a new context; nothing else does", () => {
  const settings = {
    nodeName: "node-a",
    nodeIPOverride: [],
    sourceVips: [],
    enableDSR: false,
    forwardHealthCheckVip: false,
    rootHnsEndpointName: "cbr0",
    healthzPort: 10256,
  };
  const node: NodeInfo = {
    name: "node-a",
    internalIPs: ["192.168.1.10", "fd00:1::10"],
    zone: "zone-a",
    podCIDRs: ["10.244.1.0/24"],
  };
  const base = ctx({ zone: "zone-a" });
  assert.equal(contextForNode(base, settings, node), base, "unchanged: the same object");
  const moved = contextForNode(base, settings, { ...node, internalIPs: ["192.168.1.99"] });
  assert.deepEqual(moved.nodeIPs, ["192.168.1.99"]);
  const zoneless = contextForNode(base, settings, { ...node, zone: undefined });
  assert.equal("zone" in zoneless, false);
  const overridden = { ...settings, nodeIPOverride: ["192.168.1.10", "fd00:1::10"] };
  assert.equal(contextForNode(base, overridden, { ...node, internalIPs: [] }), base);
});

Deno.test("contextWithRoot: sets or drops the root endpoint; the same ID keeps the context", () => {
  const base = ctx({ rootHnsEndpointId: "ROOT-1" });
  assert.equal(contextWithRoot(base, "ROOT-1"), base);
  assert.equal(contextWithRoot(base, "ROOT-2").rootHnsEndpointId, "ROOT-2");
  assert.equal("rootHnsEndpointId" in contextWithRoot(base, undefined), false);
  assert.equal(base.rootHnsEndpointId, "ROOT-1", "the given context is not changed");
});

Deno.test("contextChanged: the host MAC, Nodes' placements and the cluster's pod ranges count", () => {
  const nodes = [{ nodeName: "n", podCidrs: ["10.244.9.0/24"], providerAddress: "192.168.1.19" }];
  const base = overlayCtx({ nodePlacements: nodes, clusterCidrs: ["10.244.0.0/16"] });
  const same = { ...base, nodePlacements: structuredClone(nodes), clusterCidrs: ["10.244.0.0/16"] };
  assert.equal(contextChanged(base, same), false, "equal copies are no change");
  const moved = [{ ...nodes[0], providerAddress: "192.168.1.29" }];
  assert.ok(contextChanged(base, { ...base, nodePlacements: moved }));
  assert.ok(contextChanged(base, { ...base, nodePlacements: undefined }));
  assert.ok(contextChanged(base, { ...base, clusterCidrs: [] }));
  assert.ok(contextChanged(base, { ...base, hostMac: "00-15-5d-00-00-01" }));
});

Deno.test("overlay context: the host's MAC from --host-mac, else the interface holding the node IP", () => {
  const settings = {
    nodeName: "node-a",
    nodeIPOverride: [],
    sourceVips: ["10.244.1.250"],
    enableDSR: false,
    forwardHealthCheckVip: false,
    rootHnsEndpointName: "cbr0",
    healthzPort: 10256,
    hostInterfaces: () => [
      { name: "lo", address: "127.0.0.1", mac: "00:00:00:00:00:00" },
      { name: "vEthernet (Ethernet)", address: "192.168.1.10", mac: "00:15:5D:AA:BB:CC" },
    ],
  };
  const build = (type: string, extra: object = {}) =>
    buildNodeContext({
      settings: { ...settings, ...extra },
      network: { id: NET_ID, name: "vxlan0", type, remoteSubnetRoutes: [] },
      features: ALL_FEATURES,
      endpoints: [],
      owns: () => false,
      node: { name: "node-a", internalIPs: ["192.168.1.10"], podCIDRs: [] },
    });
  assert.equal(build("overlay").hostMac, "00-15-5d-aa-bb-cc");
  assert.equal(build("overlay", { hostMac: "00-15-5d-01-02-03" }).hostMac, "00-15-5d-01-02-03");
  assert.equal(build("overlay", { nodeIPOverride: ["192.0.2.1"] }).hostMac, undefined);
  assert.equal(build("l2bridge").hostMac, undefined, "L2Bridge needs no host MAC");
});
