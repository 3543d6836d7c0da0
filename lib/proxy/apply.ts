/**
 * Executes a {@link Plan} through an {@link HnsClient}: deletes, creates and
 * modifies in the plan's order, with per-object backoff, optional
 * concurrency, and bookkeeping of what HNS now holds (the observed cache) and
 * of what hnsproxy owns (the ownership record, flushed by the caller once per
 * sync).
 *
 * Failure rules:
 * - one failing object never stops the others; a failed endpoint blocks only
 *   the load balancers that need it, a failed replace-delete blocks only the
 *   re-create of that key;
 * - "not found" on a delete means done;
 * - a modify HNS refuses as unsupported becomes delete + create of that load
 *   balancer, and so does every later modify of the process (logged once);
 * - "port already exists" on a create: when the holder is hnsproxy's it is
 *   deleted and the create repeated; when it is someone else's it is reported
 *   (log and {@link ApplyHooks.onConflict}) and retried later, never deleted;
 * - a create that failed after HNS may have made the object (its answer was
 *   lost) leaves the key "uncertain": if a later create hits an identical
 *   object under that key, it is taken as ours instead of leaking it.
 *
 * @module
 */

import { HnsError, HResult, isNotFound, isPortConflict, isUnsupported } from "../hns/errors.ts";
import type { HcnEndpoint, HcnLoadBalancer, HnsClient } from "../hns/types.ts";
import { type Logger, nullLogger } from "../log/types.ts";
import type { Backoff } from "./backoff.ts";
import { loadBalancerKeyFromHns } from "./keys.ts";
import {
  endpointPayload,
  endpointSatisfies,
  loadBalancerPayload,
  sameLoadBalancer,
} from "./payload.ts";
import type {
  CreateEndpointOp,
  CreateLoadBalancerOp,
  DeleteEndpointOp,
  DeleteLoadBalancerOp,
  DesiredLoadBalancer,
  EpKey,
  LoadBalancerConflict,
  ModifyLoadBalancerOp,
  Plan,
  PlanOp,
} from "./model.ts";
import type { ObservedCache } from "./observed.ts";
import type { OwnershipRecord } from "./ownership.ts";
import { resolveEndpointId } from "./reconcile.ts";

/** What happened to one operation. */
export type OpOutcome = "ok" | "failed" | "deferred";

/** Callbacks for metrics and events; all optional. */
export interface ApplyHooks {
  /** After each operation (HNS call or not) with its outcome and duration. */
  onOperation?(op: PlanOp, outcome: OpOutcome, durationMs: number, error?: unknown): void;
  /** A desired load balancer whose identity a foreign HNS object holds. */
  onConflict?(conflict: LoadBalancerConflict): void;
}

/** Everything {@link applyPlan} works with. */
export interface ApplyContext {
  /** The HNS client. */
  client: HnsClient;
  /** The observed cache, updated in place. */
  observed: ObservedCache;
  /** The ownership record, updated in place (not flushed). */
  ownership: OwnershipRecord;
  /** Per-key backoff, shared across syncs. */
  backoff: Backoff;
  /**
   * IDs of endpoints hnsproxy does not own that load balancers use
   * (`ep/local/<ip>` CNI endpoints, `ep/host/<name>`), by key.
   */
  existingEndpoints: ReadonlyMap<EpKey, string>;
  /** Logger. */
  logger?: Logger;
  /** HNS calls in flight at once within a step of the plan (default 1). */
  concurrency?: number;
  /** Metrics and event callbacks. */
  hooks?: ApplyHooks;
  /** Keys whose last create may have succeeded in HNS unseen; shared across syncs. */
  uncertain?: Set<string>;
}

/** One operation that failed. */
export interface OpFailure {
  /** The operation. */
  op: PlanOp;
  /** The error. */
  error: unknown;
}

/** The outcome of {@link applyPlan}. */
export interface ApplyResult {
  /** Operations done (including adoptions, which make no HNS call). */
  applied: PlanOp[];
  /** Operations that failed this time (each now backing off). */
  failed: OpFailure[];
  /** Operations not tried: backing off, or blocked by a failed dependency. */
  deferred: PlanOp[];
  /** Desired load balancers held by foreign objects (from the plan or found now). */
  conflicts: LoadBalancerConflict[];
  /** HNS create/modify/delete calls made. */
  writes: number;
  /**
   * When a further sync should retry what is left (ms from now), or
   * undefined when everything converged.
   */
  retryAfterMs?: number;
}

/**
 * Execute `plan` in order. Consecutive operations of the same kind run up to
 * `concurrency` at a time; the steps themselves run one after the other.
 * Never throws for HNS failures: they are reported in the result.
 */
