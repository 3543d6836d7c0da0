/**
 * The benchmark's child processes (the API server, the agent host) are driven
 * by JSON lines: each command `{id, cmd, ...}` on the child's stdin gets one
 * answer `{id, ok, ...}` (or `{id, ok: false, error}`) on its stdout; lines
 * without an `id` are events the child sends on its own (`{ev, ...}`); lines
 * that are not JSON objects are passed on to stderr.
 * Commands may be answered out of order: each is handled as it arrives.
 *
 * @module
 */

import { errorMessage } from "../lib/errors.ts";

/** A message from a child: an answer (with `id`) or an event (with `ev`). */
export type Message = Record<string, unknown>;

/** The parent's side: spawn the child, send commands, receive answers and events. */
export class JsonLinesChild {
  /** The child's process ID. */
  readonly pid: number;
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #pending = new Map<number, (m: Message) => void>();
  readonly #encoder = new TextEncoder();
  readonly #name: string;
  #nextId = 1;
  #reading: Promise<void>;
  #exited = false;
  /** Called with every event line. */
  onEvent: (m: Message) => void = () => {};

  /** Spawn `deno run <args>` (its stderr goes to ours); `name` prefixes errors. */
  constructor(name: string, args: string[], env?: Record<string, string>) {
    this.#name = name;
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...args],
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.pid = this.#child.pid;
    this.#writer = this.#child.stdin.getWriter();
    this.#reading = this.#read();
  }

  async #read(): Promise<void> {
    try {
      for await (const msg of messages(this.#child.stdout)) {
        if (typeof msg.id !== "number") {
          this.onEvent(msg);
          continue;
        }
        const resolve = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        resolve?.(msg);
      }
    } finally {
      this.#exited = true;
      // Whoever still waits learns that the child is gone.
      for (const resolve of this.#pending.values()) {
        resolve({ ok: false, error: "the process exited" });
      }
      this.#pending.clear();
    }
  }

  /** Send a command; resolves with its answer, throws with the child's error. */
  async call(cmd: string, args: Record<string, unknown> = {}): Promise<Message> {
    if (this.#exited) throw new Error(`${this.#name}: ${cmd}: the process exited`);
    const id = this.#nextId++;
    const answer = new Promise<Message>((resolve) => this.#pending.set(id, resolve));
    await this.#writer.write(this.#encoder.encode(JSON.stringify({ id, cmd, ...args }) + "\n"));
    const msg = await answer;
    if (!msg.ok) throw new Error(`${this.#name}: ${cmd}: ${msg.error}`);
    return msg;
  }

  /** Send `stopCommand` (if the child still runs) and wait for the process to exit. */
  async stop(stopCommand = "stop"): Promise<void> {
    try {
      await this.call(stopCommand);
      await this.#writer.close();
    } catch {
      // Already gone: the status below tells.
    }
    await this.#reading.catch(() => {});
    await this.#child.status;
  }
}

/** The child's side: how it answers commands and sends events. */
export interface JsonLinesServer {
  /** Send an event line (not awaited: lines keep their order). */
  emit(event: Message): void;
  /** Write an answer and wait until it is written. */
  answer(id: number, msg: Message): Promise<void>;
  /** Flush and close stdout. */
  close(): Promise<void>;
}

/**
 * Read commands from stdin until it closes, handing each to `handle` as it
 * arrives (not one after the other); its value (or error) is the answer.
 */
export async function serveJsonLines(
  handle: (cmd: Message & { id: number; cmd: string }, server: JsonLinesServer) => Promise<
    Message | void
  >,
): Promise<void> {
  const out = Deno.stdout.writable.getWriter();
  const encoder = new TextEncoder();
  const write = (obj: unknown) => out.write(encoder.encode(JSON.stringify(obj) + "\n"));
  const server: JsonLinesServer = {
    emit: (event) => void write(event).catch(() => {}),
    answer: (id, msg) => write({ id, ...msg }),
    close: () => out.close(),
  };
  for await (const msg of messages(Deno.stdin.readable)) {
    const c = msg as Message & { id: number; cmd: string };
    void handle(c, server).then(
      (value) => server.answer(c.id, { ok: true, ...(value ?? {}) }),
      (err) => server.answer(c.id, { ok: false, error: errorMessage(err) }),
    ).catch(() => {});
  }
}

/**
 * The JSON lines of `stream`, parsed, until it ends. Other lines (V8 writes
 * `--trace-gc` to stdout) go to our stderr as they are. V8 buffers what it
 * writes, so a flush may end in the middle of its line and the child's next
 * JSON line follow on the same line: a message is found after such a prefix.
 */
async function* messages(stream: ReadableStream<Uint8Array>): AsyncGenerator<Message> {
  let buffer = "";
  const encoder = new TextEncoder();
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      const json = line.startsWith("{") ? 0 : messageStart(line);
      if (json > 0) Deno.stderr.writeSync(encoder.encode(line.slice(0, json) + "\n"));
      if (json >= 0) yield JSON.parse(line.slice(json)) as Message;
      else if (line.trim()) Deno.stderr.writeSync(encoder.encode(line + "\n"));
    }
  }
}

/** Where a message (`{"id":` or `{"ev":`, as the child writes them) begins in `line`; -1: none. */
function messageStart(line: string): number {
  const id = line.indexOf('{"id":');
  const ev = line.indexOf('{"ev":');
  return id < 0 ? ev : ev < 0 ? id : Math.min(id, ev);
}
