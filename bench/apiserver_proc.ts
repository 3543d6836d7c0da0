/**
 * The benchmark's API server process: a {@linkcode FakeApiServer} seeded
 * with the generated cluster, driven by JSON-lines commands on stdin (one
 * answer line per command on stdout). It runs in its own process so that
 * its CPU and memory are not counted as the agent's, as on a real node
 * where the API server lives elsewhere.
 *
 * Commands: `seed {spec}`, `add {service}` (one more remote endpoint),
 * `remove {service}` (drop the oldest added endpoint), `collect` (a full
 * garbage collection), `stats`, `stop`.
 *
 * @module
 */

import { FakeApiServer } from "../lib/fake-apiserver/mod.ts";
import { ENDPOINT_SLICES, type KubeList, SERVICES } from "../lib/kube/api.ts";
import { ENDPOINT_SLICE_SELECTOR, SERVICE_SELECTOR } from "../lib/kube/cluster.ts";
import { LIST_PAGE_SIZE } from "../lib/kube/reflector.ts";
import {
  endpointsOf,
  extraEndpoint,
  type GeneratedEndpoint,
  nodeObject,
  type ScenarioSpec,
  serviceObject,
  sliceObject,
} from "./scenario.ts";
import { serveJsonLines } from "./jsonl.ts";
import { now } from "./procstat.ts";

/** One command line. */
export type ApiCommand =
  | { id: number; cmd: "seed"; spec: ScenarioSpec }
  | { id: number; cmd: "add"; service: number }
  | { id: number; cmd: "remove"; service: number }
  | { id: number; cmd: "collect" }
  | { id: number; cmd: "stats" }
  | { id: number; cmd: "stop" };

/**
 * Lists Services and EndpointSlices once as the agent does (its selectors,
 * its page size) and forgets the requests: a real API server has served many
 * lists before a node's proxy starts, so the agent's first list should not
 * pay for this process's first-use costs (compiling its list and HTTP code),
 * which otherwise compete with the agent for the bench machine's cores.
 */
async function warmUp(server: FakeApiServer): Promise<void> {
  const lists: [string, string][] = [
    [SERVICES.path, SERVICE_SELECTOR],
    [ENDPOINT_SLICES.path, ENDPOINT_SLICE_SELECTOR],
  ];
  const served = server.requests.length;
  for (const [path, labelSelector] of lists) {
    let cont = "";
    do {
      const url = new URL(server.url + path);
      url.searchParams.set("labelSelector", labelSelector);
      url.searchParams.set("limit", String(LIST_PAGE_SIZE));
      if (cont) url.searchParams.set("continue", cont);
      const response = await fetch(url);
      if (!response.ok) throw new Error(`warm-up list ${path}: ${response.status}`);
      const page = await response.json() as KubeList;
      cont = page.metadata?.continue ?? "";
    } while (cont);
  }
  server.requests.splice(served);
}

async function serve(): Promise<void> {
  const server = await new FakeApiServer().start();
  let spec: ScenarioSpec | undefined;
  /** Endpoints of each service, as last written. */
  const endpoints = new Map<number, GeneratedEndpoint[]>();
  /** Added endpoints per service, newest last. */
  const extras = new Map<number, GeneratedEndpoint[]>();
  let nextExtra = 0;

  const writeSlice = (i: number) => {
    server.update("endpointslices", sliceObject(spec!, i, endpoints.get(i)!, new Date()));
  };

  await serveJsonLines(async (message, out) => {
    const c = message as unknown as ApiCommand;
    switch (c.cmd) {
      case "seed": {
        const started = performance.now();
        spec = c.spec;
        server.create("nodes", nodeObject());
        const now = new Date();
        for (let i = 0; i < spec.services; i++) {
          server.create("services", serviceObject(spec, i));
          const eps = endpointsOf(spec, i);
          endpoints.set(i, eps);
          server.create("endpointslices", sliceObject(spec, i, eps, now));
        }
        await warmUp(server);
        return {
          url: server.url,
          seedMs: performance.now() - started,
          objects: 1 + 2 * spec.services,
        };
      }
      case "add": {
        const takenAt = now();
        const ep = extraEndpoint(nextExtra++);
        endpoints.get(c.service)!.push(ep);
        const list = extras.get(c.service) ?? [];
        list.push(ep);
        extras.set(c.service, list);
        writeSlice(c.service);
        return { ip: ep.ip, takenAt, writtenAt: now() };
      }
      case "remove": {
        const ep = extras.get(c.service)?.shift();
        if (!ep) throw new Error(`service ${c.service} has no added endpoint`);
        const eps = endpoints.get(c.service)!;
        eps.splice(eps.indexOf(ep), 1);
        writeSlice(c.service);
        return { ip: ep.ip };
      }
      case "collect": {
        // A real API server's collections run on its own machine, never on the node's cores.
        const gc = (globalThis as { gc?: () => void }).gc;
        if (!gc) throw new Error("the API server process runs without --expose-gc");
        const started = performance.now();
        gc();
        return { ms: performance.now() - started };
      }
      case "stats":
        return {
          rss: Deno.memoryUsage().rss,
          watches: server.openWatches(),
          lists: server.count("list"),
          watchRequests: server.count("watch"),
        };
      case "stop":
        await server.stop();
        await out.answer(c.id, { ok: true });
        await out.close();
        // stdin may still be open; nothing else is left to do.
        Deno.exit(0);
    }
  });
  await server.stop();
}

if (import.meta.main) await serve();