export async function applyPlan(plan: Plan, ctx: ApplyContext): Promise<ApplyResult> {
  const run = new ApplyRun(ctx);
  // One batch: the endpoint creates of the plan share one open handle of their network.
  return await ctx.client.batch(() => run.execute(plan));
}

class ApplyRun {
  readonly #ctx: ApplyContext;
  readonly #log: Logger;
  readonly #uncertain: Set<string>;
  /** Keys whose earlier operation in this plan failed or was deferred. */
  readonly #blocked = new Set<string>();
  readonly #result: ApplyResult = {
    applied: [],
    failed: [],
    deferred: [],
    conflicts: [],
    writes: 0,
  };

  constructor(ctx: ApplyContext) {
    this.#ctx = ctx;
    this.#log = ctx.logger ?? nullLogger;
    this.#uncertain = ctx.uncertain ?? new Set();
  }

  async execute(plan: Plan): Promise<ApplyResult> {
    for (const conflict of plan.conflicts) this.#conflict(conflict);
    const concurrency = Math.max(1, Math.floor(this.#ctx.concurrency ?? 1));
    for (const batch of batches(plan.ops)) {
      await pool(batch, concurrency, (op) => this.#one(op));
    }
    const pending = this.#result.failed.length + this.#result.deferred.length +
      this.#result.conflicts.length;
    if (pending > 0) this.#result.retryAfterMs = this.#ctx.backoff.nextDelay() ?? 1000;
    return this.#result;
  }

  async #one(op: PlanOp): Promise<void> {
    const started = performance.now();
    const finish = (outcome: OpOutcome, error?: unknown) => {
      this.#ctx.hooks?.onOperation?.(op, outcome, performance.now() - started, error);
      if (outcome === "ok") {
        this.#result.applied.push(op);
        this.#ctx.backoff.reset(op.key);
      } else if (outcome === "deferred") {
        this.#result.deferred.push(op);
        this.#blocked.add(op.key);
      } else {
        this.#result.failed.push({ op, error });
        this.#blocked.add(op.key);
        const retryInMs = this.#ctx.backoff.fail(op.key, error);
        this.#log.warn("HNS operation failed; will retry", {
          op: op.op,
          key: op.key,
          retryInMs,
          err: error instanceof Error ? error.message : String(error),
        });
      }
    };
    if (op.op === "adoptLoadBalancer") {
      this.#ctx.observed.adoptLoadBalancer(op.key, op.id, op.serviceKey);
      this.#ctx.ownership.add({ kind: "LoadBalancer", id: op.id, key: op.key });
      return finish("ok");
    }
    if (op.op === "adoptEndpoint") {
      this.#ctx.observed.adoptEndpoint(op.key, op.id);
      this.#ctx.ownership.add({ kind: "Endpoint", id: op.id, key: op.key });
      return finish("ok");
    }
    if (!this.#ctx.backoff.ready(op.key) || this.#blocked.has(op.key)) return finish("deferred");
    try {
      let outcome: OpOutcome;
      switch (op.op) {
        case "deleteLoadBalancer":
          outcome = await this.#deleteLoadBalancer(op);
          break;
        case "deleteEndpoint":
          outcome = await this.#deleteEndpoint(op);
          break;
        case "createEndpoint":
          outcome = await this.#createEndpoint(op);
          break;
        case "createLoadBalancer":
        case "modifyLoadBalancer":
          outcome = await this.#putLoadBalancer(op);
          break;
      }
      finish(outcome);
    } catch (err) {
      finish("failed", err);
    }
  }

  async #write<T>(call: () => Promise<T>): Promise<T> {
    this.#result.writes++;
    return await call();
  }

  async #deleteLoadBalancer(op: DeleteLoadBalancerOp): Promise<OpOutcome> {
    const { client, observed, ownership } = this.#ctx;
    if (!ownership.owns(op.id)) {
      // The plan only deletes what the record lists; refuse anything else outright.
      throw new Error(`refusing to delete load balancer ${op.id} (${op.key}): not owned`);
    }
    try {
      await this.#write(() => client.deleteLoadBalancer(op.id));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    observed.removeLoadBalancerById(op.id);
    ownership.remove(op.id);
    this.#log.debug(2, "Deleted load balancer", { key: op.key, id: op.id, reason: op.reason });
    return "ok";
  }

  async #deleteEndpoint(op: DeleteEndpointOp): Promise<OpOutcome> {
    const { client, observed, ownership } = this.#ctx;
    if (!ownership.owns(op.id)) {
      throw new Error(`refusing to delete endpoint ${op.id} (${op.key}): not owned`);
    }
    // A load balancer whose update failed still uses it; HNS would refuse anyway.
    if (observed.endpointReferenced(op.id)) return "deferred";
    try {
      await this.#write(() => client.deleteEndpoint(op.id));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    observed.removeEndpointById(op.id);
    ownership.remove(op.id);
    this.#log.debug(2, "Deleted endpoint", { key: op.key, id: op.id, reason: op.reason });
    return "ok";
  }

  async #createEndpoint(op: CreateEndpointOp): Promise<OpOutcome> {
    const { client } = this.#ctx;
    // Built now, not in the plan: a first sync's plan holds tens of thousands of creates.
    const payload = op.payload ?? endpointPayload(op.endpoint);
    let created: HcnEndpoint;
    try {
      created = await this.#write(() => client.createEndpoint(op.networkId, payload));
    } catch (err) {
      if (!isAlreadyExists(err)) {
        this.#uncertain.add(op.key);
        throw err;
      }
      const resolved = await this.#resolveEndpointClash(op, err);
      if (resolved === "retry") {
        created = await this.#write(() => client.createEndpoint(op.networkId, payload));
      } else if (resolved) {
        created = resolved;
      } else {
        throw err;
      }
    }
    this.#uncertain.delete(op.key);
    this.#recordEndpoint(op.key, created);
    this.#log.debug(2, "Created endpoint", { key: op.key, id: created.ID });
    return "ok";
  }

  /**
   * HNS refused a remote endpoint because one with its IP exists. Ours (in
   * the record): delete it and retry. Identical and the key uncertain: it is
   * our own earlier create, take it. Otherwise leave it and fail.
   */
  async #resolveEndpointClash(
    op: CreateEndpointOp,
    err: unknown,
  ): Promise<HcnEndpoint | "retry" | undefined> {
    const { client, ownership, observed } = this.#ctx;
    const ip = op.endpoint.ip;
    const holder = (await client.listEndpoints(op.networkId)).find((ep) =>
      (ep.IpConfigurations ?? []).some((c) => c.IpAddress === ip)
    );
    if (!holder?.ID) return "retry";
    if (ownership.owns(holder.ID)) {
      if (observed.endpointReferenced(holder.ID)) return undefined;
      await this.#write(() => client.deleteEndpoint(holder.ID!));
      observed.removeEndpointById(holder.ID);
      ownership.remove(holder.ID);
      return "retry";
    }
    if (this.#uncertain.has(op.key) && endpointSatisfies(holder, op.endpoint)) {
      this.#log.info("Taking over endpoint an earlier failed create made", {
        key: op.key,
        id: holder.ID,
      });
      return holder;
    }
    observed.setForeignEndpoint({ key: op.key, id: holder.ID, hns: holder });
    this.#log.warn("An endpoint hnsproxy does not own holds this IP; leaving it alone", {
      key: op.key,
      holder: holder.ID,
      err: err instanceof Error ? err.message : String(err),
    });
    return undefined;
  }

  #recordEndpoint(key: EpKey, hns: HcnEndpoint): void {
    const id = requireId(hns, key);
    this.#ctx.observed.setEndpoint({ key, id, hns });
    this.#ctx.ownership.add({ kind: "Endpoint", id, key });
  }

  /**
   * Backend endpoint IDs of `lb`, or the first key that has none (yet). A key
   * resolves as reconcile resolves it: an owned endpoint, an existing one (CNI,
   * host), or a foreign endpoint holding the IP (used, never owned).
   */
  #backendIds(lb: DesiredLoadBalancer): string[] | { missing: EpKey } {
    const ids: string[] = [];
    const existing = { existingEndpoints: this.#ctx.existingEndpoints };
    for (const key of lb.backends) {
      const id = resolveEndpointId(key, existing, this.#ctx.observed);
      if (id === undefined) return { missing: key };
      ids.push(id);
    }
    return ids;
  }

  async #putLoadBalancer(op: CreateLoadBalancerOp | ModifyLoadBalancerOp): Promise<OpOutcome> {
    const { observed } = this.#ctx;
    const ids = this.#backendIds(op.loadBalancer);
    if (!Array.isArray(ids)) {
      if (this.#blocked.has(ids.missing) || !this.#ctx.backoff.ready(ids.missing)) {
        return "deferred";
      }
      throw new Error(`backend ${ids.missing} of ${op.key} has no HNS endpoint`);
    }
    const payload = loadBalancerPayload(op.loadBalancer, ids);
    let hns: HcnLoadBalancer;
    if (op.op === "modifyLoadBalancer") {
      hns = await this.#modifyOrReplace(op, payload);
    } else {
      hns = await this.#createLoadBalancer(op.key, payload);
    }
    const id = requireId(hns, op.key);
    observed.setLoadBalancer({ key: op.key, id, serviceKey: op.serviceKey, hns });
    this.#ctx.ownership.add({ kind: "LoadBalancer", id, key: op.key });
    this.#log.debug(
      2,
      op.op === "modifyLoadBalancer" ? "Updated load balancer" : "Created load balancer",
      {
        key: op.key,
        id,
        service: op.serviceKey,
        backends: ids.length,
      },
    );
    return "ok";
  }

  /**
   * Update in place; where HNS cannot (it answered "not implemented" or "not
   * supported", now or earlier in the process), delete the old load balancer
   * and create the new one under the same key instead. At the modify's place
   * in the plan both orderings hold: the key is free before the create, and
   * every backend endpoint was created earlier in the plan.
   */
  async #modifyOrReplace(
    op: ModifyLoadBalancerOp,
    payload: HcnLoadBalancer,
  ): Promise<HcnLoadBalancer> {
    const { client, observed, ownership } = this.#ctx;
    if (!client.modifyUnsupported) {
      try {
        return await this.#write(() => client.modifyLoadBalancer(op.id, payload));
      } catch (err) {
        if (isNotFound(err)) {
          // It vanished out of band: forget it and create it afresh.
          observed.removeLoadBalancerById(op.id);
          ownership.remove(op.id);
          return await this.#createLoadBalancer(op.key, payload);
        }
        if (!isUnsupported(err)) throw err;
        warnModifyUnsupportedOnce(client, this.#log, err);
      }
    }
    await this.#deleteLoadBalancer({
      op: "deleteLoadBalancer",
      key: op.key,
      id: op.id,
      reason: "replace",
    });
    return await this.#createLoadBalancer(op.key, payload);
  }

  async #createLoadBalancer(key: string, payload: HcnLoadBalancer): Promise<HcnLoadBalancer> {
    const { client } = this.#ctx;
    try {
      const created = await this.#write(() => client.createLoadBalancer(payload));
      this.#uncertain.delete(key);
      return created;
    } catch (err) {
      if (!isPortConflict(err)) {
        this.#uncertain.add(key);
        throw err;
      }
      const holder = (await client.listLoadBalancers()).find((lb) =>
        loadBalancerKeyFromHns(lb) === key
      );
      if (!holder?.ID) throw err; // gone meanwhile: the next attempt will tell
      const { ownership, observed } = this.#ctx;
      if (ownership.owns(holder.ID)) {
        this.#log.info("Replacing hnsproxy's own load balancer that holds the port", {
          key,
          id: holder.ID,
        });
        try {
          await this.#write(() => client.deleteLoadBalancer(holder.ID!));
        } catch (deleteErr) {
          if (!isNotFound(deleteErr)) throw deleteErr;
        }
        observed.removeLoadBalancerById(holder.ID);
        ownership.remove(holder.ID);
        const created = await this.#write(() => client.createLoadBalancer(payload));
        this.#uncertain.delete(key);
        return created;
      }
      if (this.#uncertain.has(key) && sameLoadBalancer(holder, payload)) {
        this.#log.info("Taking over load balancer an earlier failed create made", {
          key,
          id: holder.ID,
        });
        this.#uncertain.delete(key);
        return holder;
      }
      observed.setForeignLoadBalancer({ key, id: holder.ID, hns: holder });
      this.#conflict({ key, serviceKey: "", foreignId: holder.ID });
      throw err;
    }
  }

  #conflict(conflict: LoadBalancerConflict): void {
    this.#result.conflicts.push(conflict);
    if (!this.#ctx.backoff.get(conflict.key)) this.#ctx.backoff.fail(conflict.key);
    this.#ctx.hooks?.onConflict?.(conflict);
    this.#log.warn(
      "A load balancer hnsproxy does not own holds this service's port; leaving it alone",
      {
        key: conflict.key,
        service: conflict.serviceKey || undefined,
        holder: conflict.foreignId,
      },
    );
  }
}

/** Clients whose refusal of in-place updates was logged (once per client, i.e. per process). */
const modifyWarned = new WeakSet<HnsClient>();

function warnModifyUnsupportedOnce(client: HnsClient, log: Logger, err: unknown): void {
  if (modifyWarned.has(client)) return;
  modifyWarned.add(client);
  log.warn(
    "HNS cannot update load balancers in place; replacing changed ones (delete + create) from now on",
    { err: err instanceof Error ? err.message : String(err) },
  );
}

/** Group consecutive operations of the same kind: each group may run concurrently. */
function batches(ops: readonly PlanOp[]): PlanOp[][] {
  const out: PlanOp[][] = [];
  for (const op of ops) {
    const last = out[out.length - 1];
    if (last && last[0].op === op.op) last.push(op);
    else out.push([op]);
  }
  return out;
}

/** Run `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function isAlreadyExists(err: unknown): boolean {
  return err instanceof HnsError && err.hresult === HResult.ERROR_ALREADY_EXISTS;
}

function requireId(object: { ID?: string }, key: string): string {
  if (!object.ID) throw new Error(`HNS returned no ID for ${key}`);
  return object.ID;
}
