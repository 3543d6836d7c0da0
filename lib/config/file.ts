/**
 * KubeProxyConfiguration files (kubeproxy.config.k8s.io/v1alpha1, YAML or
 * JSON): reading one into a {@link Layer}, and writing a {@link Config} back
 * out as one (`--write-config-to`).
 *
 * Unknown fields are warnings, not errors: kube-proxy decodes v1alpha1
 * strictly first and, when that fails, falls back to a lenient decode with
 * a logged warning; hnsproxy does the same in one step. Linux-only sections
 * (iptables other than the sync periods, ipvs, nftables, conntrack, ...)
 * are known fields and are skipped silently, since `kube-proxy
 * --write-config-to` emits all of them.
 *
 * @module
 */

import { parse, stringify } from "yaml";
import { ConfigError } from "./errors.ts";
import { checkProxyMode } from "./flags.ts";
import { formatDuration } from "./duration.ts";
import type { Config, Layer } from "./types.ts";
import {
  toBindAddress,
  toBool,
  toCIDRs,
  toDuration,
  toEnum,
  toFeatureGates,
  toInt,
  toIP,
  toNodeName,
  toNumber,
  toStr,
} from "./values.ts";

/** The apiVersion hnsproxy reads and writes. */
export const API_VERSION = "kubeproxy.config.k8s.io/v1alpha1";
/** The kind hnsproxy reads and writes. */
export const KIND = "KubeProxyConfiguration";

type Handler = (layer: Layer, value: unknown, label: string) => void;
/** A field handler, a nested section, or `null` for a known field hnsproxy ignores. */
type Schema = { [field: string]: Handler | Schema | null };

// Every section kube-proxy knows but which has no meaning on Windows.
const IGNORED_SECTIONS = ["ipvs", "nftables", "conntrack", "detectLocal", "linux"];

const SCHEMA: Schema = {
  apiVersion: null,
  kind: null,
  featureGates: (l, v, k) => l.featureGates = toFeatureGates(k, v),
  clientConnection: {
    kubeconfig: (l, v, k) => l.kubeconfig = toStr(k, v),
    qps: (l, v, k) => l.kubeApiQps = toNumber(k, v, 0, 1e6),
    burst: (l, v, k) => l.kubeApiBurst = toInt(k, v, 0, 1e6),
    contentType: null,
    acceptContentTypes: null,
  },
  logging: {
    format: (l, v, k) => l.logFormat = toEnum(k, v, ["text", "json"] as const),
    verbosity: (l, v, k) => l.verbosity = toInt(k, v, 0, 100),
    flushFrequency: null,
    vmodule: null,
    options: null,
  },
  hostnameOverride: (l, v, k) => {
    if (v !== "" && v !== null) l.hostnameOverride = toNodeName(k, v);
  },
  bindAddress: (l, v, k) => l.bindAddress = toIP(k, v),
  healthzBindAddress: (l, v, k) => l.healthzBindAddress = toBindAddress(k, v, 10256),
  metricsBindAddress: (l, v, k) => l.metricsBindAddress = toBindAddress(k, v, 10249),
  bindAddressHardFail: (l, v, k) => l.bindAddressHardFail = toBool(k, v),
  enableProfiling: null,
  showHiddenMetricsForVersion: null,
  mode: (_l, v, k) => checkProxyMode(k, v),
  // iptables.* only fills what the top-level fields (if any) left unset, whatever the key order.
  iptables: {
    syncPeriod: (l, v, k) => l.syncPeriodMs ??= toDuration(k, v, 1),
    minSyncPeriod: (l, v, k) => l.minSyncPeriodMs ??= toDuration(k, v),
    masqueradeBit: null,
    masqueradeAll: null,
    localhostNodePorts: null,
    snatNodeInternalIP: null,
  },
  // Top-level sync periods (the internal and v1alpha2 layout) win over iptables.*.
  syncPeriod: (l, v, k) => l.syncPeriodMs = toDuration(k, v, 1),
  minSyncPeriod: (l, v, k) => l.minSyncPeriodMs = toDuration(k, v),
  winkernel: {
    networkName: (l, v, k) => l.networkName = toStr(k, v),
    sourceVip: (l, v, k) => l.sourceVip = toIP(k, v),
    enableDSR: (l, v, k) => l.enableDSR = toBool(k, v),
    rootHnsEndpointName: (l, v, k) => l.rootHnsEndpointName = toStr(k, v),
    forwardHealthCheckVip: (l, v, k) => l.forwardHealthCheckVip = toBool(k, v),
  },
  windows: {
    runAsService: (l, v, k) => l.windowsService = toBool(k, v),
  },
  windowsRunAsService: (l, v, k) => l.windowsService = toBool(k, v),
  clusterCIDR: (l, v, k) => l.clusterCIDR = toCIDRs(k, v),
  configSyncPeriod: (l, v, k) => l.configSyncPeriodMs = toDuration(k, v, 0),
  detectLocalMode: null,
  nodePortAddresses: null,
  oomScoreAdj: null,
  portRange: null,
  udpIdleTimeout: null,
  ...Object.fromEntries(IGNORED_SECTIONS.map((s) => [s, null])),
};

