/**
 * An HNS thread (a Deno worker; see {@link import("./hcn_threads.ts")}): it
 * loads the HCN libraries named by its first message and runs each batch of
 * calls it is sent synchronously, in order, answering in order. Answers go
 * back when the batch is done, right after a request of many items, or
 * after any call once the oldest unsent one has waited 1 ms: the caller
 * takes in one request's answer while the thread runs the next, rather than
 * both waiting on each other. A request of many creates answers with its
 * failed items only, one of many reads with each item's status and value;
 * its time per item counts as a call's.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { HnsError } from "./errors.ts";
import { type HcnCalls, openHcnCalls } from "./ffi.ts";
import { opAt, opIndex, ReplyStatus, REQUEST_WIDTH, type ThreadInit } from "./hcn_threads.ts";
import type { HcnKind } from "./types.ts";
import { idListingBuffers, idListingOfAnswer, isIdListingData } from "./id_listing.ts";
import { errorMessage } from "../errors.ts";

/** How long a finished answer may wait for the rest of its batch, ms. */
const HOLD_MS = 1;

const ENUMERATE = opIndex("enumerate");
const ENUMERATE_IDS = opIndex("enumerateIds");
const CREATE_AND_CLOSE_MANY = opIndex("createAndCloseMany");
const OPEN_QUERY_CLOSE_MANY = opIndex("openQueryCloseMany");

let calls: HcnCalls | undefined;
let loadError: string | undefined;

function run(
  calls: HcnCalls,
  op: string | undefined,
  kind: HcnKind,
  a: unknown,
  b: unknown,
  c: unknown,
): unknown {
  switch (op) {
    case "enumerate":
      return calls.enumerate(kind, a as string);
    case "enumerateIds":
      // Parsed here, so the event loop's thread takes a few typed arrays, not the text.
      return idListingOfAnswer(kind, calls.enumerate(kind, a as string));
    case "open":
      return calls.open(kind, a as string);
    case "create":
      return calls.create(kind, a as string, b as string, c);
    case "modify":
      return calls.modify(kind, a, b as string);
    case "query":
      return calls.query(kind, a, b as string);
    case "delete":
      return calls.delete(kind, a as string);
    case "close":
      return calls.close(kind, a);
    case "hnsCall":
      return calls.hnsCall(a as string, b as string, c as string);
    case "createAndClose":
      return calls.createAndClose(kind, a as string, b as string, c);
    case "openQueryClose":
      return calls.openQueryClose(kind, a as string, b as string);
    case "createAndCloseMany":
      return createAndCloseMany(calls, kind, a as string[], b as string[], c);
    case "openQueryCloseMany":
      return openQueryCloseMany(calls, kind, a as string[], b as string);
  }
  throw new Error(`unknown HNS thread operation ${op}`);
}

/**
 * Create and close each item: the failed ones' index, status and value, in
 * order (none when all succeeded).
 */
function createAndCloseMany(
  calls: HcnCalls,
  kind: HcnKind,
  ids: string[],
  settings: string[],
  network: unknown,
): unknown[] {
  const failures: unknown[] = [];
  for (let i = 0; i < ids.length; i++) {
    try {
      calls.createAndClose(kind, ids[i], settings[i], network);
    } catch (err) {
      failures.push(i, ...failureReply(err));
    }
  }
  return failures;
}

/**
 * Open, query and close each item: per item its status and value (the
 * object's JSON, or its failure), in order.
 */
function openQueryCloseMany(
  calls: HcnCalls,
  kind: HcnKind,
  ids: string[],
  query: string,
): unknown[] {
  const replies: unknown[] = new Array(2 * ids.length);
  for (let i = 0; i < ids.length; i++) {
    try {
      replies[2 * i + 1] = calls.openQueryClose(kind, ids[i], query);
      replies[2 * i] = ReplyStatus.Ok;
    } catch (err) {
      [replies[2 * i], replies[2 * i + 1]] = failureReply(err);
    }
  }
  return replies;
}

/** A failed call's reply: its status and value (see {@link ReplyStatus}). */
function failureReply(err: unknown): [number, unknown] {
  if (err instanceof HnsError) {
    return [ReplyStatus.HnsFailure, {
      hresult: err.hresult,
      operation: err.operation,
      object: err.object,
      hnsMessage: err.hnsMessage,
      errorRecord: err.errorRecord,
    }];
  }
  return [ReplyStatus.Failure, errorMessage(err)];
}

/**
 * Run `batch`; answer with the fastest call's µs so far in the batch (-1:
 * only listings ran), then status and value per call.
 */
function answer(batch: unknown[]): void {
  let replies: unknown[] = [0];
  /** Buffers of the replies, handed over rather than copied. */
  let transfer: ArrayBuffer[] = [];
  let fastest = Infinity;
  let firstReady = -1;
  // One clock read per call: a call starts when the one before it ended.
  let started = performance.now();
  for (let i = 0; i < batch.length; i += REQUEST_WIDTH) {
    try {
      if (!calls) throw new Error(loadError ?? "HNS library is not loaded");
      const value = run(
        calls,
        opAt(batch[i] as number),
        batch[i + 1] as HcnKind,
        batch[i + 2],
        batch[i + 3],
        batch[i + 4],
      );
      replies.push(ReplyStatus.Ok, value);
      if (isIdListingData(value)) transfer.push(...idListingBuffers(value));
    } catch (err) {
      replies.push(...failureReply(err));
    }
    const now = performance.now();
    const many = batch[i] === CREATE_AND_CLOSE_MANY || batch[i] === OPEN_QUERY_CLOSE_MANY;
    // A listing's time grows with what HNS holds: it says nothing of a call on one object.
    if (many) {
      // A request of many items: the time of one, on average.
      const items = (batch[i + 2] as unknown[]).length;
      if (items > 0) fastest = Math.min(fastest, (now - started) / items);
    } else if (batch[i] !== ENUMERATE && batch[i] !== ENUMERATE_IDS) {
      fastest = Math.min(fastest, now - started);
    }
    if (firstReady < 0) firstReady = now;
    if ((many || now - firstReady >= HOLD_MS) && i + REQUEST_WIDTH < batch.length) {
      replies[0] = fastest === Infinity ? -1 : fastest * 1000;
      self.postMessage(replies, transfer);
      // `fastest` runs on over the whole batch: the few calls after a hiccup
      // that made the thread answer early say nothing of HNS on their own.
      replies = [0];
      transfer = [];
      firstReady = -1;
      started = performance.now(); // the answer's sending is not the next call's time
    } else {
      started = now;
    }
  }
  replies[0] = fastest === Infinity ? -1 : fastest * 1000;
  self.postMessage(replies, transfer);
}

self.onmessage = (e: MessageEvent) => {
  const data = e.data;
  if (Array.isArray(data)) {
    answer(data);
    return;
  }
  try {
    calls = openHcnCalls({ library: (data as ThreadInit).library });
  } catch (err) {
    loadError = errorMessage(err);
  }
};
