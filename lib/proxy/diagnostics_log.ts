/**
 * Logging the desired state's diagnostics (bad input, missing endpoints,
 * conflicts between services) without repeating them every run: a
 * service's diagnostics are logged when they first appear or change, and the
 * cross-service conflicts when their set changes. Errors log as errors, the
 * rest as warnings, each naming the service, the field and the reason.
 * `PlacementUnknown` (a remote pod waiting for its placement) is logged per
 * pod IP instead, by placement_waits.ts.
 *
 * @module
 */

import type { ObjectKey } from "../kube/model.ts";
import type { Logger } from "../log/types.ts";
import type { DesiredState, Diagnostic, ServiceDesired } from "./model.ts";
import { PLACEMENT_UNKNOWN } from "./placement_waits.ts";

/** What has been logged, per service and for the conflicts. */
export class DiagnosticsLog {
  readonly #log: Logger;
  /** Per service, the text of the diagnostics last logged (none: nothing). */
  readonly #logged = new Map<ObjectKey, string>();
  #conflicts = "";

  /** Logs to `log`. */
  constructor(log: Logger) {
    this.#log = log;
  }

  /**
   * Log what is new in the desired state: of all services (and forget the
   * ones gone), or (`changed`) of the changed ones only.
   */
  update(
    desired: DesiredState,
    changed?: ReadonlyMap<ObjectKey, ServiceDesired | undefined>,
  ): void {
    const services = changed ? changed.values() : desired.services.values();
    const seen = new Set<ObjectKey>();
    for (const sd of services) {
      if (!sd) continue;
      seen.add(sd.serviceKey);
      const diagnostics = sd.diagnostics.filter((d) => d.reason !== PLACEMENT_UNKNOWN);
      const text = diagnostics.map((d) => d.message).join("\n");
      if ((this.#logged.get(sd.serviceKey) ?? "") === text) continue;
      // Most services have nothing to say: only those that do take an entry.
      if (text) this.#logged.set(sd.serviceKey, text);
      else this.#logged.delete(sd.serviceKey);
      for (const d of diagnostics) this.#write(d);
    }
    const gone = changed
      ? [...changed].filter(([, sd]) => !sd).map(([key]) => key)
      : [...this.#logged.keys()].filter((key) => !seen.has(key));
    for (const key of gone) this.#logged.delete(key);
    const text = desired.conflicts.map((d) => d.message).join("\n");
    if (text !== this.#conflicts) {
      this.#conflicts = text;
      for (const d of desired.conflicts) this.#write(d);
    }
  }

  #write(d: Diagnostic): void {
    const fields = { service: d.serviceKey, field: d.field, reason: d.reason };
    if (d.level === "error") this.#log.error(d.message, fields);
    else this.#log.warn(d.message, fields);
  }
}
