/**
 * The fake API server's events.k8s.io/v1 Events: the resource, the API
 * server's validation of an Event (the rules of `ValidateEventCreate` /
 * `ValidateEventUpdate` for events.k8s.io/v1 that a client can get wrong),
 * and the patch of a stored event.
 *
 * A strategic merge patch of an Event is a JSON merge patch: no field of an
 * Event has a list merge strategy, and `series` is a plain map.
 *
 * @module
 */

import type { FakeObject, FakeResource } from "./mod.ts";

/** events.k8s.io/v1 events. */
export const EVENTS_RESOURCE: FakeResource = {
  plural: "events",
  group: "events.k8s.io",
  version: "v1",
  kind: "Event",
  namespaced: true,
};

/** Patch types the fake accepts for events. */
export const EVENT_PATCH_TYPES = [
  "application/strategic-merge-patch+json",
  "application/merge-patch+json",
];

const isMicroTime = (v: unknown) =>
  typeof v === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/.test(v);

/** What the API server would refuse in this event (empty when valid). */
export function eventProblems(event: FakeObject): string[] {
  const problems: string[] = [];
  const str = (v: unknown) => (typeof v === "string" ? v : "");
  const required = (field: string, max: number) => {
    const v = str(event[field]);
    if (v === "") problems.push(`${field}: Required value`);
    else if (v.length > max) problems.push(`${field}: Too long: may not be longer than ${max}`);
  };
  if (!isMicroTime(event.eventTime)) problems.push("eventTime: Required value");
  required("reportingController", 128);
  required("reportingInstance", 128);
  required("action", 128);
  required("reason", 128);
  if (event.type !== "Normal" && event.type !== "Warning") {
    problems.push(`type: Unsupported value: ${JSON.stringify(event.type)}`);
  }
  if (new TextEncoder().encode(str(event.note)).length > 1024) {
    problems.push("note: Too long: may not be longer than 1024");
  }
  const regarding = event.regarding as Record<string, unknown> | undefined;
  if (!regarding || typeof regarding !== "object" || !str(regarding.kind)) {
    problems.push("regarding.kind: Required value");
  } else if (str(regarding.namespace) && regarding.namespace !== event.metadata.namespace) {
    problems.push("regarding.namespace: Invalid value: does not match event.namespace");
  }
  const series = event.series as Record<string, unknown> | undefined | null;
  if (series !== undefined && series !== null) {
    if (typeof series.count !== "number" || series.count < 2) {
      problems.push("series.count: Invalid value: should be at least 2");
    }
    if (!isMicroTime(series.lastObservedTime)) {
      problems.push("series.lastObservedTime: Required value");
    }
  }
  return problems;
}

/** RFC 7386 JSON merge patch of `target` (a new object; `null` deletes a field). */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target !== null && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}
