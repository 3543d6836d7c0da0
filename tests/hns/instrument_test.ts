/** The counting and timing decorator over an HcnApi. */

import { deepEqual, equal, ok } from "node:assert/strict";
import { createHnsClient } from "../../lib/hns/client.ts";
import { HnsError, HResult } from "../../lib/hns/errors.ts";
import { instrumentHcnApi } from "../../lib/hns/instrument.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import { clusterIpLb, makeNetwork } from "./fixtures.ts";

Deno.test("instrument: counts calls and errors per C function and reports each one", async () => {
  const memory = new MemoryHcnApi();
  const seen: Array<[string, boolean]> = [];
  const api = instrumentHcnApi(memory, (fn, seconds, error) => {
    ok(seconds >= 0);
    seen.push([fn, error !== undefined]);
  });
  const client = createHnsClient(api);
  const net = await makeNetwork(api, { Name: "cbr0" });
  const ep = await client.createEndpoint(net, { IpConfigurations: [{ IpAddress: "10.0.0.2" }] });
  await client.createLoadBalancer(clusterIpLb("10.96.0.1", 80, [ep.ID!]));
  await client.createLoadBalancer(clusterIpLb("10.96.0.1", 80, [ep.ID!])).catch(() => {});
  await client.version();

  const stats = api.stats();
  equal(stats.HcnCreateLoadBalancer.calls, 2);
  equal(stats.HcnCreateLoadBalancer.errors, 1);
  equal(stats.HcnQueryLoadBalancerProperties, undefined, "a create is not read back");
  equal(stats.HcnCloseLoadBalancer.calls, 1);
  equal(stats.HcnOpenNetwork.calls, 1);
  equal(stats.HNSCall.calls, 1);
  // The decorator sees exactly what HNS sees.
  deepEqual(
    Object.fromEntries(Object.entries(stats).map(([fn, s]) => [fn, s.calls])),
    memory.callCounts(),
  );
  equal(api.totalCalls(), seen.length);
  deepEqual(seen.filter(([, failed]) => failed).map(([fn]) => fn), ["HcnCreateLoadBalancer"]);
});

Deno.test("instrument: the hook gets the HnsError; listeners come and go; a throwing hook is harmless", async () => {
  const memory = new MemoryHcnApi();
  const api = instrumentHcnApi(memory);
  const errors: unknown[] = [];
  const stop = api.onCall((_fn, _s, error) => errors.push(error));
  api.onCall(() => {
    throw new Error("broken listener");
  });
  const err = await api.open("LoadBalancer", "11111111-2222-3333-4444-555555555555").catch((e) =>
    e
  );
  ok(err instanceof HnsError);
  equal(errors.length, 1);
  ok(errors[0] instanceof HnsError);
  equal((errors[0] as HnsError).hresult, HResult.ERROR_NOT_FOUND);
  stop();
  await api.enumerate("Network", "");
  equal(errors.length, 1);
  api.resetStats();
  deepEqual(api.stats(), {});
  equal(api.hasModifyLoadBalancer, true);
});

Deno.test("instrument: a listener that leaves during a call does not cost the others that call; one added twice hears once", async () => {
  const api = instrumentHcnApi(new MemoryHcnApi());
  const heard: string[] = [];
  const stopFirst = api.onCall(() => {
    heard.push("first");
    stopFirst();
  });
  const second = () => heard.push("second");
  api.onCall(second);
  const stopSecond = api.onCall(second);
  await api.enumerate("Network", "");
  deepEqual(heard, ["first", "second"]);
  await api.enumerate("Network", "");
  deepEqual(heard, ["first", "second", "second"]);
  stopSecond();
  await api.enumerate("Network", "");
  equal(heard.length, 3, "removed once, gone");
});
