/**
 * The FFI binding's two paths (lib/hns/hcn_threads.ts) against the emulator
 * library: small work runs nonblocking on the runtime's blocking pool with no
 * worker, large batches (a request of many, a burst) on HNS threads started
 * for them and ended once idle, the last one too; answers and failures are
 * the same on both paths; a call that blocks in HNS leaves the event loop
 * turning, a request of many is answered while the thread runs the next,
 * slow calls spread over the threads, handles move between threads,
 * listings kept apart start no thread and queue behind no call and are read
 * on the event loop's thread in paced slices; dispose lets calls already made
 * finish on both paths and keeps the libraries until every one answered and
 * every listing was released (nothing leaks), and the leak counters stay at
 * zero.
 */

import { equal, match, ok, rejects } from "node:assert/strict";
import { createHnsClient, READS_PER_REQUEST } from "../../lib/hns/client.ts";
import { HnsError, HResult } from "../../lib/hns/errors.ts";
import { openFfiHcnApi } from "../../lib/hns/ffi.ts";
import { PoolCalls } from "../../lib/hns/pool_calls.ts";
import { THREAD_FROM_OPS, ThreadedHcnApi, TIMED_BATCHES } from "../../lib/hns/hcn_threads.ts";
import { newGuid } from "../../lib/hns/guid.ts";
import { delegateHcnApi } from "../../lib/hns/delegate.ts";
import { IdListing, type IdListingAnswer, isIdListingData } from "../../lib/hns/id_listing.ts";
import { assertNoLeaks, emulatorLibrary, openEmulatorControl } from "./harness.ts";
import { clusterIpLb, expectHnsError, makeNetwork } from "./fixtures.ts";

/** The emulator's control surface plus its per-call latency. */
function openEmulator() {
  const library = emulatorLibrary();
  const control = openEmulatorControl(library);
  control.reset();
  const latency = Deno.dlopen(library, {
    HnsEmuSetLatencyMicros: { parameters: ["u32"], result: "void" },
  });
  return {
    library,
    control,
    setLatencyMicros: (us: number) => latency.symbols.HnsEmuSetLatencyMicros(us),
    close() {
      latency.symbols.HnsEmuSetLatencyMicros(0);
      latency.close();
      control.close();
    },
  };
}

/** Run `body` with a fresh emulator and the threaded API `open` makes over it; both closed after. */
async function withThreads(
  open: (library: string) => ThreadedHcnApi,
  body: (emu: ReturnType<typeof openEmulator>, api: ThreadedHcnApi) => Promise<void>,
): Promise<void> {
  const emu = openEmulator();
  const api = open(emu.library);
  try {
    await body(emu, api);
  } finally {
    api.dispose();
    emu.close();
  }
}

function threaded(library: string, threads?: number): ThreadedHcnApi {
  const api = openFfiHcnApi({ library, threads });
  ok(api instanceof ThreadedHcnApi);
  return api;
}

/** Every call on the HNS threads (work of one operation is already a batch). */
function allOnThreads(library: string, threads: number): ThreadedHcnApi {
  return new ThreadedHcnApi({ library, threads, threadFrom: 1 }, PoolCalls.open(library));
}

Deno.test("threads: objects, handles and strings cross threads intact; nothing leaks", () =>
  withThreads((library) => threaded(library, 3), async (emu, api) => {
    const client = createHnsClient(api, { listConcurrency: 16 });
    const net = await makeNetwork(api, { Name: "cbr0-ü" });
    const found = await client.findNetworkByName("cbr0-ü");
    equal(found?.ID, net);
    const created = await Promise.all(
      Array.from(
        { length: 40 },
        (_, i) =>
          client.createEndpoint(net, { IpConfigurations: [{ IpAddress: `10.1.0.${i + 2}` }] }),
      ),
    );
    const listed = await client.listEndpoints(net);
    equal(listed.length, 40);
    equal(
      new Set(listed.map((e) => e.ID)).size,
      new Set(created.map((e) => e.ID)).size,
    );
    // A handle opened on one thread is closed on whichever thread the close lands on.
    const handles = await Promise.all(created.map((e) => api.open("Endpoint", e.ID!)));
    await Promise.all(handles.map((h) => api.close("Endpoint", h)));
    assertNoLeaks(emu.control);
  }));

