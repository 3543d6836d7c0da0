import assert from "node:assert/strict";
import { formatDuration, parseDuration } from "../../lib/config/duration.ts";
import { hasMessage } from "./helpers.ts";
import { toBindAddress, toCIDRs, toFeatureGates } from "../../lib/config/values.ts";

Deno.test("parseDuration reads Go durations", () => {
  const cases: [string, number | undefined][] = [
    ["30s", 30_000],
    ["1m0s", 60_000],
    ["1h2m3.5s", 3_723_500],
    ["250ms", 250],
    ["1.5s", 1500],
    ["0", 0],
    ["0s", 0],
    ["-1s", -1000],
    ["1500us", 1.5],
    ["2h", 7_200_000],
    ["", undefined],
    ["30", undefined],
    ["s", undefined],
    ["1d", undefined],
    ["1m 0s", undefined],
  ];
  for (const [text, want] of cases) assert.deepEqual(parseDuration(text), want, text);
});

Deno.test("formatDuration writes what Go prints", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [30_000, "30s"],
    [60_000, "1m0s"],
    [90_000, "1m30s"],
    [3_600_000, "1h0m0s"],
    [900_000, "15m0s"],
    [1500, "1.5s"],
    [250, "250ms"],
  ];
  for (const [ms, want] of cases) assert.deepEqual(formatDuration(ms), want, String(ms));
  for (const [ms] of cases) assert.deepEqual(parseDuration(formatDuration(ms)), ms);
});

Deno.test("bind addresses get the default port and keep IPv6 brackets", () => {
  assert.deepEqual(toBindAddress("x", "0.0.0.0", 10256), "0.0.0.0:10256");
  assert.deepEqual(toBindAddress("x", "::", 10256), "[::]:10256");
  assert.deepEqual(toBindAddress("x", "[::1]", 10249), "[::1]:10249");
  assert.deepEqual(toBindAddress("x", "[::1]:9000", 10249), "[::1]:9000");
  assert.deepEqual(toBindAddress("x", "", 10249), "");
  assert.throws(() => toBindAddress("--metrics-bind-address", "localhost:1", 1), {
    name: "ConfigError",
    message:
      '--metrics-bind-address: "localhost:1" is not an ip:port address (e.g. 0.0.0.0:10256, [::]:10256)',
  });
});

Deno.test("cluster CIDRs: one per family", () => {
  assert.deepEqual(toCIDRs("c", "10.244.0.0/16,fd00::/56"), ["10.244.0.0/16", "fd00::/56"]);
  assert.deepEqual(toCIDRs("c", ""), []);
  assert.throws(() => toCIDRs("c", "10.0.0.0/8,10.1.0.0/16"), hasMessage("more than one IPv4"));
  assert.throws(() => toCIDRs("c", "10.0.0.0"), hasMessage('"10.0.0.0" is not a CIDR'));
});

Deno.test("feature gates from flags and from files", () => {
  assert.deepEqual(toFeatureGates("g", "A=true, B=false"), { A: true, B: false });
  assert.deepEqual(toFeatureGates("g", { A: true }), { A: true });
  assert.throws(() => toFeatureGates("g", "A"), hasMessage('g: "A" is not a key=value pair'));
  assert.throws(() => toFeatureGates("g", "A=maybe"), hasMessage('g A: "maybe" is not a boolean'));
  assert.throws(() => toFeatureGates("g", { A: "yes" }), hasMessage('g.A: "yes" is not a boolean'));
});
