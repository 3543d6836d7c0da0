/**
 * The typed client against both backends (FFI over the emulator library, and
 * the in-memory HNS): every operation, every HNS rule and error code, failure
 * injection, and no leaked handle or string after any test.
 */

import { deepEqual, equal, match, notEqual, ok } from "node:assert/strict";
import { createHnsClient, type UnreadableObject } from "../../lib/hns/client.ts";
import { type HnsError, HResult } from "../../lib/hns/errors.ts";
import { idListingOfAnswer } from "../../lib/hns/id_listing.ts";
import { delegateHcnApi } from "../../lib/hns/delegate.ts";
import type { HcnApi, HcnEndpoint, HcnKind, HcnLoadBalancer } from "../../lib/hns/types.ts";
import { backendTest } from "./harness.ts";
import { clusterIpLb, expectHnsError, GUID_RE, makeNetwork, nodePortLb } from "./fixtures.ts";

const E_FAIL = 0x80004005;

/** A node as the CNI leaves it: network cbr0 with two local endpoints. */
async function node(api: HcnApi) {
  const client = createHnsClient(api);
  const networkId = await makeNetwork(api, { Name: "cbr0", Type: "L2Bridge" });
  const a = await client.createEndpoint(networkId, {
    Name: "pod-a",
    IpConfigurations: [{ IpAddress: "10.244.1.5", PrefixLength: 24 }],
  });
  const b = await client.createEndpoint(networkId, {
    Name: "pod-b",
    IpConfigurations: [{ IpAddress: "10.244.1.6", PrefixLength: 24 }],
  });
  return { client, networkId, a: a.ID!, b: b.ID! };
}

function remote(ip: string, nodeIp: string): HcnEndpoint {
  return {
    IpConfigurations: [{ IpAddress: ip }],
    MacAddress: "02-11-" + ip.split(".").map((o) => Number(o).toString(16).padStart(2, "0"))
      .join("-"),
    Flags: 1,
    Policies: [{ Type: "ProviderAddress", Settings: { ProviderAddress: nodeIp } }],
    SchemaVersion: { Major: 2, Minor: 0 },
  };
}

// ---- version and features ----

backendTest("version 15.5 turns every feature on, and is read once", async ({ api, control }) => {
  const client = createHnsClient(api);
  deepEqual(await client.version(), { major: 15, minor: 5 });
  deepEqual(await client.features(), {
    api: true,
    dsr: true,
    ipv6DualStack: true,
    sessionAffinity: true,
    modifyLoadBalancer: true,
  });
  await client.version();
  equal(control.callCount("HNSCall"), 1);
});

backendTest("features follow the version table", async ({ api, control }) => {
  control.setVersion(12, 0);
  deepEqual(await createHnsClient(api).features(), {
    api: true,
    dsr: true,
    ipv6DualStack: true,
    sessionAffinity: true,
    modifyLoadBalancer: false,
  });
  control.setVersion(9, 5);
  deepEqual(await createHnsClient(api).features(), {
    api: true,
    dsr: true,
    ipv6DualStack: false,
    sessionAffinity: false,
    modifyLoadBalancer: false,
  });
  control.setVersion(10, 1);
  equal((await createHnsClient(api).features()).dsr, false);
});

backendTest(
  "an unreadable version is null and turns every feature off",
  async ({ api, control }) => {
    control.setVersion(0, 0);
    const client = createHnsClient(api);
    equal(await client.version(), null);
    deepEqual(Object.values(await client.features()), [false, false, false, false, false]);
    control.setVersion(15, 5);
    control.failCall("HNSCall", 1, HResult.MANAGER_STOPPED);
    equal(await createHnsClient(api).version(), null);
  },
);

backendTest("HNSCall on another path is an HnsError naming the call", async ({ api }) => {
  const err = await expectHnsError(api.hnsCall("GET", "/networks", ""), HResult.E_NOTIMPL);
  equal(err.operation, "HNSCall");
  equal(err.object, "GET /networks");
  equal(err.hnsMessage, "Not implemented");
});

// ---- networks ----

backendTest("networks: IDs assigned, listed, found by name without case", async ({ api }) => {
  const client = createHnsClient(api);
  deepEqual(await client.listNetworks(), []);
  const id = await makeNetwork(api, { Name: "cbr0", Type: "L2Bridge" });
  match(id, GUID_RE);
  await makeNetwork(api, { Name: "vxlan0", Type: "Overlay" });
  const names = (await client.listNetworks()).map((n) => n.Name).sort();
  deepEqual(names, ["cbr0", "vxlan0"]);
  equal((await client.findNetworkByName("CBR0"))?.ID, id);
  equal((await client.findNetworkByName("vxlan0"))?.Type, "Overlay");
  equal(await client.findNetworkByName("nat"), undefined);
});

backendTest(
  "networks: a given ID is honoured (upper-cased), a taken one refused",
  async ({ api }) => {
    const given = "3c4e1e30-1a1b-4c5d-9e8f-0a1b2c3d4e5f";
    equal(await makeNetwork(api, { Name: "cbr0" }, given), given.toUpperCase());
    const err = await expectHnsError(
      makeNetwork(api, { Name: "again" }, `{${given}}`),
      HResult.ERROR_ALREADY_EXISTS,
    );
    equal(err.operation, "HcnCreateNetwork");
    equal(err.hnsMessage, "Cannot create a file when that file already exists.");
  },
);

backendTest("networks with endpoints cannot be deleted; empty ones can", async ({ api }) => {
  const { networkId, client, a, b } = await node(api);
  await expectHnsError(api.delete("Network", networkId), HResult.ENTITY_HAS_REFERENCES);
  await client.deleteEndpoint(a);
  await client.deleteEndpoint(b);
  await api.delete("Network", networkId);
  deepEqual(await client.listNetworks(), []);
  await expectHnsError(api.delete("Network", networkId), HResult.NETWORK_NOT_FOUND);
});

