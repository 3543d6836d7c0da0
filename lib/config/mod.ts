/**
 * Configuration: flags and KubeProxyConfiguration files into one validated
 * {@link Config}.
 *
 * @module
 */

export { defaultStateFile, parseConfig } from "./config.ts";
export type { ParseOptions, ParseResult, ReadFile } from "./config.ts";
export { ConfigError } from "./errors.ts";
export { API_VERSION, KIND, parseConfigFile, renderConfigFile } from "./file.ts";
export { FLAGS, helpText } from "./flags.ts";
export type { FlagSpec } from "./flags.ts";
export { formatDuration, parseDuration } from "./duration.ts";
export type { Config, LoggingConfig } from "./types.ts";
export { VERSION, versionText } from "./version.ts";
