/**
 * `hnsproxy hns`: look at what HNS holds, the hnsdiag an operator reaches for
 * when debugging a node.
 *
 * ```sh
 * hnsproxy hns version [--json]
 * hnsproxy hns list networks|endpoints|loadbalancers [--json]
 *   [--hns-library PATH] [--hns-backend ffi|memory]
 * ```
 *
 * Tables are for people; `--json` prints a JSON array of the objects as HNS
 * returned them. Failures are one line on stderr and exit code 1.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createHnsClient } from "../hns/client.ts";
import {
  endpointWords,
  loadBalancerWords,
  protocolName,
  providerAddress,
} from "../hns/describe.ts";
import { enabledFeatures } from "../hns/features.ts";
import { hnsStartupProblem } from "../hns/requirements.ts";
import { isHnsBackendKind, openHnsBackend } from "../hns/open.ts";
import type { HcnEndpoint, HcnLoadBalancer, HcnNetwork, HnsClient } from "../hns/types.ts";
import { errorMessage } from "../errors.ts";

/** Where the command writes; tests pass collectors, the CLI uses the process streams. */
export interface HnsCommandIo {
  /** Normal output (tables, JSON). */
  stdout: (text: string) => void;
  /** Diagnostics: errors and skipped objects. */
  stderr: (text: string) => void;
}

const encoder = new TextEncoder();

const processIo: HnsCommandIo = {
  stdout: (text) => writeAll(Deno.stdout, text),
  stderr: (text) => writeAll(Deno.stderr, text),
};

function writeAll(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  let bytes = encoder.encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(stream.writeSync(bytes));
}

/** The usage text of `hns`. */
export const HNS_USAGE = `Usage:
  hnsproxy hns version [--json]
  hnsproxy hns list networks|endpoints|loadbalancers [--json]

Options:
  --json                 print JSON (for list: an array of the objects as HNS returned them)
  --hns-library PATH     load the whole HCN API from this one library
                         (default: env HNSPROXY_HNS_LIBRARY, else the Windows System32 DLLs)
  --hns-backend KIND     ffi (default) or memory (an empty in-memory HNS)
  -h, --help             show this help
`;

/** A bad command line; the message is one line. */
class UsageError extends Error {}

const LIST_KINDS: Record<string, "networks" | "endpoints" | "loadbalancers"> = {
  networks: "networks",
  network: "networks",
  endpoints: "endpoints",
  endpoint: "endpoints",
  loadbalancers: "loadbalancers",
  loadbalancer: "loadbalancers",
  lbs: "loadbalancers",
  lb: "loadbalancers",
};

/** Run `hns ARGS...`; resolves to the exit code (0 ok, 1 failure). */
export async function hnsCommand(args: string[], io: HnsCommandIo = processIo): Promise<number> {
  let client: HnsClient | undefined;
  try {
    const { values, positionals } = parseCommandLine(args);
    if (values.help) {
      io.stdout(HNS_USAGE);
      return 0;
    }
    const [verb, what, ...extra] = positionals;
    if (verb === undefined) throw new UsageError("missing subcommand: use version or list");
    if (verb !== "version" && verb !== "list") {
      throw new UsageError(`unknown subcommand "${verb}": use version or list`);
    }
    if (verb === "version" && what !== undefined) {
      throw new UsageError(`unexpected argument "${what}"`);
    }
    let kind: (typeof LIST_KINDS)[string] | undefined;
    if (verb === "list") {
      if (what === undefined) {
        throw new UsageError("list what? use networks, endpoints or loadbalancers");
      }
      kind = LIST_KINDS[what.toLowerCase()];
      if (!kind) {
        throw new UsageError(`cannot list "${what}": use networks, endpoints or loadbalancers`);
      }
    }
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    const backend = values["hns-backend"] ?? "ffi";
    if (!isHnsBackendKind(backend)) {
      throw new UsageError(`--hns-backend must be ffi or memory, not "${backend}"`);
    }

    const api = openHnsBackend({ backend, library: values["hns-library"] });
    client = createHnsClient(api, {
      onSkip: (s) => io.stderr(`warning: skipped ${s.kind} ${s.id}: ${s.reason}\n`),
    });

    if (verb === "version") {
      await printVersion(client, values.json === true, io);
      return 0;
    }
    await printList(client, kind!, values.json === true, io);
    return 0;
  } catch (err) {
    const message = errorMessage(err);
    io.stderr(`hns: ${message.replace(/\s*\n\s*/g, " ")}\n`);
    if (err instanceof UsageError) io.stderr(`run "hnsproxy hns --help" for usage\n`);
    return 1;
  } finally {
    client?.close();
  }
}

function parseCommandLine(args: string[]) {
  try {
    return parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: "boolean" },
        "hns-library": { type: "string" },
        "hns-backend": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    // node:util's messages can run over several lines; keep the first.
    throw new UsageError((err as Error).message.split("\n")[0]);
  }
}

