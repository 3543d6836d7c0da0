/**
 * The command-line flags: kube-proxy's set (the Windows-relevant ones
 * mapped onto {@link Layer}, the Linux-only ones accepted with a warning so
 * existing command lines keep working), hnsproxy's own, the tokenizer
 * (pflag rules: `--flag=value`, `--flag value`, bare booleans, `-v`) and the
 * `--help` text.
 *
 * @module
 */

import { ConfigError } from "./errors.ts";
import type { Layer } from "./types.ts";
import {
  toBindAddress,
  toBool,
  toCIDRs,
  toDuration,
  toEnum,
  toFeatureGates,
  toInt,
  toIP,
  toMac,
  toNodeName,
  toNumber,
} from "./values.ts";

/** Help sections, in the order `--help` prints them. */
export const FLAG_GROUPS = [
  "General",
  "Cluster",
  "Windows and HNS",
  "Sync",
  "Health and metrics",
  "Logging",
  "hnsproxy",
  "Accepted for compatibility and ignored",
] as const;

/** One of {@link FLAG_GROUPS}. */
export type FlagGroup = typeof FLAG_GROUPS[number];

/** One command-line flag. */
export interface FlagSpec {
  /** Long name without dashes. */
  name: string;
  /** One-letter alias (`-v`, `-h`). */
  shorthand?: string;
  /** Booleans need no value (`--enable-dsr` means true). */
  bool: boolean;
  /** Value placeholder in `--help` (e.g. `duration`). */
  arg?: string;
  /** Help section. */
  group: FlagGroup;
  /** One-sentence description. */
  help: string;
  /** Default shown in `--help`. */
  def?: string;
  /** Store the converted value into the flags layer; absent for ignored flags. */
  set?: (layer: Layer, raw: string, label: string) => void;
  /** Why the flag is ignored (becomes a warning when it is used). */
  ignored?: string;
  /** Deprecation note (becomes a warning when it is used). */
  deprecated?: string;
}

const LINUX = "Linux-only (iptables, ipvs, nftables, conntrack); it has no effect on Windows";
const LOG_LEGACY = "klog option without effect in hnsproxy";

function linux(name: string, bool: boolean, help: string): FlagSpec {
  return { name, bool, group: "Accepted for compatibility and ignored", help, ignored: LINUX };
}

function klogOnly(name: string, bool: boolean, help: string): FlagSpec {
  return { name, bool, group: "Accepted for compatibility and ignored", help, ignored: LOG_LEGACY };
}

