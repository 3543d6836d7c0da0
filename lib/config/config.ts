/**
 * `parseConfig`: command line + environment + KubeProxyConfiguration file
 * into one validated {@link Config}.
 *
 * Precedence, lowest first: built-in defaults, environment (NODE_NAME,
 * KUBE_NETWORK, HNSPROXY_HNS_LIBRARY), the `--config` file, flags given on
 * the command line. (kube-proxy instead ignores most flags once `--config`
 * is given; hnsproxy lets explicit flags win, which is what operators
 * expect when they add one flag to a working command line.)
 *
 * @module
 */

import { ConfigError } from "./errors.ts";
import { formatDuration } from "./duration.ts";
import { parseConfigFile } from "./file.ts";
import { flagsToLayer, scanFlags } from "./flags.ts";
import { joinHostPort, splitHostPort } from "../net/ip.ts";
import type { Config, Layer } from "./types.ts";
import { toNodeName } from "./values.ts";
import { errorMessage } from "../errors.ts";

/** Host facts parseConfig needs; injectable for tests. */
export interface ParseOptions {
  /** The OS hostname (default `Deno.hostname()`). */
  hostname?: () => string;
  /** The OS (default `Deno.build.os`); decides the default state file location. */
  os?: string;
}

/** What {@link parseConfig} returns. */
export interface ParseResult {
  /** The validated configuration (defaults only when `help` or `version` is set). */
  config: Config;
  /** One line per ignored or deprecated flag. */
  warnings: string[];
  /** `--help` / `-h` was given: print {@link helpText} and exit. */
  help: boolean;
  /** `--version` was given: print the version and exit. */
  version: boolean;
}

/** Reads a file's text (sync), e.g. `Deno.readTextFileSync`. */
export type ReadFile = (path: string) => string;

/**
 * Parse and validate the agent configuration. Throws {@link ConfigError}
 * with a one-line message naming the flag, variable or field and its value.
 */
export function parseConfig(
  args: readonly string[],
  env: Record<string, string | undefined>,
  readFile: ReadFile,
  options: ParseOptions = {},
): ParseResult {
  const os = options.os ?? Deno.build.os;
  // --help and --version win over anything else on the line, even bad flags.
  const help = args.some((a) => a === "--help" || a === "-h" || a === "--help=true");
  const version = !help && args.some((a) => a === "--version" || a === "--version=true");
  if (help || version) {
    let hostname = "";
    try {
      hostname = defaultHostname(env, options);
    } catch { /* not needed to print help */ }
    return { config: build(defaults(env, os), hostname), warnings: [], help, version };
  }
  const { layer: flags, warnings } = flagsToLayer(scanFlags(args));

  const envLayer: Layer = {};
  if (env.NODE_NAME?.trim()) envLayer.hostnameOverride = toNodeName("NODE_NAME", env.NODE_NAME);
  if (env.KUBE_NETWORK) envLayer.networkName = env.KUBE_NETWORK;
  if (env.HNSPROXY_HNS_LIBRARY) envLayer.hnsLibrary = env.HNSPROXY_HNS_LIBRARY;

  let file: Layer = {};
  if (flags.configFile) {
    let text: string;
    try {
      text = readFile(flags.configFile);
    } catch (e) {
      const reason = errorMessage(e);
      throw new ConfigError("--config", `cannot be read: ${reason}`, flags.configFile, {
        cause: e,
      });
    }
    file = parseConfigFile(flags.configFile, text).layer;
  }

  const merged: Layer = { ...defaults(env, os), ...envLayer, ...file, ...flags };
  merged.featureGates = { ...file.featureGates, ...flags.featureGates };
  if (flags.healthzPort !== undefined) {
    merged.healthzBindAddress = withPort(merged.healthzBindAddress!, flags.healthzPort, "0.0.0.0");
  }
  if (flags.metricsPort !== undefined) {
    merged.metricsBindAddress = withPort(
      merged.metricsBindAddress!,
      flags.metricsPort,
      "127.0.0.1",
    );
  }
  const hostname = merged.hostnameOverride ?? defaultHostname(env, options);
  const config = build(merged, hostname);
  validate(config);
  return { config, warnings, help, version };
}

function defaults(env: Record<string, string | undefined>, os: string): Layer {
  return {
    configFile: "",
    kubeconfig: "",
    master: "",
    kubeApiQps: 5,
    kubeApiBurst: 10,
    bindAddress: "0.0.0.0",
    bindAddressHardFail: false,
    clusterCIDR: [],
    healthzBindAddress: "0.0.0.0:10256",
    metricsBindAddress: "127.0.0.1:10249",
    syncPeriodMs: 30_000,
    minSyncPeriodMs: 1_000,
    configSyncPeriodMs: 15 * 60_000,
    windowsService: false,
    networkName: "",
    detectNetwork: false,
    sourceVip: "",
    hostMac: "",
    enableDSR: false,
    rootHnsEndpointName: "cbr0",
    forwardHealthCheckVip: false,
    featureGates: {},
    logFormat: "text",
    verbosity: 0,
    logFileMaxBytes: 1800 * 1024 * 1024,
    logFileMaxBackups: 5,
    hnsLibrary: "",
    hnsBackend: "ffi",
    hnsConcurrency: 4,
    stateFile: defaultStateFile(env, os),
    takeOverForeign: true,
    fullHnsReadOnStart: false,
    cleanupAndExit: false,
    writeConfigTo: "",
    output: "text",
  };
}

