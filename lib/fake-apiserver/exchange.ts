/**
 * One request and its answer as the fake API server's handler sees them,
 * whichever server carried them: node:http (plain HTTP/1.1) or `Deno.serve`
 * behind the TLS front (HTTP/2 or HTTP/1.1, lib/fake-apiserver/tls_front.ts).
 * The handler reads an {@linkcode Exchange} and writes to an
 * {@linkcode Answer}, a node `Writable` with `writeHead` as
 * `http.ServerResponse` has, so that one handler serves both.
 *
 * @module
 */

import type http from "node:http";
import { Buffer } from "node:buffer";
import { Writable } from "node:stream";

/** An answer being written: node's `http.ServerResponse` or {@linkcode FetchAnswer}. */
export interface Answer extends Writable {
  /** Sets the status and headers (sent with the first write, or at once by `flushHeaders`). */
  writeHead(status: number, headers?: Record<string, string>): unknown;
  /** Sends the status and headers now. */
  flushHeaders(): void;
}

/** A request as the handler reads it. */
export interface Exchange {
  /** `GET`, `POST`, ... */
  method: string;
  /** Path and query. */
  target: string;
  /**
   * A header (a lowercase name): over node:http its first value (node would
   * join repeated ones), over `Deno.serve` all its values joined by ", ".
   */
  header(name: string): string | undefined;
  /** The request body. */
  body(): Promise<Buffer>;
  /** The subject CN of a client certificate the server verified, if any. */
  verifiedClient?: { cn?: string };
  /** `h2` or `http/1.1`. */
  protocol: "h2" | "http/1.1";
  /** The connection that carried it (the same object for every request of a connection). */
  connection: object;
  /** The answer to write. */
  answer: Answer;
}

/** The body of a node request, read to its end. */
function nodeBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** A request to node's plain HTTP/1.1 server. */
export function nodeExchange(req: http.IncomingMessage, res: http.ServerResponse): Exchange {
  return {
    method: req.method ?? "GET",
    target: req.url ?? "/",
    header(name) {
      const raw = req.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) {
        if (raw[i].toLowerCase() === name) return raw[i + 1];
      }
      return undefined;
    },
    body: () => nodeBody(req),
    protocol: "http/1.1",
    connection: req.socket,
    answer: res as unknown as Answer,
  };
}

/** Why a {@linkcode FetchAnswer} destroyed without an error aborts its body. */
export class AnswerReset extends Error {
  constructor() {
    super("the fake API server reset the answer");
    this.name = "AnswerReset";
  }
}

/** Hop-by-hop headers that `Deno.serve` sets itself (and HTTP/2 forbids). */
const HOP_BY_HOP = new Set(["transfer-encoding", "connection", "keep-alive"]);

/**
 * An answer of `Deno.serve`: {@linkcode FetchAnswer.response} resolves at
 * `writeHead` with a `Response` whose body streams what is written.
 * Destroying it (or the client going away) aborts that body: over HTTP/2
 * the stream is reset (RST_STREAM, the connection's other streams go on),
 * over HTTP/1.1 the connection is closed mid-answer.
 */
export class FetchAnswer extends Writable implements Answer {
  /** The `Response` for `Deno.serve`, once the head is written. */
  readonly response: Promise<Response>;
  #resolve!: (r: Response) => void;
  #head?: { status: number; headers: Record<string, string> };
  #body?: ReadableStreamDefaultController<Uint8Array>;
  #sent = false;

  constructor() {
    super();
    this.response = new Promise((resolve) => this.#resolve = resolve);
  }

  writeHead(status: number, headers: Record<string, string> = {}): this {
    const kept: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) {
      if (!HOP_BY_HOP.has(k.toLowerCase())) kept[k] = v;
    }
    this.#head = { status, headers: kept };
    return this;
  }

  flushHeaders(): void {
    if (this.#sent) return;
    this.#sent = true;
    const head = this.#head ?? { status: 200, headers: {} };
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#body = controller;
      },
      cancel: () => {
        this.#body = undefined;
        this.destroy();
      },
    });
    this.#resolve(new Response(body, head));
  }

  override _write(chunk: Buffer, _encoding: string, callback: (error?: Error | null) => void) {
    this.flushHeaders();
    this.#body?.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    callback();
  }

  override _final(callback: (error?: Error | null) => void) {
    this.flushHeaders();
    this.#body?.close();
    this.#body = undefined;
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void) {
    this.flushHeaders();
    this.#body?.error(error ?? new AnswerReset());
    this.#body = undefined;
    callback(error);
  }
}

/**
 * Resets an answer mid-stream, as a failing kube-apiserver handler does:
 * over HTTP/2 its stream (the connection's other streams go on), over
 * HTTP/1.1 its connection.
 */
export function resetAnswer(answer: Answer): void {
  if (answer instanceof FetchAnswer) answer.destroy();
  else (answer as unknown as http.ServerResponse).socket?.destroy();
}

/** A request to `Deno.serve`, with what the TLS front knows of its connection. */
export function fetchExchange(
  request: Request,
  connection: { protocol: "h2" | "http/1.1"; verifiedClient?: { cn?: string } },
): Exchange & { answer: FetchAnswer } {
  const url = new URL(request.url);
  const answer = new FetchAnswer();
  return {
    method: request.method,
    target: url.pathname + url.search,
    header: (name) => request.headers.get(name) ?? undefined,
    body: async () => Buffer.from(await request.arrayBuffer()),
    verifiedClient: connection.verifiedClient,
    protocol: connection.protocol,
    connection,
    answer,
  };
}