/** Every flag hnsproxy accepts. */
export const FLAGS: readonly FlagSpec[] = [
  // General
  {
    name: "config",
    bool: false,
    arg: "file",
    group: "General",
    help: "KubeProxyConfiguration file (YAML or JSON, kubeproxy.config.k8s.io/v1alpha1). " +
      "Flags given on the command line override its fields. A field kube-proxy does not " +
      "know is an error.",
    set: (l, v) => l.configFile = v,
  },
  {
    name: "write-config-to",
    bool: false,
    arg: "file",
    group: "General",
    help: "Write the effective configuration as a KubeProxyConfiguration to this file and exit.",
    set: (l, v) => l.writeConfigTo = v,
  },
  {
    name: "cleanup",
    bool: true,
    group: "General",
    help: "Remove the HNS load balancers and endpoints hnsproxy owns, then exit.",
    set: (l, v, k) => l.cleanupAndExit = toBool(k, v),
  },
  {
    name: "cleanup-and-exit",
    bool: true,
    group: "General",
    help: "The same as --cleanup.",
    set: (l, v, k) => l.cleanupAndExit = toBool(k, v),
  },
  {
    name: "feature-gates",
    bool: false,
    arg: "key=bool,...",
    group: "General",
    help: "Feature gates, e.g. WinDSR=true,WinOverlay=true.",
    set: (l, v, k) => l.featureGates = { ...l.featureGates, ...toFeatureGates(k, v) },
  },
  {
    name: "help",
    shorthand: "h",
    bool: true,
    group: "General",
    help: "Print this help and exit.",
    set: (l, v, k) => l.help = toBool(k, v),
  },
  {
    name: "version",
    bool: true,
    group: "General",
    help: "Print the version and exit.",
    set: (l, v, k) => l.version = toBool(k, v),
  },
  // Cluster
  {
    name: "kubeconfig",
    bool: false,
    arg: "file",
    group: "Cluster",
    help: "kubeconfig with the API server address and credentials. " +
      "Empty: in-cluster service account.",
    set: (l, v) => l.kubeconfig = v,
  },
  {
    name: "master",
    bool: false,
    arg: "url",
    group: "Cluster",
    help: "API server address, overriding the kubeconfig's.",
    set: (l, v) => l.master = v,
  },
  {
    name: "hostname-override",
    bool: false,
    arg: "name",
    group: "Cluster",
    help: "Name of this node. Default: env NODE_NAME, else the hostname (lower-cased).",
    set: (l, v, k) => l.hostnameOverride = toNodeName(k, v),
  },
  {
    name: "kube-api-qps",
    bool: false,
    arg: "float",
    group: "Cluster",
    def: "5",
    help: "Requests per second to the API server.",
    set: (l, v, k) => l.kubeApiQps = toNumber(k, v, 0, 1e6),
  },
  {
    name: "kube-api-burst",
    bool: false,
    arg: "int",
    group: "Cluster",
    def: "10",
    help: "Request burst to the API server.",
    set: (l, v, k) => l.kubeApiBurst = toInt(k, v, 0, 1e6),
  },
  {
    name: "config-sync-period",
    bool: false,
    arg: "duration",
    group: "Cluster",
    def: "15m0s",
    help: "How often Services, EndpointSlices and Nodes are re-listed in full from the API " +
      "server (paginated; only differences reach HNS), a safety net for changes a watch " +
      "cannot see, e.g. an API server restored from backup. 0 turns it off.",
    set: (l, v, k) => l.configSyncPeriodMs = toDuration(k, v, 0),
  },
  {
    name: "cluster-cidr",
    bool: false,
    arg: "cidr[,cidr]",
    group: "Cluster",
    help: "Pod CIDR(s) of the cluster, at most one per IP family.",
    set: (l, v, k) => l.clusterCIDR = toCIDRs(k, v),
  },
  {
    name: "bind-address",
    bool: false,
    arg: "ip",
    group: "Cluster",
    def: "0.0.0.0",
    help: "Overrides the node's primary IP (no socket is bound to it). " +
      "0.0.0.0 or '::' means: take it from the Node object.",
    set: (l, v, k) => l.bindAddress = toIP(k, v),
  },
  // Windows and HNS
  {
    name: "network-name",
    bool: false,
    arg: "name",
    group: "Windows and HNS",
    help: "HNS network to program. Default: env KUBE_NETWORK. Without a name hnsproxy stops " +
      "with an error listing the host's networks, unless --detect-network is given.",
    set: (l, v) => l.networkName = v,
  },
  {
    name: "detect-network",
    bool: true,
    group: "Windows and HNS",
    help: "With no network name, program the host's only Overlay or L2Bridge network " +
      "(hnsproxy only; kube-proxy requires the name).",
    set: (l, v, k) => l.detectNetwork = toBool(k, v),
  },
  {
    name: "source-vip",
    bool: false,
    arg: "ip",
    group: "Windows and HNS",
    help: "Source VIP for load-balanced traffic on overlay networks (required there).",
    set: (l, v, k) => l.sourceVip = toIP(k, v),
  },
  {
    name: "host-mac",
    bool: false,
    arg: "mac",
    group: "Windows and HNS",
    help: "MAC of the host's network adapter for the overlay source-VIP and service endpoints. " +
      "Default: the MAC of the interface that holds the node IP (hnsproxy only).",
    set: (l, v, k) => l.hostMac = toMac(k, v),
  },
  {
    name: "enable-dsr",
    bool: true,
    group: "Windows and HNS",
    help: "Program load balancers with Direct Server Return.",
    set: (l, v, k) => l.enableDSR = toBool(k, v),
  },
  {
    name: "root-hnsendpoint-name",
    bool: false,
    arg: "name",
    group: "Windows and HNS",
    def: "cbr0",
    help: "Host HNS endpoint that backs health-check VIPs.",
    set: (l, v) => l.rootHnsEndpointName = v,
  },
  {
    name: "forward-healthcheck-vip",
    bool: true,
    group: "Windows and HNS",
    help: "Forward LoadBalancer ingress IPs' health-check port to the host endpoint.",
    set: (l, v, k) => l.forwardHealthCheckVip = toBool(k, v),
  },
  {
    name: "windows-service",
    bool: true,
    group: "Windows and HNS",
    help: "Run under the Windows Service Control Manager.",
    set: (l, v, k) => l.windowsService = toBool(k, v),
  },
  {
    name: "proxy-mode",
    bool: false,
    arg: "mode",
    group: "Windows and HNS",
    help: "Accepted for compatibility: only 'kernelspace' (or empty) is valid.",
    set: (_l, v, k) => checkProxyMode(k, v),
  },
  // Sync
  {
    name: "sync-period",
    bool: false,
    arg: "duration",
    group: "Sync",
    def: "30s",
    help: "Longest time between two syncs; also the full HNS resync interval.",
    set: (l, v, k) => l.syncPeriodMs = toDuration(k, v, 1),
  },
  {
    name: "min-sync-period",
    bool: false,
    arg: "duration",
    group: "Sync",
    def: "1s",
    help: "Shortest time between two syncs; changes arriving sooner are batched.",
    set: (l, v, k) => l.minSyncPeriodMs = toDuration(k, v),
  },
  {
    name: "iptables-sync-period",
    bool: false,
    arg: "duration",
    group: "Sync",
    help: "kube-proxy's name for --sync-period (kube-proxy on Windows reads it too).",
    set: (l, v, k) => l.syncPeriodMs = toDuration(k, v, 1),
  },
  {
    name: "iptables-min-sync-period",
    bool: false,
    arg: "duration",
    group: "Sync",
    help: "kube-proxy's name for --min-sync-period.",
    set: (l, v, k) => l.minSyncPeriodMs = toDuration(k, v),
  },
  // Health and metrics
  {
    name: "healthz-bind-address",
    bool: false,
    arg: "ip:port",
    group: "Health and metrics",
    def: "0.0.0.0:10256",
    help: "Address of the /healthz and /livez server. Empty disables it.",
    set: (l, v, k) => l.healthzBindAddress = toBindAddress(k, v, 10256),
  },
  {
    name: "metrics-bind-address",
    bool: false,
    arg: "ip:port",
    group: "Health and metrics",
    def: "127.0.0.1:10249",
    help: "Address of the /metrics server. Empty disables it.",
    set: (l, v, k) => l.metricsBindAddress = toBindAddress(k, v, 10249),
  },
  {
    name: "bind-address-hard-fail",
    bool: true,
    group: "Health and metrics",
    help: "Exit when the healthz or metrics server cannot bind its address.",
    set: (l, v, k) => l.bindAddressHardFail = toBool(k, v),
  },
  {
    name: "healthz-port",
    bool: false,
    arg: "port",
    group: "Health and metrics",
    help: "Port of the healthz server; 0 disables it.",
    deprecated: "use --healthz-bind-address",
    set: (l, v, k) => l.healthzPort = toInt(k, v, 0, 65535),
  },
  {
    name: "metrics-port",
    bool: false,
    arg: "port",
    group: "Health and metrics",
    help: "Port of the metrics server; 0 disables it.",
    deprecated: "use --metrics-bind-address",
    set: (l, v, k) => l.metricsPort = toInt(k, v, 0, 65535),
  },
  // Logging
  {
    name: "v",
    shorthand: "v",
    bool: false,
    arg: "level",
    group: "Logging",
    def: "0",
    help: "Log verbosity: 2 adds sync summaries, 4 each HNS call, 6 object bodies.",
    set: (l, v, k) => l.verbosity = toInt(k, v, 0, 100),
  },
  {
    name: "logging-format",
    bool: false,
    arg: "format",
    group: "Logging",
    def: "text",
    help: "'text' (klog lines) or 'json' (JSON lines).",
    set: (l, v, k) => l.logFormat = toEnum(k, v, ["text", "json"] as const),
  },
  {
    name: "log-file",
    bool: false,
    arg: "file",
    group: "Logging",
    help: "Also write logs to this file, rotated by size (a service has no console).",
    set: (l, v) => l.logFile = v,
  },
  {
    name: "log-file-max-size",
    bool: false,
    arg: "MB",
    group: "Logging",
    def: "1800",
    help: "Rotate the log file when it reaches this many megabytes; 0: never.",
    set: (l, v, k) => l.logFileMaxBytes = toInt(k, v, 0, 1 << 20) * 1024 * 1024,
  },
  {
    name: "log-file-max-backups",
    bool: false,
    arg: "int",
    group: "Logging",
    def: "5",
    help: "Rotated log files kept (hnsproxy.log.1 ... .N).",
    set: (l, v, k) => l.logFileMaxBackups = toInt(k, v, 0, 1000),
  },
  {
    name: "log-dir",
    bool: false,
    arg: "dir",
    group: "Logging",
    help: "Write logs to <dir>/hnsproxy.log when --log-file is not given.",
    set: (l, v) => l.logDir = v,
  },
  {
    name: "logtostderr",
    bool: true,
    group: "Logging",
    help: "Write logs to stderr even with --log-file (without one, stderr is always used).",
    set: (l, v, k) => l.logToStderr = toBool(k, v),
  },
  {
    name: "alsologtostderr",
    bool: true,
    group: "Logging",
    help: "Write logs to stderr as well as to the log file.",
    set: (l, v, k) => l.alsoLogToStderr = toBool(k, v),
  },
  // hnsproxy
  {
    name: "hns-library",
    bool: false,
    arg: "path",
    group: "hnsproxy",
    help: "HCN library to load. Default: env HNSPROXY_HNS_LIBRARY, else computenetwork.dll.",
    set: (l, v) => l.hnsLibrary = v,
  },
  {
    name: "hns-backend",
    bool: false,
    arg: "backend",
    group: "hnsproxy",
    def: "ffi",
    help: "'ffi' (the HCN API) or 'memory' (in-process emulation for demos and tests).",
    set: (l, v, k) => l.hnsBackend = toEnum(k, v, ["ffi", "memory"] as const),
  },
  {
    name: "hns-concurrency",
    bool: false,
    arg: "int",
    group: "hnsproxy",
    def: "4",
    help: "HNS calls in flight at once while applying changes; 1 makes them one at a time.",
    set: (l, v, k) => l.hnsConcurrency = toInt(k, v, 1, 64),
  },
  {
    name: "state-file",
    bool: false,
    arg: "file",
    group: "hnsproxy",
    help: "Record of the HNS objects hnsproxy owns. " +
      "Default: %ProgramData%\\hnsproxy\\state.json on Windows.",
    set: (l, v) => l.stateFile = v,
  },
  {
    name: "take-over-foreign",
    bool: true,
    group: "hnsproxy",
    def: "true",
    help: "At start, replace HNS load balancers and remote endpoints of others (e.g. " +
      "kube-proxy's) on addresses a Service claims; false leaves them, blocking those services.",
    set: (l, v, k) => l.takeOverForeign = toBool(k, v),
  },
  {
    name: "full-hns-read-on-start",
    bool: true,
    group: "hnsproxy",
    help: "Read every HNS object at start, even when the state file vouches for hnsproxy's own " +
      "(by default those are confirmed by the ID listings and read only when changed).",
    set: (l, v, k) => l.fullHnsReadOnStart = toBool(k, v),
  },
  {
    name: "output",
    shorthand: "o",
    bool: false,
    arg: "format",
    group: "hnsproxy",
    def: "text",
    help: "Report format of 'plan' and 'hns': 'text' or 'json'.",
    set: (l, v, k) => l.output = toEnum(k, v, ["text", "json"] as const),
  },
  {
    name: "json",
    bool: true,
    group: "hnsproxy",
    help: "The same as --output=json.",
    set: (l, v, k) => l.output = toBool(k, v) ? "json" : "text",
  },
  // kube-proxy flags without meaning on Windows
  linux("iptables-masquerade-bit", false, "fwmark bit for SNAT"),
  linux("iptables-localhost-nodeports", true, "NodePorts on localhost"),
  linux("masquerade-all", true, "SNAT all Service traffic"),
  linux("ipvs-sync-period", false, "IPVS resync interval"),
  linux("ipvs-min-sync-period", false, "IPVS minimum resync interval"),
  linux("ipvs-scheduler", false, "IPVS scheduler"),
  linux("ipvs-exclude-cidrs", false, "CIDRs IPVS cleanup leaves alone"),
  linux("ipvs-strict-arp", true, "strict ARP for kube-ipvs0"),
  linux("ipvs-tcp-timeout", false, "IPVS TCP idle timeout"),
  linux("ipvs-tcpfin-timeout", false, "IPVS TCP FIN timeout"),
  linux("ipvs-udp-timeout", false, "IPVS UDP timeout"),
  linux("conntrack-max-per-core", false, "conntrack table size per core"),
  linux("conntrack-min", false, "minimum conntrack table size"),
  linux("conntrack-tcp-timeout-established", false, "conntrack TCP established timeout"),
  linux("conntrack-tcp-timeout-close-wait", false, "conntrack TCP CLOSE_WAIT timeout"),
  linux("conntrack-tcp-be-liberal", true, "conntrack liberal TCP tracking"),
  linux("conntrack-udp-timeout", false, "conntrack UDP timeout"),
  linux("conntrack-udp-timeout-stream", false, "conntrack UDP stream timeout"),
  linux("oom-score-adj", false, "OOM score of the process"),
  linux("detect-local-mode", false, "how local traffic is detected"),
  linux("pod-bridge-interface", false, "bridge for BridgeInterface detection"),
  linux("pod-interface-name-prefix", false, "prefix for InterfaceNamePrefix detection"),
  linux("nodeport-addresses", false, "node IPs that accept NodePort traffic"),
  linux("init-only", true, "privileged initialisation, then exit"),
  {
    name: "profiling",
    bool: true,
    group: "Accepted for compatibility and ignored",
    help: "/debug/pprof",
    ignored: "hnsproxy has no pprof handler",
  },
  {
    name: "show-hidden-metrics-for-version",
    bool: false,
    group: "Accepted for compatibility and ignored",
    help: "re-enable hidden metrics",
    ignored: "hnsproxy hides no metrics",
  },
  {
    name: "kube-api-content-type",
    bool: false,
    group: "Accepted for compatibility and ignored",
    help: "API content type",
    ignored: "hnsproxy always talks JSON to the API server",
  },
  {
    name: "proxy-port-range",
    bool: false,
    group: "Accepted for compatibility and ignored",
    help: "userspace proxy port range",
    ignored: "the userspace proxy it configured no longer exists",
  },
  {
    name: "udp-timeout",
    bool: false,
    group: "Accepted for compatibility and ignored",
    help: "userspace proxy UDP timeout",
    ignored: "the userspace proxy it configured no longer exists",
  },
  klogOnly("vmodule", false, "per-file verbosity"),
  klogOnly("log-flush-frequency", false, "flush interval (hnsproxy writes each line at once)"),
  klogOnly("log-json-split-stream", true, "JSON info lines to stdout"),
  klogOnly("log-json-info-buffer-size", false, "JSON info line buffer"),
  klogOnly("log-text-split-stream", true, "text info lines to stdout"),
  klogOnly("log-text-info-buffer-size", false, "text info line buffer"),
  klogOnly("add-dir-header", true, "directory in the log header"),
  klogOnly("skip-headers", true, "no log header"),
  klogOnly("skip-log-headers", true, "no log file header"),
  klogOnly("one-output", true, "one severity per file"),
  klogOnly("stderrthreshold", false, "minimum severity on stderr"),
  klogOnly("log-backtrace-at", false, "stack trace at file:line"),
];