for (
  const [path, open] of [
    ["the pool", (library: string) => threaded(library)],
    ["an HNS thread", (library: string) => allOnThreads(library, 1)],
  ] as const
) {
  Deno.test(`threads: failures on ${path} arrive as HnsErrors with every field`, async () => {
    const emu = openEmulator();
    const api = open(emu.library);
    try {
      const invalid = await expectHnsError(api.open("Endpoint", "cbr0"), HResult.E_INVALIDARG);
      equal(invalid.operation, "HcnOpenEndpoint");
      equal(invalid.object, "cbr0");
      match(invalid.hnsMessage ?? "", /is not a GUID/);
      await expectHnsError(api.close("Endpoint", 12345n), HResult.E_HANDLE);
      await expectHnsError(api.close("Endpoint", "not a handle"), HResult.E_HANDLE);
      emu.control.failCall("HcnCreateLoadBalancer", 1, 0x803b0013 | 0);
      const client = createHnsClient(api);
      const err = await expectHnsError(
        client.createLoadBalancer(clusterIpLb("10.96.0.1", 80, [])),
        0x803b0013,
      );
      ok(err instanceof HnsError);
      equal(err.operation, "createLoadBalancer (HcnCreateLoadBalancer)");
      ok(err.errorRecord, "the error record crosses the thread boundary");
      // A failed Query after a good Open: the handle is closed all the same.
      const net = await makeNetwork(api, { Name: "cbr0" });
      emu.control.failCall("HcnQueryNetworkProperties", 1, 0x80070005 | 0);
      const read = await api.openQueryCloseMany!("Network", [net, net], "");
      ok(read[0] instanceof HnsError && read[0].hresult === 0x80070005, String(read[0]));
      match(String(read[1]), new RegExp(net, "i"));
      equal(api.threadsStarted, path === "the pool" ? 0 : 1);
      assertNoLeaks(emu.control);
    } finally {
      api.dispose();
      emu.close();
    }
  });
}

Deno.test("threads: a call blocking in HNS leaves timers running", () =>
  withThreads((library) => threaded(library, 1), async (emu, api) => {
    await api.enumerate("Network", "");
    emu.setLatencyMicros(400_000);
    const order: string[] = [];
    const call = api.enumerate("Network", "").then(() => order.push("call"));
    await new Promise((resolve) => setTimeout(resolve, 20)).then(() => order.push("timer"));
    await call;
    equal(order.join(","), "timer,call");
    assertNoLeaks(emu.control);
  }));

Deno.test("threads: slow calls spread over every thread; no more threads than asked", () =>
  withThreads((library) => allOnThreads(library, 3), async (emu, api) => {
    equal(api.threadsStarted, 0);
    // Calls on one object (a listing's time says nothing of those): not found, after 50 ms.
    const missing = () => api.open("Endpoint", crypto.randomUUID()).catch(() => undefined);
    await missing(); // the thread's first answer (compiling) is not timed
    emu.setLatencyMicros(50_000);
    // A thread is started for the calls' time once enough batches were timed.
    for (let i = 0; i < TIMED_BATCHES; i++) await missing();
    equal(api.threadsStarted, 1);
    await Promise.all(Array.from({ length: 6 }, missing));
    equal(api.threadsStarted, 3);
    assertNoLeaks(emu.control);
  }));

Deno.test("threads: a request of many fast items stays on one thread; of slow ones spreads over every thread", () =>
  withThreads((library) => allOnThreads(library, 3), async (emu, api) => {
    const missing = () => api.open("Endpoint", crypto.randomUUID()).catch(() => undefined);
    const lbs = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => JSON.stringify(clusterIpLb("10.0.0.1", from + i, [])));
    await missing(); // the thread's first answer (compiling) is not timed
    for (let i = 0; i < TIMED_BATCHES; i++) await missing();
    const fast = lbs(1000, 20);
    equal(
      (await api.createAndCloseMany("LoadBalancer", fast.map(() => newGuid()), fast)).length,
      0,
    );
    equal(api.threadsStarted, 1, "fast calls gather");
    emu.setLatencyMicros(20_000);
    for (let i = 0; i < TIMED_BATCHES; i++) await missing();
    const slow = lbs(80, 6);
    const ids = slow.map(() => newGuid());
    ids[4] = "not-a-guid";
    const failures = await api.createAndCloseMany("LoadBalancer", ids, slow);
    equal(api.threadsStarted, 3, "slow items spread");
    equal(failures.length, 1);
    equal(failures[0].index, 4, "the item's index in the whole request");
    equal((failures[0].error as HnsError).hresult, 0x80070057);
    equal(emu.control.objectCount("LoadBalancer"), 25);
    assertNoLeaks(emu.control);
  }));

