/** What hnsproxy needs of HNS at start, and which refusals mean "this HNS cannot". */

import { equal, match, ok, rejects } from "node:assert/strict";
import { createHnsClient } from "../../lib/hns/client.ts";
import { HnsError, HResult, isUnsupported } from "../../lib/hns/errors.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import {
  checkHnsSupport,
  hnsStartupProblem,
  HnsUnsupportedError,
} from "../../lib/hns/requirements.ts";

Deno.test("requirements: the HCN (v2) API from 9.2, DSR only when asked for", () => {
  const problem = (major: number, minor: number, enableDSR = false) =>
    hnsStartupProblem({ major, minor }, { enableDSR });
  match(problem(9, 1)!, /^HNS 9\.1 has no HCN \(v2\) API; hnsproxy needs HNS 9\.2\+/);
  match(problem(7, 2, true)!, /no HCN \(v2\) API/);
  equal(problem(9, 2), undefined);
  match(problem(9, 2, true)!, /^--enable-dsr: HNS 9\.2 has no Direct Server Return/);
  equal(problem(9, 3, true), undefined);
  match(problem(10, 0, true)!, /needs HNS 9\.3–9\.x or 10\.2\+/);
  match(problem(10, 1, true)!, /--enable-dsr/);
  equal(problem(10, 1), undefined);
  equal(problem(10, 2, true), undefined);
  equal(problem(16, 0, true), undefined);
  match(hnsStartupProblem(null, { enableDSR: false })!, /cannot read the HNS version/);
});

Deno.test("requirements: checkHnsSupport reads the version and refuses with a typed error", async () => {
  const client = (major: number, minor: number) =>
    createHnsClient(new MemoryHcnApi({ version: { major, minor } }));
  equal((await checkHnsSupport(client(10, 0), { enableDSR: false })).dsr, false);
  await rejects(checkHnsSupport(client(10, 0), { enableDSR: true }), (err) => {
    ok(err instanceof HnsUnsupportedError);
    equal(err.version?.major, 10);
    return true;
  });
  await rejects(checkHnsSupport(client(9, 1), { enableDSR: false }), HnsUnsupportedError);
  await rejects(checkHnsSupport(client(0, 0), { enableDSR: false }), /cannot read/);
  equal((await checkHnsSupport(client(15, 5), { enableDSR: true })).modifyLoadBalancer, true);
});

Deno.test("errors: 'not implemented' and 'not supported' in any form are unsupported", () => {
  const err = (hresult: number, hnsMessage?: string) =>
    new HnsError({ hresult, operation: "HcnModifyLoadBalancer", hnsMessage });
  ok(isUnsupported(err(HResult.E_NOTIMPL)));
  ok(isUnsupported(err(HResult.ERROR_NOT_SUPPORTED)));
  ok(isUnsupported(err(HResult.ERROR_CALL_NOT_IMPLEMENTED)));
  ok(isUnsupported(err(0x80004005, "The request is not supported.")));
  ok(isUnsupported(err(0x803b0001 + 0x40, "Operation Not Implemented")));
  ok(!isUnsupported(err(HResult.PORT_ALREADY_EXISTS, "The specified port already exists.")));
  ok(!isUnsupported(err(HResult.ERROR_NOT_FOUND)));
  ok(!isUnsupported(new Error("not supported")));
});
