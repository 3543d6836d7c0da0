/**
 * Memory held for 10,000 Services and 10,000 EndpointSlices (issue 3):
 *
 * 1. the cluster store alone (compact records built by lib/kube/convert.ts),
 * 2. the whole cluster watcher after its initial sync through the fake API
 *    server over HTTP (store + reflector indexes + client), and
 * 3. for comparison, the same API objects as JSON text and kept parsed (what
 *    an informer cache of full objects would hold);
 *
 * and the same three figures for the placements of 5,000 Nodes (name, pod
 * CIDRs, InternalIPs) against realistic Node objects (labels, conditions,
 * images).
 *
 * Heap figures are V8 `heapUsed` deltas after full garbage collections; the
 * script re-runs itself with `--expose-gc` when needed, so
 * `deno run -A bench/kube_memory.ts` works as is. Options:
 * `--services N`, `--endpoints N` (per slice), `--nodes N`, `--json`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { KubeClient } from "../lib/kube/client.ts";
import { watchCluster } from "../lib/kube/cluster.ts";
import { LIST_PAGE_SIZE } from "../lib/kube/reflector.ts";
import { convertEndpointSlice, convertNodePlacement, convertService } from "../lib/kube/convert.ts";
import { ClusterStore } from "../lib/kube/store.ts";
import { nullLogger } from "../lib/log/types.ts";
import { FakeApiServer, type FakeObject } from "../lib/fake-apiserver/mod.ts";

/** What {@linkcode measureKubeMemory} reports. */
export interface KubeMemoryResult {
  /** Services. */
  services: number;
  /** EndpointSlices (one per service). */
  slices: number;
  /** Endpoints in all slices. */
  endpoints: number;
  /** Bytes of the API objects serialized as JSON. */
  apiJsonBytes: number;
  /** Heap the same API objects would hold if kept as parsed JSON (an informer cache). */
  apiObjectBytes: number;
  /** Heap held by the store alone. */
  storeBytes: number;
  /** Heap held by the cluster watcher after its initial sync. */
  watcherBytes: number;
  /** Time of the watcher's initial sync (list + convert), ms. */
  syncMs: number;
}

const ZONES = ["zone-a", "zone-b", "zone-c"];

function ip(base: string, i: number): string {
  return `${base}.${(i >> 8) & 255}.${i & 255}`;
}

/** A realistic Service: two ports; every tenth a LoadBalancer with an ingress IP. */
export function serviceObject(i: number): FakeObject {
  const lb = i % 10 === 0;
  return {
    metadata: {
      name: `svc-${i}`,
      namespace: `ns-${i % 50}`,
      labels: { app: `app-${i}`, "app.kubernetes.io/part-of": "bench" },
      annotations: { "meta.helm.sh/release-name": `release-${i % 50}` },
    },
    spec: {
      type: lb ? "LoadBalancer" : "ClusterIP",
      clusterIP: ip("10.96", i),
      clusterIPs: [ip("10.96", i)],
      ipFamilies: ["IPv4"],
      ipFamilyPolicy: "SingleStack",
      internalTrafficPolicy: "Cluster",
      ...(lb ? { externalTrafficPolicy: "Local", healthCheckNodePort: 32000 + (i % 700) } : {}),
      sessionAffinity: "None",
      selector: { app: `app-${i}` },
      ports: [
        {
          name: "http",
          protocol: "TCP",
          port: 80,
          targetPort: 8080,
          ...(lb ? { nodePort: 30000 + (i % 2700) } : {}),
        },
        { name: "metrics", protocol: "TCP", port: 9090, targetPort: "metrics" },
      ],
    },
    status: {
      loadBalancer: lb ? { ingress: [{ ip: ip("203.0", i), ipMode: "VIP" }] } : {},
    },
  };
}

