/**
 * bench/agent_host.ts: the agent in its own process, driven and observed
 * from here (real processes: the agent host and the fake API server).
 *
 * @module
 */

import assert from "node:assert/strict";
import { AgentHost } from "../../bench/agent_host.ts";
import { ApiServerProcess } from "../../bench/apiserver.ts";
import { totalCalls } from "../../bench/emulator.ts";
import { withTimeout } from "../../bench/harness.ts";
import { LatencyTracker } from "../../bench/latency.ts";
import { expectedHns, issueSpec } from "../../bench/scenario.ts";

Deno.test("agent host: the agent converges in the host, its syncs, writes and memory are reported", async () => {
  const spec = issueSpec(20);
  const expected = expectedHns(spec);
  const api = ApiServerProcess.start();
  let host = await AgentHost.start();
  const dir = await Deno.makeTempDir();
  try {
    assert.notEqual(host.pid, Deno.pid);
    await host.seed(spec);
    const seeded = await host.hns();
    assert.equal(seeded.endpoints, expected.localEndpoints);
    // Another host made the objects: this one only loaded them, and has made no HNS call.
    assert.equal(totalCalls(seeded.calls), 0, JSON.stringify(seeded.calls));
    const { url } = await api.seed(spec);
    // The API server process collects its garbage before an agent is measured.
    const collectMs = await api.collectGarbage();
    assert.ok(Number.isFinite(collectMs) && collectMs >= 0, `collection took ${collectMs} ms`);
    const idle = await host.memory(true);
    assert.ok(idle.rss > 0 && idle.emulatorHeap > 0, JSON.stringify(idle));
    assert.ok(host.resetPeakRss(), "the host's peak RSS can be reset from here");

    const agent = await host.startAgent({ apiUrl: url, stateFile: `${dir}/state.json` });
    const readyAt = await agent.ready(30_000);
    assert.ok(readyAt >= agent.startedAt, "ready after the start, on one clock");
    const convergedAt = await host.waitConverged(expected, 30_000);
    assert.ok(convergedAt >= agent.startedAt);
    assert.ok(agent.syncs.some((s) => s.kind === "start"), "the first sync was reported");
    const first = await host.firstSyncMemory();
    assert.ok(first, "a memory sample after the first sync");
    assert.ok(first.heapTotal >= first.heapUsed && first.heapUsed > 0);
    assert.ok(first.hnsThreads >= 1, "the agent's HNS threads are counted");
    assert.ok(host.peakRss() >= idle.rss * 0.5 && host.cpu().processMs > 0);
    assert.deepEqual(await host.verify(spec, expected, "20 services"), []);

    // LB writes reach a tracker here, timed on the bench's clock.
    const tracker = await LatencyTracker.attach(spec, host);
    const done = tracker.track(3, performance.timeOrigin + performance.now(), 6);
    await api.addEndpoint(3);
    const ms = await withTimeout(done, 30_000);
    assert.ok(ms > 0, `latency ${ms}`);
    await host.onLbWrite(undefined);

    const log = await agent.stop();
    assert.equal(log.errors, 0, log.samples.join("\n"));
    // Service 3 has one more backend now: the old expectation fails, the new one holds.
    const failures = await host.verify(spec, expected, "20 services");
    assert.match(failures.join("\n"), /20 services: LB 10\.96\.0\.19:80 of service 3/);
    assert.deepEqual(await host.verify(spec, expected, "x", new Map([[3, 1]])), []);
    const held = await host.hns();
    assert.equal(held.openHandles, 0, "the stopped agent closed its handles");

    // A fresh host gets the same HNS (what a restart on a node is), the old one is gone.
    const old = host.pid;
    host = await host.handOver();
    assert.notEqual(host.pid, old);
    const handed = await host.hns();
    assert.equal(handed.loadBalancers, held.loadBalancers);
    assert.equal(handed.endpoints, held.endpoints);
    assert.ok(handed.heapBytes > 0);
    assert.deepEqual(await host.verify(spec, expected, "x", new Map([[3, 1]])), []);
  } finally {
    await host.close();
    await api.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent host: a peak window pairs the host's RSS with the emulated HNS's heap of the moment", async () => {
  const spec = issueSpec(20);
  const host = await AgentHost.start();
  try {
    await assert.rejects(host.readPeak(), /no peak window started/);
    await host.seed(spec);
    await host.startPeak(10);
    // The bench's own collection in the window is taken aside, not counted against the agent.
    await host.memory(true, false);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const held = (await host.hns()).heapBytes;
    const f = await host.readPeak(true);
    assert.ok(f.readings >= 4, JSON.stringify(f));
    assert.equal(f.emu, held, "the emulated HNS's heap subtracted is its own at a reading");
    assert.equal(f.agent, f.rss - f.emu);
    assert.ok(f.agent > 0 && f.hostPeak >= f.rss, JSON.stringify(f));
    await assert.rejects(host.readPeak(), /no peak window started/, "the window ended");
  } finally {
    await host.close();
  }
});

Deno.test("agent host: a bare agent process reports its memory before it starts", async () => {
  const bare = await AgentHost.bareAgentMemory();
  assert.ok(bare.rss > bare.rssFile && bare.rssFile > 0, JSON.stringify(bare));
  assert.ok(bare.heapUsed > 0 && bare.heapTotal >= bare.heapUsed, JSON.stringify(bare));
});

Deno.test("agent host: a command that fails is answered with the host's error", async () => {
  const host = await AgentHost.start();
  try {
    await assert.rejects(
      host.writeHeapSnapshot("/nonexistent-dir/x.heapsnapshot"),
      /agent host: heapSnapshot/,
    );
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/bad.json`, "not json");
      await assert.rejects(
        host.loadSavedState(`${dir}/bad.json`),
        /could not load a saved state from .*bad\.json/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  } finally {
    await host.close();
  }
});
