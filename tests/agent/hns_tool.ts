/**
 * A tiny out-of-band HNS operator for the agent tests, run as its own
 * process against the emulator library and its state file (as an operator
 * with hnsdiag would): `delete-lb <id>`, `delete-ep <id>`, `create-ep <network> <ip>`,
 * `create-lb <HNS JSON>` (another proxy's load balancer),
 * `recreate-ep <id>` (deletes the endpoint and the LBs using it, creates it again
 * with a new ID, and prints that ID, as an HNS restart or a CNI reinstall leaves it).
 *
 * @module
 */

import { openFfiHcnApi } from "../../lib/hns/ffi.ts";
import { createHnsClient } from "../../lib/hns/client.ts";
import { HnsError, HResult } from "../../lib/hns/errors.ts";
import type { HcnEndpoint, HnsClient } from "../../lib/hns/types.ts";

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
  const client = createHnsClient(openFfiHcnApi({ library }));
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
      default:
        throw new Error(`unknown command ${command}`);
    }
  } finally {
    client.close();
  }
}
