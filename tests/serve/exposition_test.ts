/**
 * lib/serve/exposition.ts against prom-client 15 (kept as a test-only
 * reference): the same registrations and updates give the same text.
 */

import assert from "node:assert/strict";
import * as prom from "prom-client";
import * as ours from "../../lib/serve/exposition.ts";
import { prng } from "../prng.ts";

type Impl = typeof ours | typeof prom;

/** The metrics of one registry, built with `impl`; `update(i, r)` applies step i's random draw r. */
function build(impl: Impl) {
  const registry = new impl.Registry();
  const registers = [registry] as never[];
  const plain = new impl.Counter({ name: "plain_total", help: "no labels", registers });
  const counter = new impl.Counter({
    name: "calls_total",
    help: 'two labels, a "quoted" \\ help\nline',
    labelNames: ["operation", "hresult"],
    registers,
  });
  const gauge = new impl.Gauge({
    name: "objects",
    help: "one label",
    labelNames: ["kind"],
    registers,
  });
  const plainGauge = new impl.Gauge({ name: "waiting", help: "no labels", registers });
  const histogram = new impl.Histogram({
    name: "duration_seconds",
    help: "a histogram",
    buckets: [0, 0.25, 0.5, 1, 2.5, 60],
    labelNames: ["ip_family"],
    registers,
  });
  const plainHistogram = new impl.Histogram({
    name: "plan_operations",
    help: "no labels",
    buckets: [1, 10, 100],
    registers,
  });
  const kinds = ["loadbalancer", 'we"ird\\kind\n', "endpoint"];
  const ops = ["HcnCreateEndpoint", "HcnOpenLoadBalancer"];
  return {
    registry,
    update(r: () => number) {
      const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
      switch (Math.floor(r() * 7)) {
        case 0:
          plain.inc();
          break;
        case 1:
          // Label objects in either key order: the first order given is kept.
          counter.inc(
            r() < 0.5
              ? { operation: pick(ops), hresult: "0x80070005" }
              : { hresult: "0x80070005", operation: pick(ops) },
            Math.floor(r() * 3),
          );
          break;
        case 2:
          gauge.set({ kind: pick(kinds) }, Math.floor(r() * 100) - 50);
          break;
        case 3:
          plainGauge.set(r() < 0.1 ? NaN : r() * 1e6);
          break;
        case 4:
          histogram.observe(
            { ip_family: pick(["IPv4", "IPv6"]) },
            pick([0, 0.25, 0.3, 1, 61, r()]),
          );
          break;
        case 5:
          plainHistogram.observe(Math.floor(r() * 200));
          break;
        default:
          plain.inc(r() * 10);
      }
    },
  };
}

Deno.test("exposition: the same text as prom-client, before and after random updates", async () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const a = build(ours);
    const b = build(prom);
    assert.equal(await a.registry.metrics(), await b.registry.metrics(), "no update yet");
    const ra = prng(seed);
    const rb = prng(seed);
    for (let i = 0; i < 300; i++) {
      a.update(ra);
      b.update(rb);
      if (i % 50 === 0) assert.equal(await a.registry.metrics(), await b.registry.metrics());
    }
    assert.equal(await a.registry.metrics(), await b.registry.metrics(), `seed ${seed}`);
  }
  assert.equal(new ours.Registry().contentType, new prom.Registry().contentType);
});

Deno.test("exposition: refused updates throw and record nothing, as prom-client's", async () => {
  for (const impl of [ours, prom] as Impl[]) {
    const { registry } = build(impl);
    const before = await registry.metrics();
    const c = new impl.Counter({ name: "c_total", help: "h", labelNames: ["a"] });
    const g = new impl.Gauge({ name: "g", help: "h" });
    const h = new impl.Histogram({ name: "h", help: "h", buckets: [1], labelNames: ["a"] });
    assert.throws(() => c.inc({ a: "x" }, -1), /decrease/);
    assert.throws(() => c.inc({ a: "x" }, Infinity), TypeError);
    assert.throws(() => c.inc({ b: "x" } as never), /not included in initial labelset/);
    assert.throws(() => g.set("1" as never), TypeError);
    assert.throws(() => h.observe({ a: "x" }, NaN), TypeError);
    assert.throws(() =>
      new impl.Histogram({ name: "x", help: "h", buckets: [1], labelNames: ["le"] })
    );
    assert.throws(() =>
      registry.registerMetric(new impl.Counter({ name: "plain_total", help: "h" }) as never)
    );
    assert.equal(await registry.metrics(), before);
  }
});

Deno.test("exposition: a gauge's collect runs before each scrape", async () => {
  const registry = new ours.Registry();
  let n = 0;
  new ours.Gauge({
    name: "scrapes",
    help: "h",
    registers: [registry],
    collect() {
      this.set(++n);
    },
  });
  assert.match(await registry.metrics(), /^scrapes 1$/m);
  assert.match(await registry.metrics(), /^scrapes 2$/m);
});
