import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Config,
  FLAGS,
  helpText,
  parseConfig,
  parseConfigFile,
  renderConfigFile,
} from "../../lib/config/mod.ts";
import { hasMessage } from "./helpers.ts";
import { loadYaml } from "../../lib/config/yaml.ts";

// These files are YAML: the parser is loaded, as the agent loads it for a YAML file.
await loadYaml();

const host = { hostname: () => "WinNode-01", os: "linux" };
const noFile = (path: string): string => {
  throw new Deno.errors.NotFound(`No such file: ${path}`);
};

function parse(args: string[], env: Record<string, string> = {}) {
  return parseConfig(args, env, noFile, host);
}

async function withConfigFile(
  text: string,
  fn: (path: string) => void | Promise<void>,
  ext = "yaml",
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-config-" });
  try {
    const path = join(dir, `kube-proxy.${ext}`);
    await Deno.writeTextFile(path, text);
    await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const read = (p: string) => Deno.readTextFileSync(p);

Deno.test("defaults match kube-proxy's", () => {
  const { config, warnings, help, version } = parse([]);
  assert.deepEqual(warnings, []);
  assert.equal(help, false);
  assert.equal(version, false);
  const want: Partial<Config> = {
    hostnameOverride: "winnode-01",
    bindAddress: "0.0.0.0",
    healthzBindAddress: "0.0.0.0:10256",
    metricsBindAddress: "127.0.0.1:10249",
    syncPeriodMs: 30_000,
    minSyncPeriodMs: 1_000,
    configSyncPeriodMs: 900_000,
    rootHnsEndpointName: "cbr0",
    hnsBackend: "ffi",
    hnsConcurrency: 4,
    enableDSR: false,
    windowsService: false,
    kubeApiQps: 5,
    kubeApiBurst: 10,
    output: "text",
  };
  for (const [k, v] of Object.entries(want)) {
    assert.deepEqual(config[k as keyof Config], v, k);
  }
  assert.deepEqual(config.logging, {
    format: "text",
    verbosity: 0,
    file: "",
    fileMaxBytes: 1800 * 1024 * 1024,
    fileMaxBackups: 5,
    stderr: true,
  });
});

Deno.test("state file default depends on the OS", () => {
  const win = parseConfig([], { ProgramData: "D:\\Data" }, noFile, { ...host, os: "windows" });
  assert.equal(win.config.stateFile, "D:\\Data\\hnsproxy\\state.json");
  const winDefault = parseConfig([], {}, noFile, { ...host, os: "windows" });
  assert.equal(winDefault.config.stateFile, "C:\\ProgramData\\hnsproxy\\state.json");
  assert.equal(
    parse([], { HOME: "/home/op" }).config.stateFile,
    "/home/op/.local/state/hnsproxy/state.json",
  );
  assert.equal(parse([], { XDG_STATE_HOME: "/s" }).config.stateFile, "/s/hnsproxy/state.json");
});

Deno.test("flag forms: --f=v, --f v, bare booleans, -v", () => {
  const { config } = parse([
    "--kubeconfig",
    "C:\\k\\config",
    "--master=https://10.0.0.1:6443",
    "--enable-dsr",
    "--windows-service=false",
    "--forward-healthcheck-vip=true",
    "-v",
    "4",
    "--source-vip=10.244.1.2",
    "--network-name",
    "vxlan0",
  ]);
  assert.equal(config.kubeconfig, "C:\\k\\config");
  assert.equal(config.master, "https://10.0.0.1:6443");
  assert.equal(config.enableDSR, true);
  assert.equal(config.windowsService, false);
  assert.equal(config.forwardHealthCheckVip, true);
  assert.equal(config.logging.verbosity, 4);
  assert.equal(config.sourceVip, "10.244.1.2");
  assert.equal(config.networkName, "vxlan0");
  for (const v of [["-v=3"], ["--v=3"], ["--v", "3"], ["-v3"]]) {
    assert.equal(parse(v).config.logging.verbosity, 3, v.join(" "));
  }
  // The last occurrence wins, as in pflag.
  assert.equal(parse(["--v=1", "--v=5"]).config.logging.verbosity, 5);
  // klog's old underscore spelling.
  assert.equal(parse(["--log_file=/x.log"]).config.logging.file, "/x.log");
});

Deno.test("--cleanup-and-exit is --cleanup; --json is --output=json", () => {
  assert.equal(parse([]).config.cleanupAndExit, false);
  assert.equal(parse(["--cleanup"]).config.cleanupAndExit, true);
  assert.equal(parse(["--cleanup-and-exit"]).config.cleanupAndExit, true);
  assert.equal(parse(["--cleanup-and-exit=false"]).config.cleanupAndExit, false);
  assert.equal(parse(["--cleanup-and-exit=true"]).config.cleanupAndExit, true);
  assert.equal(parse([]).config.output, "text");
  assert.equal(parse(["--json"]).config.output, "json");
  assert.equal(parse(["--json=false"]).config.output, "text");
  assert.equal(parse(["-o", "json"]).config.output, "json");
  assert.deepEqual(parse(["--cleanup-and-exit", "--json"]).warnings, []);
  assert.match(helpText(), /--cleanup-and-exit\s+The same as --cleanup\./);
  assert.match(helpText(), /--json\s+The same as --output=json\./);
});

Deno.test("command line errors name the flag", () => {
  assert.throws(() => parse(["--no-such-flag"]), hasMessage("--no-such-flag: unknown flag"));
  assert.throws(() => parse(["--enable-dsrr"]), hasMessage("did you mean --enable-dsr?"));
  assert.throws(() => parse(["-x"]), hasMessage("-x: unknown flag"));
  assert.throws(() => parse(["--kubeconfig"]), hasMessage("--kubeconfig: needs a value"));
  assert.throws(
    () => parse(["--kubeconfig", "--v=2"]),
    hasMessage("--kubeconfig: needs a value"),
  );
  assert.throws(() => parse(["run"]), hasMessage('command line: "run" is an unexpected argument'));
  assert.throws(
    () => parse(["--sync-period=30"]),
    hasMessage('--sync-period: "30" is not a duration'),
  );
  assert.throws(
    () => parse(["--sync-period=0s"]),
    hasMessage('--sync-period: "0s" must be at least'),
  );
  assert.throws(
    () => parse(["--min-sync-period=-1s"]),
    hasMessage('--min-sync-period: "-1s" must not be negative'),
  );
  assert.throws(
    () => parse(["--source-vip=10.0.0.300"]),
    hasMessage('--source-vip: "10.0.0.300" is not an IP address'),
  );
  assert.throws(
    () => parse(["--enable-dsr=yes"]),
    hasMessage('--enable-dsr: "yes" is not a boolean'),
  );
  assert.throws(() => parse(["--v=-1"]), hasMessage('--v: "-1" is out of range'));
  assert.throws(() => parse(["-v", "x"]), hasMessage('-v: "x" is not an integer'));
  assert.throws(
    () => parse(["--logging-format=xml"]),
    hasMessage('--logging-format: "xml" is not one of text, json'),
  );
  assert.throws(
    () => parse(["--hns-backend=wmi"]),
    hasMessage('--hns-backend: "wmi" is not one of ffi, memory'),
  );
  assert.throws(() => parse(["--hns-concurrency=0"]), hasMessage("--hns-concurrency"));
  assert.throws(() => parse(["--hostname-override= "]), hasMessage("--hostname-override"));
  assert.throws(
    () => parse(["--min-sync-period=1m", "--sync-period=30s"]),
    hasMessage('min-sync-period: "1m0s" must not be greater than sync-period (30s)'),
  );
});

Deno.test("--proxy-mode: kernelspace or empty only", () => {
  assert.deepEqual(parse(["--proxy-mode=kernelspace"]).warnings, []);
  assert.deepEqual(parse(["--proxy-mode="]).warnings, []);
  assert.throws(
    () => parse(["--proxy-mode", "iptables"]),
    hasMessage('--proxy-mode: "iptables" is not supported'),
  );
});

Deno.test("Linux-only and klog-only flags are accepted with one warning each", () => {
  const { warnings } = parse([
    "--masquerade-all",
    "--conntrack-max-per-core=0",
    "--oom-score-adj",
    "-999",
    "--iptables-masquerade-bit=14",
    "--ipvs-scheduler=rr",
    "--nodeport-addresses=10.0.0.0/8",
    "--detect-local-mode=ClusterCIDR",
    "--profiling",
    "--alsologtostderr",
    "--logtostderr=false",
    "--vmodule=x=2",
    "--masquerade-all",
  ]);
  assert.equal(warnings.length, 9);
  assert.ok(warnings.every((w) => w.startsWith("--") && w.includes("is ignored")));
  assert.ok(warnings[0].startsWith("--masquerade-all is ignored: Linux-only"));
  assert.ok(warnings.some((w) => w.startsWith("--profiling is ignored")));
});

Deno.test("--iptables-sync-period sets the sync period, as on kube-proxy for Windows", () => {
  const { config, warnings } = parse([
    "--iptables-sync-period=1m",
    "--iptables-min-sync-period=2s",
  ]);
  assert.equal(config.syncPeriodMs, 60_000);
  assert.equal(config.minSyncPeriodMs, 2_000);
  assert.deepEqual(warnings, []);
});

Deno.test("deprecated --healthz-port and --metrics-port set or disable the servers", () => {
  const r = parse(["--healthz-port=0", "--metrics-port=9100"]);
  assert.equal(r.config.healthzBindAddress, "");
  assert.equal(r.config.metricsBindAddress, "127.0.0.1:9100");
  assert.equal(r.warnings.length, 2);
  assert.ok(r.warnings[0].includes("deprecated"));
  assert.equal(
    parse(["--metrics-bind-address=[::1]:10249", "--metrics-port=1"]).config.metricsBindAddress,
    "[::1]:1",
  );
});

Deno.test("environment: NODE_NAME, KUBE_NETWORK, HNSPROXY_HNS_LIBRARY; flags win", () => {
  const env = { NODE_NAME: " Win-A ", KUBE_NETWORK: "cbr-net", HNSPROXY_HNS_LIBRARY: "emu.dll" };
  const { config } = parse([], env);
  assert.equal(config.hostnameOverride, "win-a");
  assert.equal(config.networkName, "cbr-net");
  assert.equal(config.hnsLibrary, "emu.dll");
  const over = parse(
    ["--hostname-override=Other", "--network-name=n2", "--hns-library=x.dll"],
    env,
  );
  assert.equal(over.config.hostnameOverride, "other");
  assert.equal(over.config.networkName, "n2");
  assert.equal(over.config.hnsLibrary, "x.dll");
});

Deno.test("hostname that cannot be read asks for --hostname-override", () => {
  assert.throws(
    () =>
      parseConfig([], {}, noFile, {
        hostname: () => {
          throw new Deno.errors.NotCapable("sys");
        },
      }),
    hasMessage("--hostname-override: is needed"),
  );
});

Deno.test("logging: file, dir, rotation size, stderr", () => {
  assert.deepEqual(
    parse(["--log-file=C:\\k\\hnsproxy.log", "--log-file-max-size=10"]).config.logging,
    {
      format: "text",
      verbosity: 0,
      file: "C:\\k\\hnsproxy.log",
      fileMaxBytes: 10 * 1024 * 1024,
      fileMaxBackups: 5,
      stderr: false,
    },
  );
  assert.equal(parse(["--log-file=/l", "--alsologtostderr"]).config.logging.stderr, true);
  assert.equal(parse(["--log-file=/l", "--logtostderr"]).config.logging.stderr, true);
  assert.equal(parse(["--logtostderr=false"]).config.logging.stderr, true);
  assert.equal(parse(["--log-dir=C:\\logs"]).config.logging.file, "C:\\logs\\hnsproxy.log");
  assert.equal(parse(["--log-dir=/var/log/"]).config.logging.file, "/var/log/hnsproxy.log");
  assert.equal(
    parse(["--log-dir=/var/log", "--log-file=/x.log"]).config.logging.file,
    "/x.log",
  );
  assert.equal(parse(["--logging-format=json"]).config.logging.format, "json");
  assert.equal(parse(["--log-file-max-size=0"]).config.logging.fileMaxBytes, 0);
});

Deno.test("--help and --version short-circuit everything else", () => {
  const h = parse(["--sync-period=bad", "--help"]);
  assert.equal(h.help, true);
  assert.equal(h.config.syncPeriodMs, 30_000);
  assert.equal(parse(["-h"]).help, true);
  assert.equal(parse(["--version", "--nope"]).version, true);
});

Deno.test("helpText lists every flag, grouped", () => {
  const text = helpText();
  for (const f of FLAGS) assert.ok(text.includes(`--${f.name}`), f.name);
  for (const g of ["General:", "Windows and HNS:", "Logging:", "hnsproxy:"]) {
    assert.ok(text.includes(`\n${g}\n`), g);
  }
  assert.ok(text.includes("-v, --v level"));
  assert.ok(text.split("\n").every((l) => l.length <= 100), "lines fit 100 columns");
});

const FULL_YAML = `
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
featureGates:
  WinDSR: true
  WinOverlay: true
clientConnection:
  kubeconfig: C:\\k\\kubeconfig
  qps: 20
  burst: 40
  contentType: application/vnd.kubernetes.protobuf
logging:
  format: json
  verbosity: 2
  flushFrequency: 5s
hostnameOverride: Node-From-File
bindAddress: 10.0.0.4
healthzBindAddress: 0.0.0.0:10256
metricsBindAddress: 0.0.0.0
clusterCIDR: 10.244.0.0/16
configSyncPeriod: 10m0s
mode: kernelspace
iptables:
  masqueradeAll: false
  masqueradeBit: 14
  syncPeriod: 45s
  minSyncPeriod: 2s
ipvs:
  syncPeriod: 30s
conntrack:
  maxPerCore: 32768
oomScoreAdj: -999
portRange: ""
winkernel:
  networkName: vxlan0
  sourceVip: 10.244.1.2
  enableDSR: true
  rootHnsEndpointName: cbr0
  forwardHealthCheckVip: true
windowsRunAsService: true
`;

Deno.test("config file: every Windows field is read", async () => {
  await withConfigFile(FULL_YAML, (path) => {
    const { config, warnings } = parseConfig(["--config", path], {}, read, host);
    assert.deepEqual(warnings, []);
    assert.equal(config.configFile, path);
    assert.deepEqual(config.featureGates, { WinDSR: true, WinOverlay: true });
    assert.equal(config.kubeconfig, "C:\\k\\kubeconfig");
    assert.equal(config.kubeApiQps, 20);
    assert.equal(config.kubeApiBurst, 40);
    assert.equal(config.logging.format, "json");
    assert.equal(config.logging.verbosity, 2);
    assert.equal(config.hostnameOverride, "node-from-file");
    assert.equal(config.bindAddress, "10.0.0.4");
    assert.equal(config.metricsBindAddress, "0.0.0.0:10249");
    assert.deepEqual(config.clusterCIDR, ["10.244.0.0/16"]);
    assert.equal(config.configSyncPeriodMs, 600_000);
    assert.equal(config.syncPeriodMs, 45_000);
    assert.equal(config.minSyncPeriodMs, 2_000);
    assert.equal(config.networkName, "vxlan0");
    assert.equal(config.sourceVip, "10.244.1.2");
    assert.equal(config.enableDSR, true);
    assert.equal(config.forwardHealthCheckVip, true);
    assert.equal(config.windowsService, true);
  });
});

Deno.test("config file: JSON works too", async () => {
  const json = JSON.stringify({
    apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
    kind: "KubeProxyConfiguration",
    winkernel: { sourceVip: "fd00::5", enableDSR: true },
    syncPeriod: "1m0s",
  });
  await withConfigFile(json, (path) => {
    const { config } = parseConfig([`--config=${path}`], {}, read, host);
    assert.equal(config.sourceVip, "fd00::5");
    assert.equal(config.syncPeriodMs, 60_000);
  }, "json");
});

Deno.test("precedence: defaults < env < file < flags", async () => {
  await withConfigFile(FULL_YAML, (path) => {
    const env = { KUBE_NETWORK: "from-env", NODE_NAME: "env-node" };
    const { config } = parseConfig(
      [
        "--config",
        path,
        "--network-name=from-flag",
        "--sync-period=1m",
        "-v=6",
        "--feature-gates=WinDSR=false,Other=true",
      ],
      env,
      read,
      host,
    );
    assert.equal(config.networkName, "from-flag");
    assert.equal(config.hostnameOverride, "node-from-file");
    assert.equal(config.syncPeriodMs, 60_000);
    assert.equal(config.minSyncPeriodMs, 2_000);
    assert.equal(config.logging.verbosity, 6);
    assert.equal(config.logging.format, "json");
    assert.deepEqual(config.featureGates, { WinDSR: false, WinOverlay: true, Other: true });
  });
  const minimal = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";
  await withConfigFile(minimal, (path) => {
    const { config } = parseConfig(["--config", path], { KUBE_NETWORK: "from-env" }, read, host);
    assert.equal(config.networkName, "from-env");
  });
});

Deno.test("config file: top-level syncPeriod wins over iptables.syncPeriod in any order", () => {
  const head = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";
  for (
    const body of [
      "syncPeriod: 10s\niptables:\n  syncPeriod: 20s\n",
      "iptables:\n  syncPeriod: 20s\nsyncPeriod: 10s\n",
    ]
  ) {
    assert.equal(parseConfigFile("f", head + body).layer.syncPeriodMs, 10_000);
  }
});

Deno.test("config file: an unknown field is an error naming the file and the field's path", () => {
  const head = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";
  const cases: [string, string][] = [
    [
      "winkernel:\n  sourceVIP: 10.0.0.1\n",
      "kp.yaml: winkernel.sourceVIP: is not a KubeProxyConfiguration field " +
      "(did you mean winkernel.sourceVip?)",
    ],
    [
      "sycnPeriod: 10s\n",
      "kp.yaml: sycnPeriod: is not a KubeProxyConfiguration field (did you mean syncPeriod?)",
    ],
    ["frobnicate: true\n", "kp.yaml: frobnicate: is not a KubeProxyConfiguration field"],
    ["ipvs:\n  schedular: rr\n", "kp.yaml: ipvs.schedular: is not a KubeProxyConfiguration field"],
    ["logging:\n  options:\n    yaml: {}\n", "kp.yaml: logging.options.yaml:"],
  ];
  for (const [body, message] of cases) {
    assert.throws(() => parseConfigFile("kp.yaml", head + body), hasMessage(message));
  }
});

/** Every field of kube-proxy's v1alpha1 KubeProxyConfiguration, as `--write-config-to` writes them. */
const KUBE_PROXY_WRITTEN = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 10
  contentType: application/vnd.kubernetes.protobuf
  kubeconfig: ""
  qps: 5
clusterCIDR: ""
configSyncPeriod: 15m0s
conntrack:
  maxPerCore: 32768
  min: 131072
  tcpBeLiberal: false
  tcpCloseWaitTimeout: 1h0m0s
  tcpEstablishedTimeout: 24h0m0s
  udpStreamTimeout: 0s
  udpTimeout: 0s
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
featureGates: {}
healthzBindAddress: 0.0.0.0:10256
hostnameOverride: ""
iptables:
  localhostNodePorts: true
  masqueradeAll: false
  masqueradeBit: 14
  minSyncPeriod: 1s
  syncPeriod: 30s
  snatNodeInternalIP: false
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: false
  syncPeriod: 30s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
logging:
  flushFrequency: 5s
  format: text
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
metricsBindAddress: 127.0.0.1:10249
mode: ""
nftables:
  masqueradeAll: false
  masqueradeBit: 14
  minSyncPeriod: 1s
  syncPeriod: 30s
nodePortAddresses: null
oomScoreAdj: -999
portRange: ""
resourceContainer: /kube-proxy
showHiddenMetricsForVersion: ""
udpIdleTimeout: 250ms
windowsRunAsService: false
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: ""
`;

Deno.test("config file: every field kube-proxy writes (all modes' sections) is accepted", () => {
  const { layer } = parseConfigFile("kube-proxy.yaml", KUBE_PROXY_WRITTEN);
  assert.equal(layer.syncPeriodMs, 30_000);
  assert.equal(layer.minSyncPeriodMs, 1_000);
});

Deno.test("config file: an unknown field stops main.ts with exit 2, naming the file and field", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/kube-proxy.yaml`;
    await Deno.writeTextFile(
      path,
      "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n" +
        "winkernel:\n  networkName: vxlan0\n  sourceVIP: 10.244.1.2\n",
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--no-check",
        new URL("../../main.ts", import.meta.url).pathname,
        "--config",
        path,
        "--hostname-override=n1",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, stderr);
    assert.match(
      stderr,
      /kube-proxy\.yaml: winkernel\.sourceVIP: is not a KubeProxyConfiguration field/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config file errors name the file, the field and the value", async () => {
  const head = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";
  const cases: [string, string][] = [
    [
      head + "winkernel:\n  sourceVip: x\n",
      'f.yaml: winkernel.sourceVip: "x" is not an IP address',
    ],
    [
      head + 'winkernel:\n  enableDSR: "yes"\n',
      'f.yaml: winkernel.enableDSR: "yes" is not a boolean',
    ],
    [head + "iptables:\n  syncPeriod: 30\n", "f.yaml: iptables.syncPeriod: 30 is not a duration"],
    [
      head + "healthzBindAddress: nope:1\n",
      'f.yaml: healthzBindAddress: "nope:1" is not an ip:port',
    ],
    [
      head + "clientConnection:\n  qps: lots\n",
      'f.yaml: clientConnection.qps: "lots" is not a number',
    ],
    [head + "logging:\n  format: xml\n", 'f.yaml: logging.format: "xml" is not one of text, json'],
    [head + "featureGates:\n  A: 1\n", "f.yaml: featureGates.A: 1 is not a boolean"],
    [head + "mode: ipvs\n", 'f.yaml: mode: "ipvs" is not supported'],
    [head + "winkernel: []\n", "f.yaml: winkernel: [] is not a mapping"],
    [head + "clusterCIDR: 10.0.0.0/40\n", 'f.yaml: clusterCIDR: "10.0.0.0/40" is not a CIDR'],
    [
      "apiVersion: kubeproxy.config.k8s.io/v1alpha2\nkind: KubeProxyConfiguration\n",
      'f.yaml: apiVersion: "kubeproxy.config.k8s.io/v1alpha2" is not supported',
    ],
    [
      "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n",
      'f.yaml: kind: "KubeletConfiguration"',
    ],
    ["kind: KubeProxyConfiguration\n", 'f.yaml: apiVersion: "" is not supported'],
    [head + "a: 1\na: 2\n", "f.yaml: is not valid YAML or JSON"],
    ["{ not json", "f.yaml: is not valid YAML or JSON"],
    ["- a\n- b\n", "f.yaml: is not a KubeProxyConfiguration"],
  ];
  for (const [text, want] of cases) {
    assert.throws(() => parseConfigFile("f.yaml", text), hasMessage(want), want);
  }
  assert.throws(
    () => parse(["--config=/does/not/exist.yaml"]),
    hasMessage('--config: "/does/not/exist.yaml" cannot be read'),
  );
  await withConfigFile(head + "winkernel:\n  sourceVip: bad\n", (path) => {
    assert.throws(
      () => parseConfig(["--config", path], {}, read, host),
      hasMessage(`${path}: winkernel.sourceVip: "bad" is not an IP address`),
    );
  });
});

Deno.test("renderConfigFile writes a file that reads back to the same settings", () => {
  const { config } = parse([
    "--enable-dsr",
    "--source-vip=10.244.1.2",
    "--network-name=vxlan0",
    "--sync-period=45s",
    "--min-sync-period=500ms",
    "--cluster-cidr=10.244.0.0/16,fd00::/56",
    "--feature-gates=WinDSR=true",
    "--metrics-bind-address=[::1]:10249",
    "--logging-format=json",
    "-v=3",
  ]);
  const text = renderConfigFile(config);
  const { layer } = parseConfigFile("out.yaml", text);
  assert.equal(layer.enableDSR, true);
  assert.equal(layer.sourceVip, "10.244.1.2");
  assert.equal(layer.networkName, "vxlan0");
  assert.equal(layer.syncPeriodMs, 45_000);
  assert.equal(layer.minSyncPeriodMs, 500);
  assert.deepEqual(layer.clusterCIDR, ["10.244.0.0/16", "fd00::/56"]);
  assert.deepEqual(layer.featureGates, { WinDSR: true });
  assert.equal(layer.metricsBindAddress, "[::1]:10249");
  assert.equal(layer.logFormat, "json");
  assert.equal(layer.verbosity, 3);
  assert.equal(layer.hostnameOverride, "winnode-01");
});
