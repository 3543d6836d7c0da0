/**
 * The agent's Kubernetes Events, as kube-proxy reports them: `Starting` on
 * this node's Node when the agent starts, and a Warning `HNSConflict` on each
 * Service a foreign HNS load balancer blocks.
 *
 * Rules: one event per Service per batch of conflict reports (a batch is one
 * sync's worth, so a Service gets at most one write per backoff step of its
 * conflicts), naming every blocked key with its holder; the recorder turns
 * repeats into a series. Conflicts that clear write nothing (they are
 * logged).
 *
 * @module
 */

import type { EventRecorder, ObjectReference } from "./kube/events.ts";
import type { ConflictReport } from "./proxy/conflicts.ts";

/** `reportingController` of hnsproxy's events. */
export const REPORTING_CONTROLLER = "hnsproxy";

/** `reportingInstance` of hnsproxy's events on `nodeName` (client-go: controller-host). */
export function reportingInstance(nodeName: string): string {
  return `${REPORTING_CONTROLLER}-${nodeName}`;
}

/** kube-proxy's reference to its Node (the UID is the node name, as kube-proxy sets it). */
export function nodeRef(nodeName: string): ObjectReference {
  return { kind: "Node", name: nodeName, uid: nodeName };
}

/** kube-proxy's start event: Normal, reason `Starting`, action `StartKubeProxy`, no note. */
export function recordStarting(recorder: EventRecorder, nodeName: string): void {
  recorder.eventf(nodeRef(nodeName), "Normal", "Starting", "StartKubeProxy", "");
}

/** One `HNSConflict` Warning per Service with keys that appeared or persist in `reports`. */
export function recordConflicts(recorder: EventRecorder, reports: readonly ConflictReport[]): void {
  const byService = new Map<string, string[]>();
  for (const r of reports) {
    if (r.change === "cleared" || !r.conflict.serviceKey) continue;
    const held = `${r.conflict.key} (held by HNS load balancer ${r.conflict.holderId})`;
    const list = byService.get(r.conflict.serviceKey);
    if (list) list.push(held);
    else byService.set(r.conflict.serviceKey, [held]);
  }
  for (const [serviceKey, held] of byService) {
    const slash = serviceKey.indexOf("/");
    const regarding: ObjectReference = {
      apiVersion: "v1",
      kind: "Service",
      namespace: serviceKey.slice(0, slash),
      name: serviceKey.slice(slash + 1),
    };
    recorder.eventf(
      regarding,
      "Warning",
      "HNSConflict",
      "ProgramLoadBalancer",
      `A load balancer hnsproxy does not own holds ${held.join(", ")}; ` +
        "hnsproxy leaves it alone and does not program this port until it is removed",
    );
  }
}
