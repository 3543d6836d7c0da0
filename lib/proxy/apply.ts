/**
 * Executes a {@link Plan} through an {@link HnsClient}: deletes, creates and
 * modifies in the plan's order, with per-object backoff, optional
 * concurrency, and bookkeeping of what HNS now holds (the observed cache) and
 * of what hnsproxy owns (the ownership record).
 *
 * Ownership rules (see ownership.ts):
 * - every create goes to HNS under a GUID hnsproxy picked and listed in the
 *   record on disk beforehand: before the first create of a phase (endpoint
 *   creates, then load balancer creates) the phase's creates are listed in
 *   one append and fsync ({@link OwnershipRecord.intend}), replacing
 *   modifies included where HNS cannot update in place; a create outside
 *   such a batch (a modify whose LB vanished, the first refused modify) is
 *   listed alone. If the record cannot be written, those creates are not
 *   issued (they fail and retry);
 * - a listed create that certainly made nothing (refused, deferred, never
 *   tried) is removed from the record again, with the sync's other changes;
 *   one whose answer was lost stays listed: HNS may hold it;
 * - a delete is forgotten in the record only once HNS confirmed it;
 * - the record keeps a fingerprint of each owned object's content: dropped
 *   on disk before the first modify of a plan for all of the plan's modifies
 *   ({@link OwnershipRecord.distrust}), set from what was sent once a create
 *   or modify succeeded, and from the observed object at an adoption;
 * - the rest of the bookkeeping is flushed by the caller once per sync.
 *
 * Failure rules:
 * - one failing object never stops the others; a failed endpoint blocks only
 *   the load balancers that need it, a failed replace-delete blocks only the
 *   re-create of that key;
 * - "not found" on a delete means done;
 * - a modify HNS refuses as unsupported becomes delete + create of that load
 *   balancer, and so does every later modify of the process (logged once);
 * - "port already exists" on a create: when the holder is hnsproxy's it is
 *   deleted and the create repeated; when it is someone else's it is a
 *   conflict, never deleted or retried here;
 * - conflicts (from the plan or found on a create) go to the
 *   {@link ConflictTracker}, which logs them when they appear and then at
 *   most once per backoff step, and to {@link ApplyHooks.onConflict};
 * - a create that failed after HNS may have made the object (its answer was
 *   lost) leaves the key "uncertain": if a later create hits an identical
 *   object of hnsproxy's under that key, it is taken instead of replaced.
 *
 * @module
 */