/**
 * Where the ownership record lives by default: `%ProgramData%\hnsproxy\state.json`
 * on Windows, `$XDG_STATE_HOME/hnsproxy/state.json` (or `~/.local/state/...`,
 * or `/var/lib/hnsproxy/state.json` without a home) elsewhere.
 */
export function defaultStateFile(env: Record<string, string | undefined>, os: string): string {
  if (os === "windows") {
    const base = env.ProgramData ?? env.PROGRAMDATA ?? "C:\\ProgramData";
    return `${base.replace(/[\\/]+$/, "")}\\hnsproxy\\state.json`;
  }
  if (env.XDG_STATE_HOME) return `${env.XDG_STATE_HOME.replace(/\/+$/, "")}/hnsproxy/state.json`;
  if (env.HOME) return `${env.HOME.replace(/\/+$/, "")}/.local/state/hnsproxy/state.json`;
  return "/var/lib/hnsproxy/state.json";
}

function defaultHostname(env: Record<string, string | undefined>, options: ParseOptions): string {
  if (env.NODE_NAME?.trim()) return toNodeName("NODE_NAME", env.NODE_NAME);
  let name: string;
  try {
    name = (options.hostname ?? Deno.hostname)();
  } catch (e) {
    throw new ConfigError(
      "--hostname-override",
      `is needed: the hostname cannot be read (${e instanceof Error ? e.message : e})`,
      undefined,
      { cause: e },
    );
  }
  return toNodeName("hostname", name);
}

function withPort(address: string, port: number, defaultHost: string): string {
  if (port === 0) return "";
  return joinHostPort(splitHostPort(address)?.host ?? defaultHost, port);
}

function build(l: Layer, hostname: string): Config {
  const file = l.logFile ?? (l.logDir ? joinPath(l.logDir, "hnsproxy.log") : "");
  return {
    configFile: l.configFile!,
    kubeconfig: l.kubeconfig!,
    master: l.master!,
    kubeApiQps: l.kubeApiQps!,
    kubeApiBurst: l.kubeApiBurst!,
    hostnameOverride: hostname,
    bindAddress: l.bindAddress!,
    bindAddressHardFail: l.bindAddressHardFail!,
    clusterCIDR: l.clusterCIDR!,
    healthzBindAddress: l.healthzBindAddress!,
    metricsBindAddress: l.metricsBindAddress!,
    syncPeriodMs: l.syncPeriodMs!,
    minSyncPeriodMs: l.minSyncPeriodMs!,
    configSyncPeriodMs: l.configSyncPeriodMs!,
    windowsService: l.windowsService!,
    networkName: l.networkName!,
    detectNetwork: l.detectNetwork!,
    sourceVip: l.sourceVip!,
    hostMac: l.hostMac!,
    enableDSR: l.enableDSR!,
    rootHnsEndpointName: l.rootHnsEndpointName!,
    forwardHealthCheckVip: l.forwardHealthCheckVip!,
    featureGates: l.featureGates!,
    logging: {
      format: l.logFormat!,
      verbosity: l.verbosity!,
      file,
      fileMaxBytes: l.logFileMaxBytes!,
      fileMaxBackups: l.logFileMaxBackups!,
      // Without a file, stderr is the only place logs can go.
      stderr: file === "" || l.alsoLogToStderr === true || l.logToStderr === true,
    },
    hnsLibrary: l.hnsLibrary!,
    hnsBackend: l.hnsBackend!,
    hnsConcurrency: l.hnsConcurrency!,
    stateFile: l.stateFile!,
    takeOverForeign: l.takeOverForeign!,
    fullHnsReadOnStart: l.fullHnsReadOnStart!,
    cleanupAndExit: l.cleanupAndExit!,
    writeConfigTo: l.writeConfigTo!,
    output: l.output!,
  };
}

function joinPath(dir: string, name: string): string {
  const sep = dir.includes("\\") && !dir.includes("/") ? "\\" : "/";
  return dir.endsWith(sep) ? dir + name : dir + sep + name;
}

function validate(c: Config): void {
  if (c.minSyncPeriodMs > c.syncPeriodMs) {
    throw new ConfigError(
      "min-sync-period",
      `must not be greater than sync-period (${formatDuration(c.syncPeriodMs)})`,
      formatDuration(c.minSyncPeriodMs),
    );
  }
  if (c.rootHnsEndpointName.trim() === "") {
    throw new ConfigError("root-hnsendpoint-name", "must not be empty", c.rootHnsEndpointName);
  }
  if (c.stateFile.trim() === "") {
    throw new ConfigError("--state-file", "must not be empty", c.stateFile);
  }
}
