/**
 * deploy/: every YAML parses; the RBAC is exactly least privilege; the
 * DaemonSet is a HostProcess pod whose probe and configuration match what
 * hnsproxy serves and reads; the example KubeProxyConfiguration is accepted
 * by hnsproxy's own parser with the intended values.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { parseConfig } from "../../lib/config/mod.ts";
import { splitHostPort } from "../../lib/net/ip.ts";
import { ProxyHealth, serveHealthz } from "../../lib/serve/healthz.ts";
import { loadYaml } from "../../lib/config/yaml.ts";

// These files are YAML: the parser is loaded, as the agent loads it for a YAML file.
await loadYaml();

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DEPLOY = join(ROOT, "deploy");

// deno-lint-ignore no-explicit-any
type Doc = Record<string, any>;

/** Every document of every YAML file in deploy/, by file. */
async function loadDeploy(): Promise<Map<string, Doc[]>> {
  const out = new Map<string, Doc[]>();
  for await (const e of Deno.readDir(DEPLOY)) {
    if (!e.isFile || !/\.ya?ml$/.test(e.name)) continue;
    const text = await Deno.readTextFile(join(DEPLOY, e.name));
    const docs = parseAllDocuments(text, { uniqueKeys: true });
    const list = Array.isArray(docs) ? docs : [docs];
    const parsed: Doc[] = [];
    for (const d of list) {
      deepEqual(d.errors.map((x) => x.message), [], `${e.name} parses`);
      const value = d.toJS();
      if (value !== null) parsed.push(value);
    }
    out.set(e.name, parsed);
  }
  return out;
}

const files = await loadDeploy();
const all = [...files.values()].flat();
const ofKind = (kind: string) => all.filter((d) => d.kind === kind);
const one = (kind: string) => {
  const found = ofKind(kind);
  equal(found.length, 1, `exactly one ${kind} in deploy/`);
  return found[0];
};
const denoJson = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));

Deno.test("deploy: every YAML parses into objects of known kinds", () => {
  deepEqual([...files.keys()].sort(), [
    "daemonset.yaml",
    "kube-proxy-config.yaml",
    "kustomization.yaml",
    "rbac.yaml",
  ]);
  for (const [file, docs] of files) {
    ok(docs.length > 0, `${file} has a document`);
    for (const d of docs) {
      ok(typeof d.apiVersion === "string" && typeof d.kind === "string", `${file}: typed`);
    }
  }
  deepEqual(
    all.map((d) => `${d.apiVersion} ${d.kind}`).sort(),
    [
      "apps/v1 DaemonSet",
      "kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration",
      "kustomize.config.k8s.io/v1beta1 Kustomization",
      "rbac.authorization.k8s.io/v1 ClusterRole",
      "rbac.authorization.k8s.io/v1 ClusterRoleBinding",
      "v1 ServiceAccount",
    ],
  );
});

Deno.test("deploy: the ClusterRole is exactly least privilege", () => {
  const role = one("ClusterRole");
  const granted = new Set<string>();
  for (const rule of role.rules) {
    equal(rule.resourceNames, undefined, "no resourceNames needed");
    equal(rule.nonResourceURLs, undefined, "no non-resource URLs");
    for (const group of rule.apiGroups) {
      for (const resource of rule.resources) {
        for (const verb of rule.verbs) {
          ok(![group, resource, verb].includes("*"), "no wildcards");
          granted.add(`${group || "core"}/${resource}:${verb}`);
        }
      }
    }
  }
  deepEqual([...granted].sort(), [
    "core/nodes:get",
    "core/nodes:list",
    "core/nodes:watch",
    "core/services:list",
    "core/services:watch",
    "discovery.k8s.io/endpointslices:list",
    "discovery.k8s.io/endpointslices:watch",
    "events.k8s.io/events:create",
    "events.k8s.io/events:patch",
  ]);
  equal(role.aggregationRule, undefined);
  equal(ofKind("Role").length + ofKind("RoleBinding").length, 0, "no namespaced grants");
});

Deno.test("deploy: the binding gives that role to the DaemonSet's service account, and only that", () => {
  const sa = one("ServiceAccount");
  const binding = one("ClusterRoleBinding");
  const ds = one("DaemonSet");
  deepEqual(binding.roleRef, {
    apiGroup: "rbac.authorization.k8s.io",
    kind: "ClusterRole",
    name: one("ClusterRole").metadata.name,
  });
  deepEqual(binding.subjects, [{
    kind: "ServiceAccount",
    name: sa.metadata.name,
    namespace: sa.metadata.namespace,
  }]);
  equal(ds.spec.template.spec.serviceAccountName, sa.metadata.name);
  equal(ds.metadata.namespace, sa.metadata.namespace);
  equal(sa.automountServiceAccountToken, undefined, "the token is mounted: in-cluster config");
});