import { HnsError, HResult, isNotFound, isPortConflict, isUnsupported } from "../hns/errors.ts";
import { newGuid } from "../hns/guid.ts";
import type { CreatedBatch, HcnEndpoint, HcnLoadBalancer, HnsClient } from "../hns/types.ts";
import { type Logger, nullLogger } from "../log/types.ts";
import type { Backoff } from "./backoff.ts";
import { ConflictTracker } from "./conflicts.ts";
import { loadBalancerKeyFromHns } from "./keys.ts";
import {
  desiredEndpointFingerprintValue,
  desiredLoadBalancerFingerprintValue,
  endpointFingerprint,
  endpointPayload,
  endpointSatisfies,
  loadBalancerFingerprint,
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
import type { OwnedKind, OwnedObject, OwnershipRecord } from "./ownership.ts";
import { resolveEndpointId } from "./reconcile.ts";
import { errorMessage } from "../errors.ts";

/** What happened to one operation. */
export type OpOutcome = "ok" | "failed" | "deferred" | "conflict";

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
  /** Conflicts across syncs (default: one for this apply, which reports each conflict). */
  conflicts?: ConflictTracker;
  /**
   * What must be durable before HNS is written (the synced-inputs digest made
   * invalid): awaited after the plan's first record write, so the two
   * overlap, and before any HNS call. If it rejects, nothing is written to
   * HNS, the creates listed are dropped from the record again, and
   * {@link applyPlan} rejects with its error.
   */
  writesAllowed?: Promise<void>;
  /**
   * Called once the plan's step of endpoint creates is done, before any
   * later step (the load balancers that use them): a large start collects
   * its heap there (the syncer's `collectHeap`).
   */
  afterEndpointCreates?: () => void;
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
  /** Operations that failed this time (each now backing off); conflicts are not failures. */
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
 * `concurrency` at a time, creates in requests of many (each object's
 * outcome as if made alone); the steps themselves run one after the other.
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
  readonly #tracker: ConflictTracker;
  /** Keys whose earlier operation in this plan failed or was deferred. */
  readonly #blocked = new Set<string>();
  /**
   * The GUIDs listed in the record for creates not yet issued, by the
   * operation's index in the plan (one array, not a Map: a cold start lists
   * tens of thousands, whose Map tables would grow and shrink as garbage).
   */
  #intentIds: Array<string | undefined> = [];
  /** Create phases (by the kind they create) already listed. */
  readonly #listedPhases = new Set<OwnedKind>();
  /** Whether the plan's modifies had their fingerprints dropped on disk. */
  #modifiesDistrusted = false;
  /** Keys of creates (modifies) whose listing (distrust) failed, with the error: not issued. */
  readonly #unlisted = new Map<string, unknown>();
  /**
   * IDs whose single create call ({@link ApplyRun.#withIntent}) succeeded, or
   * failed in a way that may have made the object.
   */
  readonly #issued = new Set<string>();
  /** Creates whose first attempt failed in a request of many, by key: their failure. */
  readonly #firstAttempts = new Map<string, unknown>();
  /** Operations done so far: the filled part of the result's `applied`. */
  #appliedCount = 0;
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
    this.#tracker = ctx.conflicts ?? new ConflictTracker({ logger: this.#log });
  }

  async execute(plan: Plan): Promise<ApplyResult> {
    for (const conflict of plan.conflicts) this.#conflict(conflict);
    const concurrency = Math.max(1, Math.floor(this.#ctx.concurrency ?? 1));
    const ops = plan.ops;
    let creates = 0;
    for (let i = 0; i < ops.length; i++) if (this.#createKind(ops[i]) !== undefined) creates++;
    // Room for every object the plan creates, made once before the first is listed.
    if (creates > 0) this.#ctx.ownership.reserve(creates);
    this.#intentIds = new Array(ops.length);
    // Made at its largest length and cut to what was done: a start's applies tens of
    // thousands, and an array grown by appending leaves its outgrown stores behind.
    this.#result.applied = new Array(ops.length);
    let gate = this.#ctx.writesAllowed;
    for (let from = 0, to = 0; from < ops.length; from = to) {
      to = stepEnd(ops, from);
      await this.#listCreates(ops, from);
      await this.#writeDistrust(ops, from);
      if (gate) {
        const allowed = gate;
        gate = undefined;
        try {
          await allowed;
        } catch (err) {
          this.#dropIntents();
          throw err;
        }
      }
      const kind = ops[from].op;
      if (kind === "createEndpoint" || kind === "createLoadBalancer") {
        await this.#createMany(ops, from, to, concurrency);
        if (kind === "createEndpoint" && to < ops.length) this.#ctx.afterEndpointCreates?.();
      } else {
        await pool(to - from, concurrency, (j) => this.#one(ops[from + j], from + j));
      }
    }
    this.#dropIntents();
    this.#result.applied.length = this.#appliedCount;
    this.#tracker.note(this.#result.conflicts);
    const delays: number[] = [];
    if (this.#result.failed.length + this.#result.deferred.length > 0) {
      delays.push(this.#ctx.backoff.nextDelay() ?? 1000);
    }
    const conflictStep = this.#result.conflicts.length > 0 ? this.#tracker.nextDelay() : undefined;
    if (conflictStep !== undefined) delays.push(conflictStep);
    if (delays.length > 0) this.#result.retryAfterMs = Math.min(...delays);
    return this.#result;
  }

  /** Listed creates never issued (deferred, blocked, not allowed): nothing of theirs exists. */
  #dropIntents(): void {
    const intentIds = this.#intentIds;
    for (let i = 0; i < intentIds.length; i++) {
      const id = intentIds[i];
      if (id !== undefined) this.#ctx.ownership.remove(id);
    }
    this.#intentIds = [];
  }

  /** Time an operation from now, for a listener only: a cold start runs tens of thousands. */
  #started(): number {
    return this.#ctx.hooks?.onOperation ? performance.now() : 0;
  }

  /** The bookkeeping of an operation's outcome (`started`: {@link ApplyRun.#started}). */
  #finish(op: PlanOp, started: number, outcome: OpOutcome, error?: unknown): void {
    this.#ctx.hooks?.onOperation?.(op, outcome, performance.now() - started, error);
    if (outcome === "ok") {
      this.#result.applied[this.#appliedCount++] = op;
      this.#ctx.backoff.reset(op.key);
    } else if (outcome === "conflict") {
      this.#blocked.add(op.key); // reported by #conflict; the tracker says when to speak again
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
        err: errorMessage(error),
      });
    }
  }

  /**
   * Run a step of creates of one kind: those ready to go out under a listed
   * GUID go in requests of {@link CREATE_CHUNK}, up to {@link CHUNKS_IN_FLIGHT}
   * at a time, so that HNS works on the next while the answers of one are
   * taken in; their outcomes are kept as {@link ApplyRun.#one}'s. The rest
   * (deferred, blocked, not listed, and every create whose request failed,
   * with that failure as its first attempt's) then go through
   * {@link ApplyRun.#one}, `concurrency` at a time.
   */
  async #createMany(
    ops: readonly PlanOp[],
    from: number,
    to: number,
    concurrency: number,
  ): Promise<void> {
    /** Indices (in `ops`) of the creates left to the single path. */
    const rest: number[] = [];
    const inFlight: Promise<void>[] = [];
    let next = from;
    const submit = () => {
      /** Indices (in `ops`) of the request's creates. */
      const chunk: number[] = [];
      const payloads: (HcnEndpoint | HcnLoadBalancer)[] = [];
      let first: CreateOp | undefined;
      for (; next < to && chunk.length < CREATE_CHUNK; next++) {
        const op = ops[next] as CreateOp;
        // A request's endpoints are on one network.
        if (first !== undefined && !sameNetwork(first, op)) break;
        let payload: HcnEndpoint | HcnLoadBalancer | undefined;
        try {
          payload = this.#readyCreate(op, next);
        } catch {
          payload = undefined; // the single path fails it with this error
        }
        if (payload === undefined) {
          rest.push(next);
          continue;
        }
        first ??= op;
        chunk.push(next);
        payloads.push(payload);
      }
      if (first === undefined) return;
      const started = this.#started();
      this.#result.writes += chunk.length;
      const { client } = this.#ctx;
      const request = first.op === "createEndpoint"
        ? client.createEndpoints(first.networkId, payloads)
        : client.createLoadBalancers(payloads as HcnLoadBalancer[]);
      inFlight.push(request.then(
        (done) => this.#settleCreates(ops, chunk, done, started, rest),
        (err) => this.#settleCreates(ops, chunk, { sent: [], failures: [] }, started, rest, err),
      ));
    };
    while (next < to || inFlight.length > 0) {
      while (inFlight.length < CHUNKS_IN_FLIGHT && next < to) submit();
      if (inFlight.length === 0) break;
      await inFlight.shift();
    }
    await pool(rest.length, concurrency, (j) => this.#one(ops[rest[j]], rest[j]));
  }

  /**
   * What to send for `op` (at `index` in the plan) now, in a request of
   * many: undefined when it is not ready to go out under a GUID listed for it
   * (backing off, blocked, not listed, or a load balancer with a backend that
   * has no ID).
   */
  #readyCreate(op: CreateOp, index: number): HcnEndpoint | HcnLoadBalancer | undefined {
    const key = op.key;
    if (!this.#ctx.backoff.ready(key) || this.#blocked.has(key) || this.#unlisted.has(key)) {
      return undefined;
    }
    const id = this.#intentIds[index];
    if (id === undefined) return undefined;
    if (op.op === "createEndpoint") {
      // Built now, not in the plan: a first sync's plan holds tens of thousands of creates.
      return op.payload ? { ...op.payload, ID: id } : endpointPayload(op.endpoint, id);
    }
    const ids = this.#backendIds(op.loadBalancer);
    if (!Array.isArray(ids)) return undefined;
    const payload = loadBalancerPayload(op.loadBalancer, ids);
    payload.ID = id;
    return payload;
  }

  /**
   * Take in the answers of a request of creates: a created object is
   * recorded as {@link ApplyRun.#one} records it; a failed one goes to
   * `rest`, its failure kept as the outcome of its first attempt (`failed`:
   * the whole request failed).
   */
  #settleCreates(
    ops: readonly PlanOp[],
    chunk: readonly number[],
    done: CreatedBatch<HcnEndpoint | HcnLoadBalancer>,
    started: number,
    rest: number[],
    failed?: unknown,
  ): void {
    const { failures, sent } = done;
    // Looked up once: a cold start takes in tens of thousands of these.
    const debug = this.#log.enabled(2);
    let f = 0;
    for (let i = 0; i < chunk.length; i++) {
      const index = chunk[i];
      const op = ops[index] as CreateOp;
      if (failed !== undefined || (f < failures.length && failures[f].index === i)) {
        this.#firstAttempts.set(op.key, failed ?? failures[f++].error);
        rest.push(index);
        continue;
      }
      // Issued: its listing stays (no #withIntent sees this index again, so
      // it need not be remembered in #issued).
      const id = this.#intentIds[index]!;
      this.#intentIds[index] = undefined;
      this.#uncertain.delete(op.key);
      try {
        if (op.op === "createEndpoint") {
          const ep = sent[i] as HcnEndpoint;
          this.#recordEndpoint(op.key, ep, sentEndpointFingerprint(op, ep));
          if (debug) this.#log.debug(2, "Created endpoint", { key: op.key, id });
        } else {
          const lb = sent[i] as HcnLoadBalancer;
          this.#recordLoadBalancer(op, lb, sentLoadBalancerFingerprint(op, lb));
        }
        this.#finish(op, started, "ok");
      } catch (err) {
        this.#finish(op, started, "failed", err);
      }
    }
  }

  /** Run `op`, the operation at `index` in the plan. */
  async #one(op: PlanOp, index: number): Promise<void> {
    const started = this.#started();
    const finish = (outcome: OpOutcome, error?: unknown) =>
      this.#finish(op, started, outcome, error);
    if (op.op === "adoptLoadBalancer") {
      const { observed } = this.#ctx;
      observed.adoptLoadBalancer(op.key, op.id, op.serviceKey);
      const hns = op.fp === undefined ? observed.loadBalancerById(op.id)?.hns : undefined;
      const fp = op.fp ?? (hns ? loadBalancerFingerprint(hns) : undefined);
      this.#ctx.ownership.add({ kind: "LoadBalancer", id: op.id, key: op.key, fp });
      return finish("ok");
    }
    if (op.op === "adoptEndpoint") {
      const { observed } = this.#ctx;
      observed.adoptEndpoint(op.key, op.id);
      const hns = op.fp === undefined ? observed.endpointById(op.id)?.hns : undefined;
      const fp = op.fp ?? (hns ? endpointFingerprint(hns) : undefined);
      this.#ctx.ownership.add({ kind: "Endpoint", id: op.id, key: op.key, fp });
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
          outcome = await this.#createEndpoint(op, index);
          break;
        case "createLoadBalancer":
        case "modifyLoadBalancer":
          outcome = await this.#putLoadBalancer(op, index);
          break;
      }
      finish(outcome);
    } catch (err) {
      finish(err instanceof HeldByForeign ? "conflict" : "failed", err);
    }
  }

  /**
   * At the first create of a phase (`first` is its first op): list every
   * create of that kind from `offset` on that will be tried now, in one write
   * of the record, before any of them is issued. Where HNS cannot update a
   * load balancer in place, a modify is a delete and a create: listed too.
   * (A create that becomes due later in the phase is listed alone by
   * {@link ApplyRun.#withIntent}.)
   */
  async #listCreates(ops: readonly PlanOp[], offset: number): Promise<void> {
    const kind = this.#createKind(ops[offset]);
    if (kind === undefined || this.#listedPhases.has(kind)) return;
    this.#listedPhases.add(kind);
    // Made at its largest length and cut to what is listed (as the result's `applied`).
    const listed: OwnedObject[] = new Array(ops.length - offset);
    let count = 0;
    const intentIds = this.#intentIds;
    for (let i = offset; i < ops.length; i++) {
      const op = ops[i];
      if (this.#createKind(op) !== kind || intentIds[i] !== undefined) continue;
      if (!this.#ctx.backoff.ready(op.key) || this.#blocked.has(op.key)) continue;
      const id = newGuid();
      listed[count++] = { kind, id, key: op.key };
      intentIds[i] = id; // nothing is issued before the listing is written
    }
    listed.length = count;
    if (count === 0) return;
    // The same write drops the fingerprints of the plan's modifies.
    const modifies = this.#distrustModifies(ops, offset);
    try {
      await this.#ctx.ownership.intend(listed);
    } catch (err) {
      // Not listed: none of them may be issued under these GUIDs.
      for (let i = offset; i < ops.length; i++) {
        if (this.#createKind(ops[i]) === kind) intentIds[i] = undefined;
      }
      if (modifies.length > 0) this.#notWritten(modifies, err);
      this.#log.error("Cannot write the ownership record; not creating HNS objects", {
        path: this.#ctx.ownership.path,
        creates: listed.length,
        err: errorMessage(err),
      });
      for (const intent of listed) this.#unlisted.set(intent.key, err);
    }
  }

  /** The kind of object `op` creates in HNS, if it creates one. */
  #createKind(op: PlanOp): OwnedKind | undefined {
    if (op.op === "createEndpoint") return "Endpoint";
    if (op.op === "createLoadBalancer") return "LoadBalancer";
    if (op.op === "modifyLoadBalancer" && this.#ctx.client.modifyUnsupported) {
      return "LoadBalancer";
    }
    return undefined;
  }

  /**
   * Once per plan, before its first create or modify is issued: drop the
   * fingerprints of every load balancer the plan modifies from `offset` on
   * (in memory; the caller writes). Where HNS cannot update in place a modify
   * is a delete and a create, which need none of this. Returns the modifies.
   */
  #distrustModifies(ops: readonly PlanOp[], offset: number): ModifyLoadBalancerOp[] {
    if (this.#modifiesDistrusted || this.#ctx.client.modifyUnsupported) return [];
    this.#modifiesDistrusted = true;
    const modifies: ModifyLoadBalancerOp[] = [];
    for (let i = offset; i < ops.length; i++) {
      const op = ops[i];
      if (op.op === "modifyLoadBalancer") modifies.push(op);
    }
    return this.#ctx.ownership.distrust(modifies.map((op) => op.id)) ? modifies : [];
  }

  /**
   * At the plan's first modify, unless a create listing wrote it already:
   * write the dropped fingerprints ({@link ApplyRun.#distrustModifies}) in
   * one write before any modify is issued. If that write fails, none of them
   * is issued (they fail and retry).
   */
  async #writeDistrust(ops: readonly PlanOp[], offset: number): Promise<void> {
    if (ops[offset].op !== "modifyLoadBalancer") return;
    const modifies = this.#distrustModifies(ops, offset);
    if (modifies.length === 0) return;
    try {
      await this.#ctx.ownership.flush();
    } catch (err) {
      this.#notWritten(modifies, err);
    }
  }

  /** Modifies whose fingerprints could not be dropped on disk: not issued. */
  #notWritten(modifies: readonly ModifyLoadBalancerOp[], err: unknown): void {
    this.#log.error("Cannot write the ownership record; not modifying HNS objects", {
      path: this.#ctx.ownership.path,
      modifies: modifies.length,
      err: errorMessage(err),
    });
    for (const op of modifies) this.#unlisted.set(op.key, err);
  }

  /**
   * Run a create of `key` (by the operation at `index` in the plan) under the
   * GUID listed for it (listed now when its phase did not). Afterwards the
   * listing stays only when HNS holds, or may hold, an object under that GUID.
   */
  async #withIntent<T>(
    kind: OwnedKind,
    key: string,
    index: number,
    create: (id: string) => Promise<T>,
  ): Promise<T> {
    const unlisted = this.#unlisted.get(key);
    if (unlisted !== undefined) throw unlisted;
    let id = this.#intentIds[index];
    this.#intentIds[index] = undefined;
    if (id === undefined) {
      id = newGuid();
      await this.#ctx.ownership.intend([{ kind, id, key }]);
    }
    try {
      return await create(id);
    } finally {
      if (!this.#issued.has(id)) this.#ctx.ownership.remove(id);
    }
  }

  /**
   * One create call under a listed GUID. A refusal (port, ID or IP taken)
   * made nothing. After any other failure HNS may hold the object (its answer
   * lost): `lookup` asks HNS for the GUID. Held: the create is done. Not held:
   * it failed. No answer either: the key turns uncertain and the GUID stays
   * listed.
   */
  async #issueCreate<T>(
    key: string,
    id: string,
    call: () => Promise<T>,
    lookup: () => Promise<T | undefined>,
  ): Promise<T> {
    try {
      const created = await this.#attempt(key, call);
      this.#issued.add(id);
      return created;
    } catch (err) {
      if (isPortConflict(err) || isAlreadyExists(err)) throw err;
      let held: T | undefined;
      try {
        held = await lookup();
      } catch {
        this.#uncertain.add(key);
        this.#issued.add(id);
        throw err;
      }
      if (held === undefined) throw err;
      this.#log.info("HNS made the object of a create that reported a failure; keeping it", {
        key,
        id,
        err: errorMessage(err),
      });
      this.#issued.add(id);
      return held;
    }
  }

  /** Delete an owned object ("not found" means done), then forget it in the cache and the record. */
  async #deleteOwned(kind: OwnedKind, id: string): Promise<void> {
    const { client } = this.#ctx;
    try {
      if (kind === "LoadBalancer") await this.#write(() => client.deleteLoadBalancer(id));
      else await this.#write(() => client.deleteEndpoint(id));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.#forget(kind, id);
  }

  /** Forget an object that is no longer in HNS, in the cache and the record. */
  #forget(kind: OwnedKind, id: string): void {
    if (kind === "LoadBalancer") this.#ctx.observed.removeLoadBalancerById(id);
    else this.#ctx.observed.removeEndpointById(id);
    this.#ctx.ownership.remove(id);
  }

  /**
   * The first attempt of a create of `key`: its failure in a request of many,
   * when it had one (the write counted there), else a write of `call`.
   */
  #attempt<T>(key: string, call: () => Promise<T>): Promise<T> {
    const failure = this.#firstAttempts.get(key);
    if (failure === undefined) return this.#write(call);
    this.#firstAttempts.delete(key);
    return Promise.reject(failure);
  }

  /** Count a write and make it (a throw of `call` is the caller's, as a rejection would be). */
  #write<T>(call: () => Promise<T>): Promise<T> {
    this.#result.writes++;
    return call();
  }

  async #deleteLoadBalancer(op: DeleteLoadBalancerOp): Promise<OpOutcome> {
    if (!this.#ctx.ownership.owns(op.id)) {
      // The plan only deletes what the record lists; refuse anything else outright.
      throw new Error(`refusing to delete load balancer ${op.id} (${op.key}): not owned`);
    }
    await this.#deleteOwned("LoadBalancer", op.id);
    this.#log.debug(2, "Deleted load balancer", { key: op.key, id: op.id, reason: op.reason });
    return "ok";
  }

  async #deleteEndpoint(op: DeleteEndpointOp): Promise<OpOutcome> {
    if (!this.#ctx.ownership.owns(op.id)) {
      throw new Error(`refusing to delete endpoint ${op.id} (${op.key}): not owned`);
    }
    // A load balancer whose update failed still uses it; HNS would refuse anyway.
    if (this.#ctx.observed.endpointReferenced(op.id)) return "deferred";
    await this.#deleteOwned("Endpoint", op.id);
    this.#log.debug(2, "Deleted endpoint", { key: op.key, id: op.id, reason: op.reason });
    return "ok";
  }

  async #createEndpoint(op: CreateEndpointOp, index: number): Promise<OpOutcome> {
    const created = await this.#withIntent(
      "Endpoint",
      op.key,
      index,
      (id) => this.#makeEndpoint(op, id),
    );
    this.#uncertain.delete(op.key);
    this.#recordEndpoint(op.key, created);
    this.#log.debug(2, "Created endpoint", { key: op.key, id: created.ID });
    return "ok";
  }

  /** Create the endpoint under `id`, or take or replace hnsproxy's own endpoint holding its IP. */
  async #makeEndpoint(op: CreateEndpointOp, id: string): Promise<HcnEndpoint> {
    const { client } = this.#ctx;
    // Built now, not in the plan: a first sync's plan holds tens of thousands of creates.
    const payload: HcnEndpoint = { ...(op.payload ?? endpointPayload(op.endpoint)), ID: id };
    const create = () =>
      this.#issueCreate(
        op.key,
        id,
        () => client.createEndpoint(op.networkId, payload),
        () => client.getEndpoint(id),
      );
    try {
      return await create();
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      const resolved = await this.#resolveEndpointClash(op, err);
      if (resolved === "retry") return await create();
      if (resolved) return resolved;
      throw err;
    }
  }

  /**
   * HNS refused a remote endpoint because one with its IP exists. Ours (in
   * the record): identical and the key uncertain, it is our own earlier
   * create, take it; else delete it and retry. Not ours: leave it and fail.
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
      if (this.#uncertain.has(op.key) && endpointSatisfies(holder, op.endpoint)) {
        this.#log.info("Taking over endpoint an earlier failed create made", {
          key: op.key,
          id: holder.ID,
        });
        return holder;
      }
      if (observed.endpointReferenced(holder.ID)) return undefined;
      await this.#deleteOwned("Endpoint", holder.ID);
      return "retry";
    }
    observed.setForeignEndpoint({ key: op.key, id: holder.ID, hns: holder });
    this.#log.warn("An endpoint hnsproxy does not own holds this IP; leaving it alone", {
      key: op.key,
      holder: holder.ID,
      err: errorMessage(err),
    });
    return undefined;
  }

  /**
   * Record an endpoint HNS now holds as `hns` (`fp`: its fingerprint when
   * known already, as text or as the number the text spells).
   */
  #recordEndpoint(key: EpKey, hns: HcnEndpoint, fp: Fingerprint = endpointFingerprint(hns)): void {
    const id = requireId(hns, key);
    this.#ctx.observed.setEndpoint({ key, id, hns });
    this.#own("Endpoint", id, key, fp);
  }

  /** Record in the ownership record that hnsproxy owns this object, with this fingerprint. */
  #own(kind: OwnedKind, id: string, key: string, fp: Fingerprint): void {
    if (typeof fp === "number") this.#ctx.ownership.addFingerprinted(kind, id, key, fp);
    else this.#ctx.ownership.add({ kind, id, key, fp });
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

  async #putLoadBalancer(
    op: CreateLoadBalancerOp | ModifyLoadBalancerOp,
    index: number,
  ): Promise<OpOutcome> {
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
      hns = await this.#modifyOrReplace(op, index, payload);
    } else {
      hns = await this.#createLoadBalancer(op.key, index, payload, op.serviceKey);
    }
    this.#recordLoadBalancer(op, hns);
    return "ok";
  }

  /** Record a load balancer HNS now holds as `hns` (created or updated by `op`). */
  #recordLoadBalancer(
    op: CreateLoadBalancerOp | ModifyLoadBalancerOp,
    hns: HcnLoadBalancer,
    fp: Fingerprint = loadBalancerFingerprint(hns),
  ): void {
    const id = requireId(hns, op.key);
    this.#ctx.observed.setLoadBalancer({ key: op.key, id, serviceKey: op.serviceKey, hns });
    this.#own("LoadBalancer", id, op.key, fp);
    if (!this.#log.enabled(2)) return;
    this.#log.debug(
      2,
      op.op === "modifyLoadBalancer" ? "Updated load balancer" : "Created load balancer",
      {
        key: op.key,
        id,
        service: op.serviceKey,
        backends: hns.HostComputeEndpoints?.length ?? 0,
      },
    );
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
    index: number,
    payload: HcnLoadBalancer,
  ): Promise<HcnLoadBalancer> {
    const { client } = this.#ctx;
    const unlisted = this.#unlisted.get(op.key);
    if (unlisted !== undefined) throw unlisted;
    if (!client.modifyUnsupported) {
      try {
        return await this.#write(() => client.modifyLoadBalancer(op.id, payload));
      } catch (err) {
        if (isNotFound(err)) {
          // It vanished out of band: forget it and create it afresh.
          this.#forget("LoadBalancer", op.id);
          return await this.#createLoadBalancer(op.key, index, payload, op.serviceKey);
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
    return await this.#createLoadBalancer(op.key, index, payload, op.serviceKey);
  }

  /** Create a load balancer for `key` under a listed GUID (see {@link ApplyRun.#makeLoadBalancer}). */
  async #createLoadBalancer(
    key: string,
    index: number,
    payload: HcnLoadBalancer,
    serviceKey?: string,
  ): Promise<HcnLoadBalancer> {
    const created = await this.#withIntent(
      "LoadBalancer",
      key,
      index,
      (id) => this.#makeLoadBalancer(key, { ...payload, ID: id }, serviceKey),
    );
    this.#uncertain.delete(key);
    return created;
  }

  /**
   * Create the load balancer; when its port is taken by one of hnsproxy's
   * own, take that one (identical, and the key uncertain: an earlier create
   * whose answer was lost) or replace it. A foreign holder is a conflict.
   */
  async #makeLoadBalancer(
    key: string,
    payload: HcnLoadBalancer,
    serviceKey?: string,
  ): Promise<HcnLoadBalancer> {
    const { client } = this.#ctx;
    const id = payload.ID!;
    const create = () =>
      this.#issueCreate(
        key,
        id,
        () => client.createLoadBalancer(payload),
        () => client.getLoadBalancer(id),
      );
    try {
      return await create();
    } catch (err) {
      if (!isPortConflict(err)) throw err;
      const holder = (await client.listLoadBalancers()).find((lb) =>
        loadBalancerKeyFromHns(lb) === key
      );
      if (!holder?.ID) throw err; // gone meanwhile: the next attempt will tell
      const { ownership, observed } = this.#ctx;
      if (ownership.owns(holder.ID)) {
        if (this.#uncertain.has(key) && sameLoadBalancer(holder, payload)) {
          this.#log.info("Taking over load balancer an earlier failed create made", {
            key,
            id: holder.ID,
          });
          return holder;
        }
        this.#log.info("Replacing hnsproxy's own load balancer that holds the port", {
          key,
          id: holder.ID,
        });
        await this.#deleteOwned("LoadBalancer", holder.ID);
        return await create();
      }
      observed.setForeignLoadBalancer({ key, id: holder.ID, hns: holder });
      this.#conflict({ key, serviceKey: serviceKey ?? "", foreignId: holder.ID });
      throw new HeldByForeign(key, holder.ID, err);
    }
  }

  /** A desired key a foreign object holds: reported to the tracker as the run ends. */
  #conflict(conflict: LoadBalancerConflict): void {
    this.#result.conflicts.push(conflict);
    this.#ctx.hooks?.onConflict?.(conflict);
  }
}