backendTest("UTF-16: non-ASCII names survive the round trip", async ({ api }) => {
  const name = "réseau-网络-сеть-🚀-Ω";
  const id = await makeNetwork(api, { Name: name, Type: "NAT" });
  const client = createHnsClient(api);
  equal((await client.findNetworkByName(name))?.ID, id);
  const { a } = await node(api);
  const ep = await client.getEndpoint(a);
  equal(ep?.Name, "pod-a");
  const emoji = await client.createEndpoint(id, { Name: "😀 ü €", IpConfigurations: [] });
  equal((await client.getEndpoint(emoji.ID!))?.Name, "😀 ü €");
});

// ---- endpoints ----

backendTest("endpoints: create, get, list by network, delete", async ({ api }) => {
  const { client, networkId, a, b } = await node(api);
  const other = await makeNetwork(api, { Name: "other" });
  const r = await client.createEndpoint(other, remote("10.244.2.15", "192.168.1.12"));
  match(r.ID!, GUID_RE);
  equal(r.HostComputeNetwork, other);
  equal(r.Flags, 1);
  deepEqual(r.Policies, [{
    Type: "ProviderAddress",
    Settings: { ProviderAddress: "192.168.1.12" },
  }]);

  deepEqual((await client.listEndpointIds()).sort(), [a, b, r.ID].sort());
  deepEqual((await client.listEndpointIds(networkId)).sort(), [a, b].sort());
  deepEqual(await client.listEndpointIds(other.toLowerCase()), [r.ID]);
  deepEqual(await client.listEndpointIds(networkId, "POD-A"), [a], "by name, without case");
  deepEqual(await client.listEndpointIds(other, "pod-a"), []);
  deepEqual((await client.listEndpoints(networkId)).map((e) => e.ID).sort(), [a, b].sort());
  deepEqual((await client.listEndpoints(other.toLowerCase())).map((e) => e.ID), [r.ID]);
  equal((await client.listEndpoints()).length, 3);
  equal((await client.getEndpoint(a))?.Name, "pod-a");

  await client.deleteEndpoint(r.ID!);
  equal(await client.getEndpoint(r.ID!), undefined);
  const err = await expectHnsError(client.deleteEndpoint(r.ID!), HResult.ENDPOINT_NOT_FOUND);
  equal(err.operation, "deleteEndpoint (HcnDeleteEndpoint)");
  equal(err.object, `endpoint ${r.ID}`);
  equal(err.hnsMessage, "The endpoint was not found.");
});

backendTest(
  "batch: endpoint creates share one network handle, closed when the batch ends",
  async ({ api, control }) => {
    const { client, networkId } = await node(api);
    const opens = () => control.callCount("HcnOpenNetwork");
    const closes = () => control.callCount("HcnCloseNetwork");
    const [o0, c0] = [opens(), closes()];
    const ids = await client.batch(async () => {
      const made = await Promise.all(
        ["10.244.2.1", "10.244.2.2", "10.244.2.3"].map((ip) =>
          client.createEndpoint(networkId, remote(ip, "192.168.1.12"))
        ),
      );
      // Nested batches share the outer one.
      made.push(
        await client.batch(() =>
          client.createEndpoint(networkId, remote("10.244.2.4", "192.168.1.12"))
        ),
      );
      equal(control.openHandles(), 1, "the network handle stays open inside the batch");
      return made.map((e) => e.ID);
    });
    equal(ids.length, 4);
    equal(opens() - o0, 1);
    equal(closes() - c0, 1);
    equal(control.openHandles(), 0);
    // Without a batch each create opens and closes the network.
    await client.createEndpoint(networkId, remote("10.244.2.5", "192.168.1.12"));
    equal(opens() - o0, 2);
    // A batch with no create opens nothing.
    await client.batch(async () => await client.listEndpointIds());
    equal(opens() - o0, 2);
  },
);

backendTest(
  "batch: the network handle is closed when the body fails; a failed open is retried",
  async ({ api, control }) => {
    const { client, networkId } = await node(api);
    const boom = new Error("boom");
    let caught: unknown;
    try {
      await client.batch(async () => {
        await client.createEndpoint(networkId, remote("10.244.2.1", "192.168.1.12"));
        throw boom;
      });
    } catch (err) {
      caught = err;
    }
    equal(caught, boom);
    equal(control.openHandles(), 0);
    control.failCall("HcnOpenNetwork", 1, E_FAIL);
    await client.batch(async () => {
      await expectHnsError(
        client.createEndpoint(networkId, remote("10.244.2.2", "192.168.1.12")),
        E_FAIL,
      );
      await client.createEndpoint(networkId, remote("10.244.2.2", "192.168.1.12"));
      // A create refused by HNS keeps the handle for the next.
      await expectHnsError(
        client.createEndpoint(networkId, remote("10.244.2.2", "192.168.1.12")),
        HResult.ERROR_ALREADY_EXISTS,
      );
      await client.createEndpoint(networkId, remote("10.244.2.3", "192.168.1.12"));
    });
    equal(control.openHandles(), 0);
    equal((await client.listEndpointIds(networkId)).length, 2 + 3);
  },
);

backendTest(
  "endpoints: an IP used in the network is refused, in another network not",
  async ({ api }) => {
    const { client, networkId } = await node(api);
    const err = await expectHnsError(
      client.createEndpoint(networkId, remote("10.244.1.5", "192.168.1.12")),
      HResult.ERROR_ALREADY_EXISTS,
    );
    equal(err.operation, "createEndpoint (HcnCreateEndpoint)");
    equal(err.object, "endpoint 10.244.1.5");
    const other = await makeNetwork(api, { Name: "other" });
    await client.createEndpoint(other, remote("10.244.1.5", "192.168.1.12"));
  },
);