Deno.test("threads: a request of many is answered once done, while the requests sent with it still run", () =>
  withThreads((library) => allOnThreads(library, 1), async (emu, api) => {
    const lbs = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => JSON.stringify(clusterIpLb("10.0.0.1", from + i, [])));
    emu.setLatencyMicros(20_000);
    // Two requests made in one turn travel to the one thread in one batch.
    const first = lbs(1000, 2);
    // 300 ms: the first answer is taken in before it ends, on a busy machine too.
    const second = lbs(2000, 15);
    let createdWhenFirstAnswered = -1;
    const answered = api.createAndCloseMany("LoadBalancer", first.map(() => newGuid()), first)
      .then((failures) => {
        createdWhenFirstAnswered = emu.control.objectCount("LoadBalancer");
        return failures;
      });
    const later = api.createAndCloseMany("LoadBalancer", second.map(() => newGuid()), second);
    equal((await answered).length, 0);
    equal((await later).length, 0);
    // The caller takes in the first answer while HNS works on the second request.
    ok(
      createdWhenFirstAnswered >= 2 && createdWhenFirstAnswered < 17,
      `${createdWhenFirstAnswered} of 17 created when the first request was answered`,
    );
    equal(emu.control.objectCount("LoadBalancer"), 17);
    assertNoLeaks(emu.control);
  }));

Deno.test("threads: a slow first call (code not yet compiled, say) starts no thread", () =>
  withThreads((library) => allOnThreads(library, 3), async (emu, api) => {
    const missing = () => api.open("Endpoint", crypto.randomUUID()).catch(() => undefined);
    await missing(); // the thread's first answer (compiling) is not timed
    emu.setLatencyMicros(50_000);
    await missing();
    emu.setLatencyMicros(0);
    // One timed call is not yet a measure of HNS: a burst queues on the one thread.
    await Promise.all(Array.from({ length: 20 }, missing));
    equal(api.threadsStarted, 1);
    assertNoLeaks(emu.control);
  }));

Deno.test("threads: one slow call among fast ones starts no thread", () =>
  withThreads((library) => allOnThreads(library, 3), async (emu, api) => {
    const missing = () => api.open("Endpoint", crypto.randomUUID()).catch(() => undefined);
    await missing(); // the thread's first answer (compiling) is not timed
    for (let i = 0; i < 4; i++) await missing();
    // A call that takes long once (a thread the OS set aside, say) …
    emu.setLatencyMicros(50_000);
    await missing();
    emu.setLatencyMicros(0);
    // … does not make the next burst of fast calls look like a queue of slow ones.
    await Promise.all(Array.from({ length: 6 }, missing));
    equal(api.threadsStarted, 1);
    assertNoLeaks(emu.control);
  }));

Deno.test("threads: listings kept apart start no thread, however many run at once", () =>
  withThreads((library) => threaded(library, 3), async (emu, api) => {
    const net = await makeNetwork(api, { Name: "cbr0" });
    emu.setLatencyMicros(50_000);
    const listed = await Promise.all(Array.from({ length: 4 }, () => api.enumerate("Network", "")));
    for (const ids of listed) match(ids, new RegExp(net));
    equal(api.threadsStarted, 0);
    assertNoLeaks(emu.control);
  }));

