import { deepEqual, throws } from "node:assert/strict";
import { summarizeCalls } from "../../lib/demo/calls.ts";
import { kubeProxyCalls, type KubeProxyServicePort } from "../../lib/demo/kube_proxy_model.ts";

const a: KubeProxyServicePort = {
  id: "ns/a:http/TCP/IPv4",
  loadBalancers: 2,
  remoteEndpoints: ["r1", "r2"],
};
const b: KubeProxyServicePort = {
  id: "ns/b:dns/UDP/IPv4",
  loadBalancers: 1,
  remoteEndpoints: ["r2"],
};

Deno.test("kube-proxy model: start programs everything, with the per-sync reads", () => {
  const [start] = kubeProxyCalls({ overlay: false, existingEndpoints: ["l1", "l2"] }, [
    { kind: "start", servicePorts: [a, b] },
  ]);
  deepEqual(start.calls, {
    HNSCall: 1,
    // start lookup, two per-sync lookups, one lookup before each endpoint create
    HcnEnumerateNetworks: 5,
    HcnOpenNetwork: 7,
    HcnQueryNetworkProperties: 5,
    HcnCloseNetwork: 7,
    HcnEnumerateEndpoints: 1,
    HcnOpenEndpoint: 2,
    HcnQueryEndpointProperties: 4,
    HcnCloseEndpoint: 4,
    HcnCreateEndpoint: 2,
    HcnEnumerateLoadBalancers: 2,
    HcnCreateLoadBalancer: 3,
    HcnQueryLoadBalancerProperties: 3,
    HcnCloseLoadBalancer: 3,
  });
  deepEqual(summarizeCalls(start.calls), { reads: 44, writes: 5, total: 49 });
  deepEqual(start.hns, { endpoints: 4, loadBalancers: 3 });
});

Deno.test("kube-proxy model: a changed service port is deleted and re-created, its endpoints churn", () => {
  const aLess = { ...a, remoteEndpoints: ["r1"] };
  const out = kubeProxyCalls({ overlay: false, existingEndpoints: ["l1", "l2"] }, [
    { kind: "start", servicePorts: [a, b] },
    { kind: "sync", servicePorts: [aLess, b] },
    { kind: "periodic" },
  ]);
  const change = out[1].calls;
  // 2 LB deletes (lookup + delete), r1 released to zero and deleted, then re-created
  deepEqual(change.HcnDeleteLoadBalancer, 2);
  deepEqual(change.HcnDeleteEndpoint, 1);
  deepEqual(change.HcnCreateEndpoint, 1);
  deepEqual(change.HcnCreateLoadBalancer, 2);
  deepEqual(summarizeCalls(change), { reads: 46, writes: 6, total: 52 });
  // The idle periodic sync still reads the network twice, 4 endpoints and 3 LBs.
  deepEqual(summarizeCalls(out[2].calls), { reads: 31, writes: 0, total: 31 });
  deepEqual(out[2].hns, { endpoints: 4, loadBalancers: 3 });
});

Deno.test("kube-proxy model: an explicit change list re-creates even an unchanged service port", () => {
  const out = kubeProxyCalls({ overlay: false, existingEndpoints: [] }, [
    { kind: "start", servicePorts: [a, b] },
    { kind: "sync", servicePorts: [a, b], changed: [b.id] },
    { kind: "sync", servicePorts: [a, b] },
  ]);
  deepEqual(out[1].calls.HcnDeleteLoadBalancer, 1);
  deepEqual(out[1].calls.HcnCreateLoadBalancer, 1);
  // r2 is still used by a: not deleted
  deepEqual(out[1].calls.HcnDeleteEndpoint, undefined);
  deepEqual(summarizeCalls(out[2].calls).writes, 0);
});

Deno.test("kube-proxy model: a restart deletes every load balancer, foreign ones too, and rebuilds", () => {
  const out = kubeProxyCalls(
    { overlay: false, existingEndpoints: ["l1", "l2"], foreignLoadBalancers: 2 },
    [
      { kind: "start", servicePorts: [a, b] },
      { kind: "start", servicePorts: [a, b] },
    ],
  );
  deepEqual(out[0].calls.HcnDeleteLoadBalancer, 2);
  const restart = out[1].calls;
  deepEqual(restart.HcnDeleteLoadBalancer, 3);
  deepEqual(restart.HcnCreateLoadBalancer, 3);
  // remote endpoints survived in HNS and are found by IP
  deepEqual(restart.HcnCreateEndpoint, undefined);
  deepEqual(summarizeCalls(restart), { reads: 43, writes: 6, total: 49 });
});

