import assert from "node:assert/strict";
import { contextWithRoutes } from "../../lib/proxy/context.ts";
import { desiredState } from "../../lib/proxy/desired.ts";
import { DiagnosticsLog } from "../../lib/proxy/diagnostics_log.ts";
import { MIN_READ_INTERVAL_MS, PlacementWaits } from "../../lib/proxy/placement_waits.ts";
import { RecordingLogger } from "../kube/helpers.ts";
import { manualClock } from "../agent/fixtures.ts";
import { ep, overlayCtx, slice, svc, view } from "./core_fixtures.ts";

/** `web` and `api`, both backed by the pod 10.244.9.7 that no route or Node places. */
function cluster(extraWebPods: string[] = []) {
  const services = [svc(), svc({ name: "api", clusterIPs: ["10.96.0.11"] })];
  const slices = [
    slice([ep("10.244.2.5"), ep("10.244.9.7"), ...extraWebPods.map((ip) => ep(ip))]),
    slice([ep("10.244.9.7")], { name: "api-abc", serviceName: "api" }),
  ];
  return view(services, slices);
}

const CTX = overlayCtx({ clusterCidrs: ["10.244.0.0/16"] });

Deno.test("placement waits: a waiting pod IP is logged once (not per service or run) and counted", () => {
  const logger = new RecordingLogger();
  const clock = manualClock();
  const waits = new PlacementWaits({ clock, logger });
  const diagnostics = new DiagnosticsLog(logger);
  for (let run = 0; run < 3; run++) {
    const desired = desiredState(cluster(run > 0 ? ["10.244.9.8"] : []), CTX);
    diagnostics.update(desired);
    waits.track(desired);
    waits.settle();
  }
  assert.equal(waits.count(), 2, "10.244.9.7 (two services) and 10.244.9.8");
  const waiting = logger.lines.filter((l) => l.message.startsWith("Endpoint waits"));
  assert.deepEqual(waiting.map((l) => [l.fields?.endpoint, l.fields?.services]), [
    ["10.244.9.7", "default/api,default/web"],
    ["10.244.9.8", "default/web"],
  ]);
  assert.equal(
    logger.lines.filter((l) => l.fields?.reason === "PlacementUnknown").length,
    0,
    "not logged per service by the diagnostics log",
  );

  // The CNI's route for 10.244.9.0/24 appears: no longer waiting, logged once.
  const routed = contextWithRoutes(CTX, [
    ...CTX.network.remoteSubnetRoutes,
    { prefix: "10.244.9.0/24", providerAddress: "192.168.1.19" },
  ]);
  waits.track(desiredState(cluster(["10.244.9.8"]), routed));
  waits.settle();
  assert.equal(waits.count(), 0);
  assert.equal(
    logger.lines.filter((l) => l.message.startsWith("Endpoint no longer waits")).length,
    2,
  );
});

Deno.test("placement waits: a new waiting IP asks for a read at once, rate-limited; then reads back off", () => {
  const logger = new RecordingLogger();
  const clock = manualClock();
  const waits = new PlacementWaits({ clock, logger });
  assert.equal(waits.readDue(), false, "nothing waits");
  waits.track(desiredState(cluster(), CTX));
  assert.equal(waits.readDue(), true, "a new waiting IP: read now");
  waits.reading();
  waits.failed(); // routes unchanged
  waits.settle();
  assert.equal(waits.readDue(), false, "read for it already");
  const backoff = waits.retryInMs()!;
  assert.ok(backoff > 0 && backoff <= MIN_READ_INTERVAL_MS * 1.1, `backoff ${backoff}`);

  // Another pod starts waiting right after the read: the rate limit holds it back.
  clock.t += 500;
  waits.track(desiredState(cluster(["10.244.9.8"]), CTX));
  assert.equal(waits.readDue(), false, "at most one read per interval");
  assert.ok(waits.retryInMs()! <= MIN_READ_INTERVAL_MS - 500);
  clock.t += MIN_READ_INTERVAL_MS;
  assert.equal(waits.readDue(), true);
  waits.reading();
  waits.failed();
  waits.settle();

  // Still waiting: reads repeat by backoff, further apart each time, at most 30 s apart.
  const delays: number[] = [];
  for (let i = 0; i < 8; i++) {
    const d = waits.retryInMs()!;
    delays.push(d);
    clock.t += d;
    assert.equal(waits.readDue(), true);
    waits.reading();
    waits.failed();
  }
  assert.ok(delays[1] > delays[0], delays.join(","));
  assert.ok(Math.max(...delays) <= 33_000, delays.join(","));

  // Nothing waits any more: no read, no retry.
  waits.track(desiredState(view([], []), CTX));
  waits.settle();
  assert.equal(waits.readDue(), false);
  assert.equal(waits.retryInMs(), undefined);
});

Deno.test("context: contextWithRoutes is the same context for the same routes, a new one (input untouched) for changed ones", () => {
  const same = contextWithRoutes(CTX, CTX.network.remoteSubnetRoutes.map((r) => ({ ...r })));
  assert.equal(same, CTX);
  const moved = [
    { prefix: "10.244.2.0/24", providerAddress: "192.168.1.21" },
    { prefix: "10.244.3.0/24", providerAddress: "192.168.1.12" },
  ];
  const next = contextWithRoutes(CTX, moved);
  assert.notEqual(next, CTX);
  assert.deepEqual(next.network.remoteSubnetRoutes, moved);
  assert.equal(CTX.network.remoteSubnetRoutes[0].providerAddress, "192.168.1.11");
  assert.equal(next.network.id, CTX.network.id);
});
