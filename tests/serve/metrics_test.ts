import assert from "node:assert/strict";
import { ListenError } from "../../lib/serve/http.ts";
import { exponentialBuckets, ProxyMetrics, serveMetrics } from "../../lib/serve/metrics.ts";
import { parseExposition } from "./prom.ts";

const NOW = Date.UTC(2024, 10, 22, 2, 56, 54, 500);

const KUBE_PROXY_FAMILIES: Record<string, string> = {
  kubeproxy_sync_proxy_rules_duration_seconds: "histogram",
  kubeproxy_sync_full_proxy_rules_duration_seconds: "histogram",
  kubeproxy_sync_partial_proxy_rules_duration_seconds: "histogram",
  kubeproxy_sync_proxy_rules_last_timestamp_seconds: "gauge",
  kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds: "gauge",
  kubeproxy_network_programming_duration_seconds: "histogram",
  kubeproxy_sync_proxy_rules_endpoint_changes_pending: "gauge",
  kubeproxy_sync_proxy_rules_endpoint_changes_total: "counter",
  kubeproxy_sync_proxy_rules_service_changes_pending: "gauge",
  kubeproxy_sync_proxy_rules_service_changes_total: "counter",
  kubeproxy_sync_proxy_rules_no_local_endpoints_total: "gauge",
  kubeproxy_proxy_healthz_total: "counter",
  kubeproxy_proxy_livez_total: "counter",
  hnsproxy_hns_calls_total: "counter",
  hnsproxy_hns_call_errors_total: "counter",
  hnsproxy_hns_call_duration_seconds: "histogram",
  hnsproxy_owned_objects: "gauge",
  hnsproxy_sync_plan_operations: "histogram",
  hnsproxy_sync_plan_operations_total: "counter",
  hnsproxy_drift_repairs_total: "counter",
  hnsproxy_sync_failures_total: "counter",
  hnsproxy_conflicts: "gauge",
  hnsproxy_events_dropped_total: "counter",
  hnsproxy_build_info: "gauge",
};

/** A simulated run: two syncs, some changes, HNS calls and a plan. */
function simulate(m: ProxyMetrics): void {
  m.countChanges(3, 7);
  m.setPending(3, 7);
  m.syncQueued();
  m.observeSync(0.05, "full");
  m.setPending(0, 0);
  m.countChanges(0, 2);
  m.observeSync(0.0015, "partial");
  m.observeNetworkProgramming(1.2);
  m.observeNetworkProgramming(-3); // clock skew: counted as 0
  m.setNoLocalEndpoints(1, 2);
  m.observeHnsCall("HcnCreateLoadBalancer", 0.002);
  m.observeHnsCall("HcnCreateLoadBalancer", 0.004, 0x803b0013);
  m.observeHnsCall("HcnDeleteEndpoint", 0.001, "0x80070490");
  m.observeHnsCall("HcnQueryEndpointProperties", 0.001, 0);
  m.setOwnedObjects({ loadbalancer: 12, endpoint: 5 });
  m.observePlan({ create: 3, update: 1, delete: 0 });
  m.driftRepaired("loadbalancer", 2);
  m.syncFailed();
  m.setConflicts({ clusterIP: 2, nodePort: 1 });
  m.setConflicts({ clusterIP: 1 });
  m.eventDropped("rejected");
}

Deno.test("every kube-proxy and hnsproxy family is registered with its type", async () => {
  const { types } = parseExposition(await new ProxyMetrics().text());
  for (const [name, type] of Object.entries(KUBE_PROXY_FAMILIES)) {
    assert.equal(types.get(name), type, name);
  }
});

