/**
 * What an HNS version supports: the version ranges of Microsoft's `hcn`
 * package (hcsshim / hnslib `hcnglobals.go`), range for range. A range is
 * inclusive at both ends; a feature is on when any of its ranges holds the
 * version. An unreadable version supports nothing.
 *
 * @module
 */

import type { HnsFeatures, HnsVersion } from "./types.ts";

/** An inclusive `major.minor` range; `Infinity` stands for hcsshim's MaxInt32. */
export interface VersionRange {
  /** Lowest version in the range. */
  min: HnsVersion;
  /** Highest version in the range. */
  max: HnsVersion;
}

const ANY = Infinity;
const from = (major: number, minor: number): VersionRange => ({
  min: { major, minor },
  max: { major: ANY, minor: ANY },
});
const within = (major: number, minor: number): VersionRange => ({
  min: { major, minor },
  max: { major, minor: ANY },
});

/** The version ranges of each feature, as hcsshim's `hcn` package gates them. */
export const FEATURE_RANGES: Readonly<Record<keyof HnsFeatures, readonly VersionRange[]>> = Object
  .freeze({
    /** `V2ApiSupport` (also `RemoteSubnetVersion`, `HostRouteVersion`). */
    api: [from(9, 2)],
    /** `DSRVersion`: 9.3–9.x and 10.2+ (10.0 and 10.1 have none). */
    dsr: [within(9, 3), from(10, 2)],
    /** `IPv6DualStackVersion`. */
    ipv6DualStack: [from(11, 10)],
    /** `SessionAffinityVersion`. */
    sessionAffinity: [from(12, 0)],
    /** `ModifyLoadbalancerVersion`: 15.5–15.x and 16.0+ (not 15.4). */
    modifyLoadBalancer: [within(15, 5), from(16, 0)],
  });

/** True when `v` is at least `major.minor`. */
export function atLeast(v: HnsVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

/** True when `v` lies in `range` (both ends included), as hcsshim's `isFeatureInRange`. */
export function inRange(v: HnsVersion, range: VersionRange): boolean {
  return atLeast(v, range.min.major, range.min.minor) &&
    atLeast(range.max, v.major, v.minor);
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
  const has = (f: keyof HnsFeatures) => FEATURE_RANGES[f].some((r) => inRange(version, r));
  return {
    api: has("api"),
    dsr: has("dsr"),
    ipv6DualStack: has("ipv6DualStack"),
    sessionAffinity: has("sessionAffinity"),
    modifyLoadBalancer: has("modifyLoadBalancer"),
  };
}

/** The feature names that are on, in words, e.g. `["dsr", "ipv6DualStack"]`. */
export function enabledFeatures(features: HnsFeatures): string[] {
  return (Object.keys(features) as Array<keyof HnsFeatures>).filter((k) => features[k]);
}

/** A version as HNS writes it, e.g. `15.4`. */
export function formatVersion(v: HnsVersion): string {
  return `${v.major}.${v.minor}`;
}