Deno.test("deploy: the DaemonSet is a HostProcess pod on every Windows node", () => {
  const ds = one("DaemonSet");
  const pod = ds.spec.template.spec;
  deepEqual(ds.spec.selector.matchLabels, ds.spec.template.metadata.labels);
  equal(pod.hostNetwork, true);
  deepEqual(pod.securityContext.windowsOptions, {
    hostProcess: true,
    runAsUserName: "NT AUTHORITY\\SYSTEM",
  });
  deepEqual(pod.nodeSelector, { "kubernetes.io/os": "windows" });
  ok(
    pod.tolerations.some((t: Doc) => t.operator === "Exists" && t.key === undefined),
    "tolerates every taint, as kube-proxy",
  );
  equal(pod.containers.length, 1);
  equal(pod.initContainers, undefined, "a HostProcess pod holds only HostProcess containers");
  const c = pod.containers[0];
  equal(c.securityContext?.windowsOptions?.hostProcess, undefined, "inherits hostProcess");
  match(c.command[0], /^%CONTAINER_SANDBOX_MOUNT_POINT%\\hnsproxy\.exe$/);
  equal(c.image.split(":").pop(), denoJson.version, "image tag is the version");
  const env = Object.fromEntries(c.env.map((e: Doc) => [e.name, e]));
  deepEqual(env.NODE_NAME.valueFrom, { fieldRef: { fieldPath: "spec.nodeName" } });
  ok(typeof env.KUBE_NETWORK.value === "string" && env.KUBE_NETWORK.value !== "");
});

/** The DaemonSet's command line as hnsproxy sees it, the sandbox mount point expanded. */
function agentArgs(sandbox: string): string[] {
  const c = one("DaemonSet").spec.template.spec.containers[0];
  return c.args.map((a: string) => a.replaceAll("%CONTAINER_SANDBOX_MOUNT_POINT%", sandbox));
}

/** Files of the pod's sandbox: the ConfigMap the kustomization generates, where it is mounted. */
async function sandboxFiles(sandbox: string): Promise<Map<string, string>> {
  const pod = one("DaemonSet").spec.template.spec;
  const k = one("Kustomization");
  const files = new Map<string, string>();
  for (const v of pod.volumes) {
    if (!v.configMap) continue;
    const generator = k.configMapGenerator.find((g: Doc) => g.name === v.configMap.name);
    ok(generator, `the kustomization generates ConfigMap ${v.configMap.name}`);
    const mount = pod.containers[0].volumeMounts.find((m: Doc) => m.name === v.name);
    for (const entry of generator.files) {
      const [key, source] = entry.includes("=") ? entry.split("=") : [entry, entry];
      const path = `${sandbox}${mount.mountPath.replaceAll("/", "\\")}\\${key}`;
      files.set(path, await Deno.readTextFile(join(DEPLOY, source)));
    }
  }
  return files;
}

Deno.test("deploy: the DaemonSet's command line reads the mounted example config", async () => {
  const sandbox = "C:\\hpc";
  const files = await sandboxFiles(sandbox);
  const env = Object.fromEntries(
    one("DaemonSet").spec.template.spec.containers[0].env
      .filter((e: Doc) => e.value !== undefined)
      .map((e: Doc) => [e.name, e.value]),
  );
  const read: string[] = [];
  const { config, warnings } = parseConfig(
    agentArgs(sandbox),
    { ...env, NODE_NAME: "Win-Node-7", ProgramData: "C:\\ProgramData" },
    (path) => {
      read.push(path);
      const text = files.get(path);
      if (text === undefined) throw new Deno.errors.NotFound(`no ${path} in the pod`);
      return text;
    },
    { os: "windows", hostname: () => "ignored" },
  );
  deepEqual(read, ["C:\\hpc\\var\\lib\\hnsproxy\\config.yaml"]);
  deepEqual(warnings, []);
  equal(config.configFile, read[0]);
  equal(config.hostnameOverride, "win-node-7", "NODE_NAME from the downward API");
  equal(config.networkName, env.KUBE_NETWORK, "KUBE_NETWORK decides the network");
  equal(config.kubeconfig, "", "in-cluster service account");
  equal(config.windowsService, false, "a HostProcess container is not an SCM service");
  equal(
    config.stateFile,
    "C:\\ProgramData\\hnsproxy\\state.json",
    "on the host: survives restarts",
  );
});