Deno.test("values after simulated syncs", async () => {
  const m = new ProxyMetrics({ now: () => NOW, version: "0.1.0" });
  simulate(m);
  const { samples: s } = parseExposition(await m.text());
  const v = (key: string) => s.get(key);

  // Sync durations: both syncs in the overall histogram, one each in full/partial.
  assert.equal(v('kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"}'), 2);
  const sum = v('kubeproxy_sync_proxy_rules_duration_seconds_sum{ip_family="IPv4"}')!;
  assert.ok(Math.abs(sum - 0.0515) < 1e-12, String(sum));
  assert.equal(v('kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family="IPv4"}'), 1);
  assert.equal(v('kubeproxy_sync_partial_proxy_rules_duration_seconds_count{ip_family="IPv4"}'), 1);
  assert.equal(
    v('kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="0.002"}'),
    1,
  );
  assert.equal(
    v('kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="0.064"}'),
    2,
  );
  assert.equal(
    v('kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="16.384"}'),
    2,
  );
  assert.equal(
    v('kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"}'),
    NOW / 1000,
  );
  assert.equal(
    v('kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds{ip_family="IPv4"}'),
    NOW / 1000,
  );

  // Change tracking.
  assert.equal(v("kubeproxy_sync_proxy_rules_service_changes_total"), 3);
  assert.equal(v("kubeproxy_sync_proxy_rules_endpoint_changes_total"), 9);
  assert.equal(v("kubeproxy_sync_proxy_rules_service_changes_pending"), 0);
  assert.equal(v("kubeproxy_sync_proxy_rules_endpoint_changes_pending"), 0);

  // The two metrics winkernel never fills.
  assert.equal(v('kubeproxy_network_programming_duration_seconds_count{ip_family="IPv4"}'), 2);
  assert.equal(
    v('kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="0"}'),
    1,
  );
  assert.equal(
    v('kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="2"}'),
    2,
  );
  assert.equal(
    v('kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",traffic_policy="internal"}'),
    1,
  );
  assert.equal(
    v('kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",traffic_policy="external"}'),
    2,
  );

  // HNS calls, errors by HRESULT, latency.
  assert.equal(v('hnsproxy_hns_calls_total{operation="HcnCreateLoadBalancer"}'), 2);
  assert.equal(v('hnsproxy_hns_calls_total{operation="HcnQueryEndpointProperties"}'), 1);
  assert.equal(
    v('hnsproxy_hns_call_errors_total{hresult="0x803B0013",operation="HcnCreateLoadBalancer"}'),
    1,
  );
  assert.equal(
    v('hnsproxy_hns_call_errors_total{hresult="0x80070490",operation="HcnDeleteEndpoint"}'),
    1,
  );
  assert.equal(
    [...s.keys()].filter((k) => k.startsWith("hnsproxy_hns_call_errors_total")).length,
    2,
    "S_OK is not an error",
  );
  assert.equal(
    v('hnsproxy_hns_call_duration_seconds_count{operation="HcnCreateLoadBalancer"}'),
    2,
  );
  assert.equal(v('hnsproxy_owned_objects{kind="loadbalancer"}'), 12);
  assert.equal(v('hnsproxy_owned_objects{kind="endpoint"}'), 5);
  assert.equal(v('hnsproxy_sync_plan_operations_count{op="create"}'), 1);
  assert.equal(v('hnsproxy_sync_plan_operations_sum{op="create"}'), 3);
  assert.equal(v('hnsproxy_sync_plan_operations_bucket{le="0",op="delete"}'), 1);
  assert.equal(v('hnsproxy_sync_plan_operations_total{op="create"}'), 3);
  assert.equal(v('hnsproxy_sync_plan_operations_total{op="delete"}'), undefined);
  assert.equal(v('hnsproxy_drift_repairs_total{kind="loadbalancer"}'), 2);
  assert.equal(v('hnsproxy_conflicts{kind="clusterIP"}'), 1, "a gauge: set, not added");
  assert.equal(v('hnsproxy_conflicts{kind="nodePort"}'), 1);
  assert.equal(v('hnsproxy_events_dropped_total{reason="rejected"}'), 1);
  assert.equal(v("hnsproxy_sync_failures_total"), 1);
  assert.equal(v('hnsproxy_build_info{version="0.1.0"}'), 1);
  assert.ok(v("process_resident_memory_bytes")! > 0);
});

Deno.test("sync buckets are kube-proxy's ExponentialBuckets(0.001, 2, 15)", () => {
  const b = exponentialBuckets(0.001, 2, 15);
  assert.equal(b.length, 15);
  assert.equal(b[0], 0.001);
  assert.equal(b[14], 16.384);
});

