import assert from "node:assert/strict";
import { desiredState, updateDesired } from "../../lib/proxy/desired.ts";
import { DiagnosticsLog } from "../../lib/proxy/diagnostics_log.ts";
import { RecordingLogger } from "../kube/helpers.ts";
import { ctx, ep, port, slice, svc, view } from "./core_fixtures.ts";

/** `web` with an SCTP port (skipped with a warning) unless `clean`. */
function web(clean = false) {
  const ports = [port()];
  if (!clean) ports.push(port({ name: "s", protocol: "SCTP", port: 99 }));
  return svc({ ports });
}

Deno.test("diagnostics log: a service's diagnostics are logged when new or changed, not every run", () => {
  const logger = new RecordingLogger();
  const log = new DiagnosticsLog(logger);
  const slices = [slice([ep("10.244.2.7")])];
  const first = desiredState(view([web()], slices), ctx());
  log.update(first);
  assert.deepEqual(logger.lines.map((l) => [l.level, l.fields?.reason]), [
    ["warn", "SCTPUnsupported"],
  ]);
  assert.equal(logger.lines[0].fields?.service, "default/web");
  assert.equal(logger.lines[0].fields?.field, "spec.ports[1].protocol");
  log.update(first);
  log.update(desiredState(view([web()], slices), ctx()));
  assert.equal(logger.lines.length, 1, "the same diagnostics are not logged again");

  // Fixed, then broken again (partial recomputes): logged again. (updateDesired patches the
  // state it is given, so each step starts from a fresh one.)
  const broken = () => desiredState(view([web()], slices), ctx());
  const fixed = new Map([
    ["default/web", desiredState(view([web(true)], slices), ctx()).services.get("default/web")],
  ]);
  log.update(updateDesired(broken(), fixed, ctx()), fixed);
  assert.equal(logger.lines.length, 1);
  log.update(broken());
  assert.equal(logger.lines.length, 2);

  // Deleted, then back: logged again.
  const deleted = new Map([["default/web", undefined]]);
  log.update(updateDesired(broken(), deleted, ctx()), deleted);
  log.update(broken());
  assert.equal(logger.lines.length, 3);
});