/** Clients whose refusal of in-place updates was logged (once per client, i.e. per process). */
const modifyWarned = new WeakSet<HnsClient>();

function warnModifyUnsupportedOnce(client: HnsClient, log: Logger, err: unknown): void {
  if (modifyWarned.has(client)) return;
  modifyWarned.add(client);
  log.warn(
    "HNS cannot update load balancers in place; replacing changed ones (delete + create) from now on",
    { err: errorMessage(err) },
  );
}

/** An operation that creates an object (in a request of many where it can). */
type CreateOp = CreateEndpointOp | CreateLoadBalancerOp;

/** Whether two creates may share a request: load balancers, or endpoints on one network. */
function sameNetwork(a: CreateOp, b: CreateOp): boolean {
  return a.op !== "createEndpoint" || b.op !== "createEndpoint" || a.networkId === b.networkId;
}

/** Creates per request of many ({@link ApplyRun.#createMany}). */
const CREATE_CHUNK = 48;
/**
 * Requests of creates in flight at once: HNS works on the next ones while
 * the event loop's thread takes in the answers of one.
 */
const CHUNKS_IN_FLIGHT = 3;

/**
 * The end of the step that begins at `from`: the index after the last of the
 * consecutive operations of `ops[from]`'s kind (a step may run concurrently).
 */