Deno.test("instances are independent", async () => {
  const a = new ProxyMetrics();
  const b = new ProxyMetrics();
  a.syncFailed();
  assert.equal(parseExposition(await a.text()).samples.get("hnsproxy_sync_failures_total"), 1);
  assert.equal(parseExposition(await b.text()).samples.get("hnsproxy_sync_failures_total"), 0);
});

Deno.test("metrics server: /metrics, /healthz, /proxyMode, /configz", async () => {
  const m = new ProxyMetrics({ now: () => NOW });
  simulate(m);
  const server = serveMetrics("127.0.0.1:0", m, { configz: () => ({ mode: "kernelspace" }) });
  try {
    let res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    const { samples } = parseExposition(await res.text());
    assert.equal(samples.get("kubeproxy_sync_proxy_rules_service_changes_total"), 3);

    res = await fetch(`${server.url}/healthz`);
    assert.deepEqual([res.status, await res.text()], [200, "ok"]);
    res = await fetch(`${server.url}/proxyMode`);
    assert.deepEqual([res.status, await res.text()], [200, "kernelspace"]);
    res = await fetch(`${server.url}/configz`);
    assert.deepEqual(await res.json(), { mode: "kernelspace" });
    res = await fetch(`${server.url}/nothing`);
    assert.equal(res.status, 404);
    await res.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("a busy or malformed address is a ListenError naming it", async () => {
  const m = new ProxyMetrics();
  const first = serveMetrics("127.0.0.1:0", m);
  try {
    const busy = `127.0.0.1:${first.port}`;
    assert.throws(() => serveMetrics(busy, m), (e: unknown) => {
      assert.ok(e instanceof ListenError);
      assert.ok(e.message.startsWith(`metrics server: cannot listen on ${busy}: `), e.message);
      return true;
    });
    assert.throws(() => serveMetrics("localhost:1", m), /not an ip:port address/);
  } finally {
    await first.close();
  }
});

/** HNS calls of three operations: every bucket edge, 0, beyond the last bucket, errors. */
function observeHnsCalls(m: ProxyMetrics): void {
  for (let i = 0; i < 15; i++) m.observeHnsCall("HcnCreateEndpoint", 0.0005 * 2 ** i);
  m.observeHnsCall("HcnCreateEndpoint", 0);
  m.observeHnsCall("HcnCreateEndpoint", 10);
  m.observeHnsCall("HcnOpenLoadBalancer", 0.1);
  m.observeHnsCall("HcnOpenLoadBalancer", 0.2);
  m.observeHnsCall("HcnOpenLoadBalancer", 0.0007, 0x803b0013);
  m.observeHnsCall("HcnDeleteEndpoint", 0.003, "0x80070490");
  m.observeHnsCall("HcnDeleteEndpoint", 0.00051, 0);
  m.observeHnsCall("HcnDeleteEndpoint", 0.00049, "error");
}

/** The HNS call families of an exposition, in order. */
function hnsCallFamilies(text: string): string {
  return text.split("\n\n").filter((f) => f.includes("hnsproxy_hns_call")).join("\n\n");
}

Deno.test("HNS call families: exact exposition text, as prom-client's Counter and Histogram wrote it", async () => {
  const m = new ProxyMetrics();
  assert.equal(
    hnsCallFamilies(await m.text()),
    `# HELP hnsproxy_hns_calls_total HNS (HCN API) calls made, by operation
# TYPE hnsproxy_hns_calls_total counter

# HELP hnsproxy_hns_call_errors_total HNS calls that failed, by operation and HRESULT
# TYPE hnsproxy_hns_call_errors_total counter

# HELP hnsproxy_hns_call_duration_seconds HNS call latency in seconds, by operation
# TYPE hnsproxy_hns_call_duration_seconds histogram`,
    "no calls yet: HELP and TYPE only",
  );
  observeHnsCalls(m);
  assert.equal(
    hnsCallFamilies(await m.text()),
    `# HELP hnsproxy_hns_calls_total HNS (HCN API) calls made, by operation
# TYPE hnsproxy_hns_calls_total counter
hnsproxy_hns_calls_total{operation="HcnCreateEndpoint"} 17
hnsproxy_hns_calls_total{operation="HcnOpenLoadBalancer"} 3
hnsproxy_hns_calls_total{operation="HcnDeleteEndpoint"} 3

# HELP hnsproxy_hns_call_errors_total HNS calls that failed, by operation and HRESULT
# TYPE hnsproxy_hns_call_errors_total counter
hnsproxy_hns_call_errors_total{operation="HcnOpenLoadBalancer",hresult="0x803B0013"} 1
hnsproxy_hns_call_errors_total{operation="HcnDeleteEndpoint",hresult="0x80070490"} 1

# HELP hnsproxy_hns_call_duration_seconds HNS call latency in seconds, by operation
# TYPE hnsproxy_hns_call_duration_seconds histogram
hnsproxy_hns_call_duration_seconds_bucket{le="0.0005",operation="HcnCreateEndpoint"} 2
hnsproxy_hns_call_duration_seconds_bucket{le="0.001",operation="HcnCreateEndpoint"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="0.002",operation="HcnCreateEndpoint"} 4
hnsproxy_hns_call_duration_seconds_bucket{le="0.004",operation="HcnCreateEndpoint"} 5
hnsproxy_hns_call_duration_seconds_bucket{le="0.008",operation="HcnCreateEndpoint"} 6
hnsproxy_hns_call_duration_seconds_bucket{le="0.016",operation="HcnCreateEndpoint"} 7
hnsproxy_hns_call_duration_seconds_bucket{le="0.032",operation="HcnCreateEndpoint"} 8
hnsproxy_hns_call_duration_seconds_bucket{le="0.064",operation="HcnCreateEndpoint"} 9
hnsproxy_hns_call_duration_seconds_bucket{le="0.128",operation="HcnCreateEndpoint"} 10
hnsproxy_hns_call_duration_seconds_bucket{le="0.256",operation="HcnCreateEndpoint"} 11
hnsproxy_hns_call_duration_seconds_bucket{le="0.512",operation="HcnCreateEndpoint"} 12
hnsproxy_hns_call_duration_seconds_bucket{le="1.024",operation="HcnCreateEndpoint"} 13
hnsproxy_hns_call_duration_seconds_bucket{le="2.048",operation="HcnCreateEndpoint"} 14
hnsproxy_hns_call_duration_seconds_bucket{le="4.096",operation="HcnCreateEndpoint"} 15
hnsproxy_hns_call_duration_seconds_bucket{le="8.192",operation="HcnCreateEndpoint"} 16
hnsproxy_hns_call_duration_seconds_bucket{le="+Inf",operation="HcnCreateEndpoint"} 17
hnsproxy_hns_call_duration_seconds_sum{operation="HcnCreateEndpoint"} 26.3835
hnsproxy_hns_call_duration_seconds_count{operation="HcnCreateEndpoint"} 17
hnsproxy_hns_call_duration_seconds_bucket{le="0.0005",operation="HcnOpenLoadBalancer"} 0
hnsproxy_hns_call_duration_seconds_bucket{le="0.001",operation="HcnOpenLoadBalancer"} 1
hnsproxy_hns_call_duration_seconds_bucket{le="0.002",operation="HcnOpenLoadBalancer"} 1
hnsproxy_hns_call_duration_seconds_bucket{le="0.004",operation="HcnOpenLoadBalancer"} 1
hnsproxy_hns_call_duration_seconds_bucket{le="0.008",operation="HcnOpenLoadBalancer"} 1
hnsproxy_hns_call_duration_seconds_bucket{le="0.016",operation="HcnOpenLoadBalancer"} 1
hnsproxy_hns_call_duration_seconds_bucket{le="0.032",operation="HcnOpenLoadBalancer"} 1
hnsproxy_hns_call_duration_seconds_bucket{le="0.064",operation="HcnOpenLoadBalancer"} 1
hnsproxy_hns_call_duration_seconds_bucket{le="0.128",operation="HcnOpenLoadBalancer"} 2
hnsproxy_hns_call_duration_seconds_bucket{le="0.256",operation="HcnOpenLoadBalancer"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="0.512",operation="HcnOpenLoadBalancer"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="1.024",operation="HcnOpenLoadBalancer"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="2.048",operation="HcnOpenLoadBalancer"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="4.096",operation="HcnOpenLoadBalancer"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="8.192",operation="HcnOpenLoadBalancer"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="+Inf",operation="HcnOpenLoadBalancer"} 3
hnsproxy_hns_call_duration_seconds_sum{operation="HcnOpenLoadBalancer"} 0.3007
hnsproxy_hns_call_duration_seconds_count{operation="HcnOpenLoadBalancer"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="0.0005",operation="HcnDeleteEndpoint"} 1
hnsproxy_hns_call_duration_seconds_bucket{le="0.001",operation="HcnDeleteEndpoint"} 2
hnsproxy_hns_call_duration_seconds_bucket{le="0.002",operation="HcnDeleteEndpoint"} 2
hnsproxy_hns_call_duration_seconds_bucket{le="0.004",operation="HcnDeleteEndpoint"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="0.008",operation="HcnDeleteEndpoint"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="0.016",operation="HcnDeleteEndpoint"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="0.032",operation="HcnDeleteEndpoint"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="0.064",operation="HcnDeleteEndpoint"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="0.128",operation="HcnDeleteEndpoint"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="0.256",operation="HcnDeleteEndpoint"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="0.512",operation="HcnDeleteEndpoint"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="1.024",operation="HcnDeleteEndpoint"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="2.048",operation="HcnDeleteEndpoint"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="4.096",operation="HcnDeleteEndpoint"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="8.192",operation="HcnDeleteEndpoint"} 3
hnsproxy_hns_call_duration_seconds_bucket{le="+Inf",operation="HcnDeleteEndpoint"} 3
hnsproxy_hns_call_duration_seconds_sum{operation="HcnDeleteEndpoint"} 0.004
hnsproxy_hns_call_duration_seconds_count{operation="HcnDeleteEndpoint"} 3`,
  );
  const types = (await m.text()).split("\n").filter((l) => l.startsWith("# TYPE "));
  assert.deepEqual(types.map((l) => l.split(" ")[2]), [
    "kubeproxy_sync_proxy_rules_duration_seconds",
    "kubeproxy_sync_full_proxy_rules_duration_seconds",
    "kubeproxy_sync_partial_proxy_rules_duration_seconds",
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
    "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
    "kubeproxy_network_programming_duration_seconds",
    "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
    "kubeproxy_sync_proxy_rules_endpoint_changes_total",
    "kubeproxy_sync_proxy_rules_service_changes_pending",
    "kubeproxy_sync_proxy_rules_service_changes_total",
    "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
    "kubeproxy_proxy_healthz_total",
    "kubeproxy_proxy_livez_total",
    "hnsproxy_hns_calls_total",
    "hnsproxy_hns_call_errors_total",
    "hnsproxy_hns_call_duration_seconds",
    "hnsproxy_owned_objects",
    "hnsproxy_sync_plan_operations",
    "hnsproxy_sync_plan_operations_total",
    "hnsproxy_drift_repairs_total",
    "hnsproxy_sync_failures_total",
    "hnsproxy_endpoints_waiting_placement",
    "hnsproxy_conflicts",
    "hnsproxy_events_dropped_total",
    "hnsproxy_build_info",
    "process_start_time_seconds",
    "process_resident_memory_bytes",
  ], "families in the same order");
});

Deno.test("an HNS call with a duration that is not a number throws and is not counted", async () => {
  const m = new ProxyMetrics();
  m.observeHnsCall("HcnCreateEndpoint", 0.001);
  assert.throws(() => m.observeHnsCall("HcnCreateEndpoint", Number.NaN), TypeError);
  const { samples } = parseExposition(await m.text());
  assert.equal(samples.get('hnsproxy_hns_calls_total{operation="HcnCreateEndpoint"}'), 1);
  assert.equal(
    samples.get('hnsproxy_hns_call_duration_seconds_count{operation="HcnCreateEndpoint"}'),
    1,
  );
});