backendTest("endpoints: IPv6 addresses compare as addresses", async ({ api }) => {
  const client = createHnsClient(api);
  const net = await makeNetwork(api, { Name: "dual" });
  await client.createEndpoint(net, { IpConfigurations: [{ IpAddress: "fd00:10:244::5" }] });
  await expectHnsError(
    client.createEndpoint(net, { IpConfigurations: [{ IpAddress: "FD00:10:244:0:0::5" }] }),
    HResult.ERROR_ALREADY_EXISTS,
  );
  await client.createEndpoint(net, { IpConfigurations: [{ IpAddress: "10.0.0.1" }] });
  await expectHnsError(
    client.createEndpoint(net, { IpConfigurations: [{ IpAddress: "010.0.0.01" }] }),
    HResult.ERROR_ALREADY_EXISTS,
  );
});

backendTest("endpoints: an invalid IP is 0x803B001E", async ({ api }) => {
  const client = createHnsClient(api);
  const net = await makeNetwork(api, { Name: "cbr0" });
  await expectHnsError(
    client.createEndpoint(net, { IpConfigurations: [{ IpAddress: "10.244.1.256" }] }),
    HResult.INVALID_IP,
  );
  deepEqual(await client.listEndpointIds(), []);
});

backendTest("endpoints: creating on a missing network is network-not-found", async ({ api }) => {
  const client = createHnsClient(api);
  const err = await expectHnsError(
    client.createEndpoint("11111111-2222-3333-4444-555555555555", remote("10.1.1.1", "1.1.1.1")),
    HResult.NETWORK_NOT_FOUND,
  );
  equal(err.operation, "createEndpoint (HcnOpenNetwork)");
});

backendTest("endpoints: a handle that is not a network handle is refused", async ({ api }) => {
  const { a } = await node(api);
  const epHandle = await api.open("Endpoint", a);
  try {
    await expectHnsError(
      api.create("Endpoint", "", JSON.stringify(remote("10.9.9.9", "1.1.1.1")), epHandle),
      HResult.E_HANDLE,
    );
  } finally {
    await api.close("Endpoint", epHandle);
  }
});

backendTest(
  "endpoints: a network deleted under an open handle is network-not-found",
  async ({ api }) => {
    const net = await makeNetwork(api, { Name: "short-lived" });
    const handle = await api.open("Network", net);
    try {
      await api.delete("Network", net);
      await expectHnsError(
        api.create("Endpoint", "", JSON.stringify(remote("10.9.9.9", "1.1.1.1")), handle),
        HResult.NETWORK_NOT_FOUND,
      );
    } finally {
      await api.close("Network", handle);
    }
  },
);

backendTest("endpoints: modify replaces or edits policies", async ({ api }) => {
  const { client, a } = await node(api);
  const handle = await api.open("Endpoint", a);
  try {
    const pa = { Type: "ProviderAddress", Settings: { ProviderAddress: "10.0.0.2" } };
    const acl = { Type: "ACL", Settings: { Action: "Allow" } };
    await api.modify("Endpoint", handle, JSON.stringify({ Policies: [pa] }));
    deepEqual((await client.getEndpoint(a))?.Policies, [pa]);
    const req = (type: string, policies: unknown[]) =>
      JSON.stringify({
        ResourceType: "Policy",
        RequestType: type,
        Settings: { Policies: policies },
      });
    await api.modify("Endpoint", handle, req("Add", [acl]));
    deepEqual((await client.getEndpoint(a))?.Policies, [pa, acl]);
    await api.modify("Endpoint", handle, req("Remove", [pa]));
    deepEqual((await client.getEndpoint(a))?.Policies, [acl]);
    await expectHnsError(api.modify("Endpoint", handle, req("Explode", [])), HResult.E_INVALIDARG);
    await expectHnsError(api.modify("Endpoint", handle, "{"), HResult.INVALID_JSON);
  } finally {
    await api.close("Endpoint", handle);
  }
});

// ---- load balancers ----

backendTest("load balancers: create, get, list, modify, delete", async ({ api }) => {
  const { client, a, b } = await node(api);
  const lb = await client.createLoadBalancer({ ...clusterIpLb("10.96.0.10", 80, [a]), Flags: 1 });
  match(lb.ID!, GUID_RE);
  deepEqual(lb.HostComputeEndpoints, [a]);
  deepEqual(lb.FrontendVIPs, ["10.96.0.10"]);
  equal(lb.Flags, 1);
  const np = await client.createLoadBalancer(nodePortLb(30080, [a, b]));

  deepEqual((await client.listLoadBalancerIds()).sort(), [lb.ID, np.ID].sort());
  const upper = (ids: string[]) => ids.map((id) => id.toUpperCase()).sort();
  const lbIds = await client.listIds("LoadBalancer");
  deepEqual([...lbIds].sort(), upper(await client.listLoadBalancerIds()), "listIds: the listing");
  equal(lbIds.size, 2);
  ok(lbIds.has(lb.ID!.toUpperCase()) && !lbIds.has(a.toUpperCase()));
  const epIds = await client.listIds("Endpoint");
  deepEqual([...epIds].sort(), upper(await client.listEndpointIds()));
  deepEqual((await client.listLoadBalancers()).map((l) => l.ID).sort(), [lb.ID, np.ID].sort());
  deepEqual(await client.getLoadBalancer(lb.ID!), lb);

  const changed = await client.modifyLoadBalancer(lb.ID!, clusterIpLb("10.96.0.10", 80, [a, b]));
  equal(changed.ID, lb.ID);
  deepEqual(changed.HostComputeEndpoints, [a, b]);
  deepEqual((await client.getLoadBalancer(lb.ID!))?.HostComputeEndpoints, [a, b]);

  await client.deleteLoadBalancer(lb.ID!);
  equal(await client.getLoadBalancer(lb.ID!), undefined);
  deepEqual(await client.listLoadBalancerIds(), [np.ID]);
  const err = await expectHnsError(client.deleteLoadBalancer(lb.ID!), HResult.ERROR_NOT_FOUND);
  equal(err.operation, "deleteLoadBalancer (HcnDeleteLoadBalancer)");
  equal(err.hnsMessage, "Element not found.");
});