const BY_NAME = new Map(FLAGS.map((f) => [f.name, f]));
const BY_SHORTHAND = new Map(FLAGS.filter((f) => f.shorthand).map((f) => [f.shorthand!, f]));

/** `--proxy-mode` / `mode`: empty or kernelspace; anything else cannot work on Windows. */
export function checkProxyMode(label: string, raw: unknown): void {
  if (raw === "" || raw === "kernelspace" || raw === null || raw === undefined) return;
  throw new ConfigError(
    label,
    "is not supported: hnsproxy implements the Windows 'kernelspace' mode only",
    raw,
  );
}

/** The flags found on a command line, in order, before conversion. */
export interface ScannedFlag {
  /** The flag's spec. */
  spec: FlagSpec;
  /** How it was written (`--v`, `-v`), for messages. */
  label: string;
  /** The raw value (`"true"` for a bare boolean). */
  value: string;
}

/**
 * Split a command line into flags (pflag rules). Positional arguments are
 * an error: hnsproxy's subcommands are split off before this is called.
 */
export function scanFlags(args: readonly string[]): ScannedFlag[] {
  const out: ScannedFlag[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      if (i + 1 < args.length) {
        throw new ConfigError("command line", "is an unexpected argument", args[i + 1]);
      }
      break;
    }
    let spec: FlagSpec | undefined;
    let label: string;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
      // klog's flags were registered with underscores once (--log_file); accept both.
      spec = BY_NAME.get(name) ?? BY_NAME.get(name.replaceAll("_", "-"));
      label = `--${name}`;
      if (!spec) throw unknownFlag(label, name);
    } else if (arg.startsWith("-") && arg.length > 1) {
      const letter = arg[1];
      spec = BY_SHORTHAND.get(letter);
      label = `-${letter}`;
      if (!spec) {
        const name = arg.slice(1).split("=")[0];
        throw unknownFlag(arg.split("=")[0], name);
      }
      const rest = arg.slice(2);
      if (rest.startsWith("=")) inline = rest.slice(1);
      else if (rest !== "") {
        if (spec.bool) throw unknownFlag(arg, arg.slice(1));
        inline = rest; // -v3
      }
    } else {
      throw new ConfigError("command line", "is an unexpected argument (flags start with --)", arg);
    }
    let value: string;
    if (inline !== undefined) value = inline;
    else if (spec.bool) value = "true";
    else {
      const next = args[i + 1];
      if (next === undefined || next.startsWith("--")) {
        throw new ConfigError(label, "needs a value");
      }
      value = next;
      i++;
    }
    out.push({ spec, label, value });
  }
  return out;
}

