/**
 * lib/hns/delegate.ts: a wrapper hands every call to its backend, offers
 * optional members only where the backend does, and replaces or takes away
 * what the caller says.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { createHnsClient } from "../../lib/hns/client.ts";
import { delegateHcnApi } from "../../lib/hns/delegate.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import type { HcnApi } from "../../lib/hns/types.ts";
import { clusterIpLb } from "./fixtures.ts";

Deno.test("delegateHcnApi: calls reach the backend, overrides replace members", async () => {
  const api = new MemoryHcnApi();
  let disposed = 0;
  let queries = 0;
  const wrapped = delegateHcnApi(api, {
    query: (kind, handle, q) => (queries++, api.query(kind, handle, q)),
    dispose: () => void disposed++,
  });
  equal(wrapped.hasModifyLoadBalancer, api.hasModifyLoadBalancer);
  const { ID: id } = await createHnsClient(wrapped).createLoadBalancer(
    clusterIpLb("10.0.0.1", 80, []),
  );
  deepEqual(
    JSON.parse(await wrapped.enumerate("LoadBalancer", "{}")),
    JSON.parse(await api.enumerate("LoadBalancer", "{}")),
  );
  const handle = await wrapped.open("LoadBalancer", id!);
  ok((await wrapped.query("LoadBalancer", handle, "{}")).includes("10.0.0.1"));
  await wrapped.close("LoadBalancer", handle);
  equal(queries, 1, "the override ran");
  wrapped.dispose();
  equal(disposed, 1, "the override ran, not the backend's dispose");
  equal(JSON.parse(await api.enumerate("LoadBalancer", "{}")).length, 1, "the backend lives on");
});

Deno.test("delegateHcnApi: optional members follow the backend; undefined takes one away", async () => {
  const memory = new MemoryHcnApi();
  equal("openQueryCloseMany" in memory, false);
  equal("openQueryCloseMany" in delegateHcnApi(memory), false, "not offered by the backend");
  const read: string[][] = [];
  const withMany = Object.assign(Object.create(memory) as HcnApi, {
    openQueryCloseMany: (_kind: unknown, ids: readonly string[]) => {
      read.push([...ids]);
      return Promise.resolve(ids.map(() => "{}"));
    },
  });
  const wrapped = delegateHcnApi(withMany);
  deepEqual(await wrapped.openQueryCloseMany!("Endpoint", ["a", "b"], "{}"), ["{}", "{}"]);
  deepEqual(read, [["a", "b"]], "offered by the backend, forwarded");
  const without = delegateHcnApi(withMany, { openQueryCloseMany: undefined });
  equal("openQueryCloseMany" in without, false, "taken away");
  equal(without.hasModifyLoadBalancer, memory.hasModifyLoadBalancer);
});