Deno.test("deploy: the example KubeProxyConfiguration is accepted with the intended values", async () => {
  const path = join(DEPLOY, "kube-proxy-config.yaml");
  const { config, warnings } = parseConfig(
    ["--config", path],
    { KUBE_NETWORK: "vxlan0" },
    (p) => Deno.readTextFileSync(p),
    { os: "windows", hostname: () => "WIN-ABC" },
  );
  deepEqual(warnings, [], "no unknown fields");
  equal(config.kubeconfig, "");
  equal(config.kubeApiQps, 5);
  equal(config.kubeApiBurst, 10);
  deepEqual(config.clusterCIDR, ["10.244.0.0/16"]);
  equal(config.bindAddress, "0.0.0.0");
  equal(config.healthzBindAddress, "0.0.0.0:10256");
  equal(config.metricsBindAddress, "127.0.0.1:10249");
  equal(config.syncPeriodMs, 30_000);
  equal(config.minSyncPeriodMs, 1_000);
  equal(config.configSyncPeriodMs, 15 * 60_000);
  equal(config.logging.format, "text");
  equal(config.logging.verbosity, 2);
  equal(config.networkName, "vxlan0", "the file leaves the network to KUBE_NETWORK");
  equal(config.sourceVip, "");
  equal(config.enableDSR, false);
  equal(config.rootHnsEndpointName, "cbr0");
  equal(config.forwardHealthCheckVip, false);
  equal(config.hostnameOverride, "win-abc");
  // Flags still win over the file.
  const flagged = parseConfig(
    ["--config", path, "--v=4", "--network-name=cbr0"],
    {},
    (p) => Deno.readTextFileSync(p),
    { os: "windows", hostname: () => "n" },
  );
  equal(flagged.config.logging.verbosity, 4);
  equal(flagged.config.networkName, "cbr0");
  ok(
    (await Deno.readTextFile(path)).includes("winkernel:"),
    "the example shows the winkernel section",
  );
});

Deno.test("deploy: the liveness probe asks hnsproxy's health server where it listens", async () => {
  const c = one("DaemonSet").spec.template.spec.containers[0];
  const probe = c.livenessProbe.httpGet;
  equal(probe.path, "/livez");
  equal(c.readinessProbe, undefined, "kube-proxy has no readiness probe either");
  // The port hnsproxy listens on, by default and with the example config.
  const defaults = parseConfig([], {}, () => "", { os: "windows", hostname: () => "n" }).config;
  equal(splitHostPort(defaults.healthzBindAddress)?.port, probe.port);
  const example = parseConfig(
    ["--config", join(DEPLOY, "kube-proxy-config.yaml")],
    {},
    (p) => Deno.readTextFileSync(p),
    { os: "windows", hostname: () => "n" },
  ).config;
  const bind = splitHostPort(example.healthzBindAddress)!;
  equal(bind.port, probe.port);
  equal(bind.host, "0.0.0.0", "reachable by the kubelet at the node's IP (host network)");
  const port = c.ports.find((p: Doc) => p.name === "healthz");
  equal(port.containerPort, probe.port);

  // And the path answers 200 with kube-proxy's JSON from hnsproxy's real server.
  const server = serveHealthz("127.0.0.1:0", new ProxyHealth({ healthTimeoutMs: 60_000 }));
  try {
    const res = await fetch(`${server.url}${probe.path}`);
    equal(res.status, 200);
    const body = await res.json();
    ok("lastUpdated" in body && "currentTime" in body, JSON.stringify(body));
    const missing = await fetch(`${server.url}/nope`);
    await missing.body?.cancel();
    equal(missing.status, 404, "a wrong probe path would fail");
  } finally {
    await server.close();
  }
});

Deno.test("deploy: the kustomization applies the manifests with the version's image", async () => {
  const k = one("Kustomization");
  deepEqual(k.resources.sort(), ["daemonset.yaml", "rbac.yaml"]);
  for (const r of k.resources) ok(files.has(r), `${r} exists`);
  equal(k.namespace, one("DaemonSet").metadata.namespace);
  const image = one("DaemonSet").spec.template.spec.containers[0].image as string;
  const override = k.images.find((i: Doc) => i.name === image.slice(0, image.lastIndexOf(":")));
  ok(override, "the image can be overridden by name");
  equal(override.newTag, denoJson.version);
  match(
    await Deno.readTextFile(join(DEPLOY, "Dockerfile")),
    /COPY dist\/hnsproxy\.exe \/hnsproxy\.exe/,
  );
});