/** Calls of each C function while `body` runs. */
async function callsDuring(
  control: { callCount(fn: string): number },
  fns: string[],
  body: () => Promise<unknown>,
): Promise<Record<string, number>> {
  const before = fns.map((fn) => control.callCount(fn));
  await body();
  return Object.fromEntries(fns.map((fn, i) => [fn, control.callCount(fn) - before[i]]));
}

const LB_CALLS = [
  "HcnCreateLoadBalancer",
  "HcnQueryLoadBalancerProperties",
  "HcnCloseLoadBalancer",
];
const EP_CALLS = ["HcnCreateEndpoint", "HcnQueryEndpointProperties", "HcnCloseEndpoint"];

backendTest(
  "creates: Create + Close under an ID the client makes, answered as HNS then holds it",
  async ({ api, control }) => {
    const { client, networkId, a } = await node(api);
    let lb: HcnLoadBalancer | undefined;
    const lbCalls = await callsDuring(control, LB_CALLS, async () => {
      lb = await client.createLoadBalancer(clusterIpLb("10.96.0.10", 80, [a]));
    });
    deepEqual(lbCalls, {
      HcnCreateLoadBalancer: 1,
      HcnQueryLoadBalancerProperties: 0,
      HcnCloseLoadBalancer: 1,
    });
    match(lb!.ID!, GUID_RE);
    deepEqual(await client.getLoadBalancer(lb!.ID!), lb);

    let ep: HcnEndpoint | undefined;
    const epCalls = await callsDuring(control, EP_CALLS, async () => {
      ep = await client.createEndpoint(networkId, remote("10.244.2.15", "192.168.1.12"));
    });
    deepEqual(epCalls, {
      HcnCreateEndpoint: 1,
      HcnQueryEndpointProperties: 0,
      HcnCloseEndpoint: 1,
    });
    match(ep!.ID!, GUID_RE);
    equal(ep!.HostComputeNetwork, networkId);
    deepEqual(await client.getEndpoint(ep!.ID!), ep);

    const again = await client.createLoadBalancer(nodePortLb(30080, [a]));
    notEqual(again.ID, lb!.ID, "a new ID per create");
  },
);

backendTest(
  "creates: a caller's ID is kept (upper-cased); a taken one is refused as HNS refuses it",
  async ({ api, control }) => {
    const { client, networkId, a } = await node(api);
    const lbId = "0a1b2c3d-0000-4000-8000-00000000000a";
    const lb = await client.createLoadBalancer({ ...clusterIpLb("10.96.0.10", 80, [a]), ID: lbId });
    equal(lb.ID, lbId.toUpperCase());
    deepEqual(await client.listLoadBalancerIds(), [lbId.toUpperCase()]);
    const taken = await expectHnsError(
      client.createLoadBalancer({ ...clusterIpLb("10.96.0.11", 81, [a]), ID: `{${lbId}}` }),
      HResult.ERROR_ALREADY_EXISTS,
    );
    equal(taken.operation, "createLoadBalancer (HcnCreateLoadBalancer)");
    equal(control.objectCount("LoadBalancer"), 1);
    deepEqual((await client.getLoadBalancer(lbId))?.FrontendVIPs, ["10.96.0.10"]);

    const epId = "0A1B2C3D-0000-4000-8000-00000000000B";
    const ep = await client.createEndpoint(networkId, {
      ...remote("10.244.2.15", "192.168.1.12"),
      ID: epId,
    });
    equal(ep.ID, epId);
    const epTaken = await expectHnsError(
      client.createEndpoint(networkId, { ...remote("10.244.2.16", "192.168.1.12"), ID: epId }),
      HResult.ERROR_ALREADY_EXISTS,
    );
    equal(epTaken.operation, "createEndpoint (HcnCreateEndpoint)");
    equal((await client.getEndpoint(epId))?.IpConfigurations?.[0].IpAddress, "10.244.2.15");

    // The zero GUID (or an empty ID) asks for a new one, as HNS would assign it.
    for (const zero of ["00000000-0000-0000-0000-000000000000", ""]) {
      const made = await client.createLoadBalancer({ ...nodePortLb(30080, [a]), ID: zero });
      match(made.ID!, GUID_RE);
      notEqual(made.ID, "00000000-0000-0000-0000-000000000000");
      await client.deleteLoadBalancer(made.ID!);
    }

    // An ID that is not a GUID is refused before HNS is called, as before.
    const creates = control.callCount("HcnCreateLoadBalancer");
    const bad = await expectHnsError(
      client.createLoadBalancer({ ...nodePortLb(30081, [a]), ID: "lb-1" }),
      HResult.E_INVALIDARG,
    );
    equal(bad.operation, "createLoadBalancer (HcnCreateLoadBalancer)");
    equal(control.callCount("HcnCreateLoadBalancer"), creates);
  },
);

backendTest("load balancers: a taken (VIP, protocol, port) is 0x803B0013", async ({ api }) => {
  const { client, a, b } = await node(api);
  await client.createLoadBalancer(clusterIpLb("10.96.0.10", 53, [a], 17));
  const err = await expectHnsError(
    client.createLoadBalancer(clusterIpLb("10.96.0.10", 53, [b], 17)),
    HResult.PORT_ALREADY_EXISTS,
  );
  equal(err.operation, "createLoadBalancer (HcnCreateLoadBalancer)");
  equal(err.object, "load balancer 10.96.0.10:53/UDP");
  equal(err.hnsMessage, "The specified port already exists.");
  match(
    err.message,
    /^createLoadBalancer \(HcnCreateLoadBalancer\) failed with 0x803B0013 \(port already exists\); object load balancer 10\.96\.0\.10:53\/UDP; HNS says: The specified port already exists\.$/,
  );
  // Another protocol, another port or another VIP is free.
  await client.createLoadBalancer(clusterIpLb("10.96.0.10", 53, [a], 6));
  await client.createLoadBalancer(clusterIpLb("10.96.0.10", 54, [a], 17));
  await client.createLoadBalancer(clusterIpLb("10.96.0.11", 53, [a], 17));
  equal((await client.listLoadBalancerIds()).length, 4);
});

