/**
 * What the configuration and the node must offer before hnsproxy programs
 * HNS, checked where the network is found at start. Each failed check is a
 * {@link StartupError}: retrying cannot help, so the agent stops with it
 * (exit code 1), as kube-proxy refuses to start.
 *
 * - The network is named: `--network-name`, `winkernel.networkName` or env
 *   `KUBE_NETWORK`. Without a name the error lists the networks HNS has;
 *   picking the only Overlay or L2Bridge network is an opt-in
 *   (`--detect-network`).
 * - On an Overlay network: a source VIP (`--source-vip`,
 *   `winkernel.sourceVip`), and the host's MAC (`--host-mac`, else the MAC
 *   of the interface that holds a node IP: lib/net/host_mac.ts). L2Bridge
 *   needs neither.
 *
 * The messages are pure functions of what HNS and the host report, so tests
 * drive them with tables.
 *
 * @module
 */

import type { HcnNetwork } from "../hns/types.ts";
import { findHostMac } from "../net/host_mac.ts";
import type { ContextSettings } from "./context.ts";
import type { NodeContext } from "./model.ts";

/** A configuration or node fact that stops the agent: retrying cannot help. */
export class StartupError extends Error {
  /** An error with a one-line message saying what is missing and how to fix it. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StartupError";
  }
}

/** The network types hnsproxy can program (and `--detect-network` picks from). */
export const PROXY_NETWORK_TYPES: readonly string[] = ["overlay", "l2bridge", "l2tunnel"];

/**
 * The error for an empty network name: names the settings that set it and
 * lists the networks HNS has (name and type), so the operator can pick one.
 */
export function networkNameError(networks: readonly HcnNetwork[]): StartupError {
  const listed = networks.map((n) => `${JSON.stringify(String(n.Name ?? ""))} (${n.Type ?? "?"})`);
  const have = listed.length === 0 ? "HNS has no network yet" : `HNS has ${listed.join(", ")}`;
  return new StartupError(
    "No HNS network is named: set --network-name (winkernel.networkName, env KUBE_NETWORK) " +
      `to the network the CNI created; ${have}. ` +
      "(--detect-network picks the only Overlay or L2Bridge network instead.)",
  );
}

/**
 * `--detect-network`: the only network in HNS's list of a type hnsproxy
 * programs; undefined when there is none (yet) or more than one.
 */
export function detectNetwork(networks: readonly HcnNetwork[]): HcnNetwork | undefined {
  const candidates = networks.filter((n) =>
    PROXY_NETWORK_TYPES.includes(String(n.Type ?? "").toLowerCase())
  );
  return candidates.length === 1 ? candidates[0] : undefined;
}

/**
 * Check the start's node context against what its network type needs;
 * throws a {@link StartupError} naming the network, what is missing and
 * the flag that provides it.
 */
export function checkStartContext(ctx: NodeContext, settings: ContextSettings): void {
  if (ctx.network.type !== "overlay") return;
  const net = `HNS network ${JSON.stringify(ctx.network.name)} is an Overlay network`;
  if (ctx.sourceVips.length === 0) {
    throw new StartupError(
      `${net} and no source VIP is set: set --source-vip (winkernel.sourceVip) to an address ` +
        "of this node's pod subnet reserved for it, as kube-proxy requires",
    );
  }
  if (ctx.hostMac === undefined) {
    const found = settings.hostInterfaces && findHostMac(settings.hostInterfaces(), ctx.nodeIPs);
    const why = found && "error" in found
      ? found.error
      : "the host's interfaces were not read; set --host-mac";
    throw new StartupError(`${net} and the host's MAC is unknown: ${why}`);
  }
}
