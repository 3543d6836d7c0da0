/**
 * The demo's story, run for real: seed the API server and HNS (the node as
 * kube-proxy left it when it stopped), start the agent, which takes over
 * kube-proxy's objects, then scale a service up, let a pod terminate, delete
 * a service and restart the agent — measuring hnsproxy's HNS calls at each
 * step and computing kube-proxy's for the same steps.
 *
 * @module
 */

import { instrumentHcnApi } from "../hns/instrument.ts";
import { MemoryHcnApi, type MemoryHnsState } from "../hns/memory.ts";
import { FakeApiServer } from "../fake-apiserver/mod.ts";
import {
  type DemoAgent,
  demoAgentArgs,
  type DemoAgentSettings,
  eventsSeen,
  settle,
  startDemoAgent,
} from "./agent_host.ts";
import { type CallCounts, subtractCalls } from "./calls.ts";
import {
  DEMO_NODES,
  type DemoPod,
  type DemoService,
  demoServices,
  nodeObject,
  serviceKey,
  serviceObject,
  sliceName,
  sliceObjects,
  SOURCE_VIP,
  THIS_NODE,
} from "./cluster.ts";
import { OwnershipRecord } from "../proxy/ownership.ts";
import {
  createCniEndpoint,
  demoHnsState,
  FORMER_WIN_NODE_2_IP,
  kubeProxyLeftoverState,
} from "./hns_seed.ts";
import { cniEndpointIps, demoDescriber } from "./inventory.ts";
import {
  kubeProxyCalls,
  type KubeProxyEvent,
  type KubeProxyModelOptions,
} from "./kube_proxy_model.ts";
import { kubeProxyServicePorts, servicePortIds } from "./kube_proxy_view.ts";
import { type HnsCallRecord, recordHcnApi } from "./recorder.ts";

/** What one step did. */
export interface StepResult {
  /** Step number (0 for the start). */
  index: number;
  /** One-line title. */
  title: string;
  /** What changed in the cluster or on the node, in words. */
  changes: string[];
  /** What hnsproxy made of it, in words, when the operations alone do not say. */
  outcome?: string[];
  /** hnsproxy's HNS calls, in order, with their objects. */
  records: HnsCallRecord[];
  /** hnsproxy's HNS calls per C function (from the instrumentation counters). */
  calls: CallCounts;
  /** kube-proxy's calls for the same step, per C function (from the model). */
  kubeProxy: CallCounts;
  /** kube-proxy's calls had HNS offered in-place updates (the model's variant). */
  kubeProxyModify: CallCounts;
  /** HNS after the step. */
  state: Required<MemoryHnsState>;
  /** Services of the cluster after the step. */
  services: DemoService[];
}

/** What the demo was set up with, for the introduction. */
export interface DemoSetup {
  /** HNS before hnsproxy started. */
  initial: Required<MemoryHnsState>;
  /** IDs (upper case) of the objects kube-proxy left in `initial`. */
  kubeProxyIds: ReadonlySet<string>;
  /** The agent's command line. */
  args: string[];
  /** The agent's log file. */
  logFile: string;
}

/** Options of {@link runScenario}. */
export interface ScenarioOptions {
  /** Also log the agent to stderr. */
  verbose?: boolean;
  /** Called once everything is seeded, before the agent starts. */
  onSetup?(setup: DemoSetup): void;
  /** Called after each step. */
  onStep(step: StepResult): void;
  /** Keep the log file (default: removed with its temporary directory after a good run). */
  keepLogs?: boolean;
}

const SERVICES = "services";
const SLICES = "endpointslices";

/** What the demo measured and computed. */
export interface ScenarioResult {
  /** Every step, the start first. */
  steps: StepResult[];
  /** kube-proxy's calls for one periodic sync with nothing changed, after the last step. */
  kubeProxyPeriodic: CallCounts;
}

