/**
 * `hnsproxy plan`: the agent's flags, one read of the cluster and of HNS,
 * then the desired HNS objects and the operations a sync would make, as
 * tables or (`--json`) one JSON document. Writes nothing: no HNS call that
 * changes anything, no ownership record.
 *
 * @module
 */

import { contextSettings, openHns } from "../agent.ts";
import type { Config } from "../config/types.ts";
import { distributionWords, loadBalancerFlagWords, portMappingFlagWords } from "../hns/describe.ts";
import { watchCluster } from "../kube/cluster.ts";
import { KubeClient } from "../kube/client.ts";
import { withYaml } from "../config/yaml.ts";
import type { ClusterStore } from "../kube/store.ts";
import { createLogger, loggerOptionsFrom } from "../log/mod.ts";
import type { Logger } from "../log/types.ts";
import type {
  DesiredEndpoint,
  DesiredLoadBalancer,
  Diagnostic,
  Plan,
  PlanOp,
} from "../proxy/model.ts";
import { OwnershipRecord } from "../proxy/ownership.ts";
import { endpointPayload } from "../proxy/payload.ts";
import { findNetwork, readStart, type StartState } from "../proxy/start.ts";
import { parseArgs } from "./run.ts";
import { errorMessage } from "../errors.ts";

/** How long to wait for the initial lists of the cluster. */
const CLUSTER_TIMEOUT_MS = 30_000;

/** Flag words of a load balancer: `DSR IPv6 LocalRoutedVIP VipExternalIP affinity:SourceIP`. */
export function lbFlagWords(lb: DesiredLoadBalancer): string {
  const words = [
    ...loadBalancerFlagWords(lb.flags),
    ...portMappingFlagWords(lb.portMappingFlags),
    ...distributionWords(lb.distributionType),
  ];
  return words.length > 0 ? words.join(" ") : "-";
}

/** Format rows as a left-aligned table with a header. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

function opDetail(op: PlanOp): string {
  switch (op.op) {
    case "deleteLoadBalancer":
    case "deleteEndpoint":
      return `${op.id} (${op.reason})`;
    case "createEndpoint":
      return op.endpoint.providerAddress
        ? `${op.endpoint.ip} via ${op.endpoint.providerAddress}`
        : op.endpoint.ip;
    case "createLoadBalancer":
    case "modifyLoadBalancer": {
      const lb = op.loadBalancer;
      const id = op.op === "modifyLoadBalancer" ? ` ${op.id}` : "";
      return `${op.serviceKey}${id} -> ${lb.internalPort}, ${lb.backends.length} backends`;
    }
    case "adoptLoadBalancer":
    case "adoptEndpoint":
      return `${op.id}${op.wasForeign ? " (was not in the ownership record)" : ""}`;
  }
}

/** A map's values in key order (the desired state's maps are unordered). */
function byKey<V>(m: ReadonlyMap<string, V>): V[] {
  return [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, v]) => v);
}

function diagnostics(start: StartState): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const sd of byKey(start.desired.services)) out.push(...sd.diagnostics);
  out.push(...start.desired.conflicts);
  return out;
}

/** The text report. */
export function renderText(start: StartState, owned: OwnershipRecord): string {
  const { ctx, desired, plan } = start;
  const out: string[] = [];
  const features = Object.entries(ctx.features).filter(([, on]) => on).map(([k]) => k);
  out.push(
    `Network ${ctx.network.name} (${ctx.network.type}, ${ctx.network.id}); HNS features: ${
      features.join(", ") || "none"
    }; ${ctx.localEndpoints.size} CNI endpoints; ${owned.size} objects in the ownership record` +
      (owned.loadError ? ` (unusable: ${owned.loadError})` : ""),
    "",
  );
  const lbs = byKey(desired.loadBalancers);
  out.push(`Desired load balancers (${lbs.length})`);
  if (lbs.length > 0) {
    out.push(table(
      ["KEY", "SERVICE", "KIND", "INTERNAL", "FLAGS", "BACKENDS"],
      lbs.map((lb) => [
        lb.key,
        lb.serviceKey,
        lb.kind,
        String(lb.internalPort),
        lbFlagWords(lb),
        lb.backends.join(" "),
      ]),
    ));
  }
  const eps: DesiredEndpoint[] = byKey(desired.remoteEndpoints);
  out.push("", `Desired endpoints owned by hnsproxy (${eps.length})`);
  if (eps.length > 0) {
    out.push(table(
      ["KEY", "ROLE", "MAC", "PROVIDER ADDRESS", "REFS"],
      eps.map((e) => [
        e.key,
        e.role,
        e.mac,
        e.providerAddress ?? "-",
        String(desired.endpointRefs.get(e.key) ?? 0),
      ]),
    ));
  }
  const writes = plan.ops.filter((op) => !op.op.startsWith("adopt"));
  const adopts = plan.ops.length - writes.length + start.adoption.kept;
  out.push("", `Plan: ${writes.length} HNS operations, ${adopts} objects adopted as they are`);
  if (plan.ops.length > 0) {
    out.push(table(["OP", "KEY", "DETAIL"], plan.ops.map((op) => [op.op, op.key, opDetail(op)])));
  }
  if (plan.conflicts.length > 0) {
    out.push("", "Held by objects hnsproxy does not own (left alone)");
    out.push(table(
      ["KEY", "SERVICE", "HOLDER"],
      plan.conflicts.map((c) => [c.key, c.serviceKey, c.foreignId]),
    ));
  }
  const taken = start.adoption.takenOver;
  if (taken.length > 0) {
    out.push("", `Taken over from others, to be replaced (${taken.length}, --take-over-foreign)`);
    out.push(table(
      ["KEY", "SERVICE", "HOLDER", "DIFFERS"],
      taken.map((t) => [t.key, t.serviceKey ?? "-", t.id, t.reason]),
    ));
  }
  const diags = diagnostics(start);
  if (diags.length > 0) {
    out.push("", `Problems (${diags.length})`);
    for (const d of diags) out.push(`${d.level === "error" ? "E" : "W"} ${d.message}`);
  }
  const skipped = start.adoption.skipped;
  if (skipped.length > 0) {
    out.push("", `HNS objects hnsproxy cannot interpret (${skipped.length}, left alone)`);
    for (const s of skipped) out.push(`${s.kind} ${s.id}: ${s.reason}`);
  }
  return out.join("\n");
}

