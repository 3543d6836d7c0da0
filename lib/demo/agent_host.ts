/**
 * Runs the real hnsproxy agent in this process for the demo: the command
 * line it would get on a node (pointed at the demo's API server, network and
 * state file), its logs to a file, and the HNS it programs injected (the same
 * in-memory HNS across restarts, as the real one outlives the agent).
 *
 * @module
 */

import { type Agent, startAgent } from "../agent.ts";
import { parseConfig } from "../config/mod.ts";
import { delegateHcnApi } from "../hns/delegate.ts";
import type { HcnApi } from "../hns/types.ts";
import type { ClusterStore } from "../kube/store.ts";
import { createLogger, loggerOptionsFrom } from "../log/mod.ts";
import type { ClosableLogger } from "../log/mod.ts";
import { SOURCE_VIP, THIS_NODE } from "./cluster.ts";
import { HOST_MAC, NETWORK_NAME } from "./hns_seed.ts";

/** Where the demo agent connects and writes. */
export interface DemoAgentSettings {
  /** URL of the demo's API server (`--master`). */
  masterUrl: string;
  /** The ownership record (`--state-file`); kept across restarts. */
  stateFile: string;
  /** The log file (`--log-file`). */
  logFile: string;
  /** Also log to stderr. */
  verbose: boolean;
  /** More flags, after the demo's own (e.g. `--take-over-foreign=false`). */
  extraArgs?: string[];
}

/** The agent's command line for the demo, as an operator would write it. */
export function demoAgentArgs(s: DemoAgentSettings): string[] {
  return [
    `--master=${s.masterUrl}`,
    `--hostname-override=${THIS_NODE}`,
    `--network-name=${NETWORK_NAME}`,
    `--source-vip=${SOURCE_VIP}`,
    `--host-mac=${HOST_MAC}`,
    `--state-file=${s.stateFile}`,
    "--hns-backend=memory",
    `--log-file=${s.logFile}`,
    "--v=2",
    // React at once: the demo waits for each change to be programmed.
    "--min-sync-period=0s",
    // No listening sockets: the demo must run anywhere, side by side.
    "--healthz-bind-address=",
    "--metrics-bind-address=",
    ...(s.verbose ? ["--alsologtostderr"] : []),
    ...(s.extraArgs ?? []),
  ];
}

/** A running demo agent. */
export interface DemoAgent {
  /** The agent. */
  agent: Agent;
  /** Stop the agent and close its log. */
  stop(): Promise<void>;
}

/** Start the real agent with the demo's command line and `hns` as its HNS. */
export async function startDemoAgent(s: DemoAgentSettings, hns: HcnApi): Promise<DemoAgent> {
  const { config } = parseConfig(demoAgentArgs(s), {}, (p) => Deno.readTextFileSync(p), {
    hostname: () => THIS_NODE,
  });
  const logger: ClosableLogger = createLogger(loggerOptionsFrom(config.logging));
  // The agent disposes its HNS backend when it stops; the node's HNS lives on.
  const lease = delegateHcnApi(hns, { dispose: () => {} });

  let agent: Agent;
  try {
    agent = await startAgent(config, { logger, hcnApi: lease, serviceHealthChecks: false });
  } catch (err) {
    logger.close();
    throw err;
  }
  return {
    agent,
    async stop() {
      try {
        await agent.stop();
      } finally {
        logger.close();
      }
    },
  };
}

/** Poll `check` until it holds; reject after `timeoutMs` naming `what`. */
export async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Service and EndpointSlice events the store has received. */
export function eventsSeen(store: ClusterStore): number {
  return store.serviceChangesTotal + store.endpointChangesTotal;
}

/**
 * Wait until the agent's store has received `expected` more events than
 * `before`, then until the agent has synced them (its runner is idle); with
 * `programmed`, also until HNS shows the expected outcome (work the agent
 * does on a later sync, e.g. after it looked for a new pod's CNI endpoint).
 */
export async function settle(
  agent: Agent,
  before: number,
  expected: number,
  programmed?: { check: () => boolean; what: string },
): Promise<void> {
  await until(() => eventsSeen(agent.store) >= before + expected, `${expected} watch events`);
  await agent.idle();
  if (programmed) {
    await until(programmed.check, programmed.what);
    await agent.idle();
  }
}
