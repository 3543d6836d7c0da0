/**
 * The validated agent configuration ({@link Config}) and the flat partial
 * form ({@link Layer}) each source (defaults, environment, config file,
 * flags) contributes before they are merged.
 *
 * @module
 */

/** Log output settings. */
export interface LoggingConfig {
  /** `text` (klog header lines) or `json` (component-base JSON lines). */
  format: "text" | "json";
  /** `--v`: debug lines at or below this level are shown. */
  verbosity: number;
  /** Log file path; empty for none. */
  file: string;
  /** Rotate the log file when it would grow past this many bytes; 0 never rotates. */
  fileMaxBytes: number;
  /** Rotated files kept (`hnsproxy.log.1` ... `.N`). */
  fileMaxBackups: number;
  /** Also write to stderr. */
  stderr: boolean;
}

/** Everything the agent needs from flags, environment and config file, validated. */
export interface Config {
  /** `--config`: the KubeProxyConfiguration file read, or empty. */
  configFile: string;
  /** Path to a kubeconfig; empty means in-cluster configuration. */
  kubeconfig: string;
  /** API server URL overriding the kubeconfig's, or empty. */
  master: string;
  /** Client-side rate limit towards the API server, requests per second. */
  kubeApiQps: number;
  /** Client-side burst towards the API server. */
  kubeApiBurst: number;
  /** This node's name: `--hostname-override`, else NODE_NAME, else the OS hostname; lower-cased. */
  hostnameOverride: string;
  /** The node's primary IP override (`--bind-address`); `0.0.0.0`/`::` mean "from the Node object". */
  bindAddress: string;
  /** Exit when the healthz or metrics server cannot bind. */
  bindAddressHardFail: boolean;
  /** Pod CIDRs of the cluster (at most one per family). */
  clusterCIDR: string[];
  /** `ip:port` of the /healthz and /livez server; empty disables it. */
  healthzBindAddress: string;
  /** `ip:port` of the /metrics server; empty disables it. */
  metricsBindAddress: string;
  /** Longest time between two syncs, in ms (kube-proxy syncPeriod, default 30 s). */
  syncPeriodMs: number;
  /** Shortest time between two syncs, in ms (kube-proxy minSyncPeriod, default 1 s). */
  minSyncPeriodMs: number;
  /** Full relist period, in ms (kube-proxy configSyncPeriod, default 15 min; 0: off). */
  configSyncPeriodMs: number;
  /** Run under the Windows Service Control Manager. */
  windowsService: boolean;
  /** HNS network to program (winkernel.networkName, env KUBE_NETWORK); empty needs `detectNetwork`. */
  networkName: string;
  /** `--detect-network`: with no network name, program the only Overlay/L2Bridge network. */
  detectNetwork: boolean;
  /** Source VIP for overlay networks (winkernel.sourceVip), or empty. */
  sourceVip: string;
  /** `--host-mac`: the host's MAC on overlay (`00-15-5d-aa-bb-cc`); empty finds it from the node IP. */
  hostMac: string;
  /** Program load balancers with Direct Server Return. */
  enableDSR: boolean;
  /** Host endpoint that backs health-check VIPs (default `cbr0`). */
  rootHnsEndpointName: string;
  /** Forward the health-check port on LoadBalancer ingress IPs to the host. */
  forwardHealthCheckVip: boolean;
  /** Feature gates as given. */
  featureGates: Record<string, boolean>;
  /** Log output. */
  logging: LoggingConfig;
  /** Path of the HCN library to load (`computenetwork.dll` when empty). */
  hnsLibrary: string;
  /** `ffi` (the real HCN API) or `memory` (an in-process emulation, for demos and tests). */
  hnsBackend: "ffi" | "memory";
  /** HNS calls allowed in flight at once. */
  hnsConcurrency: number;
  /** Where the ownership record is kept. */
  stateFile: string;
  /**
   * At start, take over (replace) foreign HNS objects on addresses a Service
   * claims, e.g. kube-proxy's leftovers (`--take-over-foreign`, default true).
   */
  takeOverForeign: boolean;
  /** Read every HNS object at start instead of trusting the ownership record's fingerprints. */
  fullHnsReadOnStart: boolean;
  /** Remove everything hnsproxy owns from HNS, then exit (`--cleanup`). */
  cleanupAndExit: boolean;
  /** Write the effective configuration as a KubeProxyConfiguration to this file and exit. */
  writeConfigTo: string;
  /** Output format of `plan` and other reports. */
  output: "text" | "json";
}

/**
 * One source's contribution, flat: every key optional. `logging.*` fields
 * are spread into `log*` keys, and the stderr switches are kept raw until
 * the merge decides.
 */
export interface Layer {
  configFile?: string;
  kubeconfig?: string;
  master?: string;
  kubeApiQps?: number;
  kubeApiBurst?: number;
  hostnameOverride?: string;
  bindAddress?: string;
  bindAddressHardFail?: boolean;
  clusterCIDR?: string[];
  healthzBindAddress?: string;
  metricsBindAddress?: string;
  /** Deprecated `--healthz-port`: replaces the port of healthzBindAddress; 0 disables. */
  healthzPort?: number;
  /** Deprecated `--metrics-port`: replaces the port of metricsBindAddress; 0 disables. */
  metricsPort?: number;
  syncPeriodMs?: number;
  minSyncPeriodMs?: number;
  configSyncPeriodMs?: number;
  windowsService?: boolean;
  networkName?: string;
  detectNetwork?: boolean;
  sourceVip?: string;
  hostMac?: string;
  enableDSR?: boolean;
  rootHnsEndpointName?: string;
  forwardHealthCheckVip?: boolean;
  featureGates?: Record<string, boolean>;
  logFormat?: "text" | "json";
  verbosity?: number;
  logFile?: string;
  logDir?: string;
  logFileMaxBytes?: number;
  logFileMaxBackups?: number;
  logToStderr?: boolean;
  alsoLogToStderr?: boolean;
  hnsLibrary?: string;
  hnsBackend?: "ffi" | "memory";
  hnsConcurrency?: number;
  stateFile?: string;
  takeOverForeign?: boolean;
  fullHnsReadOnStart?: boolean;
  cleanupAndExit?: boolean;
  writeConfigTo?: string;
  output?: "text" | "json";
  help?: boolean;
  version?: boolean;
}
