/**
 * The fake API server's TLS front: it accepts each client's TLS connection
 * (ALPN `h2` preferred, then `http/1.1`, as kube-apiserver; a client
 * certificate verified against the client CA) and relays its plaintext to a
 * backend port where `Deno.serve` (hyper) speaks the negotiated protocol,
 * HTTP/2 by its connection preface. `Deno.serve` verifies no client
 * certificates, and the front gives the fake a hold on each connection:
 * which one carried a request (the backend sees the relay's local port as
 * the request's remote port), freezing one (the relay stops in both
 * directions without a FIN or a reset, a connection gone dead) and
 * resetting them all (a crash). No node:http2 server is involved: its
 * nghttp2 session close can abort the process in Deno 2.9.
 *
 * @module
 */

import net from "node:net";
import tls from "node:tls";
import type { FakeTlsOptions } from "./mod.ts";

/** A client connection accepted by the front. */
export interface FrontConnection {
  /** The protocol negotiated by ALPN (`http/1.1` without ALPN). */
  readonly protocol: "h2" | "http/1.1";
  /** Set when the client presented a certificate the client CA verified. */
  readonly verifiedClient?: { cn?: string };
  /** The backend port its plaintext goes to. */
  readonly backendPort: number;
  /** Whether {@linkcode TlsFront.freeze} froze it. */
  readonly frozen: boolean;
}

interface Relay extends FrontConnection {
  frozen: boolean;
  client: tls.TLSSocket;
  upstream: net.Socket;
}

/** A TLS listener that relays each connection to the backend port of the moment. */
export class TlsFront {
  readonly #tls: FakeTlsOptions;
  readonly #backendPort: () => number;
  #server?: tls.Server;
  readonly #open = new Set<Relay>();
  /** Open relays by the local port of their backend connection. */
  readonly #byUpstreamPort = new Map<number, Relay>();

  /** A front for `tls`; new connections go to `backendPort()`. */
  constructor(tlsOptions: FakeTlsOptions, backendPort: () => number) {
    this.#tls = tlsOptions;
    this.#backendPort = backendPort;
  }

  /** Listens on 127.0.0.1 (`port` 0: a free one); resolves with the port. */
  listen(port: number): Promise<number> {
    const { cert, key, clientCA } = this.#tls;
    const server = tls.createServer({
      cert,
      key,
      ALPNProtocols: ["h2", "http/1.1"],
      ...(clientCA ? { ca: clientCA, requestCert: true, rejectUnauthorized: false } : {}),
    }, (socket) => this.#relay(socket));
    this.#server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
    });
  }

  #relay(client: tls.TLSSocket): void {
    const backendPort = this.#backendPort();
    const upstream = net.connect(backendPort, "127.0.0.1");
    const verified = this.#tls.clientCA !== undefined && client.authorized;
    const cn = verified ? client.getPeerCertificate()?.subject?.CN : undefined;
    const relay: Relay = {
      protocol: client.alpnProtocol === "h2" ? "h2" : "http/1.1",
      ...(verified ? { verifiedClient: { cn: cn === undefined ? undefined : String(cn) } } : {}),
      backendPort,
      frozen: false,
      client,
      upstream,
    };
    this.#open.add(relay);
    upstream.once("connect", () => {
      const port = upstream.localPort!;
      this.#byUpstreamPort.set(port, relay);
      upstream.once("close", () => {
        if (this.#byUpstreamPort.get(port) === relay) this.#byUpstreamPort.delete(port);
      });
      if (relay.frozen) return;
      client.pipe(upstream);
      upstream.pipe(client);
    });
    // The client going away ends the relay; the backend closing it too,
    // unless frozen (a dead connection tells the client nothing).
    client.on("error", () => client.destroy());
    upstream.on("error", () => upstream.destroy());
    client.once("close", () => {
      this.#open.delete(relay);
      upstream.destroy();
    });
    upstream.once("close", () => {
      if (!relay.frozen) client.destroy();
    });
  }

  /** The open connection whose relay reached the backend from `port`. */
  connectionFrom(port: number): FrontConnection | undefined {
    return this.#byUpstreamPort.get(port);
  }

  /** The client connections open now. */
  connections(): FrontConnection[] {
    return [...this.#open];
  }

  /**
   * Freezes a connection: nothing more is relayed either way and it is
   * neither closed nor reset, so the client's requests on it and the
   * server's answers are never delivered.
   */
  freeze(connection: FrontConnection): void {
    const relay = connection as Relay;
    if (relay.frozen || !this.#open.has(relay)) return;
    relay.frozen = true;
    relay.client.unpipe(relay.upstream);
    relay.upstream.unpipe(relay.client);
    relay.client.pause();
    relay.upstream.pause();
  }

  /** Stops listening and resets every open connection. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    const closed = server
      ? new Promise<void>((resolve) => server.close(() => resolve()))
      : Promise.resolve();
    for (const relay of this.#open) {
      relay.client.destroy();
      relay.upstream.destroy();
    }
    this.#open.clear();
    await closed;
  }
}