function unknownFlag(label: string, name: string): ConfigError {
  const guess = closestName(name.replace(/^-+/, ""), FLAGS.map((f) => f.name));
  const hint = guess ? ` (did you mean --${guess}?)` : "";
  return new ConfigError(label, `unknown flag${hint}; see --help`);
}

/**
 * The candidate closest to a mistyped `name` (case-insensitive edit
 * distance of at most a quarter of its length, at least 2), or undefined.
 */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(name.length / 4)) + 1;
  for (const candidate of candidates) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/**
 * Apply scanned flags to a fresh layer. Returns the layer and the warnings
 * for ignored and deprecated flags (one per flag name).
 */
export function flagsToLayer(flags: readonly ScannedFlag[]): { layer: Layer; warnings: string[] } {
  const layer: Layer = {};
  const warned = new Set<string>();
  const warnings: string[] = [];
  for (const { spec, label, value } of flags) {
    if (spec.set) spec.set(layer, value, label);
    if (warned.has(spec.name)) continue;
    if (spec.ignored) {
      warnings.push(`--${spec.name} is ignored: ${spec.ignored}`);
      warned.add(spec.name);
    } else if (spec.deprecated) {
      warnings.push(`--${spec.name} is deprecated: ${spec.deprecated}`);
      warned.add(spec.name);
    }
  }
  return { layer, warnings };
}

