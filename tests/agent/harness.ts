/**
 * Runs the real agent process (`lib/cli/run.ts`, the module `main.ts run`
 * uses) against a fake API server in this process and the HNS emulator
 * library with a seeded state file, and reads back what HNS holds.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { MemoryHnsState } from "../../lib/hns/memory.ts";
import type { HcnLoadBalancer } from "../../lib/hns/types.ts";
import {
  FakeApiServer,
  type FakeApiServerOptions,
  type FakeObject,
} from "../../lib/fake-apiserver/mod.ts";
import { type OwnedObject, OwnershipRecord } from "../../lib/proxy/ownership.ts";
import { v8FlagsArgument } from "../../lib/v8_flags.ts";
import { fakeKubeconfig } from "./fixtures.ts";

const RUN = fileURLToPath(new URL("../../lib/cli/run.ts", import.meta.url));
const PLAN = fileURLToPath(new URL("../../lib/cli/plan.ts", import.meta.url));
const TOOL = fileURLToPath(new URL("./hns_tool.ts", import.meta.url));

/** The built emulator library: env HNSPROXY_HNS_LIBRARY, else build/hnsemu.so. */
export function builtEmulatorLibrary(): string {
  return Deno.env.get("HNSPROXY_HNS_LIBRARY") ||
    fileURLToPath(new URL("../../build/hnsemu.so", import.meta.url));
}

/** Options of {@link AgentWorld.create}. */
export interface WorldOptions {
  /** HNS to start with. */
  hns: MemoryHnsState;
  /** Cluster objects to start with. */
  services?: FakeObject[];
  /** EndpointSlices to start with. */
  slices?: FakeObject[];
  /** The Node object (none when absent). */
  node?: FakeObject;
  /** Options of the fake API server. */
  api?: FakeApiServerOptions;
  /** The agent's kubeconfig for the server's URL (default {@link fakeKubeconfig}). */
  kubeconfig?: (server: string) => string;
}

/** A running agent process. */
export interface AgentProcess {
  /** The child process. */
  child: Deno.ChildProcess;
  /** Port of its metrics server. */
  metricsPort: number;
  /** Port of its healthz server. */
  healthzPort: number;
  /** Everything it wrote to stderr so far. */
  log(): string;
  /** Resolves with the exit code. */
  exited: Promise<number>;
}

/**
 * Ports handed to agents, below Linux's default ephemeral range
 * (32768–60999): a port the kernel picked for us and we released could be
 * given next to one of the many client connections the parallel tests make,
 * and the agent's listen would then fail with "address already in use".
 */
const AGENT_PORTS = { first: 20_000, count: 12_000 };

/** A TCP port on loopback outside the ephemeral range, free when checked (bound and released). */
export function freePort(): number {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = AGENT_PORTS.first + Math.floor(Math.random() * AGENT_PORTS.count);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch (err) {
      if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    }
  }
  throw new Error("no free loopback port found between 20000 and 31999");
}

/** The fake cluster, the HNS state file and the agent processes of one test. */
export class AgentWorld {
  /** The fake API server. */
  readonly api: FakeApiServer;
  /** Scratch directory. */
  readonly dir: string;
  /** The emulator's state file (HNS). */
  readonly hnsFile: string;
  /** The agent's ownership record. */
  readonly stateFile: string;
  readonly #kubeconfig: string;
  readonly #agents: AgentProcess[] = [];

  private constructor(api: FakeApiServer, dir: string) {
    this.api = api;
    this.dir = dir;
    this.hnsFile = join(dir, "hns.json");
    this.stateFile = join(dir, "owned", "state.json");
    this.#kubeconfig = join(dir, "kubeconfig");
  }

  /** Start the fake API server with the objects and seed the HNS state file. */
  static async create(options: WorldOptions): Promise<AgentWorld> {
    const api = await new FakeApiServer(options.api).start();
    const dir = await Deno.makeTempDir({ prefix: "hnsproxy-agent-" });
    const world = new AgentWorld(api, dir);
    for (const s of options.services ?? []) api.create("services", s);
    for (const s of options.slices ?? []) api.create("endpointslices", s);
    if (options.node) api.create("nodes", options.node);
    await Deno.writeTextFile(world.hnsFile, JSON.stringify(options.hns));
    await Deno.writeTextFile(
      world.#kubeconfig,
      (options.kubeconfig ?? fakeKubeconfig)(api.url),
    );
    return world;
  }