backendTest("load balancers: node ports conflict without a VIP", async ({ api }) => {
  const { client, a } = await node(api);
  await client.createLoadBalancer(nodePortLb(30080, [a]));
  await expectHnsError(
    client.createLoadBalancer(nodePortLb(30080, [a])),
    HResult.PORT_ALREADY_EXISTS,
  );
  await client.createLoadBalancer(nodePortLb(30080, [a], 17));
  // A VIP on the same port is a different frontend.
  await client.createLoadBalancer(clusterIpLb("10.96.0.10", 30080, [a]));
});

backendTest("load balancers: unknown endpoints are 0x803B0002", async ({ api }) => {
  const { client, a } = await node(api);
  await expectHnsError(
    client.createLoadBalancer(
      clusterIpLb("10.96.0.10", 80, [a, "99999999-2222-3333-4444-555555555555"]),
    ),
    HResult.ENDPOINT_NOT_FOUND,
  );
  deepEqual(await client.listLoadBalancerIds(), []);
});

backendTest("load balancers: no port mappings is invalid argument", async ({ api }) => {
  const { client, a } = await node(api);
  const lb: HcnLoadBalancer = {
    HostComputeEndpoints: [a],
    FrontendVIPs: ["10.96.0.1"],
    PortMappings: [],
  };
  await expectHnsError(client.createLoadBalancer(lb), HResult.E_INVALIDARG);
  const bad = { HostComputeEndpoints: [a] } as unknown as HcnLoadBalancer;
  await expectHnsError(client.createLoadBalancer(bad), HResult.E_INVALIDARG);
});

backendTest(
  "load balancers: modify keeps the rules and leaves a refused LB as it was",
  async ({ api }) => {
    const { client, a, b } = await node(api);
    const first = await client.createLoadBalancer(clusterIpLb("10.96.0.10", 80, [a]));
    const second = await client.createLoadBalancer(clusterIpLb("10.96.0.11", 80, [b]));
    await expectHnsError(
      client.modifyLoadBalancer(second.ID!, clusterIpLb("10.96.0.10", 80, [b])),
      HResult.PORT_ALREADY_EXISTS,
    );
    await expectHnsError(
      client.modifyLoadBalancer(
        second.ID!,
        clusterIpLb("10.96.0.11", 80, ["99999999-2222-3333-4444-555555555555"]),
      ),
      HResult.ENDPOINT_NOT_FOUND,
    );
    deepEqual(await client.getLoadBalancer(second.ID!), second);
    // Its own frontend is not a conflict, and moving it frees the old one.
    await client.modifyLoadBalancer(second.ID!, clusterIpLb("10.96.0.12", 80, [b]));
    await client.createLoadBalancer(clusterIpLb("10.96.0.11", 80, [a]));
    // Endpoint references move with the modify: a is free again once first lets it go.
    await client.modifyLoadBalancer(first.ID!, clusterIpLb("10.96.0.10", 80, [b]));
    equal(
      (await client.listLoadBalancers()).filter((l) => l.HostComputeEndpoints.includes(a)).length,
      1,
    );
    await expectHnsError(
      client.modifyLoadBalancer(
        "99999999-2222-3333-4444-555555555555",
        clusterIpLb("10.96.0.20", 80, [b]),
      ),
      HResult.ERROR_NOT_FOUND,
    );
  },
);

backendTest(
  "load balancers: modify needs HNS 15.5–15.x or 16.0+; once refused, the client stops asking",
  async ({ api, control }) => {
    for (const [major, minor] of [[15, 5], [15, 9], [16, 0], [17, 1]]) {
      control.setVersion(major, minor);
      const { client, a } = await node(api);
      const lb = await client.createLoadBalancer(clusterIpLb("10.96.0.10", 80, [a]));
      await client.modifyLoadBalancer(lb.ID!, clusterIpLb("10.96.0.10", 81, [a]));
      equal(client.modifyUnsupported, false);
      equal((await client.features()).modifyLoadBalancer, true, `${major}.${minor}`);
      control.reset();
    }
    for (const [major, minor] of [[15, 4], [15, 3], [14, 0], [12, 0]]) {
      control.setVersion(major, minor);
      const { client, a } = await node(api);
      const lb = await client.createLoadBalancer(clusterIpLb("10.96.0.10", 80, [a]));
      const err = await expectHnsError(
        client.modifyLoadBalancer(lb.ID!, clusterIpLb("10.96.0.10", 81, [a])),
        HResult.E_NOTIMPL,
      );
      equal(err.operation, "modifyLoadBalancer (HcnModifyLoadBalancer)");
      deepEqual(await client.getLoadBalancer(lb.ID!), lb);
      equal(client.modifyUnsupported, true);
      control.reset();
    }
    // A client that was refused once does not call HNS again, even if HNS would now accept.
    control.setVersion(15, 5);
    control.failCall("HcnModifyLoadBalancer", 1, HResult.E_NOTIMPL);
    const { client, a } = await node(api);
    const lb = await client.createLoadBalancer(clusterIpLb("10.96.0.10", 80, [a]));
    await expectHnsError(
      client.modifyLoadBalancer(lb.ID!, clusterIpLb("10.96.0.10", 81, [a])),
      HResult.E_NOTIMPL,
    );
    equal((await client.features()).modifyLoadBalancer, false);
    const calls = control.callCount("HcnModifyLoadBalancer");
    await expectHnsError(
      client.modifyLoadBalancer(lb.ID!, clusterIpLb("10.96.0.10", 82, [a])),
      HResult.E_NOTIMPL,
    );
    equal(control.callCount("HcnModifyLoadBalancer"), calls);
    deepEqual(await client.getLoadBalancer(lb.ID!), lb);
  },
);

