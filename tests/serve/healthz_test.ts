import assert from "node:assert/strict";
import {
  goTime,
  isNodeEligible,
  ProxyHealth,
  serveHealthz,
  TO_BE_DELETED_TAINT,
} from "../../lib/serve/healthz.ts";
import { ProxyMetrics, serveMetrics } from "../../lib/serve/metrics.ts";
import { parseExposition } from "./prom.ts";

const T0 = Date.UTC(2024, 10, 22, 2, 56, 54, 123);

function clock(start = T0) {
  let t = start;
  return { now: () => t, set: (ms: number) => (t = ms), advance: (ms: number) => (t += ms) };
}

Deno.test("goTime prints Go's time.Time.String() in UTC", () => {
  assert.equal(goTime(T0), "2024-11-22 02:56:54.123 +0000 UTC");
  assert.equal(goTime(Date.UTC(2024, 0, 2, 3, 4, 5)), "2024-01-02 03:04:05 +0000 UTC");
  assert.equal(goTime(Date.UTC(2024, 0, 2, 3, 4, 5) + 0.5), "2024-01-02 03:04:05.0005 +0000 UTC");
  assert.equal(goTime(undefined), "0001-01-01 00:00:00 +0000 UTC");
});

Deno.test("ProxyHealth: unhealthy only when a queued sync is late", () => {
  const c = clock();
  const h = new ProxyHealth({ healthTimeoutMs: 60_000, now: c.now });
  assert.equal(h.isHealthy(), true, "healthy while starting");
  h.queued();
  c.advance(59_999);
  assert.equal(h.isHealthy(), true, "queued but not late yet");
  h.queued(); // a later change does not move the oldest pending time
  c.advance(1);
  assert.equal(h.isHealthy(), false, "late");
  h.updated();
  assert.equal(h.isHealthy(), true);
  assert.equal(h.status().lastUpdatedMs, T0 + 60_000);
  c.advance(10 * 60_000);
  assert.equal(h.isHealthy(), true, "no pending change: idle is healthy");
  h.queued(T0);
  assert.equal(h.isHealthy(), false, "explicit timestamps are honoured");
  assert.throws(() => new ProxyHealth({ healthTimeoutMs: 0 }), RangeError);
});

Deno.test("isNodeEligible: deletion timestamp or autoscaler taint", () => {
  assert.equal(isNodeEligible({}), true);
  assert.equal(isNodeEligible({ taints: [{ key: "node.kubernetes.io/not-ready" }] }), true);
  assert.equal(isNodeEligible({ taints: [{ key: TO_BE_DELETED_TAINT }] }), false);
  assert.equal(isNodeEligible({ deletionTimestamp: "2024-11-22T02:56:54Z" }), false);
});

Deno.test("/healthz and /livez over HTTP, with their counters", async () => {
  const c = clock();
  const health = new ProxyHealth({ healthTimeoutMs: 60_000, now: c.now });
  const metrics = new ProxyMetrics({ now: c.now });
  const server = serveHealthz("127.0.0.1:0", health, metrics);
  const metricsServer = serveMetrics("127.0.0.1:0", metrics);
  try {
    assert.ok(server.port > 0);
    const get = async (path: string) => {
      const res = await fetch(server.url + path);
      return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
    };

    // Starting up, then one successful sync.
    let r = await get("/healthz");
    assert.equal(r.status, 200);
    assert.equal(r.type, "application/json");
    assert.equal(
      r.body,
      '{"lastUpdated": "2024-11-22 02:56:54.123 +0000 UTC",' +
        '"currentTime": "2024-11-22 02:56:54.123 +0000 UTC", "nodeEligible": true}',
    );
    health.queued();
    c.advance(500);
    health.updated();
    c.advance(30_000);
    r = await get("/livez");
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), {
      lastUpdated: "2024-11-22 02:57:24.623 +0000 UTC",
      currentTime: "2024-11-22 02:57:24.623 +0000 UTC",
    });

    // A change is queued and the sync never completes.
    health.queued();
    c.advance(60_000);
    r = await get("/healthz");
    assert.equal(r.status, 503);
    assert.deepEqual(JSON.parse(r.body), {
      lastUpdated: "2024-11-22 02:56:54.623 +0000 UTC",
      currentTime: "2024-11-22 02:58:24.623 +0000 UTC",
      nodeEligible: true,
    });
    assert.equal((await get("/livez")).status, 503);

    // Synced again, but the node is being deleted: /healthz fails, /livez does not.
    health.updated();
    health.setNodeEligible(false);
    r = await get("/healthz");
    assert.equal(r.status, 503);
    assert.equal(JSON.parse(r.body).nodeEligible, false);
    assert.equal((await get("/livez")).status, 200);
    assert.equal((await get("/other")).status, 404);

    const res = await fetch(metricsServer.url + "/metrics");
    const { samples } = parseExposition(await res.text());
    assert.equal(samples.get('kubeproxy_proxy_healthz_total{code="200"}'), 1);
    assert.equal(samples.get('kubeproxy_proxy_healthz_total{code="503"}'), 2);
    assert.equal(samples.get('kubeproxy_proxy_livez_total{code="200"}'), 2);
    assert.equal(samples.get('kubeproxy_proxy_livez_total{code="503"}'), 1);
  } finally {
    await server.close();
    await metricsServer.close();
  }
});
