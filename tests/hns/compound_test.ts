/**
 * Compound requests of the FFI binding (createAndClose, openQueryClose): the
 * same HCN calls as their parts, made on an HNS thread as one request, with
 * each part's errors, every handle closed, and each call counted by the
 * instrumentation and used by the client.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { createHnsClient } from "../../lib/hns/client.ts";
import { type HnsError, HResult } from "../../lib/hns/errors.ts";
import { openFfiHcnApi } from "../../lib/hns/ffi.ts";
import { newGuid } from "../../lib/hns/guid.ts";
import { delegateHcnApi } from "../../lib/hns/delegate.ts";
import { instrumentHcnApi } from "../../lib/hns/instrument.ts";
import type { HcnApi } from "../../lib/hns/types.ts";
import { assertNoLeaks, emulatorLibrary, type HnsControl, openEmulatorControl } from "./harness.ts";
import { clusterIpLb, expectHnsError } from "./fixtures.ts";

const E_ACCESSDENIED = 0x80070005;

async function withEmulator(body: (api: HcnApi, control: HnsControl) => Promise<void>) {
  const library = emulatorLibrary();
  const control = openEmulatorControl(library);
  control.reset();
  const api = openFfiHcnApi({ library });
  try {
    await body(api, control);
    assertNoLeaks(control);
  } finally {
    api.dispose();
    control.close();
  }
}

function counts(control: HnsControl, ...fns: string[]): Record<string, number> {
  return Object.fromEntries(fns.map((fn) => [fn, control.callCount(fn)]));
}

const LB_FNS = [
  "HcnCreateLoadBalancer",
  "HcnOpenLoadBalancer",
  "HcnQueryLoadBalancerProperties",
  "HcnCloseLoadBalancer",
];

Deno.test("createAndClose: one request, the Create and the Close of its handle", async () => {
  await withEmulator(async (api, control) => {
    ok(api.createAndClose, "the FFI binding offers it");
    const id = newGuid();
    await api.createAndClose("LoadBalancer", id, JSON.stringify(clusterIpLb("10.0.0.1", 80, [])));
    deepEqual(counts(control, ...LB_FNS), {
      HcnCreateLoadBalancer: 1,
      HcnOpenLoadBalancer: 0,
      HcnQueryLoadBalancerProperties: 0,
      HcnCloseLoadBalancer: 1,
    });
    equal(control.objectCount("LoadBalancer"), 1);
  });
});

Deno.test("createAndClose: a refused Create is its error and nothing is closed", async () => {
  await withEmulator(async (api, control) => {
    const lb = JSON.stringify(clusterIpLb("10.0.0.1", 80, []));
    await api.createAndClose!("LoadBalancer", newGuid(), lb);
    const err = await expectHnsError(
      api.createAndClose!("LoadBalancer", newGuid(), lb),
      HResult.PORT_ALREADY_EXISTS,
    );
    equal(err.operation, "HcnCreateLoadBalancer");
    equal(control.callCount("HcnCloseLoadBalancer"), 1, "only the first create's handle");
  });
});

Deno.test("createAndClose: a failed Close is the Close's error; the object exists", async () => {
  await withEmulator(async (api, control) => {
    control.failCall("HcnCloseLoadBalancer", 1, E_ACCESSDENIED);
    const lb = JSON.stringify(clusterIpLb("10.0.0.1", 80, []));
    const err = await expectHnsError(
      api.createAndClose!("LoadBalancer", newGuid(), lb),
      E_ACCESSDENIED,
    );
    equal(err.operation, "HcnCloseLoadBalancer");
    equal(control.objectCount("LoadBalancer"), 1);
    // The emulator's handle stays open after a refused Close: release it for the leak check.
    control.reset();
  });
});

Deno.test("openQueryClose: the object's JSON, then its handle closed", async () => {
  await withEmulator(async (api, control) => {
    const id = newGuid();
    await api.createAndClose!("LoadBalancer", id, JSON.stringify(clusterIpLb("10.0.0.1", 80, [])));
    ok(api.openQueryClose, "the FFI binding offers it");
    const text = await api.openQueryClose("LoadBalancer", id, "");
    equal(JSON.parse(text).ID, id);
    deepEqual(counts(control, ...LB_FNS), {
      HcnCreateLoadBalancer: 1,
      HcnOpenLoadBalancer: 1,
      HcnQueryLoadBalancerProperties: 1,
      HcnCloseLoadBalancer: 2,
    });
  });
});

Deno.test("openQueryClose: Open's not-found, or Query's error after which the handle is closed", async () => {
  await withEmulator(async (api, control) => {
    const missing = await expectHnsError(
      api.openQueryClose!("LoadBalancer", newGuid(), ""),
      HResult.ERROR_NOT_FOUND,
    );
    equal(missing.operation, "HcnOpenLoadBalancer");
    equal(control.callCount("HcnQueryLoadBalancerProperties"), 0);

    const id = newGuid();
    await api.createAndClose!("LoadBalancer", id, JSON.stringify(clusterIpLb("10.0.0.1", 80, [])));
    control.failCall("HcnQueryLoadBalancerProperties", 1, E_ACCESSDENIED);
    const refused = await expectHnsError(
      api.openQueryClose!("LoadBalancer", id, ""),
      E_ACCESSDENIED,
    );
    equal(refused.operation, "HcnQueryLoadBalancerProperties");
    equal(control.callCount("HcnCloseLoadBalancer"), 2, "the handle was closed all the same");
  });
});

Deno.test("instrumentation counts each call a compound request made", async () => {
  await withEmulator(async (api, control) => {
    const counted = instrumentHcnApi(api);
    const id = newGuid();
    await counted.createAndClose!(
      "LoadBalancer",
      id,
      JSON.stringify(clusterIpLb("10.0.0.1", 80, [])),
    );
    await counted.openQueryClose!("LoadBalancer", id, "");
    control.failCall("HcnQueryLoadBalancerProperties", 1, E_ACCESSDENIED);
    await counted.openQueryClose!("LoadBalancer", id, "").catch(() => {});
    await counted.openQueryClose!("LoadBalancer", newGuid(), "").catch(() => {});
    const stats = counted.stats();
    const brief = Object.fromEntries(
      Object.entries(stats).map(([fn, s]) => [fn, [s.calls, s.errors]]),
    );
    deepEqual(brief, {
      HcnCreateLoadBalancer: [1, 0],
      HcnCloseLoadBalancer: [3, 0],
      HcnOpenLoadBalancer: [3, 1],
      HcnQueryLoadBalancerProperties: [2, 1],
    });
    // The instrumentation counts what HNS saw.
    for (const [fn, s] of Object.entries(stats)) equal(s.calls, control.callCount(fn), fn);
  });
});

Deno.test("createAndCloseMany: each item's Create and Close in one request; a failed item fails alone", async () => {
  await withEmulator(async (api, control) => {
    ok(api.createAndCloseMany, "the FFI binding offers it");
    control.failCall("HcnCloseLoadBalancer", 2, E_ACCESSDENIED);
    const lbs = [80, 81, 80, 82, 83].map((port) =>
      JSON.stringify(clusterIpLb("10.0.0.1", port, []))
    );
    const ids = lbs.map(() => newGuid());
    ids[4] = "not-a-guid";
    const failures = await api.createAndCloseMany("LoadBalancer", ids, lbs);
    deepEqual(failures.map((f) => [f.index, (f.error as HnsError).hresult]), [
      [1, E_ACCESSDENIED], // its Close failed: the object exists
      [2, HResult.PORT_ALREADY_EXISTS],
      [4, 0x80070057], // refused before any C call
    ]);
    deepEqual(failures.map((f) => (f.error as HnsError).operation), [
      "HcnCloseLoadBalancer",
      "HcnCreateLoadBalancer",
      "HcnCreateLoadBalancer",
    ]);
    deepEqual(counts(control, ...LB_FNS), {
      HcnCreateLoadBalancer: 4,
      HcnOpenLoadBalancer: 0,
      HcnQueryLoadBalancerProperties: 0,
      HcnCloseLoadBalancer: 3,
    });
    equal(control.objectCount("LoadBalancer"), 3);
    control.reset(); // the refused Close's handle stays open in the emulator
  });
});

Deno.test("openQueryCloseMany: per item its JSON or its own error, every handle closed", async () => {
  await withEmulator(async (api, control) => {
    ok(api.openQueryCloseMany, "the FFI binding offers it");
    const ids = [newGuid(), newGuid(), newGuid()];
    for (const [i, id] of ids.entries()) {
      await api.createAndClose!(
        "LoadBalancer",
        id,
        JSON.stringify(clusterIpLb("10.0.0.1", 80 + i, [])),
      );
    }
    control.failCall("HcnQueryLoadBalancerProperties", 2, E_ACCESSDENIED);
    const before = LB_FNS.map((fn) => control.callCount(fn));
    const seen: string[] = [];
    const counted = instrumentHcnApi(api, (fn, _s, error) => seen.push(error ? `${fn}!` : fn));
    const read = await counted.openQueryCloseMany!("LoadBalancer", [
      ids[0],
      ids[1],
      newGuid(),
      ids[2],
    ], "");
    equal(JSON.parse(read[0] as string).ID, ids[0]);
    equal((read[1] as HnsError).hresult, E_ACCESSDENIED);
    equal((read[1] as HnsError).operation, "HcnQueryLoadBalancerProperties");
    equal((read[2] as HnsError).hresult, HResult.ERROR_NOT_FOUND);
    equal((read[2] as HnsError).operation, "HcnOpenLoadBalancer");
    equal(JSON.parse(read[3] as string).ID, ids[2]);
    deepEqual(seen.slice(3, 7), [
      "HcnOpenLoadBalancer",
      "HcnQueryLoadBalancerProperties!",
      "HcnCloseLoadBalancer",
      "HcnOpenLoadBalancer!",
    ]);
    const stats = counted.stats();
    for (const [i, fn] of LB_FNS.entries()) {
      equal(stats[fn]?.calls ?? 0, control.callCount(fn) - before[i], fn);
    }
  });
});

Deno.test("instrumentation counts each call of a request of many, each failure at its call", async () => {
  await withEmulator(async (api, control) => {
    const seen: string[] = [];
    const counted = instrumentHcnApi(api, (fn, _seconds, error) => {
      seen.push(error ? `${fn}!` : fn);
    });
    control.failCall("HcnCloseLoadBalancer", 2, E_ACCESSDENIED);
    const lbs = [80, 81, 80].map((port) => JSON.stringify(clusterIpLb("10.0.0.1", port, [])));
    await counted.createAndCloseMany!("LoadBalancer", lbs.map(() => newGuid()), lbs);
    deepEqual(seen, [
      "HcnCreateLoadBalancer",
      "HcnCloseLoadBalancer",
      "HcnCreateLoadBalancer",
      "HcnCloseLoadBalancer!",
      "HcnCreateLoadBalancer!",
    ]);
    const stats = counted.stats();
    for (const [fn, s] of Object.entries(stats)) equal(s.calls, control.callCount(fn), fn);
    // A request refused as a whole tried nothing: each item counts as a failed Create.
    api.dispose();
    await counted.createAndCloseMany!("LoadBalancer", [newGuid(), newGuid()], lbs.slice(0, 2))
      .then(() => ok(false, "refused"), () => {});
    deepEqual(counted.stats().HcnCreateLoadBalancer, {
      ...counted.stats().HcnCreateLoadBalancer,
      calls: 5,
      errors: 3,
    });
    control.reset(); // the refused Close's handle stays open in the emulator
  });
});

Deno.test("the client creates and reads through compound requests, with the same calls", async () => {
  await withEmulator(async (api, control) => {
    let parts = 0;
    const spied = delegateHcnApi(api, {
      open: (kind, id) => (parts++, api.open(kind, id)),
      create: (kind, id, settings, network) => (parts++, api.create(kind, id, settings, network)),
      dispose: () => {},
    });

    const client = createHnsClient(spied);
    const lb = await client.createLoadBalancer(clusterIpLb("10.0.0.1", 80, []));
    const read = await client.getLoadBalancer(lb.ID!);
    equal(read?.ID, lb.ID);
    equal(await client.getLoadBalancer(newGuid()), undefined, "a missing object is undefined");
    equal(parts, 0, "no separate Create or Open");
    deepEqual(counts(control, ...LB_FNS), {
      HcnCreateLoadBalancer: 1,
      HcnOpenLoadBalancer: 2,
      HcnQueryLoadBalancerProperties: 1,
      HcnCloseLoadBalancer: 2,
    });
  });
});