/**
 * Read a KubeProxyConfiguration from its text. `path` prefixes every error
 * and warning. Throws {@link ConfigError} for unparsable text, a wrong
 * apiVersion or kind, and bad field values.
 */
export function parseConfigFile(path: string, text: string): { layer: Layer; warnings: string[] } {
  let doc: unknown;
  try {
    doc = parse(text, { uniqueKeys: true, prettyErrors: false });
  } catch (e) {
    const reason = (e instanceof Error ? e.message : String(e)).split("\n")[0];
    throw new ConfigError(path, `is not valid YAML or JSON: ${reason}`, undefined, { cause: e });
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError(path, "is not a KubeProxyConfiguration (expected a mapping)");
  }
  const obj = doc as Record<string, unknown>;
  if (obj.apiVersion !== API_VERSION) {
    throw new ConfigError(
      `${path}: apiVersion`,
      `is not supported (want ${API_VERSION})`,
      obj.apiVersion ?? "",
    );
  }
  if (obj.kind !== KIND) {
    throw new ConfigError(`${path}: kind`, `is not supported (want ${KIND})`, obj.kind ?? "");
  }
  const layer: Layer = {};
  const warnings: string[] = [];
  walk(SCHEMA, Object.entries(obj), "", path, layer, warnings);
  return { layer, warnings };
}

function walk(
  schema: Schema,
  entries: [string, unknown][],
  prefix: string,
  path: string,
  layer: Layer,
  warnings: string[],
): void {
  for (const [key, value] of entries) {
    const field = prefix + key;
    if (!Object.hasOwn(schema, key)) {
      warnings.push(`${path}: unknown field "${field}" is ignored`);
      continue;
    }
    const entry = schema[key];
    if (entry === null) continue;
    if (typeof entry === "function") {
      // YAML null (`field:` with nothing after it) means "not set", as in Go.
      if (value === null) continue;
      entry(layer, value, `${path}: ${field}`);
      continue;
    }
    if (value === null) continue;
    if (typeof value !== "object" || Array.isArray(value)) {
      throw new ConfigError(`${path}: ${field}`, "is not a mapping", value);
    }
    walk(entry, Object.entries(value), field + ".", path, layer, warnings);
  }
}

/**
 * The effective configuration as a KubeProxyConfiguration document (YAML),
 * for `--write-config-to`. hnsproxy-only settings (HNS backend, state file,
 * log file) have no place in it and are left out.
 */
export function renderConfigFile(config: Config): string {
  const doc = {
    apiVersion: API_VERSION,
    kind: KIND,
    bindAddress: config.bindAddress,
    bindAddressHardFail: config.bindAddressHardFail,
    clientConnection: {
      kubeconfig: config.kubeconfig,
      qps: config.kubeApiQps,
      burst: config.kubeApiBurst,
    },
    clusterCIDR: config.clusterCIDR.join(","),
    configSyncPeriod: formatDuration(config.configSyncPeriodMs),
    featureGates: config.featureGates,
    healthzBindAddress: config.healthzBindAddress,
    hostnameOverride: config.hostnameOverride,
    iptables: {
      syncPeriod: formatDuration(config.syncPeriodMs),
      minSyncPeriod: formatDuration(config.minSyncPeriodMs),
    },
    logging: { format: config.logging.format, verbosity: config.logging.verbosity },
    metricsBindAddress: config.metricsBindAddress,
    mode: "kernelspace",
    windowsRunAsService: config.windowsService,
    winkernel: {
      networkName: config.networkName,
      sourceVip: config.sourceVip,
      enableDSR: config.enableDSR,
      rootHnsEndpointName: config.rootHnsEndpointName,
      forwardHealthCheckVip: config.forwardHealthCheckVip,
    },
  };
  return stringify(doc);
}
