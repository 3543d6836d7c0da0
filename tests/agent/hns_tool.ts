/**
 * A tiny out-of-band HNS operator for the agent tests, run as its own
 * process against the emulator library and its state file (as an operator
 * with hnsdiag would): `delete-lb <id>`, `delete-ep <id>`, `create-ep <network> <ip>`,
 * `create-lb <HNS JSON>` (another proxy's load balancer),
 * `recreate-ep <id>` (deletes the endpoint and the LBs using it, creates it again
 * with a new ID, and prints that ID, as an HNS restart or a CNI reinstall leaves it),
 * `add-route <network name> <prefix> <provider address>` and
 * `remove-route <network name> <prefix>` (a network's RemoteSubnetRoute policies, changed
 * with HcnModifyNetwork in hcsshim's request form, as the CNI does when a node joins or leaves).
 *
 * @module
 */

import { openFfiHcnApi } from "../../lib/hns/ffi.ts";
import { createHnsClient } from "../../lib/hns/client.ts";
import { HnsError, HResult } from "../../lib/hns/errors.ts";
import type { HcnApi, HcnEndpoint, HcnNetwork, HcnPolicy, HnsClient } from "../../lib/hns/types.ts";

/** A RemoteSubnetRoute policy as the overlay CNI (flannel's host-gw/vxlan) adds it. */
export function remoteSubnetRoute(prefix: string, providerAddress: string): HcnPolicy {
  return {
    Type: "RemoteSubnetRoute",
    Settings: {
      DestinationPrefix: prefix,
      IsolationId: 4096,
      ProviderAddress: providerAddress,
      DistributedRouterMacAddress: "01-02-03-04-05-06",
    },
  };
}

/** Add or remove a network's policies (HcnModifyNetwork in hcsshim's request form), as the CNI does. */
export async function modifyNetworkPolicies(
  api: HcnApi,
  networkId: string,
  requestType: "Add" | "Remove",
  policies: unknown[],
): Promise<void> {
  const handle = await api.open("Network", networkId);
  try {
    const request = {
      ResourceType: "Policy",
      RequestType: requestType,
      Settings: { Policies: policies },
    };
    await api.modify("Network", handle, JSON.stringify(request));
  } finally {
    await api.close("Network", handle);
  }
}

/** The network named `name`, or an error. */
async function networkNamed(client: HnsClient, name: string): Promise<HcnNetwork & { ID: string }> {
  const network = await client.findNetworkByName(name);
  if (!network?.ID) throw new Error(`no network ${name}`);
  return network as HcnNetwork & { ID: string };
}

/** The network's RemoteSubnetRoute policies for `prefix`, exactly as HNS holds them. */
function routesFor(network: HcnNetwork, prefix: string): unknown[] {
  const policies = Array.isArray(network.Policies) ? network.Policies : [];
  return policies.filter((p) =>
    p?.Type === "RemoteSubnetRoute" && p?.Settings?.DestinationPrefix === prefix
  );
}

/** Delete an endpoint and the LBs using it (again, if an LB comes back meanwhile); recreate it. */
async function recreateEndpoint(client: HnsClient, id: string): Promise<string> {
  const old = await client.getEndpoint(id);
  if (!old) throw new Error(`no endpoint ${id}`);
  for (let attempt = 1;; attempt++) {
    for (const lb of await client.listLoadBalancers()) {
      const refs = (lb.HostComputeEndpoints ?? []).map((x) => String(x).toUpperCase());
      if (refs.includes(id.toUpperCase())) await client.deleteLoadBalancer(lb.ID!);
    }
    try {
      await client.deleteEndpoint(id);
      break;
    } catch (err) {
      const inUse = err instanceof HnsError && err.hresult === HResult.ENTITY_HAS_REFERENCES;
      if (!inUse || attempt >= 20) throw err;
    }
  }
  const copy: HcnEndpoint = {
    Name: old.Name,
    IpConfigurations: old.IpConfigurations,
    MacAddress: old.MacAddress,
    Flags: old.Flags,
    SchemaVersion: { Major: 2, Minor: 0 },
  };
  const created = await client.createEndpoint(String(old.HostComputeNetwork), copy);
  return created.ID!;
}

if (import.meta.main) {
  const [library, command, ...rest] = Deno.args;
  const api = openFfiHcnApi({ library });
  const client = createHnsClient(api);
  try {
    switch (command) {
      case "delete-lb":
        await client.deleteLoadBalancer(rest[0]);
        break;
      case "delete-ep":
        await client.deleteEndpoint(rest[0]);
        break;
      case "create-ep":
        await client.createEndpoint(rest[0], {
          IpConfigurations: [{ IpAddress: rest[1] }],
          SchemaVersion: { Major: 2, Minor: 0 },
        });
        break;
      case "create-lb":
        await client.createLoadBalancer(JSON.parse(rest[0]));
        break;
      case "recreate-ep":
        console.log(await recreateEndpoint(client, rest[0]));
        break;
      case "add-route": {
        const network = await networkNamed(client, rest[0]);
        await modifyNetworkPolicies(api, network.ID, "Add", [remoteSubnetRoute(rest[1], rest[2])]);
        break;
      }
      case "remove-route": {
        const network = await networkNamed(client, rest[0]);
        const found = routesFor(network, rest[1]);
        if (found.length === 0) throw new Error(`no route ${rest[1]} on network ${rest[0]}`);
        await modifyNetworkPolicies(api, network.ID, "Remove", found);
        break;
      }
      default:
        throw new Error(`unknown command ${command}`);
    }
  } finally {
    client.close();
  }
}
