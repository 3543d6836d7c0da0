/**
 * A small HTTP listener for the healthz and metrics servers: binds an
 * `ip:port` address (port 0 picks a free one), reports where it listens,
 * and closes cleanly.
 *
 * @module
 */

import { splitHostPort } from "../net/ip.ts";
import { errorMessage } from "../errors.ts";

/** A running server. */
export interface HttpServer {
  /** The address actually bound (the real port when 0 was asked for). */
  readonly hostname: string;
  /** The port actually bound. */
  readonly port: number;
  /** A URL a local client can use (`0.0.0.0` becomes `127.0.0.1`, `::` becomes `[::1]`). */
  readonly url: string;
  /** Stop listening and wait for in-flight requests to finish. */
  close(): Promise<void>;
}

/** A request handler. */
export type Handler = (request: Request) => Response | Promise<Response>;

/** An error binding a server's address, naming the server and the address. */
export class ListenError extends Error {
  /** The address that could not be bound. */
  readonly address: string;

  /** `name` is the server (`healthz`, `metrics`), `address` the `ip:port`. */
  constructor(name: string, address: string, reason: string, options?: ErrorOptions) {
    super(`${name} server: cannot listen on ${address}: ${reason}`, options);
    this.name = "ListenError";
    this.address = address;
  }
}

/**
 * Listen on `address` (`ip:port` or `[ipv6]:port`) and serve `handler`.
 * Throws {@link ListenError} when the address is malformed or cannot be bound.
 */
export function listen(name: string, address: string, handler: Handler): HttpServer {
  const parsed = splitHostPort(address);
  if (!parsed) throw new ListenError(name, address, "not an ip:port address");
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: parsed.host,
      port: parsed.port,
      onListen: () => {},
      onError: (e) =>
        new Response(`internal error: ${e instanceof Error ? e.message : e}\n`, { status: 500 }),
    }, handler);
  } catch (e) {
    throw new ListenError(name, address, errorMessage(e), { cause: e });
  }
  const hostname = server.addr.hostname;
  const port = server.addr.port;
  const local = hostname === "0.0.0.0"
    ? "127.0.0.1"
    : hostname === "::"
    ? "[::1]"
    : hostname.includes(":")
    ? `[${hostname}]`
    : hostname;
  let closing: Promise<void> | undefined;
  return {
    hostname,
    port,
    url: `http://${local}:${port}`,
    close: () => closing ??= server.shutdown(),
  };
}