backendTest("below HNS 9.2 there is no HCN (v2) API", async ({ api, control }) => {
  control.setVersion(9, 1);
  const client = createHnsClient(api);
  await expectHnsError(client.listNetworks(), HResult.E_NOTIMPL);
  deepEqual(await client.version(), { major: 9, minor: 1 });
  equal((await client.features()).api, false);
  control.setVersion(9, 2);
  deepEqual(await client.listNetworks(), []);
});

backendTest("an endpoint held by a load balancer cannot be deleted", async ({ api }) => {
  const { client, a, b } = await node(api);
  const lb = await client.createLoadBalancer(clusterIpLb("10.96.0.10", 80, [a, b]));
  const err = await expectHnsError(client.deleteEndpoint(a), HResult.ENTITY_HAS_REFERENCES);
  equal(err.hnsMessage, "The object has references and cannot be deleted.");
  await client.modifyLoadBalancer(lb.ID!, clusterIpLb("10.96.0.10", 80, [b]));
  await client.deleteEndpoint(a);
  await expectHnsError(client.deleteEndpoint(b), HResult.ENTITY_HAS_REFERENCES);
  await client.deleteLoadBalancer(lb.ID!);
  await client.deleteEndpoint(b);
});

backendTest("load balancers: many created at once all land", async ({ api }) => {
  const { client, a, b } = await node(api);
  const created = await Promise.all(
    Array.from(
      { length: 40 },
      (_, i) => client.createLoadBalancer(clusterIpLb(`10.96.1.${i}`, 443, [a, b])),
    ),
  );
  equal(new Set(created.map((l) => l.ID)).size, 40);
  const listed = await client.listLoadBalancers();
  deepEqual(listed.map((l) => l.ID).sort(), created.map((l) => l.ID).sort());
});

// ---- raw API rules ----

backendTest("settings and queries must be JSON objects", async ({ api }) => {
  await expectHnsError(api.create("Network", "", "{not json"), HResult.INVALID_JSON);
  await expectHnsError(api.create("Network", "", "[1,2]"), HResult.INVALID_JSON);
  await expectHnsError(api.create("LoadBalancer", "", ""), HResult.INVALID_JSON);
  await expectHnsError(api.enumerate("Network", "nope"), HResult.INVALID_JSON);
  await expectHnsError(
    api.enumerate("Network", JSON.stringify({ Filter: "{bad" })),
    HResult.INVALID_JSON,
  );
  const id = await makeNetwork(api, { Name: "cbr0" });
  const h = await api.open("Network", id);
  try {
    await expectHnsError(api.query("Network", h, "]"), HResult.INVALID_JSON);
  } finally {
    await api.close("Network", h);
  }
});

backendTest("enumerate: filters on ID, Name and network; no match is []", async ({ api }) => {
  const { networkId, a } = await node(api);
  const q = (filter: Record<string, string>) => JSON.stringify({ Filter: JSON.stringify(filter) });
  equal(await api.enumerate("Network", q({ Name: "nothing" })), "[]");
  deepEqual(JSON.parse(await api.enumerate("Network", q({ Name: "CbR0" }))), [networkId]);
  deepEqual(JSON.parse(await api.enumerate("Network", q({ ID: networkId.toLowerCase() }))), [
    networkId,
  ]);
  deepEqual(JSON.parse(await api.enumerate("Endpoint", q({ ID: a }))), [a]);
  equal(JSON.parse(await api.enumerate("Endpoint", q({ VirtualNetwork: networkId }))).length, 2);
  equal(
    JSON.parse(await api.enumerate("Endpoint", q({ HostComputeNetwork: networkId }))).length,
    2,
  );
  equal(await api.enumerate("Endpoint", q({ VirtualNetwork: a })), "[]");
  equal(JSON.parse(await api.enumerate("Endpoint", "")).length, 2);
  equal(await api.enumerate("LoadBalancer", ""), "[]");
});

backendTest("not found: each kind has its own HRESULT", async ({ api }) => {
  const id = "99999999-2222-3333-4444-555555555555";
  const n = await expectHnsError(api.open("Network", id), HResult.NETWORK_NOT_FOUND);
  equal(n.operation, "HcnOpenNetwork");
  equal(n.object, id);
  await expectHnsError(api.open("Endpoint", id), HResult.ENDPOINT_NOT_FOUND);
  await expectHnsError(api.open("LoadBalancer", id), HResult.ERROR_NOT_FOUND);
  await expectHnsError(api.delete("Endpoint", id), HResult.ENDPOINT_NOT_FOUND);
  const client = createHnsClient(api);
  equal(await client.getEndpoint(id), undefined);
  equal(await client.getLoadBalancer(id), undefined);
});

backendTest("handles: closing twice or with the wrong kind is E_HANDLE", async ({ api }) => {
  const id = await makeNetwork(api, { Name: "cbr0" });
  const h = await api.open("Network", id);
  await expectHnsError(api.close("Endpoint", h), HResult.E_HANDLE);
  await expectHnsError(api.query("LoadBalancer", h, ""), HResult.E_HANDLE);
  await api.close("Network", h);
  const err = await expectHnsError(api.close("Network", h), HResult.E_HANDLE);
  equal(err.operation, "HcnCloseNetwork");
  equal(err.errorRecord, undefined);
  await expectHnsError(api.query("Network", h, ""), HResult.E_HANDLE);
});

