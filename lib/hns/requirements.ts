/**
 * What hnsproxy needs of HNS before it starts, checked as kube-proxy checks
 * it: the HCN (v2) API (HNS 9.2+), and DSR when `--enable-dsr` asks for it.
 * An HNS whose version cannot be read counts as having neither (the feature
 * table's rule), so the agent refuses to start rather than run with features
 * silently off; a Windows service is restarted by its failure actions.
 *
 * @module
 */

import {
  enabledFeatures,
  FEATURE_RANGES,
  featuresOf,
  formatVersion,
  type VersionRange,
} from "./features.ts";
import type { HnsClient, HnsFeatures, HnsVersion } from "./types.ts";
import { type Logger, nullLogger } from "../log/types.ts";

/** What the configuration asks of HNS. */
export interface HnsNeeds {
  /** `--enable-dsr`: Direct Server Return must be available. */
  enableDSR: boolean;
}

/** hnsproxy cannot run on this HNS with this configuration. */
export class HnsUnsupportedError extends Error {
  /** The version read, or null when it could not be read. */
  readonly version: HnsVersion | null;

  /** An error with the reason in words. */
  constructor(message: string, version: HnsVersion | null) {
    super(message);
    this.name = "HnsUnsupportedError";
    this.version = version;
  }
}

function ranges(feature: keyof HnsFeatures): string {
  const one = (r: VersionRange) =>
    r.max.major === Infinity
      ? `${formatVersion(r.min)}+`
      : `${formatVersion(r.min)}–${r.max.major}.x`;
  return FEATURE_RANGES[feature].map(one).join(" or ");
}

/**
 * Why hnsproxy cannot run on HNS `version` with `needs`, in words naming the
 * version, the feature and what it takes; undefined when it can.
 */
export function hnsStartupProblem(
  version: HnsVersion | null,
  needs: HnsNeeds,
): string | undefined {
  const features = featuresOf(version);
  if (!version) {
    return "cannot read the HNS version (HNSCall GET /globals/version failed); " +
      `hnsproxy needs the HCN (v2) API of HNS ${ranges("api")}`;
  }
  const v = formatVersion(version);
  if (!features.api) {
    return `HNS ${v} has no HCN (v2) API; hnsproxy needs HNS ${ranges("api")} ` +
      "(Windows Server 2019 / 1809 or later)";
  }
  if (needs.enableDSR && !features.dsr) {
    return `--enable-dsr: HNS ${v} has no Direct Server Return (needs HNS ${ranges("dsr")}); ` +
      "remove the flag (enableDSR in the config file) or update Windows";
  }
  return undefined;
}

/**
 * Read the HNS version, log it with the features hnsproxy derives from it,
 * and throw {@link HnsUnsupportedError} when hnsproxy cannot run on it.
 */
export async function checkHnsSupport(
  client: HnsClient,
  needs: HnsNeeds,
  logger: Logger = nullLogger,
): Promise<HnsFeatures> {
  const version = await client.version();
  const features = await client.features();
  const problem = hnsStartupProblem(version, needs);
  if (problem) throw new HnsUnsupportedError(problem, version);
  logger.info("HNS version read", {
    version: formatVersion(version!),
    features: enabledFeatures(features).join(",") || "none",
  });
  return features;
}
