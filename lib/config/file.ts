/**
 * KubeProxyConfiguration files (kubeproxy.config.k8s.io/v1alpha1, YAML or
 * JSON): reading one into a {@link Layer}, and writing a {@link Config} back
 * out as one (`--write-config-to`).
 *
 * Strict: a field that is not a KubeProxyConfiguration field is an error
 * naming the file and the field's path (a mistyped `syncPeriod` must not
 * silently become the default). Every field of kube-proxy's v1alpha1 type
 * is known, including the ones that mean nothing on Windows (the
 * `iptables`, `ipvs`, `nftables`, `conntrack` and `detectLocal` sections,
 * `oomScoreAdj`, ...) and the ones older kube-proxy releases wrote
 * (`resourceContainer`, `udpIdleTimeout`): those are skipped silently, since
 * `kube-proxy --write-config-to` emits them, so a file kube-proxy reads is
 * a file hnsproxy reads. (kube-proxy itself retries a strict v1alpha1
 * decoding failure leniently with a logged warning; hnsproxy does not.)
 *
 * @module
 */

import { loadedYaml, parseYamlOrJson, YamlNotLoaded } from "./yaml.ts";
import { ConfigError } from "./errors.ts";
import { checkProxyMode, closestName } from "./flags.ts";
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
import { errorMessage } from "../errors.ts";

/** The apiVersion hnsproxy reads and writes. */
export const API_VERSION = "kubeproxy.config.k8s.io/v1alpha1";
/** The kind hnsproxy reads and writes. */
export const KIND = "KubeProxyConfiguration";

type Handler = (layer: Layer, value: unknown, label: string) => void;
/** A field handler, a nested section, or `null` for a known field hnsproxy ignores. */
type Schema = { [field: string]: Handler | Schema | null };

/** A section of known fields that hnsproxy skips (they have no meaning on Windows). */
function skipped(...fields: string[]): Schema {
  return Object.fromEntries(fields.map((f) => [f, null]));
}

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
    options: { text: null, json: null },
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
    ...skipped("masqueradeBit", "masqueradeAll", "localhostNodePorts", "snatNodeInternalIP"),
  },
  ipvs: skipped(
    "syncPeriod",
    "minSyncPeriod",
    "scheduler",
    "excludeCIDRs",
    "strictARP",
    "tcpTimeout",
    "tcpFinTimeout",
    "udpTimeout",
  ),
  nftables: skipped("masqueradeBit", "masqueradeAll", "syncPeriod", "minSyncPeriod"),
  conntrack: skipped(
    "maxPerCore",
    "min",
    "tcpEstablishedTimeout",
    "tcpCloseWaitTimeout",
    "tcpBeLiberal",
    "udpTimeout",
    "udpStreamTimeout",
  ),
  detectLocalMode: null,
  detectLocal: skipped("bridgeInterface", "interfaceNamePrefix"),
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
  windowsRunAsService: (l, v, k) => l.windowsService = toBool(k, v),
  // The internal (v1alpha2) layout's Windows and Linux sections, accepted as before.
  windows: {
    runAsService: (l, v, k) => l.windowsService = toBool(k, v),
  },
  linux: null,
  clusterCIDR: (l, v, k) => l.clusterCIDR = toCIDRs(k, v),
  configSyncPeriod: (l, v, k) => l.configSyncPeriodMs = toDuration(k, v, 0),
  nodePortAddresses: null,
  oomScoreAdj: null,
  portRange: null,
  // Fields of older v1alpha1 releases that `--write-config-to` files may still hold.
  resourceContainer: null,
  udpIdleTimeout: null,
};

/**
 * Read a KubeProxyConfiguration from its text (JSON, or YAML once
 * lib/config/yaml.ts `loadYaml` has run: {@link YamlNotLoaded} before).
 * `path` prefixes every error. Throws {@link ConfigError} for unparsable text, a wrong apiVersion or
 * kind, an unknown field and bad field values.
 */
export function parseConfigFile(path: string, text: string): { layer: Layer } {
  let doc: unknown;
  try {
    doc = parseYamlOrJson(text, { uniqueKeys: true });
  } catch (e) {
    if (e instanceof YamlNotLoaded) throw e;
    const reason = (errorMessage(e)).split("\n")[0];
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
  walk(SCHEMA, Object.entries(obj), "", path, layer);
  return { layer };
}

function walk(
  schema: Schema,
  entries: [string, unknown][],
  prefix: string,
  path: string,
  layer: Layer,
): void {
  for (const [key, value] of entries) {
    const field = prefix + key;
    if (!Object.hasOwn(schema, key)) throw unknownField(path, field, schema, prefix);
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
    walk(entry, Object.entries(value), field + ".", path, layer);
  }
}

function unknownField(path: string, field: string, schema: Schema, prefix: string): ConfigError {
  const key = field.slice(prefix.length);
  const guess = closestName(key, Object.keys(schema));
  const hint = guess === undefined ? "" : ` (did you mean ${prefix}${guess}?)`;
  return new ConfigError(
    `${path}: ${field}`,
    `is not a KubeProxyConfiguration field${hint}`,
  );
}

/**
 * The effective configuration as a KubeProxyConfiguration document (YAML),
 * for `--write-config-to`. hnsproxy-only settings (HNS backend, state file,
 * log file) have no place in it and are left out. Needs the YAML parser
 * loaded (lib/config/yaml.ts `loadYaml`).
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
  return loadedYaml().stringify(doc);
}
