/**
 * The HNS network's RemoteSubnetRoute policies, re-read without reading all
 * of HNS: the CNI adds a route for each node that joins (and changes or
 * removes it as nodes move or leave), so the routes read at start go stale.
 *
 * - The network's handle stays open between reads: a read is one
 *   HcnQueryNetworkProperties call. It is opened for the network asked for
 *   (once, at start on overlay, or at the first read), reopened when the
 *   network ID changes or after a failed read, and closed by
 *   {@link NetworkRoutes.close} (at stop, and when HNS is read afresh).
 * - A read answers the routes in HNS's order, or undefined when HNS no
 *   longer has the network (the resync's listing then finds the new one).
 * - Opens, reads and closes run one at a time, so a read in a run and one in
 *   the background resync never race for the handle.
 *
 * @module
 */

import type { HnsClient, OpenNetwork } from "../hns/types.ts";
import { remoteSubnetRoutesOf } from "./context.ts";
import type { RemoteSubnetRoute } from "./model.ts";
import { sameId } from "./observed.ts";

/** The network's routes through a kept-open handle. One per syncer. */
export class NetworkRoutes {
  readonly #client: HnsClient;
  #open: OpenNetwork | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  /** Nothing open yet. */
  constructor(client: HnsClient) {
    this.#client = client;
  }

  /** Open the network's handle now, unless it is open already (one HcnOpenNetwork call). */
  open(networkId: string): Promise<void> {
    return this.#serial(async () => void await this.#handle(networkId));
  }

  /**
   * The network's RemoteSubnetRoute policies now (one call, plus the open
   * when the handle is not open yet); undefined when HNS no longer has the
   * network. A failed read closes the handle and throws.
   */
  read(networkId: string): Promise<RemoteSubnetRoute[] | undefined> {
    return this.#serial(async () => {
      const open = await this.#handle(networkId);
      try {
        const network = await open.read();
        return network ? remoteSubnetRoutesOf(network) : undefined;
      } catch (err) {
        await this.#closeOpen();
        throw err;
      }
    });
  }

  /** Close the handle, if open (at stop, and when HNS is read afresh). Never throws. */
  close(): Promise<void> {
    return this.#serial(() => this.#closeOpen());
  }

  async #handle(networkId: string): Promise<OpenNetwork> {
    if (this.#open && sameId(this.#open.id, networkId)) return this.#open;
    await this.#closeOpen();
    this.#open = await this.#client.openNetwork(networkId);
    return this.#open;
  }

  async #closeOpen(): Promise<void> {
    const open = this.#open;
    this.#open = undefined;
    // A handle HNS refuses to close is gone for us either way.
    await open?.close().catch(() => {});
  }

  #serial<T>(body: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(body, body);
    this.#queue = run.catch(() => {});
    return run;
  }
}
