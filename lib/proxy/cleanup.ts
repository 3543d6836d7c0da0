/**
 * `--cleanup-and-exit`: delete every HNS object the ownership record lists —
 * load balancers first, then endpoints — and nothing else. The record lists
 * each object before its create is issued (ownership.ts), so it holds
 * everything hnsproxy made, whenever it was stopped. A listed object HNS does
 * not hold (a create that never happened, or an object deleted since) is
 * reported as absent, not as deleted, and dropped from the record. Failures
 * are retried a few times with backoff.
 *
 * @module
 */

import { backoffDelay } from "../backoff.ts";
import { isNotFound } from "../hns/errors.ts";
import type { HnsClient } from "../hns/types.ts";
import { type Logger, nullLogger } from "../log/types.ts";
import type { OwnedObject, OwnershipRecord } from "./ownership.ts";
import { errorMessage } from "../errors.ts";

/** Options of {@link cleanupOwned}. */
export interface CleanupOptions {
  /** Logger. */
  logger?: Logger;
  /** Rounds over what is left (default 5). */
  attempts?: number;
  /** Delay before round `n` (1-based, n ≥ 2), ms (default 1 s, doubling, capped at 30 s). */
  delayMs?: (round: number) => number;
  /** Sleep (default a timer). */
  sleep?: (ms: number) => Promise<void>;
}

/** The outcome of {@link cleanupOwned}. */
export interface CleanupResult {
  /** Objects deleted. */
  deleted: OwnedObject[];
  /** Listed objects HNS did not hold (never created, or already deleted); dropped from the record. */
  absent: OwnedObject[];
  /** Objects that could not be deleted, with the last error. */
  remaining: Array<{ object: OwnedObject; error: string }>;
}

/**
 * Delete everything the record lists, LBs before endpoints, and write the
 * record after each round (so an interrupted cleanup resumes where it
 * stopped). Never touches an object the record does not list.
 */
export async function cleanupOwned(
  client: HnsClient,
  ownership: OwnershipRecord,
  options: CleanupOptions = {},
): Promise<CleanupResult> {
  const log = options.logger ?? nullLogger;
  const attempts = Math.max(1, options.attempts ?? 5);
  const delayMs = options.delayMs ??
    ((round: number) => backoffDelay(round - 1, { initialMs: 1000, maxMs: 30_000 }));
  const sleep = options.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const deleted: OwnedObject[] = [];
  const absent: OwnedObject[] = [];
  let errors = new Map<string, string>();

  for (let round = 1; round <= attempts; round++) {
    const left = [...ownership.list("LoadBalancer"), ...ownership.list("Endpoint")];
    if (left.length === 0) break;
    if (round > 1) await sleep(delayMs(round));
    errors = new Map();
    for (const object of left) {
      // An endpoint still used by an LB that failed to go would only fail again.
      if (object.kind === "Endpoint" && errors.size > 0 && round < attempts) {
        const lbFailed = [...errors.keys()].some((id) =>
          ownership.get(id)?.kind === "LoadBalancer"
        );
        if (lbFailed) continue;
      }
      let held = true;
      try {
        if (object.kind === "LoadBalancer") await client.deleteLoadBalancer(object.id);
        else await client.deleteEndpoint(object.id);
      } catch (err) {
        if (!isNotFound(err)) {
          errors.set(object.id, errorMessage(err));
          continue;
        }
        held = false;
      }
      ownership.remove(object.id);
      const fields = { kind: object.kind, key: object.key, id: object.id };
      if (held) {
        deleted.push(object);
        log.info("Deleted owned HNS object", fields);
      } else {
        absent.push(object);
        log.info("Owned HNS object not in HNS (never created, or deleted already)", fields);
      }
    }
    try {
      await ownership.flush();
    } catch (err) {
      log.error("Cannot write the ownership record", {
        path: ownership.path,
        err: errorMessage(err),
      });
    }
  }
  const remaining = ownership.list().map((object) => ({
    object,
    error: errors.get(object.id) ?? "not attempted",
  }));
  for (const r of remaining) {
    log.error("Could not delete owned HNS object", {
      kind: r.object.kind,
      key: r.object.key,
      id: r.object.id,
      err: r.error,
    });
  }
  return { deleted, absent, remaining };
}