async function printVersion(client: HnsClient, json: boolean, io: HnsCommandIo) {
  const version = await client.version();
  const features = await client.features();
  if (json) {
    io.stdout(JSON.stringify({ version, features }, null, 2) + "\n");
    return;
  }
  if (!version) {
    io.stdout("HNS version: unknown (every feature is treated as unsupported)\n");
  } else {
    const on = enabledFeatures(features);
    io.stdout(`HNS version: ${version.major}.${version.minor}\n`);
    io.stdout(`features: ${on.length > 0 ? on.join(" ") : "none"}\n`);
  }
  const problem = hnsStartupProblem(version, { enableDSR: false });
  const dsrProblem = hnsStartupProblem(version, { enableDSR: true });
  if (problem) io.stdout(`hnsproxy cannot start here: ${problem}\n`);
  else if (dsrProblem) io.stdout(`hnsproxy starts here, but not with ${dsrProblem}\n`);
}

async function printList(
  client: HnsClient,
  kind: "networks" | "endpoints" | "loadbalancers",
  json: boolean,
  io: HnsCommandIo,
) {
  const objects = kind === "networks"
    ? await client.listNetworks()
    : kind === "endpoints"
    ? await client.listEndpoints()
    : await client.listLoadBalancers();
  if (json) {
    io.stdout(JSON.stringify(objects, null, 2) + "\n");
    return;
  }
  const table = kind === "networks"
    ? networkTable(objects as HcnNetwork[])
    : kind === "endpoints"
    ? endpointTable(objects as HcnEndpoint[])
    : loadBalancerTable(objects as HcnLoadBalancer[]);
  io.stdout(renderTable(table.headers, table.rows));
  io.stdout(`${objects.length} ${kind === "loadbalancers" ? "load balancers" : kind}\n`);
}

interface Table {
  headers: string[];
  rows: string[][];
}

const text = (v: unknown): string => (v === undefined || v === null || v === "" ? "-" : String(v));

function networkTable(networks: HcnNetwork[]): Table {
  return {
    headers: ["ID", "NAME", "TYPE", "SUBNETS", "POLICIES"],
    rows: networks.map((n) => {
      const subnets = (Array.isArray(n.Ipams) ? n.Ipams : [])
        .flatMap((i) => Array.isArray(i?.Subnets) ? i.Subnets : [])
        .map((s) => s?.IpAddressPrefix)
        .filter((p): p is string => typeof p === "string");
      const policies = countBy((Array.isArray(n.Policies) ? n.Policies : []).map((p) => p?.Type));
      return [text(n.ID), text(n.Name), text(n.Type), text(subnets.join(",")), text(policies)];
    }),
  };
}

function endpointTable(endpoints: HcnEndpoint[]): Table {
  return {
    headers: ["ID", "NAME", "IP", "MAC", "NETWORK", "FLAGS", "PROVIDER ADDRESS"],
    rows: endpoints.map((e) => {
      const ips = (Array.isArray(e.IpConfigurations) ? e.IpConfigurations : [])
        .map((c) => c?.IpAddress)
        .filter((ip): ip is string => typeof ip === "string");
      return [
        text(e.ID),
        text(e.Name),
        text(ips.join(",")),
        text(e.MacAddress),
        text(e.HostComputeNetwork),
        endpointWords(e).join(" "),
        text(providerAddress(e)),
      ];
    }),
  };
}

function loadBalancerTable(lbs: HcnLoadBalancer[]): Table {
  return {
    headers: ["ID", "FRONTEND", "PORTS", "PROTOCOL", "BACKENDS", "SOURCE VIP", "FLAGS"],
    rows: lbs.map((lb) => {
      const pms = Array.isArray(lb.PortMappings) ? lb.PortMappings : [];
      const vips = Array.isArray(lb.FrontendVIPs) && lb.FrontendVIPs.length > 0
        ? lb.FrontendVIPs.join(",")
        : "(node ports)";
      const ports = pms.map((p) => `${p?.ExternalPort}->${p?.InternalPort}`).join(",");
      const protocols = [...new Set(pms.map((p) => protocolName(p?.Protocol)))].join(",");
      const backends = Array.isArray(lb.HostComputeEndpoints) ? lb.HostComputeEndpoints.length : 0;
      const words = pms.length === 0 ? ["no-port-mappings"] : loadBalancerWords(lb);
      return [
        text(lb.ID),
        vips,
        text(ports),
        text(protocols),
        String(backends),
        text(lb.SourceVIP),
        text(words.join(" ")),
      ];
    }),
  };
}

/** `RemoteSubnetRoute×3 ProviderAddress`: types with their counts. */
function countBy(values: unknown[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(String(v), (counts.get(String(v)) ?? 0) + 1);
  return [...counts].map(([k, n]) => (n > 1 ? `${k}x${n}` : k)).join(" ");
}

/** Columns padded to their widest cell, two spaces apart. */
function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ") + "\n";
  return line(headers) + rows.map(line).join("");
}

if (import.meta.main) {
  Deno.exit(await hnsCommand(Deno.args));
}