backendTest(
  "GUIDs: text that is not a GUID is refused before HNS is called",
  async ({ api, control }) => {
    const err = await expectHnsError(api.open("Network", "cbr0"), HResult.E_INVALIDARG);
    equal(err.operation, "HcnOpenNetwork");
    equal(err.object, "cbr0");
    equal(control.callCount("HcnOpenNetwork"), 0);
    await expectHnsError(api.delete("LoadBalancer", "1234"), HResult.E_INVALIDARG);
    await expectHnsError(api.create("LoadBalancer", "xyz", "{}"), HResult.E_INVALIDARG);
  },
);

backendTest("GUIDs: given IDs round-trip byte-exactly through create and open", async ({ api }) => {
  const ids = [
    "00112233-4455-6677-8899-AABBCCDDEEFF",
    "FFFFFFFF-0000-FFFF-0000-FFFFFFFFFFFF",
    "01020304-0506-0708-090A-0B0C0D0E0F10",
  ];
  for (const id of ids) {
    equal(await makeNetwork(api, { Name: id }, id.toLowerCase()), id);
    const h = await api.open("Network", `{${id.toLowerCase()}}`);
    try {
      equal(JSON.parse(await api.query("Network", h, "")).Name, id);
    } finally {
      await api.close("Network", h);
    }
  }
});

// ---- failures ----

backendTest(
  "fail-Nth: a failed create is a typed error naming the create, and HNS holds nothing",
  async ({ api, control }) => {
    const { client, a } = await node(api);
    control.failCall("HcnCreateLoadBalancer", 1, HResult.MANAGER_STOPPED);
    const err = await expectHnsError(
      client.createLoadBalancer(clusterIpLb("10.96.0.10", 80, [a])),
      HResult.MANAGER_STOPPED,
    );
    equal(err.operation, "createLoadBalancer (HcnCreateLoadBalancer)");
    equal(err.object, "load balancer 10.96.0.10:80/TCP");
    equal(err.hnsMessage, "The HNS manager is stopped.");
    ok(err.errorRecord?.includes(`"ErrorCode":2151350304`), String(err.errorRecord));
    match(err.message, /failed with 0x803B0020 \(HNS manager stopped\)/);
    equal(control.objectCount("LoadBalancer"), 0);
  },
);

backendTest(
  "createLoadBalancers: each made as createLoadBalancer makes it; a refused one fails alone, named as there",
  async ({ api, control }) => {
    const { client, a, b } = await node(api);
    control.failCall("HcnCreateLoadBalancer", 2, HResult.MANAGER_STOPPED);
    const given = clusterIpLb("10.96.0.12", 82, [a]);
    const { sent, failures } = await client.createLoadBalancers([
      clusterIpLb("10.96.0.10", 80, [a, b]),
      clusterIpLb("10.96.0.11", 81, [b]),
      { ...given, ID: "0a0b0c0d-0000-4000-8000-00000000000e" },
      clusterIpLb("10.96.0.10", 80, [b]), // the first one's VIP and port
    ]);
    deepEqual(failures.map((f) => f.index), [1, 3]);
    const [stopped, taken] = failures.map((f) => f.error as HnsError);
    equal(stopped.hresult, HResult.MANAGER_STOPPED);
    equal(stopped.operation, "createLoadBalancer (HcnCreateLoadBalancer)");
    equal(stopped.object, "load balancer 10.96.0.11:81/TCP");
    equal(taken.hresult, HResult.PORT_ALREADY_EXISTS);
    equal(taken.object, "load balancer 10.96.0.10:80/TCP");
    equal(sent.length, 4);
    equal(sent[2].ID, "0A0B0C0D-0000-4000-8000-00000000000E", "the caller's ID, upper case");
    for (const lb of sent) match(lb.ID!, GUID_RE);
    equal(control.callCount("HcnCreateLoadBalancer"), 4);
    equal(control.callCount("HcnCloseLoadBalancer"), 2, "a handle per object made");
    const held = new Set((await client.listLoadBalancers()).map((lb) => lb.ID));
    deepEqual(held, new Set([sent[0].ID, sent[2].ID]));
  },
);

backendTest(
  "createEndpoints: one open network handle, each made as createEndpoint makes it; a refused one fails alone",
  async ({ api, control }) => {
    const { client, networkId } = await node(api);
    const opens = control.callCount("HcnOpenNetwork");
    const { sent, failures } = await client.createEndpoints(networkId, [
      remote("10.244.2.7", "192.168.1.12"),
      remote("10.244.1.5", "192.168.1.12"), // pod-a's IP
      remote("10.244.2.8", "192.168.1.12"),
    ]);
    deepEqual(failures.map((f) => f.index), [1]);
    const taken = failures[0].error as HnsError;
    equal(taken.hresult, HResult.ERROR_ALREADY_EXISTS);
    match(taken.operation!, /^createEndpoint \(HcnCreateEndpoint\)$/);
    match(taken.object!, /10\.244\.1\.5/);
    equal(control.callCount("HcnOpenNetwork") - opens, 1, "one Open for the request");
    for (const i of [0, 2]) {
      const held = await client.getEndpoint(sent[i].ID!);
      equal(held?.HostComputeNetwork?.toLowerCase(), networkId.toLowerCase());
      equal(held?.IpConfigurations?.[0].IpAddress, sent[i].IpConfigurations?.[0].IpAddress);
    }
    equal(control.objectCount("Endpoint"), 4);
  },
);

backendTest(
  "createEndpoints: a network that cannot be opened fails every item with that error",
  async ({ api, control }) => {
    const { client, networkId } = await node(api);
    control.failCall("HcnOpenNetwork", 1, HResult.ERROR_NOT_FOUND);
    const { failures } = await client.createEndpoints(networkId, [
      remote("10.244.2.7", "192.168.1.12"),
      remote("10.244.2.8", "192.168.1.12"),
    ]);
    deepEqual(failures.map((f) => f.index), [0, 1]);
    for (const f of failures) {
      equal((f.error as HnsError).hresult, HResult.ERROR_NOT_FOUND);
      equal((f.error as HnsError).operation, "createEndpoint (HcnOpenNetwork)");
    }
    equal(control.callCount("HcnCreateEndpoint"), 2, "the node's two only");
  },
);