  /** The flags that tie a command to this world: its kubeconfig, node, HNS library and ownership record. */
  #connectionArgs(): string[] {
    return [
      "--kubeconfig",
      this.#kubeconfig,
      "--hostname-override",
      "node-1",
      "--hns-library",
      builtEmulatorLibrary(),
      "--state-file",
      this.stateFile,
    ];
  }

  /** Start an agent process with the standard flags plus `args`. */
  startAgent(args: string[] = [], env: Record<string, string> = {}): AgentProcess {
    const metricsPort = freePort();
    const healthzPort = freePort();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--no-check",
        // The V8 flags the compiled executable has baked in, so the agent's own
        // full collections (heap_collector.ts) run here as on a node.
        v8FlagsArgument(),
        RUN,
        ...this.#connectionArgs(),
        "--metrics-bind-address",
        `127.0.0.1:${metricsPort}`,
        "--healthz-bind-address",
        `127.0.0.1:${healthzPort}`,
        "--v",
        "2",
        ...args,
      ],
      env: { HNSEMU_STATE_FILE: this.hnsFile, NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let text = "";
    const decoder = new TextDecoder();
    const reading = (async () => {
      for await (const chunk of child.stderr) text += decoder.decode(chunk, { stream: true });
    })();
    const exited = Promise.all([child.status, reading]).then(([s]) => s.code);
    const agent: AgentProcess = { child, metricsPort, healthzPort, log: () => text, exited };
    this.#agents.push(agent);
    return agent;
  }

  /** Stop an agent gracefully (SIGTERM) and return its exit code. */
  async stopAgent(agent: AgentProcess): Promise<number> {
    try {
      agent.child.kill("SIGTERM");
    } catch {
      // already gone
    }
    return await agent.exited;
  }

  /** Run the agent to completion with extra args (e.g. `--cleanup-and-exit`). */
  async runAgent(
    args: string[],
    env: Record<string, string> = {},
  ): Promise<{ code: number; log: string }> {
    const agent = this.startAgent(args, env);
    const code = await agent.exited;
    return { code, log: agent.log() };
  }

  /** Run `plan` with the standard connection flags plus `args`. */
  async plan(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--no-check",
        PLAN,
        ...this.#connectionArgs(),
        ...args,
      ],
      env: { HNSEMU_STATE_FILE: this.hnsFile, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
  }

  /** What HNS holds now. */
  hns(): Promise<Required<MemoryHnsState>> {
    return readHnsStateFile(this.hnsFile);
  }

  /** Load balancers as sorted `vip:port/proto->internal [backend IPs] flags` lines. */
  async lbTable(): Promise<string[]> {
    const state = await this.hns();
    return lbLines(state);
  }

  /** The ownership record's objects (the record file with its journal replayed). */
  async owned(): Promise<OwnedObject[]> {
    return (await OwnershipRecord.load(this.stateFile)).list();
  }

  /** Run the out-of-band HNS tool (`delete-lb ID`, ...); returns what it printed. */
  async hnsTool(...args: string[]): Promise<string> {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-check", TOOL, builtEmulatorLibrary(), ...args],
      env: { HNSEMU_STATE_FILE: this.hnsFile },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.code !== 0) {
      throw new Error(`hns_tool ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
    }
    return new TextDecoder().decode(out.stdout).trim();
  }

  /** The agent's metrics text. */
  async metrics(agent: AgentProcess): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${agent.metricsPort}/metrics`);
    return await res.text();
  }

  /** Stop every agent, the API server, and remove the scratch directory. */
  async close(): Promise<void> {
    for (const a of this.#agents) await this.stopAgent(a).catch(() => {});
    await this.api.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** What the emulator's state file at `path` holds: every kind, empty where the file has none (or is empty). */
export async function readHnsStateFile(path: string): Promise<Required<MemoryHnsState>> {
  const text = await Deno.readTextFile(path);
  const state = text.trim() === "" ? {} : JSON.parse(text);
  return {
    Networks: state.Networks ?? [],
    Endpoints: state.Endpoints ?? [],
    LoadBalancers: state.LoadBalancers ?? [],
  };
}

/** `vip:port/proto->internal [backend IPs] flags=F pm=P dt=D` lines, sorted. */
export function lbLines(state: Required<MemoryHnsState>): string[] {
  const ipOf = new Map(
    state.Endpoints.map((e) => [String(e.ID).toUpperCase(), e.IpConfigurations?.[0]?.IpAddress]),
  );
  return state.LoadBalancers.map((lb: HcnLoadBalancer) => {
    const vip = lb.FrontendVIPs?.[0] ?? "*";
    const pm = lb.PortMappings?.[0];
    if (!pm) return `${vip} (malformed)`;
    const proto = pm.Protocol === 6 ? "tcp" : pm.Protocol === 17 ? "udp" : String(pm.Protocol);
    const backends = lb.HostComputeEndpoints.map((id) => ipOf.get(id.toUpperCase()) ?? id).sort()
      .join(",");
    return `${vip}:${pm.ExternalPort}/${proto}->${pm.InternalPort} [${backends}] flags=${
      lb.Flags ?? 0
    } pm=${pm.Flags ?? 0} dt=${pm.DistributionType ?? 0}`;
  }).sort();
}

/** Poll `check` until it returns true or the deadline passes; then fail with `describe()`. */
export async function eventually(
  what: string,
  check: () => Promise<boolean> | boolean,
  describe: () => Promise<string> | string = () => "",
  deadlineMs = 30_000,
): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not converged: ${what}\n${await describe()}`);
}

/**
 * Wait until HNS's load balancers ({@link AgentWorld.lbTable}) are exactly
 * `want`; past the deadline fail with the table and `agent`'s log.
 */
export async function lbTableIs(
  world: AgentWorld,
  want: readonly string[],
  agent: AgentProcess,
  what = "HNS as the cluster asks",
  deadlineMs?: number,
): Promise<void> {
  await eventually(
    what,
    async () => JSON.stringify(await world.lbTable()) === JSON.stringify(want),
    async () => (await world.lbTable()).join("\n") + "\n---\n" + agent.log(),
    deadlineMs,
  );
}

/** Sum of the agent's `hnsproxy_hns_calls_total` over the operations `fn` matches. */
export function hnsCalls(metrics: string, fn: RegExp): number {
  return metrics.split("\n")
    .filter((l) => l.startsWith("hnsproxy_hns_calls_total{"))
    .filter((l) => fn.test(/operation="([^"]*)"/.exec(l)?.[1] ?? ""))
    .reduce((n, l) => n + Number(l.trim().split(/\s+/).pop()), 0);
}

/** Wait until the agent finished its first sync (it is ready), then return its metrics. */
export async function afterFirstSync(world: AgentWorld, agent: AgentProcess): Promise<string> {
  let text = "";
  await eventually(
    "first sync finished",
    async () => {
      text = await world.metrics(agent).catch(() => "");
      return /^kubeproxy_sync_proxy_rules_last_timestamp_seconds\{[^}]*\} [1-9]/m.test(text);
    },
    agent.log,
  );
  return text;
}