Deno.test("kube-proxy model: removing a service port releases shared endpoints by reference count", () => {
  const out = kubeProxyCalls({ overlay: false, existingEndpoints: ["l1", "l2"] }, [
    { kind: "start", servicePorts: [a, b] },
    { kind: "sync", servicePorts: [a] },
    { kind: "sync", servicePorts: [] },
  ]);
  deepEqual(out[1].calls.HcnDeleteLoadBalancer, 1);
  deepEqual(out[1].calls.HcnDeleteEndpoint, undefined);
  deepEqual(summarizeCalls(out[1].calls), { reads: 32, writes: 1, total: 33 });
  deepEqual(out[2].calls.HcnDeleteEndpoint, 2);
  deepEqual(out[2].hns, { endpoints: 2, loadBalancers: 0 });
});

Deno.test("kube-proxy model: overlay source VIP, cluster-IP endpoint and route refresh", () => {
  const c: KubeProxyServicePort = {
    id: "ns/c:/TCP/IPv4",
    loadBalancers: 1,
    remoteEndpoints: ["r1"],
    clusterIP: "c1",
  };
  const out = kubeProxyCalls({ overlay: true, existingEndpoints: ["l1"], sourceVip: "sv" }, [
    { kind: "start", servicePorts: [c] },
    { kind: "sync", servicePorts: [] },
  ]);
  deepEqual(out[0].calls.HcnCreateEndpoint, 3);
  deepEqual(summarizeCalls(out[0].calls), { reads: 53, writes: 4, total: 57 });
  deepEqual(out[1].calls.HcnDeleteEndpoint, 2);
  deepEqual(summarizeCalls(out[1].calls), { reads: 28, writes: 3, total: 31 });
  deepEqual(out[1].hns, { endpoints: 2, loadBalancers: 0 });
});

Deno.test("kube-proxy model: with ModifyLoadbalancer a changed service port is updated in place", () => {
  const aLess = { ...a, remoteEndpoints: ["r1"] };
  const out = kubeProxyCalls(
    { overlay: false, existingEndpoints: [], modifyLoadBalancer: true },
    [
      { kind: "start", servicePorts: [a, b] },
      { kind: "sync", servicePorts: [aLess, b] },
    ],
  );
  const change = out[1].calls;
  deepEqual(change.HcnModifyLoadBalancer, 2);
  deepEqual(change.HcnDeleteLoadBalancer, undefined);
  deepEqual(change.HcnCreateEndpoint, undefined);
  deepEqual(change.HcnDeleteEndpoint, undefined); // r2 still used by b
  deepEqual(out[1].hns, { endpoints: 2, loadBalancers: 3 });
});

Deno.test("kube-proxy model: the first event must be a start", () => {
  throws(() => kubeProxyCalls({ overlay: false, existingEndpoints: [] }, [{ kind: "periodic" }]));
});

Deno.test("kube-proxy model: remote endpoints an earlier run left are reused at start and deleted once unused", () => {
  const opts = {
    overlay: false,
    existingEndpoints: ["l1"],
    leftoverEndpoints: ["r1", "r2", "old"],
  };
  const out = kubeProxyCalls(opts, [
    { kind: "start", servicePorts: [a, b] },
    { kind: "sync", servicePorts: [b] },
  ]);
  // Found by IP: nothing to create; "old" stays (no service port releases it).
  deepEqual(out[0].calls.HcnCreateEndpoint, undefined);
  deepEqual(out[0].hns, { endpoints: 4, loadBalancers: 3 });
  // a's removal releases r1 (its last user): deleted as kube-proxy's own.
  deepEqual(out[1].calls.HcnDeleteEndpoint, 1);
  deepEqual(out[1].hns, { endpoints: 3, loadBalancers: 1 });
});
