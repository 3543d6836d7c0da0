/**
 * Reads of many objects (`getLoadBalancers`, `getEndpoints`, lists): in
 * requests of many where the API runs them ({@link HcnApi.openQueryCloseMany},
 * the FFI backend), with the outcome, the errors and the HNS calls of
 * reading each object on its own (the memory backend, and the FFI one made
 * to read one by one).
 *
 * @module
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { createHnsClient, READS_PER_REQUEST, type UnreadableObject } from "../../lib/hns/client.ts";
import type { HnsError } from "../../lib/hns/errors.ts";
import { newGuid } from "../../lib/hns/guid.ts";
import { delegateHcnApi } from "../../lib/hns/delegate.ts";
import { instrumentHcnApi } from "../../lib/hns/instrument.ts";
import type { HcnApi, HcnLoadBalancer } from "../../lib/hns/types.ts";
import { backendTest, type HnsControl } from "./harness.ts";
import { clusterIpLb } from "./fixtures.ts";

const E_ACCESSDENIED = 0x80070005;
const LB_FNS = [
  "HcnOpenLoadBalancer",
  "HcnQueryLoadBalancerProperties",
  "HcnCloseLoadBalancer",
];

/** `api` without its requests of many reads: the client reads one object per request. */
function oneByOne(api: HcnApi): HcnApi {
  return delegateHcnApi(api, {
    openQueryCloseMany: undefined,
    createAndCloseMany: undefined,
    dispose: () => {},
  });
}

/** `count` load balancers made in HNS; their IDs, in order. */
async function makeLbs(api: HcnApi, count: number): Promise<string[]> {
  const client = createHnsClient(api);
  const lbs = Array.from({ length: count }, (_, i) => clusterIpLb("10.0.0.1", 1000 + i, []));
  const { sent, failures } = await client.createLoadBalancers(lbs);
  deepEqual(failures, []);
  return sent.map((lb) => lb.ID!);
}

/** Read `ids` through a counted client over `api`: what it read and the calls per C function. */
async function countedRead(api: HcnApi, control: HnsControl, ids: readonly string[]) {
  const counted = instrumentHcnApi(api);
  const before = LB_FNS.map((fn) => control.callCount(fn));
  let read: HcnLoadBalancer[] | undefined;
  let error: HnsError | undefined;
  try {
    read = await createHnsClient(counted).getLoadBalancers(ids);
  } catch (err) {
    error = err as HnsError;
  }
  const stats = counted.stats();
  const calls = Object.fromEntries(LB_FNS.map((fn, i) => [fn, control.callCount(fn) - before[i]]));
  const recorded = Object.fromEntries(
    LB_FNS.map((fn) => [fn, [stats[fn]?.calls ?? 0, stats[fn]?.errors ?? 0]]),
  );
  return { read, error, calls, recorded };
}

backendTest(
  "getLoadBalancers: gone ones left out; the same HNS calls, recorded alike, as one by one",
  async ({ api, control }) => {
    const made = await makeLbs(api, 2 * READS_PER_REQUEST + 10);
    const ids = [newGuid(), ...made.slice(0, 50), newGuid(), ...made.slice(50), newGuid()];
    let requests = 0;
    const spied: HcnApi = api.openQueryCloseMany
      ? {
        ...oneByOne(api),
        openQueryCloseMany: (
          kind,
          items,
          query,
        ) => (requests++, api.openQueryCloseMany!(kind, items, query)),
      }
      : api;
    const many = await countedRead(spied, control, ids);
    const single = await countedRead(oneByOne(api), control, ids);
    equal(many.error, undefined);
    deepEqual(
      many.read!.map((lb) => lb.ID),
      made,
      "each one held, in order; the gone ones left out",
    );
    deepEqual(many.read, single.read);
    deepEqual(many.calls, {
      HcnOpenLoadBalancer: ids.length,
      HcnQueryLoadBalancerProperties: made.length,
      HcnCloseLoadBalancer: made.length,
    });
    deepEqual(many.calls, single.calls, "HNS saw the same calls");
    deepEqual(many.recorded, single.recorded, "the metrics recorded the same calls and errors");
    deepEqual(many.recorded.HcnOpenLoadBalancer, [ids.length, 3]);
    if (api.openQueryCloseMany) {
      equal(requests, Math.ceil(ids.length / READS_PER_REQUEST), "requests of many reads");
    }
  },
);

backendTest(
  "getLoadBalancers: one item's failure fails the read with that item's error, as one by one",
  async ({ api, control }) => {
    const made = await makeLbs(api, 2 * READS_PER_REQUEST + 10);
    control.failCall("HcnQueryLoadBalancerProperties", 70, E_ACCESSDENIED);
    const many = await countedRead(api, control, made);
    control.clearFailures();
    control.failCall("HcnQueryLoadBalancerProperties", 70, E_ACCESSDENIED);
    const single = await countedRead(oneByOne(api), control, made);
    control.clearFailures();
    ok(many.error, "the read failed");
    equal(many.read, undefined);
    equal(many.error.hresult, E_ACCESSDENIED);
    equal(many.error.operation, "getLoadBalancers (HcnQueryLoadBalancerProperties)");
    for (const field of ["message", "hresult", "operation", "object"] as const) {
      equal(many.error[field], single.error![field], field);
    }
    equal(many.recorded.HcnQueryLoadBalancerProperties[1], 1, "recorded as failed at the Query");
    // Every Open is closed (the leak check after the test sees no handle open).
    equal(many.calls.HcnCloseLoadBalancer, many.calls.HcnOpenLoadBalancer);
  },
);

backendTest(
  "getLoadBalancers: an item HNS answers with unreadable JSON is left out and reported by its ID",
  async ({ api }) => {
    if (!api.openQueryClose) return; // the memory backend answers only JSON
    const made = await makeLbs(api, READS_PER_REQUEST + 2);
    const bad = made[READS_PER_REQUEST + 1];
    const garbled: HcnApi = {
      ...oneByOne(api),
      openQueryClose: (kind, id, query) =>
        id === bad ? Promise.resolve("{oops") : api.openQueryClose!(kind, id, query),
      openQueryCloseMany: api.openQueryCloseMany &&
        (async (kind, ids, query) => {
          const read = await api.openQueryCloseMany!(kind, ids, query);
          return read.map((r, i) => (ids[i] === bad ? "{oops" : r));
        }),
    };
    const skipped: UnreadableObject[] = [];
    const client = createHnsClient(garbled, { onSkip: (o) => skipped.push(o) });
    const read = await client.getLoadBalancers(made);
    deepEqual(read.map((lb) => lb.ID), made.filter((id) => id !== bad));
    deepEqual(skipped.map((s) => [s.kind, s.id, s.text]), [["LoadBalancer", bad, "{oops"]]);
  },
);