backendTest("fail-Nth: counts from the injection and fires once", async ({ api, control }) => {
  const id = await makeNetwork(api, { Name: "cbr0" });
  control.failCall("HcnOpenNetwork", 3, HResult.ERROR_NOT_FOUND);
  for (let i = 1; i <= 4; i++) {
    const open = api.open("Network", id);
    if (i === 3) {
      await expectHnsError(open, HResult.ERROR_NOT_FOUND);
      continue;
    }
    await api.close("Network", await open);
  }
  equal(control.callCount("HcnOpenNetwork"), 4);
});

backendTest("fail-Nth 0 fails every call until cleared", async ({ api, control }) => {
  control.failCall("HcnEnumerateLoadBalancers", 0, E_FAIL);
  const client = createHnsClient(api);
  for (let i = 0; i < 3; i++) {
    const err = await expectHnsError(client.listLoadBalancers(), E_FAIL);
    equal(err.operation, "listLoadBalancers (HcnEnumerateLoadBalancers)");
    equal(err.hnsMessage, "Unspecified error");
  }
  control.clearFailures();
  deepEqual(await client.listLoadBalancers(), []);
});

backendTest(
  "lists skip objects that vanish between Enumerate and Open",
  async ({ api, control }) => {
    const { client, a } = await node(api);
    for (let i = 0; i < 5; i++) {
      await client.createLoadBalancer(
        clusterIpLb(`10.96.0.${i}`, 80, [a]),
      );
    }
    control.failCall("HcnOpenLoadBalancer", 2, HResult.ERROR_NOT_FOUND);
    const c1 = createHnsClient(api, { listConcurrency: 1 });
    equal((await c1.listLoadBalancers()).length, 4);
    // ...and between Open and Query.
    control.failCall("HcnQueryLoadBalancerProperties", 4, HResult.ERROR_NOT_FOUND);
    equal((await c1.listLoadBalancers()).length, 4);
  },
);

backendTest("lists stop on a real failure, with every handle closed", async ({ api, control }) => {
  const { client, a } = await node(api);
  for (let i = 0; i < 6; i++) await client.createLoadBalancer(clusterIpLb(`10.96.0.${i}`, 80, [a]));
  control.failCall("HcnQueryLoadBalancerProperties", 3, HResult.MANAGER_STOPPED);
  const err = await expectHnsError(client.listLoadBalancers(), HResult.MANAGER_STOPPED);
  equal(err.operation, "listLoadBalancers (HcnQueryLoadBalancerProperties)");
  control.failCall("HcnOpenEndpoint", 1, HResult.MANAGER_STOPPED);
  await expectHnsError(client.getEndpoint(a), HResult.MANAGER_STOPPED);
});

backendTest(
  "createEndpoint closes the network handle when the create fails",
  async ({ api, control }) => {
    const { client, networkId } = await node(api);
    control.failCall("HcnCreateEndpoint", 1, HResult.INVALID_REMOTE_ENDPOINT_OPERATION);
    const err = await expectHnsError(
      client.createEndpoint(networkId, remote("10.244.3.3", "10.0.0.3")),
      HResult.INVALID_REMOTE_ENDPOINT_OPERATION,
    );
    equal(err.hnsMessage, "The operation is not valid for a remote endpoint.");
    equal(control.objectCount("Endpoint"), 2, "only the node's two");
  },
);

backendTest(
  "modifyLoadBalancer closes its handle when the modify fails",
  async ({ api, control }) => {
    const { client, a } = await node(api);
    const lb = await client.createLoadBalancer(clusterIpLb("10.96.0.10", 80, [a]));
    control.failCall("HcnModifyLoadBalancer", 1, E_FAIL);
    await expectHnsError(
      client.modifyLoadBalancer(lb.ID!, clusterIpLb("10.96.0.10", 80, [a])),
      E_FAIL,
    );
  },
);

backendTest("objects that are not JSON objects are skipped and reported", async ({ api }) => {
  const { a, b } = await node(api);
  // A wrapper that garbles one answer, as a misbehaving HNS would.
  // Reads go through the garbled Query: no compound reads.
  const garbled = delegateHcnApi(api, {
    openQueryClose: undefined,
    openQueryCloseMany: undefined,
    async query(kind, handle, query) {
      const text = await api.query(kind, handle, query);
      return text.includes(b) ? text.slice(0, 10) : text;
    },
  });

  const skipped: UnreadableObject[] = [];
  const client = createHnsClient(garbled, { onSkip: (s) => skipped.push(s) });
  deepEqual((await client.listEndpoints()).map((e) => e.ID), [a]);
  deepEqual(skipped.map((s) => [s.kind, s.id]), [["Endpoint", b]]);
  match(skipped[0].reason, /^not JSON/);
  equal(await client.getEndpoint(b), undefined);
  equal(skipped.length, 2);
  notEqual(await client.getEndpoint(a), undefined);
});

Deno.test("listIds: an answer that is not a JSON array of IDs is INVALID_JSON, naming the listing", async () => {
  for (const answer of ["{}", '["A", 1]', "[not json"]) {
    // As the FFI backend's HNS thread parses the answer.
    const api = {
      hasModifyLoadBalancer: true,
      enumerateIds: (kind: HcnKind) =>
        Promise.resolve().then(() => idListingOfAnswer(kind, answer)),
    } as unknown as HcnApi;
    const err = await expectHnsError(
      createHnsClient(api).listIds("Endpoint"),
      HResult.INVALID_JSON,
    );
    match(err.message, /listEndpointIds/);
  }
});
