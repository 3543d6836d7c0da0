/**
 * What the agent needs to run as a service in a test: a fake API server (in this process,
 * on 127.0.0.1: a Wine service shares the host's network) seeded with a Service, its
 * EndpointSlice and the Node; a kubeconfig for it; the HNS emulator as a private library
 * copy whose `<library>.env` sidecar names a seeded l2bridge HNS state file (a Windows
 * service under Wine gets no environment from the test); and the agent flags that tie them
 * together, all with absolute paths (a service starts in C:\Windows\System32).
 *
 * @module
 */
import type { OwnedObject } from "../../lib/proxy/ownership.ts";
import { join } from "node:path";
import { privateCopy } from "../hns-emulator/build.ts";
import { builtEmulatorLibrary, lbLines, readHnsStateFile } from "../agent/harness.ts";
import {
  fakeKubeconfig,
  l2bridgeHns,
  NODE,
  nodeObject,
  serviceObject,
  sliceObject,
} from "../agent/fixtures.ts";
import { FakeApiServer } from "../../lib/fake-apiserver/mod.ts";
import type { MemoryHnsState } from "../../lib/hns/memory.ts";
import { OwnershipRecord } from "../../lib/proxy/ownership.ts";

/** The load balancers the seeded cluster should produce on the l2bridge node. */
export const WANT_LBS: readonly string[] = [
  "*:30080/tcp->8080 [10.244.1.5,10.244.2.7] flags=0 pm=18 dt=0",
  "10.96.0.10:80/tcp->8080 [10.244.1.5,10.244.2.7] flags=0 pm=0 dt=0",
];

/** One owned HNS object in the agent's ownership record. */
export type { OwnedObject };

/** The fake cluster, the emulated HNS and the files of one service test. */
export class ServiceWorld {
  /** The fake API server. */
  readonly api: FakeApiServer;
  /** Scratch directory (removed by {@link close}). */
  readonly dir: string;
  /** The emulator's state file: what HNS holds. */
  readonly hnsFile: string;
  /** The agent's ownership record. */
  readonly stateFile: string;
  /** The agent's log file. */
  readonly logFile: string;
  /** The private emulator library the agent loads. */
  readonly library: string;
  readonly #kubeconfig: string;

  private constructor(api: FakeApiServer, dir: string, library: string) {
    this.api = api;
    this.dir = dir;
    this.library = library;
    this.hnsFile = join(dir, "hns.json");
    this.stateFile = join(dir, "owned", "state.json");
    this.logFile = join(dir, "agent.log");
    this.#kubeconfig = join(dir, "kubeconfig");
  }

  /** Starts the API server, seeds the cluster and HNS, and writes the kubeconfig and sidecar. */
  static async create(): Promise<ServiceWorld> {
    const library = await privateCopy(builtEmulatorLibrary());
    const api = await new FakeApiServer().start();
    const world = new ServiceWorld(api, join(library, ".."), library);
    api.create(
      "services",
      serviceObject("web", {
        type: "NodePort",
        clusterIP: "10.96.0.10",
        ports: [{ port: 80, targetPort: 8080, nodePort: 30080 }],
      }),
    );
    api.create(
      "endpointslices",
      sliceObject("web", [
        { ip: "10.244.1.5", node: NODE },
        { ip: "10.244.2.7", node: "node-2" },
      ], { port: 8080 }),
    );
    api.create("nodes", nodeObject());
    await Deno.writeTextFile(world.hnsFile, JSON.stringify(l2bridgeHns()));
    await Deno.writeTextFile(`${library}.env`, `HNSEMU_STATE_FILE=${world.hnsFile}\r\n`);
    await Deno.writeTextFile(
      world.#kubeconfig,
      fakeKubeconfig(api.url),
    );
    return world;
  }

  /** The agent flags for this world (without `--windows-service`). */
  agentArgs(): string[] {
    return [
      "--kubeconfig",
      this.#kubeconfig,
      "--hostname-override",
      NODE,
      "--network-name",
      "cbr0",
      "--hns-library",
      this.library,
      "--state-file",
      this.stateFile,
      "--log-file",
      this.logFile,
      "--healthz-bind-address",
      "127.0.0.1:0",
      "--metrics-bind-address",
      "127.0.0.1:0",
      "--v",
      "2",
    ];
  }

  /** What HNS holds now, read from the emulator's state file. */
  hns(): Promise<Required<MemoryHnsState>> {
    return readHnsStateFile(this.hnsFile);
  }

  /** HNS load balancers as sorted `vip:port/proto->internal [backends] ...` lines. */
  async lbTable(): Promise<string[]> {
    return lbLines(await this.hns());
  }

  /** The ownership record's objects: the record file with its journal replayed, as the agent loads it. */
  async owned(): Promise<OwnedObject[]> {
    return (await OwnershipRecord.load(this.stateFile)).list();
  }

  /** The agent's log so far. */
  async log(): Promise<string> {
    try {
      return await Deno.readTextFile(this.logFile);
    } catch {
      return "(no agent log)";
    }
  }

  /** Stops the API server and removes the scratch directory. */
  async close(): Promise<void> {
    await this.api.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