/** Runs the demo; resolves with every step's result. */
export async function runScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-demo-" });
  const services = demoServices();
  const memory = new MemoryHcnApi({ state: kubeProxyLeftoverState() });
  const recorder = recordHcnApi(memory, demoDescriber(demoServices(), SOURCE_VIP));
  const counted = instrumentHcnApi(recorder);
  const initial = memory.dump();
  const cniIds = new Set(
    [...demoHnsState().Endpoints ?? [], ...demoHnsState().LoadBalancers ?? []].map((o) => o.ID),
  );
  const kubeProxyIds = new Set(
    [...initial.Endpoints, ...initial.LoadBalancers].filter((o) => !cniIds.has(o.ID)).map((o) =>
      String(o.ID).toUpperCase()
    ),
  );
  const leftoverRemotes = initial.Endpoints.filter((ep) =>
    kubeProxyIds.has(String(ep.ID).toUpperCase()) && ((ep.Flags ?? 0) & 1) !== 0
  );
  const server = await new FakeApiServer().start();
  let running: DemoAgent | undefined;
  const results: StepResult[] = [];
  let succeeded = false;

  const modelOptions = (modify: boolean): KubeProxyModelOptions => ({
    overlay: true,
    existingEndpoints: cniEndpointIps(initial),
    sourceVip: SOURCE_VIP,
    foreignLoadBalancers: initial.LoadBalancers.length,
    leftoverEndpoints: leftoverRemotes.map((ep) => ep.IpConfigurations?.[0]?.IpAddress ?? ""),
    modifyLoadBalancer: modify,
  });
  const events: KubeProxyEvent[] = [];

  /** Record the step: hnsproxy's calls since `before`, kube-proxy's for `event`. */
  const finish = (
    title: string,
    changes: string[],
    before: CallCounts,
    event: (state: Required<MemoryHnsState>) => KubeProxyEvent,
    outcome?: string[],
  ) => {
    const state = memory.dump();
    events.push(event(state));
    const model = kubeProxyCalls(modelOptions(false), events);
    const modelModify = kubeProxyCalls(modelOptions(true), events);
    const step: StepResult = {
      index: results.length,
      title,
      changes,
      records: recorder.take(),
      calls: subtractCalls(callCounts(), before),
      kubeProxy: model[model.length - 1].calls,
      kubeProxyModify: modelModify[modelModify.length - 1].calls,
      state,
      services: services.map((s) => structuredClone(s)),
    };
    if (outcome) step.outcome = outcome;
    results.push(step);
    options.onStep(step);
  };
  const callCounts = (): CallCounts =>
    Object.fromEntries(Object.entries(counted.stats()).map(([fn, s]) => [fn, s.calls]));
  const ports = (state: Required<MemoryHnsState>) => kubeProxyServicePorts(state, services, true);
  const cniNow = () => cniEndpointIps(memory.dump()).filter((ip) => ip !== SOURCE_VIP);

  const settings: DemoAgentSettings = {
    masterUrl: server.url,
    stateFile: `${dir}/state.json`,
    logFile: `${dir}/hnsproxy.log`,
    verbose: options.verbose ?? false,
  };
  const start = async () => {
    running = await startDemoAgent(settings, counted);
    await running.agent.ready;
    await running.agent.idle();
    return running.agent;
  };

  try {
    for (const node of DEMO_NODES) server.create("nodes", nodeObject(node));
    for (const svc of services) {
      server.create(SERVICES, serviceObject(svc));
      for (const slice of sliceObjects(svc)) server.create(SLICES, slice);
    }
    options.onSetup?.({
      initial,
      kubeProxyIds,
      args: demoAgentArgs(settings),
      logFile: settings.logFile,
    });

    // 0. Start: the node moves from kube-proxy to hnsproxy.
    let before = callCounts();
    let agent = await start();
    const kpLbs = initial.LoadBalancers.filter((lb) => kubeProxyIds.has(String(lb.ID)));
    const kpEps = initial.Endpoints.filter((ep) => kubeProxyIds.has(String(ep.ID)));
    finish(
      `hnsproxy replaces kube-proxy on ${THIS_NODE} and takes over what it left in HNS`,
      [
        `kube-proxy stopped, leaving ${kpLbs.length} load balancers and ${kpEps.length} ` +
        "endpoints in HNS (its own JSON)",
        "while neither proxy ran: pod web-old 10.244.2.9 of shop/web gave way to web-1 " +
        "10.244.2.10, shop/legacy was deleted, shop/checkout added, and win-node-2 was " +
        `replaced (${FORMER_WIN_NODE_2_IP} → 10.0.1.12, same pod subnet)`,
        `now: ${services.length} Services (ClusterIP, NodePort, LoadBalancer, ` +
        `externalTrafficPolicy Local, dual-stack) with ` +
        `${services.reduce((n, s) => n + s.pods.length, 0)} endpoints`,
      ],
      before,
      (state) => ({ kind: "start", servicePorts: ports(state) }),
      takeoverOutcome(
        initial,
        memory.dump(),
        kubeProxyIds,
        await OwnershipRecord.load(settings.stateFile),
      ),
    );

    // 1. Scale up: one new pod here (the CNI makes its HNS endpoint first), one on win-node-2.
    const web = find(services, "shop/web");
    const added: DemoPod[] = [
      { name: "web-2", node: "win-node-2", ip: "10.244.2.11" },
      { name: "web-3", node: THIS_NODE, ip: "10.244.1.13" },
    ];
    await createCniEndpoint(memory, added[1]);
    web.pods.push(...added);
    before = callCounts();
    let seen = eventsSeen(agent.store);
    server.update(SLICES, sliceObjects(web)[0]);
    await settle(agent, seen, 1, {
      what: `${added[1].name} in the load balancers of ${serviceKey(web)}`,
      check: () => backendsOf(memory.dump(), web.clusterIPs[0]) === web.pods.length,
    });
    finish(
      `scale up ${serviceKey(web)} from 2 to 4 pods`,
      [
        ...added.map((p) => `+ pod ${p.name} ${p.ip} on ${p.node}`),
        `(the CNI made the HNS endpoint of ${added[1].name} on this node)`,
      ],
      before,
      (state) => ({
        kind: "sync",
        servicePorts: ports(state),
        changed: servicePortIds([web]),
        existingEndpoints: cniNow(),
      }),
    );

    // 2. A pod of shop/api starts terminating.
    const api = find(services, "shop/api");
    const leaving = api.pods.find((p) => p.name === "api-1")!;
    leaving.terminating = true;
    before = callCounts();
    seen = eventsSeen(agent.store);
    server.update(SLICES, sliceObjects(api)[0]);
    await settle(agent, seen, 1);
    finish(
      `pod ${leaving.name} of ${serviceKey(api)} is terminating`,
      [`~ ${leaving.name} ${leaving.ip} on ${leaving.node}: ready=false, serving=true, terminating=true`],
      before,
      (state) => ({ kind: "sync", servicePorts: ports(state), changed: servicePortIds([api]) }),
    );

    // 3. Delete the dual-stack service (its EndpointSlices go with it).
    const echo = find(services, "shop/echo");
    services.splice(services.indexOf(echo), 1);
    before = callCounts();
    seen = eventsSeen(agent.store);
    server.delete(SERVICES, serviceKey(echo));
    for (const family of ["IPv4", "IPv6"] as const) {
      server.delete(SLICES, `${echo.namespace}/${sliceName(echo, family)}`);
    }
    await settle(agent, seen, 3);
    finish(
      `delete the dual-stack service ${serviceKey(echo)}`,
      [`- Service ${serviceKey(echo)} and its 2 EndpointSlices (IPv4, IPv6)`],
      before,
      (state) => ({ kind: "sync", servicePorts: ports(state) }),
    );

    // 4. Restart the agent: HNS and the ownership record stay.
    const lbIdsBefore = new Set(memory.dump().LoadBalancers.map((lb) => lb.ID));
    await running!.stop();
    running = undefined;
    before = callCounts();
    agent = await start();
    const kept = memory.dump().LoadBalancers.filter((lb) => lbIdsBefore.has(lb.ID)).length;
    finish(
      "restart hnsproxy (upgrade, crash, node maintenance)",
      [
        "the agent stops and starts again; HNS and the ownership record stay",
        `${kept} of ${lbIdsBefore.size} load balancers kept their HNS IDs`,
      ],
      before,
      (state) => ({ kind: "start", servicePorts: ports(state), existingEndpoints: cniNow() }),
    );
    const periodic = kubeProxyCalls(modelOptions(false), [...events, { kind: "periodic" }]);
    succeeded = true;
    return { steps: results, kubeProxyPeriodic: periodic[periodic.length - 1].calls };
  } finally {
    await running?.stop();
    await server.stop();
    memory.dispose();
    // A failed run keeps its log for the error message to point at.
    if (succeeded && !options.keepLogs) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * What became of kube-proxy's objects, in words: adopted as they were,
 * updated in place or replaced (taken over: owned now), left alone (on
 * addresses no Service claims, or used as they are).
 */
function takeoverOutcome(
  before: Required<MemoryHnsState>,
  after: Required<MemoryHnsState>,
  kubeProxyIds: ReadonlySet<string>,
  owned: OwnershipRecord,
): string[] {
  const count = (kind: "LoadBalancers" | "Endpoints") => {
    const now = new Map(after[kind].map((o) => [String(o.ID).toUpperCase(), o]));
    const n = { adopted: 0, updated: 0, replaced: 0, left: 0 };
    for (const o of before[kind]) {
      const id = String(o.ID).toUpperCase();
      if (!kubeProxyIds.has(id)) continue;
      const later = now.get(id);
      if (!later) n.replaced++;
      else if (!owned.owns(id)) n.left++;
      else if (JSON.stringify(later) === JSON.stringify(o)) n.adopted++;
      else n.updated++;
    }
    return n;
  };
  const lbs = count("LoadBalancers");
  const eps = count("Endpoints");
  return [
    `kube-proxy's load balancers: ${lbs.adopted} adopted as they were, ${lbs.updated} updated ` +
    `in place, ${lbs.replaced} replaced (deleted and created anew); ${lbs.left} on addresses ` +
    "no Service claims left alone",
    `kube-proxy's endpoints: ${eps.adopted} adopted, ${eps.replaced} replaced (wrong provider ` +
    `address); ${eps.left} left alone (no longer needed, or used as they are)`,
  ];
}

/** Backends of the load balancer whose frontend is `vip`. */
function backendsOf(state: Required<MemoryHnsState>, vip: string): number {
  const lb = state.LoadBalancers.find((l) => l.FrontendVIPs?.[0] === vip);
  return lb?.HostComputeEndpoints.length ?? 0;
}

function find(services: DemoService[], key: string): DemoService {
  const svc = services.find((s) => serviceKey(s) === key);
  if (!svc) throw new Error(`demo: no service ${key}`);
  return svc;
}
