/**
 * The names of the HCN C functions, shared by the FFI binding, the in-memory
 * HNS and the instrumentation so that errors, counters and metrics all use
 * the C function name (`HcnCreateLoadBalancer`, `HNSCall`, ...).
 *
 * @module
 */

import type { HcnKind } from "./types.ts";

/** The operations of {@link import("./types.ts").HcnApi} that map to an HCN function per kind. */
export type HcnOperation =
  | "enumerate"
  | "open"
  | "create"
  | "modify"
  | "query"
  | "delete"
  | "close";

/** The three object kinds, in the order HNS objects depend on each other. */
export const HCN_KINDS: readonly HcnKind[] = ["Network", "Endpoint", "LoadBalancer"];

/** The operations, in the order of the C API's declarations. */
export const HCN_OPERATIONS: readonly HcnOperation[] = [
  "enumerate",
  "create",
  "open",
  "modify",
  "query",
  "delete",
  "close",
];

/** The name of the `HNSCall` entry point of vmcompute.dll. */
export const HNS_CALL = "HNSCall";

/** The name of the string deallocator of ole32.dll. */
export const CO_TASK_MEM_FREE = "CoTaskMemFree";

/** The names made so far, by kind and operation: every HNS call looks one up. */
const NAMES = new Map<HcnKind, Map<HcnOperation, string>>();

/**
 * The C function behind an operation on a kind, e.g.
 * `hcnFunctionName("enumerate", "LoadBalancer")` is `HcnEnumerateLoadBalancers`.
 * The same string each time (it keys symbol tables, counters and metric labels).
 */
export function hcnFunctionName(op: HcnOperation, kind: HcnKind): string {
  let byOp = NAMES.get(kind);
  if (byOp === undefined) NAMES.set(kind, byOp = new Map());
  let name = byOp.get(op);
  if (name === undefined) byOp.set(op, name = functionName(op, kind));
  return name;
}

function functionName(op: HcnOperation, kind: HcnKind): string {
  switch (op) {
    case "enumerate":
      return `HcnEnumerate${kind}s`;
    case "query":
      return `HcnQuery${kind}Properties`;
    case "open":
      return `HcnOpen${kind}`;
    case "create":
      return `HcnCreate${kind}`;
    case "modify":
      return `HcnModify${kind}`;
    case "delete":
      return `HcnDelete${kind}`;
    case "close":
      return `HcnClose${kind}`;
  }
}

/** Every HCN function name for networks, endpoints and load balancers. */
export function allHcnFunctionNames(): string[] {
  return HCN_KINDS.flatMap((kind) => HCN_OPERATIONS.map((op) => hcnFunctionName(op, kind)));
}

/** Human words for a kind, for messages: `load balancer`. */
export function kindWords(kind: HcnKind): string {
  return kind === "LoadBalancer" ? "load balancer" : kind.toLowerCase();
}
