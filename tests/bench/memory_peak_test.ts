/**
 * bench/memory_peak.ts: the agent's peak pairs the host's RSS with the
 * emulated HNS's heap of the same moment.
 *
 * @module
 */

import assert from "node:assert/strict";
import { AgentPeak } from "../../bench/memory_peak.ts";

const MiB = 1 << 20;
const reading = (rss: number, hwm: number, emu: number) => ({
  rss: rss * MiB,
  hwm: hwm * MiB,
  emu: emu * MiB,
});

Deno.test("agent peak: a host peak before the emulated HNS grew is the agent's, not net of the later heap", () => {
  // A cold start: the agent peaks while planning, then the creates fill the emulated HNS.
  const peak = new AgentPeak();
  peak.add(reading(100, 100, 25));
  peak.add(reading(185, 185, 25));
  peak.add(reading(250, 250, 100));
  peak.add(reading(308, 308, 157));
  const f = peak.figure;
  // Host peak 308 minus the heap at its end (157) would say 151.
  assert.equal(f.agent, 160 * MiB);
  assert.equal(f.rss, 185 * MiB);
  assert.equal(f.emu, 25 * MiB);
  assert.equal(f.hostPeak, 308 * MiB);
  assert.equal(f.readings, 4);
  assert.equal(f.emuLow, 25 * MiB);
  assert.equal(f.emuHigh, 157 * MiB);
});

Deno.test("agent peak: a host peak while the emulated HNS held less counts against that heap, not the end's", () => {
  // Churn: the host's RSS is flat while the emulated HNS's heap grows under it.
  const peak = new AgentPeak();
  peak.add(reading(310, 310, 157));
  peak.add(reading(312, 312, 158));
  peak.add(reading(312, 312, 165));
  assert.equal(peak.figure.agent, 154 * MiB);
});

Deno.test("agent peak: a high-water mark set between readings counts against the smaller heap of the two", () => {
  const peak = new AgentPeak();
  peak.add(reading(300, 300, 150));
  // RSS went up to 320 and back between the readings while the heap went from 150 to 160.
  peak.add(reading(305, 320, 160));
  assert.equal(peak.figure.agent, 170 * MiB);
  // A mark that did not move is not counted again against a smaller heap.
  peak.add(reading(300, 320, 140));
  assert.equal(peak.figure.agent, 170 * MiB);
  // After a reset (the mark went down), a mark set anew counts.
  peak.add(reading(290, 315, 130));
  assert.equal(peak.figure.agent, 185 * MiB);
});

Deno.test("agent peak: with the emulated HNS's heap held still (a reserve), a mark between readings is exact", () => {
  const peak = new AgentPeak();
  peak.add(reading(250, 250, 111));
  // A transient between the readings: the heap is the same at every moment, so the mark less it.
  peak.add(reading(255, 262, 111));
  peak.add(reading(258, 262, 111));
  const f = peak.figure;
  assert.equal(f.agent, 151 * MiB);
  assert.equal(f.emu, 111 * MiB);
  assert.equal(f.emuLow, f.emuHigh);
});

Deno.test("agent peak: no reading, no figure", () => {
  const f = new AgentPeak().figure;
  assert.ok(Number.isNaN(f.agent));
  assert.ok(Number.isNaN(f.emuLow) && Number.isNaN(f.emuHigh));
});
