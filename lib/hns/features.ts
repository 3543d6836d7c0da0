/**
 * What an HNS version supports, per the feature table of the HCN API
 * (the same thresholds hcsshim's `hcn` package uses). An unreadable version
 * supports nothing.
 *
 * @module
 */

import type { HnsFeatures, HnsVersion } from "./types.ts";

/** True when `v` is at least `major.minor`. */
export function atLeast(v: HnsVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

/** Every feature off: what hnsproxy assumes when the version cannot be read. */
export const NO_FEATURES: Readonly<HnsFeatures> = Object.freeze({
  api: false,
  dsr: false,
  ipv6DualStack: false,
  sessionAffinity: false,
  modifyLoadBalancer: false,
});

/** The features of an HNS version; `null` (unreadable version) gives {@link NO_FEATURES}. */
export function featuresOf(version: HnsVersion | null): HnsFeatures {
  if (!version) return { ...NO_FEATURES };
  return {
    api: atLeast(version, 9, 2),
    dsr: (version.major === 9 && version.minor >= 3) || atLeast(version, 10, 2),
    ipv6DualStack: atLeast(version, 11, 10),
    sessionAffinity: atLeast(version, 12, 0),
    modifyLoadBalancer: atLeast(version, 15, 4),
  };
}

/** The feature names that are on, in words, e.g. `["dsr", "ipv6DualStack"]`. */
export function enabledFeatures(features: HnsFeatures): string[] {
  return (Object.keys(features) as Array<keyof HnsFeatures>).filter((k) => features[k]);
}