/** The plan with each endpoint create's HNS payload filled in (reconcile leaves it out). */
function withPayloads(plan: Plan): Plan {
  return {
    ...plan,
    ops: plan.ops.map((op) =>
      op.op === "createEndpoint" && op.payload === undefined
        ? { ...op, payload: endpointPayload(op.endpoint) }
        : op
    ),
  };
}

/** The `--json` report. */
export function renderJson(start: StartState, owned: OwnershipRecord): string {
  return JSON.stringify(
    {
      network: start.ctx.network,
      features: start.ctx.features,
      ownershipRecord: {
        path: owned.path,
        objects: owned.size,
        ...(owned.loadError ? { error: owned.loadError } : {}),
      },
      desired: {
        loadBalancers: byKey(start.desired.loadBalancers),
        remoteEndpoints: byKey(start.desired.remoteEndpoints),
      },
      plan: withPayloads(start.plan),
      diagnostics: diagnostics(start),
      skipped: start.adoption.skipped,
      takenOver: start.adoption.takenOver,
    },
    null,
    2,
  );
}

async function readCluster(
  config: Config,
  log: Logger,
): Promise<{ store: ClusterStore; stop(): Promise<void> }> {
  const client = await withYaml(() =>
    KubeClient.connect({
      kubeconfig: config.kubeconfig || undefined,
      master: config.master || undefined,
      logger: log,
    })
  );
  const watch = watchCluster({ client, nodeName: config.hostnameOverride, logger: log });
  const stop = async () => {
    await watch.stop();
    client.close();
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `the cluster's initial lists did not complete in ${CLUSTER_TIMEOUT_MS / 1000} s`,
          ),
        ),
      CLUSTER_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([watch.synced, timeout]);
    const deadline = Date.now() + 5_000;
    while (!watch.store.isSynced("node") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return { store: watch.store, stop };
}

/** Run `plan` with these arguments; resolves to the process exit code. */
export async function planCommand(args: string[]): Promise<number> {
  const parsed = await parseArgs(args);
  if (typeof parsed === "number") return parsed;
  const { config } = parsed;
  const log = createLogger({ ...loggerOptionsFrom(config.logging), file: undefined, stderr: true });
  for (const warning of parsed.warnings) log.warn(warning);
  let hns;
  try {
    hns = openHns(config, log);
  } catch (err) {
    console.error(`hnsproxy plan: ${errorMessage(err)}`);
    log.close();
    return 1;
  }
  let cluster: { store: ClusterStore; stop(): Promise<void> } | undefined;
  try {
    const network = await findNetwork(hns.client, config.networkName, config.detectNetwork);
    if (!network) {
      console.error(
        `hnsproxy plan: HNS network ${
          config.networkName ? JSON.stringify(config.networkName) : "(any Overlay/L2Bridge)"
        } not found`,
      );
      return 1;
    }
    cluster = await readCluster(config, log);
    const owned = await OwnershipRecord.load(config.stateFile, { logger: log });
    const start = await readStart(
      hns.client,
      network,
      cluster.store,
      owned,
      contextSettings(config),
      { takeOver: config.takeOverForeign },
    );
    console.log(config.output === "json" ? renderJson(start, owned) : renderText(start, owned));
    return 0;
  } catch (err) {
    console.error(`hnsproxy plan: ${errorMessage(err)}`);
    return 1;
  } finally {
    await cluster?.stop();
    hns.client.close();
    log.close();
  }
}

if (import.meta.main) Deno.exit(await planCommand(Deno.args));
