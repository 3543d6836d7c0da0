/**
 * Helpers for the lib/kube tests: a logger that records lines, object
 * builders and a polling wait (bounded by a generous deadline; tests assert
 * outcomes, never durations).
 *
 * @module
 */

import type { LogFields, Logger } from "../../lib/log/types.ts";
import type { FakeObject } from "../../lib/fake-apiserver/mod.ts";

/** One recorded log line. */
export interface LogLine {
  /** `error`, `warn`, `info` or `debug`. */
  level: string;
  /** Message. */
  message: string;
  /** Fields, including those added with `with()`. */
  fields: LogFields;
}

/** A logger keeping every line in memory. */
export class RecordingLogger implements Logger {
  /** Shared line buffer (loggers made by `with` append here too). */
  readonly lines: LogLine[];
  readonly #base: LogFields;

  /** A recording logger (optionally sharing `lines` with a parent). */
  constructor(lines: LogLine[] = [], base: LogFields = {}) {
    this.lines = lines;
    this.#base = base;
  }

  #add(level: string, message: string, fields?: LogFields) {
    this.lines.push({ level, message, fields: { ...this.#base, ...fields } });
  }

  /** Records an error. */
  error(message: string, fields?: LogFields): void {
    this.#add("error", message, fields);
  }
  /** Records a warning. */
  warn(message: string, fields?: LogFields): void {
    this.#add("warn", message, fields);
  }
  /** Records an info line. */
  info(message: string, fields?: LogFields): void {
    this.#add("info", message, fields);
  }
  /** Records a debug line. */
  debug(_level: number, message: string, fields?: LogFields): void {
    this.#add("debug", message, fields);
  }
  /** Everything is enabled. */
  enabled(): boolean {
    return true;
  }
  /** A logger adding `fields`, recording into the same buffer. */
  with(fields: LogFields): Logger {
    return new RecordingLogger(this.lines, { ...this.#base, ...fields });
  }

  /** All lines, one string each, for `includes` checks. */
  text(): string {
    return this.lines.map((l) => `${l.level} ${l.message} ${JSON.stringify(l.fields)}`).join("\n");
  }
}

/** Polls `cond` every few ms until true; throws `what` after 10 s. */
export async function waitFor(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A ClusterIP service with one TCP port. */
export function service(
  namespace: string,
  name: string,
  ip: string,
  extra: { labels?: Record<string, string>; port?: number; spec?: Record<string, unknown> } = {},
): FakeObject {
  return {
    metadata: { name, namespace, labels: extra.labels ?? {} },
    spec: {
      type: "ClusterIP",
      clusterIP: ip,
      clusterIPs: [ip],
      ipFamilies: [ip.includes(":") ? "IPv6" : "IPv4"],
      ports: [{ name: "http", protocol: "TCP", port: extra.port ?? 80, targetPort: 8080 }],
      ...extra.spec,
    },
  };
}

/** An IPv4 EndpointSlice of `serviceName` with ready endpoints at `ips`. */
export function slice(
  namespace: string,
  name: string,
  serviceName: string | undefined,
  ips: string[],
  extra: { labels?: Record<string, string>; annotations?: Record<string, string> } = {},
): FakeObject {
  return {
    metadata: {
      name,
      namespace,
      labels: {
        ...(serviceName ? { "kubernetes.io/service-name": serviceName } : {}),
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        ...extra.labels,
      },
      annotations: extra.annotations ?? {},
    },
    addressType: "IPv4",
    ports: [{ name: "http", protocol: "TCP", port: 8080 }],
    endpoints: ips.map((ip, i) => ({
      addresses: [ip],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: `node-${i % 2}`,
    })),
  };
}

/** A node with an InternalIP. */
export function node(name: string, ip: string): FakeObject {
  return {
    metadata: { name, labels: { "topology.kubernetes.io/zone": "zone-a" } },
    spec: { podCIDR: "10.244.1.0/24", podCIDRs: ["10.244.1.0/24"] },
    status: {
      addresses: [{ type: "InternalIP", address: ip }, { type: "Hostname", address: name }],
    },
  };
}