/** A realistic EndpointSlice of service `i` with `n` endpoints on 20 nodes. */
export function sliceObject(i: number, n: number): FakeObject {
  return {
    metadata: {
      name: `svc-${i}-abcde`,
      namespace: `ns-${i % 50}`,
      labels: {
        "kubernetes.io/service-name": `svc-${i}`,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        app: `app-${i}`,
      },
      annotations: {
        "endpoints.kubernetes.io/last-change-trigger-time": "2024-05-01T10:00:00Z",
      },
      ownerReferences: [{
        apiVersion: "v1",
        kind: "Service",
        name: `svc-${i}`,
        uid: "6f1b2c4e-0000-4000-8000-000000000000",
        controller: true,
        blockOwnerDeletion: true,
      }],
    },
    addressType: "IPv4",
    ports: [
      { name: "http", protocol: "TCP", port: 8080 },
      { name: "metrics", protocol: "TCP", port: 9090 },
    ],
    endpoints: Array.from({ length: n }, (_, j) => {
      const e = i * n + j;
      return {
        addresses: [ip("10.244", e)],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName: `node-${e % 20}`,
        zone: ZONES[e % 3],
        targetRef: { kind: "Pod", namespace: `ns-${i % 50}`, name: `app-${i}-7d9c-${j}`, uid: "x" },
      };
    }),
  };
}

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error("run with --v8-flags=--expose-gc");
  for (let i = 0; i < 3; i++) collect();
}

function heapUsed(): number {
  gc();
  return Deno.memoryUsage().heapUsed;
}

/** Measures store and watcher memory for `services` services. */
export async function measureKubeMemory(
  services = 10_000,
  endpointsPerSlice = 5,
): Promise<KubeMemoryResult> {
  let apiJsonBytes = 0;
  for (let i = 0; i < services; i++) {
    apiJsonBytes += JSON.stringify(serviceObject(i)).length;
    apiJsonBytes += JSON.stringify(sliceObject(i, endpointsPerSlice)).length;
  }

  // 0. For comparison: the API objects kept as parsed JSON.
  let before = heapUsed();
  let raw: unknown[] | undefined = [];
  for (let i = 0; i < services; i++) {
    raw.push(JSON.parse(JSON.stringify(serviceObject(i))));
    raw.push(JSON.parse(JSON.stringify(sliceObject(i, endpointsPerSlice))));
  }
  const apiObjectBytes = heapUsed() - before;
  if (raw.length !== 2 * services) throw new Error("unreachable");
  raw = undefined;

  // 1. The store alone.
  before = heapUsed();
  let store: ClusterStore | undefined = new ClusterStore();
  for (let i = 0; i < services; i++) {
    store.upsertService(convertService(serviceObject(i))!);
    store.upsertSlice(convertEndpointSlice(sliceObject(i, endpointsPerSlice))!);
  }
  store.takeChanges();
  const storeBytes = heapUsed() - before;
  if (store.serviceCount !== services || store.sliceCount !== services) {
    throw new Error("store incomplete");
  }
  store = undefined;

  // 2. The watcher, synced over HTTP from the fake API server.
  const server = await new FakeApiServer().start();
  for (let i = 0; i < services; i++) {
    server.create("services", serviceObject(i));
    server.create("endpointslices", sliceObject(i, endpointsPerSlice));
  }
  const client = new KubeClient({
    cluster: { name: "fake", server: server.url },
    user: { name: "bench" },
  });
  const baseline = heapUsed();
  const started = performance.now();
  const watch = watchCluster({ client, nodeName: "node-0", logger: nullLogger });
  await watch.synced;
  const syncMs = performance.now() - started;
  watch.store.takeChanges();
  const watcherBytes = heapUsed() - baseline;
  const endpoints = [...watch.store.services()].reduce(
    (n, s) =>
      n +
      watch.store.slicesFor(`${s.namespace}/${s.name}`).reduce(
        (m, sl) => m + sl.endpoints.length,
        0,
      ),
    0,
  );
  await watch.stop();
  client.close();
  await server.stop();
  return {
    services,
    slices: services,
    endpoints,
    apiJsonBytes,
    apiObjectBytes,
    storeBytes,
    watcherBytes,
    syncMs,
  };
}