Deno.test("threads: an event's calls do not queue behind a listing kept apart", () =>
  withThreads((library) => allOnThreads(library, 1), async (emu, api) => {
    const net = await makeNetwork(api, { Name: "cbr0" });
    emu.setLatencyMicros(200_000);
    // An event's two calls on the one HNS thread, and a resync's listing, made in the same turn:
    // on that thread the listing would run after both calls.
    const order: string[] = [];
    const [first, second] = await Promise.all([
      api.open("Network", net).then((h) => (order.push("first call"), h)),
      api.open("Network", net).then((h) => (order.push("second call"), h)),
      api.enumerate("Network", "").then(() => order.push("listing")),
    ]);
    ok(order.indexOf("listing") < order.indexOf("second call"), order.join(", "));
    emu.setLatencyMicros(0);
    await api.close("Network", first);
    await api.close("Network", second);
    equal(api.threadsStarted, 1);
    assertNoLeaks(emu.control);
  }));

Deno.test("threads: listings not kept apart are parsed on the calls' thread; kept apart, they are answered to read here", () =>
  withThreads((library) => threadedIdleEnd(library, 3, 30, THREAD_FROM_OPS), async (emu, api) => {
    const net = await makeNetwork(api, { Name: "cbr0" });
    const client = createHnsClient(api);
    const created = await Promise.all(
      Array.from(
        { length: 30 },
        (_, i) =>
          client.createEndpoint(net, { IpConfigurations: [{ IpAddress: `10.1.0.${i + 2}` }] }),
      ),
    );
    const expected = created.map((e) => e.ID!.toUpperCase()).sort();
    await eventually(() => api.threadsRunning === 0);
    const started = api.threadsStarted;
    api.keepListingsApart(false);
    equal(api.threadsStarted, started + 1, "a start's reads: a thread starts now");
    const parsed = await api.enumerateIds("Endpoint", "");
    ok(isIdListingData(parsed), "parsed on the thread");
    equal([...IdListing.from(parsed)].sort().join(), expected.join());
    // Serving events: no thread starts, and the answer comes as HNS handed it over.
    api.keepListingsApart(true);
    const answer: IdListingAnswer = await api.enumerateIds("Endpoint", "");
    ok(!isIdListingData(answer), "the answer itself");
    equal(emu.control.outstandingStrings(), 1, "held until read");
    const read = await IdListing.read("Endpoint", answer);
    equal([...read].sort().join(), expected.join());
    equal(api.threadsStarted, started + 1);
    assertNoLeaks(emu.control);
  }));

Deno.test("threads: a listing kept apart is read on the event loop's thread in paced slices", () =>
  withThreads((library) => threaded(library, 2), async (emu, api) => {
    const net = await makeNetwork(api, { Name: "cbr0" });
    const client = createHnsClient(api);
    const ids = Array.from({ length: 3000 }, () => newGuid());
    const settings = ids.map((_, i) =>
      JSON.stringify({
        HostComputeNetwork: net,
        IpConfigurations: [{ IpAddress: `10.2.${i >> 7}.${(i & 127) + 1}` }],
        SchemaVersion: { Major: 2, Minor: 0 },
      })
    );
    const handle = await api.open("Network", net);
    equal((await api.createAndCloseMany("Endpoint", ids, settings, handle)).length, 0);
    await api.close("Network", handle);
    // A pacer that yields every 256 steps, as a resync's does once its slice is spent.
    let steps = 0;
    let yields = 0;
    let timersRan = 0;
    const pace = {
      step: () => {
        if (++steps % 256 !== 0) return undefined;
        yields++;
        setTimeout(() => timersRan++, 0);
        return new Promise<void>((resolve) => setTimeout(resolve, 0));
      },
    };
    const listing = await client.listIds("Endpoint", pace);
    equal(listing.size, 3000);
    for (const id of ids) ok(listing.has(id.toUpperCase()), id);
    ok(steps >= 3000, `a step per ID (${steps})`);
    ok(yields >= 11 && timersRan >= 11, "the event loop turned between slices");
    equal(api.threadsStarted, 1);
    assertNoLeaks(emu.control);
  }));

/**
 * As openFfiHcnApi does, with threads that end after `idleEndMs` without a
 * call; every call on the threads unless `threadFrom` is given.
 */
