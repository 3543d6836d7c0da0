/**
 * hnsproxy — the Kubernetes service proxy for Windows nodes.
 *
 * `hnsproxy [run] [flags]` runs the agent; the other subcommands inspect HNS,
 * preview a sync, manage the Windows service and run the demo. Each
 * subcommand's module is loaded only when it is used.
 *
 * @module
 */
import { versionText } from "./lib/config/version.ts";

/** One-screen overview of the subcommands. */
export const USAGE = `hnsproxy — the Kubernetes service proxy for Windows nodes (HNS)

Usage:
  hnsproxy [run] [flags]          run the agent (kube-proxy flags; see --help)
  hnsproxy plan [flags] [--json]  show the desired HNS objects and the operations a sync would make
  hnsproxy hns version            HNS version and the features hnsproxy derives from it
  hnsproxy hns list networks|endpoints|loadbalancers [--json]
  hnsproxy service install [--name hnsproxy] -- <agent flags>
  hnsproxy service uninstall [--name hnsproxy]
  hnsproxy demo                   the agent against an embedded demo cluster and an in-memory HNS
  hnsproxy version                print the version

Run 'hnsproxy --help' for the agent's flags.`;

/** Route a command line to its subcommand; resolves to the process exit code. */
export async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  switch (first) {
    case "hns":
      return (await import("./lib/cli/hns.ts")).hnsCommand(rest);
    case "plan":
      return (await import("./lib/cli/plan.ts")).planCommand(rest);
    case "demo":
      return (await import("./lib/demo/mod.ts")).demoCommand(rest);
    case "run":
      return (await import("./lib/cli/run.ts")).runCommand(rest);
    case "service":
      return (await import("./lib/cli/service.ts")).serviceCommand(rest);
    case "version":
      console.log(versionText());
      return 0;
    case "help":
      console.log(USAGE);
      return 0;
    default:
      if (first !== undefined && !first.startsWith("-")) {
        console.error(`hnsproxy: unknown command "${first}"\n\n${USAGE}`);
        return 2;
      }
      return (await import("./lib/cli/run.ts")).runCommand(args);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
