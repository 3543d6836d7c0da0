/**
 * A tiny out-of-band HNS operator for the agent tests, run as its own
 * process against the emulator library and its state file (as an operator
 * with hnsdiag would): `delete-lb <id>`, `delete-ep <id>`, `create-ep <network> <ip>`,
 * `create-lb <HNS JSON>` (another proxy's load balancer).
 *
 * @module
 */

import { openFfiHcnApi } from "../../lib/hns/ffi.ts";
import { createHnsClient } from "../../lib/hns/client.ts";

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
      default:
        throw new Error(`unknown command ${command}`);
    }
  } finally {
    client.close();
  }
}