function threadedIdleEnd(
  library: string,
  threads: number,
  idleEndMs: number,
  threadFrom = 1,
): ThreadedHcnApi {
  return new ThreadedHcnApi({ library, threads, idleEndMs, threadFrom }, PoolCalls.open(library));
}

/** Resolves once `check` holds, looking every few milliseconds; fails after 20 s. */
async function eventually(check: () => boolean): Promise<void> {
  const until = performance.now() + 20_000;
  while (!check()) {
    ok(performance.now() < until, "never came true");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("threads: a thread with calls pending does not end while they take long", () =>
  withThreads((library) => threadedIdleEnd(library, 3, 20), async (emu, api) => {
    const missing = () => api.open("Endpoint", crypto.randomUUID()).catch((e) => e);
    await missing(); // the thread's first answer (compiling) is not timed
    emu.setLatencyMicros(60_000);
    for (let i = 0; i < TIMED_BATCHES; i++) await missing();
    // Each call takes three times the idle limit; every one is answered by HNS.
    const errors = await Promise.all(Array.from({ length: 9 }, missing));
    equal(api.threadsStarted, 3);
    for (const err of errors) ok(err instanceof HnsError, String(err));
    emu.setLatencyMicros(0);
    // Idle, they end, the last one too, and a listing (kept apart) starts none.
    await eventually(() => api.threadsRunning === 0);
    match(await api.enumerate("Network", ""), /^\[/);
    equal(api.threadsStarted, 3);
    ok((await missing()) instanceof HnsError, "a later call starts a thread again");
    equal(api.threadsStarted, 4);
    assertNoLeaks(emu.control);
  }));

Deno.test("threads: dispose lets calls already made finish, then refuses more", () =>
  withThreads((library) => threaded(library, 2), async (emu, api) => {
    const net = await makeNetwork(api, { Name: "cbr0" });
    emu.setLatencyMicros(100_000);
    const opening = api.open("Network", net);
    const listing = api.enumerate("Network", "");
    api.dispose();
    const handle = await opening;
    match(await listing, new RegExp(net));
    equal(emu.control.outstandingStrings(), 0, "the listing's string was freed");
    // The threads are still there for the calls made before dispose; a new call is refused.
    await rejects(
      api.close("Network", handle),
      /HNS library is closed; cannot call HcnCloseNetwork/,
    );
    equal(emu.control.openHandles(), 1, "the handle opened during dispose was handed over");
  }));

Deno.test("threads: dispose keeps the libraries until every listing answered is released", async () => {
  const emu = openEmulator();
  const api = new ThreadedHcnApi({ library: emu.library }, PoolCalls.open(emu.library));
  try {
    const net = await makeNetwork(api, { Name: "cbr0" });
    const answer = await api.enumerateIds("Network", "");
    api.dispose();
    equal(api.threadsRunning, 0, "no call was pending: the threads ended");
    equal(api.released, false, "the answer still lives in HNS's memory");
    const listing = await IdListing.read("Network", answer);
    ok(listing.has(net.toUpperCase()));
    equal(api.released, true, "released with the answer");
    equal(emu.control.outstandingStrings(), 0, "the answer was freed");
  } finally {
    api.dispose();
    emu.close();
  }
});

/** `n` load balancer settings on ports from `from`. */
function lbSettings(from: number, n: number): string[] {
  return Array.from({ length: n }, (_, i) => JSON.stringify(clusterIpLb("10.0.0.1", from + i, [])));
}

Deno.test("threads: a change's calls run on the pool: no HNS thread starts", () =>
  withThreads((library) => threaded(library), async (emu, api) => {
    const client = createHnsClient(api);
    const net = await makeNetwork(api, { Name: "cbr0" });
    await client.version();
    const eps = await client.createEndpoints(net, [
      { IpConfigurations: [{ IpAddress: "10.1.0.2" }] },
      { IpConfigurations: [{ IpAddress: "10.1.0.3" }] },
    ]);
    equal(eps.failures.length, 0);
    const lb = await client.createLoadBalancer(clusterIpLb("10.96.0.1", 80, [eps.sent[0].ID!]));
    await client.modifyLoadBalancer(
      lb.ID!,
      clusterIpLb("10.96.0.1", 80, eps.sent.map((e) => e.ID!)),
    );
    equal((await client.getLoadBalancer(lb.ID!))?.HostComputeEndpoints.length, 2);
    equal((await client.getEndpoints(eps.sent.map((e) => e.ID!))).length, 2);
    await client.deleteLoadBalancer(lb.ID!);
    await client.deleteEndpoint(eps.sent[1].ID!);
    equal(emu.control.objectCount("Endpoint"), 1);
    equal(api.threadsStarted, 0, "no worker for small work");
    equal(api.threadsRunning, 0);
    assertNoLeaks(emu.control);
  }));

Deno.test("threads: a large batch starts a thread, which ends once idle; the next batch starts another", () =>
  withThreads((library) => threadedIdleEnd(library, 2, 30, 24), async (emu, api) => {
    // A batch from 24 operations made since HNS was last idle.
    const ids = (n: number) => Array.from({ length: n }, () => newGuid());
    equal((await api.createAndCloseMany("LoadBalancer", ids(48), lbSettings(1000, 48))).length, 0);
    equal(api.threadsStarted, 1, "a request of 48 creates is a batch");
    equal(api.threadsRunning, 1);
    await eventually(() => api.threadsRunning === 0);
    // Small work in between starts none.
    equal((await api.createAndCloseMany("LoadBalancer", ids(3), lbSettings(2000, 3))).length, 0);
    equal(api.threadsStarted, 1);
    // A burst of single calls is a batch too.
    const missing = () => api.open("Endpoint", newGuid()).catch((e) => e);
    const errors = await Promise.all(Array.from({ length: 40 }, missing));
    for (const err of errors) ok(err instanceof HnsError, String(err));
    equal(api.threadsStarted, 2, "a new thread for the next batch");
    await eventually(() => api.threadsRunning === 0);
    equal(emu.control.objectCount("LoadBalancer"), 51);
    assertNoLeaks(emu.control);
  }));

Deno.test("threads: dispose releases the libraries only once the pool's and the threads' calls answered", async () => {
  const emu = openEmulator();
  const api = new ThreadedHcnApi(
    { library: emu.library, threadFrom: 4 },
    PoolCalls.open(emu.library),
  );
  try {
    const net = await makeNetwork(api, { Name: "cbr0" });
    emu.setLatencyMicros(50_000);
    const small = api.openQueryClose("Network", net, "");
    const large = api.openQueryCloseMany("Network", [net, net, net, net, net], "");
    equal(api.threadsStarted, 1, "the request of five ran on a thread");
    api.dispose();
    await rejects(api.open("Network", net), /HNS library is closed; cannot call HcnOpenNetwork/);
    equal(api.released, false, "calls are in flight");
    match(await small, new RegExp(net, "i"));
    equal((await large).length, 5);
    await eventually(() => api.released);
    equal(api.threadsRunning, 0);
    emu.setLatencyMicros(0);
    assertNoLeaks(emu.control);
  } finally {
    api.dispose();
    emu.close();
  }
});

Deno.test("threads: dispose keeps the libraries between the items of a request of many on the pool", async () => {
  const emu = openEmulator();
  const api = threaded(emu.library);
  try {
    const net = await makeNetwork(api, { Name: "cbr0" });
    emu.setLatencyMicros(20_000);
    // On the pool, one item after the other: nothing runs there between them.
    const pooled = api.openQueryCloseMany("Network", [net, net, net], "");
    api.dispose();
    const read = await pooled;
    equal(read.length, 3);
    for (const item of read) match(String(item), new RegExp(net, "i"));
    equal(api.threadsStarted, 0);
    equal(api.released, true);
    emu.setLatencyMicros(0);
    assertNoLeaks(emu.control);
  } finally {
    api.dispose();
    emu.close();
  }
});

Deno.test("threads: a start's thread outlives the start's gaps and ends when the agent serves events", () =>
  withThreads((library) => threadedIdleEnd(library, 2, 20, THREAD_FROM_OPS), async (emu, api) => {
    api.keepListingsApart(false);
    equal(api.threadsRunning, 1, "started for the start's reads");
    const net = await makeNetwork(api, { Name: "cbr0" });
    match(await api.enumerate("Network", ""), new RegExp(net));
    // Planning between the reads and the creates: longer than the idle limit.
    await new Promise((resolve) => setTimeout(resolve, 100));
    equal(api.threadsRunning, 1, "kept through the start's gaps");
    equal(api.threadsStarted, 1, "the start's calls all went to that thread");
    api.keepListingsApart(true);
    equal(api.threadsRunning, 0, "ready: nothing pending, so it ends at once");
    // Serving events: small work runs with no thread.
    match(await api.enumerate("Network", ""), new RegExp(net));
    await makeNetwork(api, { Name: "cbr1" });
    equal(api.threadsStarted, 1);
    assertNoLeaks(emu.control);
  }));

Deno.test("threads: on the pool, no more calls run at once than threads asked for; the others wait their turn in order", () =>
  withThreads((library) => threaded(library, 2), async (emu, api) => {
    const net = await makeNetwork(api, { Name: "cbr0" });
    emu.setLatencyMicros(20_000);
    // Eight calls of one change's size, made in one turn (small work, so on the pool), and a
    // resync's listing: the listing takes no turn, so it is not held behind the calls.
    const order: string[] = [];
    const calls = Array.from(
      { length: 8 },
      (_, i) => api.open("Network", net).then((h) => (order.push(`call ${i}`), h)),
    );
    const listed = api.enumerate("Network", "").then(() => order.push("listing"));
    const handles = await Promise.all(calls);
    await listed;
    emu.setLatencyMicros(0);
    for (const h of handles) await api.close("Network", h);
    equal(api.threadsStarted, 0, "small work: no worker");
    equal(api.poolCallsPeak, 2, "at most --hns-concurrency calls at once");
    // Turns go in the order the calls were made: the first two end before the last two.
    const at = (what: string) => order.indexOf(what);
    ok(at("call 0") < at("call 7") && at("call 1") < at("call 6"), order.join(", "));
    ok(at("listing") < at("call 7"), order.join(", "));
    assertNoLeaks(emu.control);
  }));

Deno.test("threads: a start's read ahead of many fast objects is kept far ahead on its one thread; other reads, and once ready, as before", () =>
  withThreads((library) => threaded(library, 4), async (emu, api) => {
    const made = Array.from({ length: 2000 }, (_, i) => clusterIpLb("10.0.0.1", 1000 + i, []));
    const { sent, failures } = await createHnsClient(api).createLoadBalancers(made);
    equal(failures.length, 0);
    const ids = sent.map((lb) => lb.ID!);
    let inFlight = 0;
    let most = 0;
    const counted = delegateHcnApi(api, {
      async openQueryCloseMany(kind, items, query) {
        most = Math.max(most, ++inFlight);
        try {
          return await api.openQueryCloseMany(kind, items, query);
        } finally {
          inFlight--;
        }
      },
      dispose: () => {},
    });
    const client = createHnsClient(counted, { listConcurrency: api.callsInFlight });
    api.keepListingsApart(false); // a start
    const started = api.threadsStarted;
    const kept = Math.ceil(api.callsInFlight / READS_PER_REQUEST);
    // The first requests time the items; from then on a read ahead is kept far ahead.
    for (let round = 0; round < 3; round++) {
      equal((await client.getLoadBalancers(ids, { ahead: true })).length, ids.length);
    }
    ok(api.readsInFlight > api.callsInFlight, "fast items: read far ahead at a start");
    ok(most > Math.max(3, kept), `requests in flight: ${most}`);
    equal(api.threadsStarted, started, "a queue kept ahead starts no further thread");
    equal(api.threadsRunning, 1);
    most = 0;
    equal((await client.getLoadBalancers(ids)).length, ids.length);
    ok(most <= Math.max(3, kept), `requests in flight, not read ahead: ${most}`);
    api.keepListingsApart(true); // ready
    equal(api.readsInFlight, api.callsInFlight, "once ready, as many as calls");
    most = 0;
    equal((await client.getLoadBalancers(ids, { ahead: true })).length, ids.length);
    ok(most <= Math.max(3, kept), `requests in flight once ready: ${most}`);
    equal(emu.control.objectCount("LoadBalancer"), ids.length);
    assertNoLeaks(emu.control);
  }));