function stepEnd(ops: readonly PlanOp[], from: number): number {
  const kind = ops[from].op;
  let to = from + 1;
  while (to < ops.length && ops[to].op === kind) to++;
  return to;
}

/** Run `fn(0)` .. `fn(count - 1)` with at most `limit` in flight. */
async function pool(count: number, limit: number, fn: (j: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

/**
 * The fingerprint of `sent`, the endpoint a request of creates sent for
 * `op`: for a payload built from the desired endpoint on its own network,
 * made from the desired fields (the same text, without normalizing the
 * payload's fields again).
 */
function sentEndpointFingerprint(op: CreateEndpointOp, sent: HcnEndpoint): Fingerprint {
  return op.payload === undefined && op.networkId === op.endpoint.networkId
    ? desiredEndpointFingerprintValue(op.endpoint)
    : endpointFingerprint(sent);
}

/**
 * An object's fingerprint for the ownership record: its text (payload.ts
 * `…Fingerprint`), or the number that text spells (`…FingerprintValue`),
 * which costs no string.
 */
type Fingerprint = string | number;

/**
 * The fingerprint of a load balancer sent in a request of creates, which
 * {@link loadBalancerPayload} made of `op`'s desired load balancer and the
 * backend IDs it sent: computed from those fields, without normalizing the
 * payload (a cold start sends tens of thousands).
 */
function sentLoadBalancerFingerprint(
  op: CreateLoadBalancerOp,
  sent: HcnLoadBalancer,
): Fingerprint {
  return desiredLoadBalancerFingerprintValue(op.loadBalancer, sent.HostComputeEndpoints);
}

/** A create refused because a foreign load balancer holds the key (a conflict, not a failure). */
class HeldByForeign extends Error {
  constructor(key: string, holderId: string, cause: unknown) {
    super(`${key} is held by load balancer ${holderId}, which hnsproxy does not own`, { cause });
  }
}

function isAlreadyExists(err: unknown): boolean {
  return err instanceof HnsError && err.hresult === HResult.ERROR_ALREADY_EXISTS;
}

function requireId(object: { ID?: string }, key: string): string {
  if (!object.ID) throw new Error(`HNS returned no ID for ${key}`);
  return object.ID;
}