/** What {@linkcode measureNodeMemory} reports. */
export interface NodeMemoryResult {
  /** Nodes. */
  nodes: number;
  /** Bytes of the Node objects serialized as JSON. */
  apiJsonBytes: number;
  /** Heap the Node objects would hold if kept as parsed JSON. */
  apiObjectBytes: number;
  /** Heap held by the placements in the store alone. */
  storeBytes: number;
  /** Heap held by the cluster watcher (all its reflectors) after syncing the nodes. */
  watcherBytes: number;
  /** Time until every placement was in the store, ms. */
  syncMs: number;
}

/** A realistic Node of a large cluster: labels, annotations, conditions, 30 images. */
export function benchNodeObject(i: number): FakeObject {
  const name = `node-${i}`;
  const cidr = `10.${64 + (i >> 8)}.${i & 255}.0/24`;
  const condition = (type: string, status: string) => ({
    type,
    status,
    lastHeartbeatTime: "2024-05-01T10:00:00Z",
    lastTransitionTime: "2024-04-01T10:00:00Z",
    reason: `Kubelet${type}`,
    message: `kubelet reports ${type} is ${status}`,
  });
  return {
    metadata: {
      name,
      labels: {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": i % 4 === 0 ? "windows" : "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "Standard_D8s_v5",
        "topology.kubernetes.io/region": "westeurope",
        "topology.kubernetes.io/zone": ZONES[i % 3],
        "agentpool": `pool${i % 8}`,
        "kubernetes.azure.com/cluster": "bench",
      },
      annotations: {
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
        "csi.volume.kubernetes.io/nodeid": `{"disk.csi.azure.com":"${name}"}`,
      },
    },
    spec: { podCIDR: cidr, podCIDRs: [cidr], providerID: `azure:///vm/${name}` },
    status: {
      capacity: { cpu: "8", memory: "32863796Ki", pods: "110", "ephemeral-storage": "129886128Ki" },
      allocatable: { cpu: "7820m", memory: "28288564Ki", pods: "110" },
      conditions: [
        condition("MemoryPressure", "False"),
        condition("DiskPressure", "False"),
        condition("PIDPressure", "False"),
        condition("Ready", "True"),
      ],
      addresses: [
        { type: "InternalIP", address: `192.168.${i >> 8}.${i & 255}` },
        { type: "Hostname", address: name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: `${i}`.padStart(32, "0"),
        systemUUID: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
        bootID: `b0000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
        kernelVersion: "5.15.0-1061-azure",
        osImage: "Ubuntu 22.04.4 LTS",
        containerRuntimeVersion: "containerd://1.7.15",
        kubeletVersion: "v1.29.4",
        kubeProxyVersion: "v1.29.4",
        operatingSystem: "linux",
        architecture: "amd64",
      },
      images: Array.from({ length: 30 }, (_, j) => ({
        names: [
          `registry.example.com/team-${j}/image-${j}@sha256:${String(j).padStart(64, "a")}`,
          `registry.example.com/team-${j}/image-${j}:v1.${j}.0`,
        ],
        sizeBytes: 10_000_000 + j * 1_000_003,
      })),
    },
  };
}

/** Measures what the placements of `nodes` Nodes hold, alone and in the watcher. */
export async function measureNodeMemory(nodes = 5_000): Promise<NodeMemoryResult> {
  let apiJsonBytes = 0;
  for (let i = 0; i < nodes; i++) apiJsonBytes += JSON.stringify(benchNodeObject(i)).length;

  let before = heapUsed();
  let raw: unknown[] | undefined = [];
  for (let i = 0; i < nodes; i++) raw.push(JSON.parse(JSON.stringify(benchNodeObject(i))));
  const apiObjectBytes = heapUsed() - before;
  if (raw.length !== nodes) throw new Error("unreachable");
  raw = undefined;

  before = heapUsed();
  let store: ClusterStore | undefined = new ClusterStore();
  for (let i = 0; i < nodes; i++) {
    store.upsertNodePlacement(convertNodePlacement(JSON.parse(JSON.stringify(benchNodeObject(i)))));
  }
  store.takeChanges();
  const storeBytes = heapUsed() - before;
  if (store.nodePlacements().size !== nodes) throw new Error("store incomplete");
  store = undefined;

  const server = await new FakeApiServer().start();
  for (let i = 0; i < nodes; i++) server.create("nodes", benchNodeObject(i));
  const client = new KubeClient({
    cluster: { name: "fake", server: server.url },
    user: { name: "bench" },
  });
  const baseline = heapUsed();
  const started = performance.now();
  const watch = watchCluster({ client, nodeName: "node-0", logger: nullLogger });
  await watch.synced;
  await watch.reflectors.nodes!.synced;
  const syncMs = performance.now() - started;
  watch.store.takeChanges();
  const watcherBytes = heapUsed() - baseline;
  if (watch.store.nodePlacements().size !== nodes) throw new Error("watcher incomplete");
  await watch.stop();
  client.close();
  await server.stop();
  return { nodes, apiJsonBytes, apiObjectBytes, storeBytes, watcherBytes, syncMs };
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      services: { type: "string", default: "10000" },
      endpoints: { type: "string", default: "5" },
      nodes: { type: "string", default: "5000" },
      json: { type: "boolean", default: false },
    },
  });
  if (!(globalThis as { gc?: unknown }).gc) {
    // Re-run with the collector exposed so that heap deltas are exact.
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        new URL(import.meta.url).pathname,
        ...Deno.args,
      ],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    Deno.exit(out.code);
  }
  const r = await measureKubeMemory(Number(values.services), Number(values.endpoints));
  const n = await measureNodeMemory(Number(values.nodes));
  if (values.json) {
    console.log(JSON.stringify({ ...r, nodePlacements: n }));
    return;
  }
  const perPair = (b: number) => Math.round(b / r.services);
  console.log(
    `kube memory: ${r.services} Services, ${r.slices} EndpointSlices, ${r.endpoints} endpoints`,
  );
  console.log(`  API objects as JSON text          ${mb(r.apiJsonBytes)}`);
  console.log(
    `  API objects parsed (informer-style cache)  ${mb(r.apiObjectBytes)}  (${
      perPair(r.apiObjectBytes)
    } B per service + slice)`,
  );
  console.log(
    `  store (compact records)           ${mb(r.storeBytes)}  (${
      perPair(r.storeBytes)
    } B per service + slice)`,
  );
  console.log(
    `  watcher after sync (store, reflector indexes, client)  ${mb(r.watcherBytes)}  (${
      perPair(r.watcherBytes)
    } B per service + slice)`,
  );
  console.log(`  initial sync over HTTP (pages of ${LIST_PAGE_SIZE})  ${Math.round(r.syncMs)} ms`);
  const perNode = (b: number) => Math.round(b / n.nodes);
  console.log(`node placements: ${n.nodes} Nodes`);
  console.log(`  Node objects as JSON text         ${mb(n.apiJsonBytes)}`);
  console.log(
    `  Node objects parsed               ${mb(n.apiObjectBytes)}  (${
      perNode(n.apiObjectBytes)
    } B per node)`,
  );
  console.log(
    `  placements in the store           ${mb(n.storeBytes)}  (${
      perNode(n.storeBytes)
    } B per node)`,
  );
  console.log(
    `  watcher after sync                ${mb(n.watcherBytes)}  (${
      perNode(n.watcherBytes)
    } B per node)`,
  );
  console.log(`  initial sync over HTTP (pages of ${LIST_PAGE_SIZE})  ${Math.round(n.syncMs)} ms`);
}

if (import.meta.main) await main();