const WIDTH = 100;
// Column where flag descriptions start, the same in every section.
const COL = 34;

/** The `--help` text: usage, then the flags grouped by section. */
export function helpText(program = "hnsproxy"): string {
  const lines: string[] = [
    `Usage: ${program} [command] [flags]`,
    "",
    "The Kubernetes service proxy for Windows nodes: a replacement for kube-proxy's",
    "kernelspace mode that programs the Host Networking Service (HNS).",
    "kube-proxy command lines and KubeProxyConfiguration files work unchanged.",
  ];
  for (const group of FLAG_GROUPS) {
    const flags = FLAGS.filter((f) => f.group === group);
    lines.push("", `${group}:`);
    if (group === "Accepted for compatibility and ignored") {
      lines.push(...wrap(
        "kube-proxy and klog flags for Linux or for klog internals; " +
          "each is accepted and logs a warning.",
        "  ",
      ));
      lines.push(...wrap(flags.map((f) => `--${f.name}`).join(" "), "  "));
      continue;
    }
    const heads = flags.map((f) => {
      const names = f.shorthand && f.shorthand !== f.name
        ? `-${f.shorthand}, --${f.name}`
        : f.shorthand
        ? `-${f.name}, --${f.name}`
        : `    --${f.name}`;
      return `  ${names}${f.arg ? ` ${f.arg}` : ""}`;
    });
    flags.forEach((f, i) => {
      let text = f.help;
      if (f.def !== undefined) text += ` (default ${f.def})`;
      if (f.deprecated) text += ` Deprecated: ${f.deprecated}.`;
      const body = wrap(text, " ".repeat(COL));
      const head = heads[i];
      if (head.length + 1 < COL) {
        lines.push(head.padEnd(COL) + body[0].trimStart(), ...body.slice(1));
      } else {
        lines.push(head, ...body);
      }
    });
  }
  return lines.join("\n") + "\n";
}

function wrap(text: string, indent: string): string[] {
  const out: string[] = [];
  let line = indent;
  for (const word of text.split(/\s+/)) {
    if (line.length + word.length + 1 > WIDTH && line.trim() !== "") {
      out.push(line.trimEnd());
      line = indent;
    }
    line += (line.trim() === "" ? "" : " ") + word;
  }
  if (line.trim() !== "") out.push(line.trimEnd());
  return out;
}
