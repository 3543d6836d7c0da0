/**
 * The diagnostics of one reason in the desired state, per service, followed
 * as the desired state is recomputed: in full (every service) or for the
 * changed services only. Only services with such a diagnostic are held.
 *
 * @module
 */

import type { ObjectKey } from "../kube/model.ts";
import type { DesiredState, Diagnostic, ServiceDesired } from "./model.ts";

/** Per service, its diagnostics with one reason. */
export class ServiceDiagnostics {
  readonly #reason: string;
  readonly #byService = new Map<ObjectKey, Diagnostic[]>();

  /** Follows the diagnostics with this reason. */
  constructor(reason: string) {
    this.#reason = reason;
  }

  /**
   * Follow a new desired state: the changed services only, or (no
   * `changed`) all of them.
   */
  track(
    desired: DesiredState | undefined,
    changed?: ReadonlyMap<ObjectKey, ServiceDesired | undefined>,
  ): void {
    if (!changed) this.#byService.clear();
    else for (const key of changed.keys()) this.#byService.delete(key);
    const services = changed ? changed.values() : desired?.services.values() ?? [];
    for (const sd of services) {
      if (!sd) continue;
      const found = sd.diagnostics.filter((d) => d.reason === this.#reason);
      if (found.length > 0) this.#byService.set(sd.serviceKey, found);
    }
  }

  /** The services with such diagnostics, and theirs. */
  entries(): IterableIterator<[ObjectKey, Diagnostic[]]> {
    return this.#byService.entries();
  }

  /** The distinct endpoint IPs the diagnostics name. */
  endpointIps(): Set<string> {
    const out = new Set<string>();
    for (const list of this.#byService.values()) {
      for (const d of list) if (d.endpointIp !== undefined) out.add(d.endpointIp);
    }
    return out;
  }

  /** How many such diagnostics there are. */
  count(): number {
    let n = 0;
    for (const list of this.#byService.values()) n += list.length;
    return n;
  }
}
