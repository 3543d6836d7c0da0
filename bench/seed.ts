/**
 * The HNS a node has before the agent runs: the network and the CNI's
 * endpoint for every local pod, created through the real FFI binding (the
 * agent host loads this module only when asked to seed).
 *
 * @module
 */

import { createHnsClient } from "../lib/hns/client.ts";
import type { HcnApi } from "../lib/hns/types.ts";
import { type Emulator, openSyncHcnApi } from "./emulator.ts";
import {
  localEndpointIps,
  localEndpointSettings,
  networkSettings,
  type ScenarioSpec,
} from "./scenario.ts";

/**
 * Give the emulated node the HNS it has before the agent runs: the network
 * and the CNI's endpoint for every local pod. Returns the network ID.
 */
export async function seedNodeHns(emulator: Emulator, spec: ScenarioSpec): Promise<string> {
  const api = openSyncHcnApi(emulator.library);
  const client = createHnsClient(api);
  try {
    const net = await client.findNetworkByName(networkSettings().Name!) ??
      await createNetwork(api, client);
    // The CNI creates pods' endpoints one by one.
    for (const ip of localEndpointIps(spec)) {
      await client.createEndpoint(net.ID!, localEndpointSettings(ip, net.ID!));
    }
    return net.ID!;
  } finally {
    api.dispose();
  }
}

async function createNetwork(api: HcnApi, client: ReturnType<typeof createHnsClient>) {
  const handle = await api.create("Network", "", JSON.stringify(networkSettings()));
  await api.close("Network", handle);
  const net = await client.findNetworkByName(networkSettings().Name!);
  if (!net?.ID) throw new Error("the emulator did not keep the benchmark network");
  return net;
}
