/**
 * A network kept open (HnsClient.openNetwork), over both backends: each read
 * is one HcnQueryNetworkProperties call and sees policies the CNI changed
 * since; a deleted network reads as undefined; the handle is closed once.
 */

import { deepEqual, equal } from "node:assert/strict";
import { createHnsClient } from "../../lib/hns/client.ts";
import { HResult } from "../../lib/hns/errors.ts";
import { remoteSubnetRoutesOf } from "../../lib/proxy/context.ts";
import { modifyNetworkPolicies, remoteSubnetRoute } from "../agent/hns_tool.ts";
import { backendTest } from "./harness.ts";
import { expectHnsError, makeNetwork } from "./fixtures.ts";

backendTest(
  "openNetwork: one Query per read, sees routes added and removed, closed once",
  async ({ api, control }) => {
    const client = createHnsClient(api);
    const id = await makeNetwork(api, {
      Name: "vxlan0",
      Type: "Overlay",
      Policies: [remoteSubnetRoute("10.244.2.0/24", "192.168.1.12")],
    });
    const open = await client.openNetwork(id);
    equal(control.openHandles(), 1);
    const routes = async () => remoteSubnetRoutesOf((await open.read())!);
    deepEqual(await routes(), [{ prefix: "10.244.2.0/24", providerAddress: "192.168.1.12" }]);

    // The CNI adds node-4's route, then removes node-2's (hcsshim's request form).
    const modify = (type: "Add" | "Remove", prefix: string, pa: string) =>
      modifyNetworkPolicies(api, id, type, [remoteSubnetRoute(prefix, pa)]);
    await modify("Add", "10.244.4.0/24", "192.168.1.14");
    const queries = control.callCount("HcnQueryNetworkProperties");
    const opens = control.callCount("HcnOpenNetwork");
    deepEqual(await routes(), [
      { prefix: "10.244.2.0/24", providerAddress: "192.168.1.12" },
      { prefix: "10.244.4.0/24", providerAddress: "192.168.1.14" },
    ]);
    equal(control.callCount("HcnQueryNetworkProperties") - queries, 1);
    equal(control.callCount("HcnOpenNetwork") - opens, 0, "the handle stayed open");
    await modify("Remove", "10.244.2.0/24", "192.168.1.12");
    deepEqual(await routes(), [{ prefix: "10.244.4.0/24", providerAddress: "192.168.1.14" }]);

    // Deleted (HNS restarted, CNI reinstalled): the read says so; the handle still closes.
    await api.delete("Network", id);
    equal(await open.read(), undefined);
    await open.close();
    await open.close();
    equal(control.openHandles(), 0);
    await expectHnsError(client.openNetwork(id), HResult.NETWORK_NOT_FOUND);
  },
);
