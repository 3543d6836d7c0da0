/**
 * A start's early read of HNS with an endpoint hint (the IDs the last
 * complete sync's node context named): the hinted endpoints are read beside
 * the ID listings, before the ownership record is in, and the read then
 * yields exactly what it yields without the hint: only endpoints the
 * listing shows and the record does not own, each as HNS holds it, none
 * read twice; a wrong hint costs only its reads.
 */

import assert from "node:assert/strict";
import { createHnsClient } from "../../lib/hns/client.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import type { HcnEndpoint, ReadOptions } from "../../lib/hns/types.ts";
import { OwnershipRecord } from "../../lib/proxy/ownership.ts";
import { type EarlyStart, readEarly } from "../../lib/proxy/start.ts";
import { LOCAL_EP_5, LOCAL_EP_6, OVERLAY_NET, overlayHns } from "../agent/fixtures.ts";

/** A CNI pod the hint does not name (created after the hint was recorded). */
const NEW_POD = "10CA1000-0000-4000-8000-000000000007";
/** hnsproxy's remote endpoint (owned). */
const OWNED_EP = "0E0E0E0E-0000-4000-8000-000000000001";
/** An endpoint deleted while the agent was down. */
const GONE_EP = "10CA1000-0000-4000-8000-0000000000FF";

function endpoint(id: string, ip: string, flags: number): HcnEndpoint {
  return {
    ID: id,
    Name: `ep-${ip}`,
    HostComputeNetwork: OVERLAY_NET,
    IpConfigurations: [{ IpAddress: ip, PrefixLength: 24 }],
    MacAddress: "00-15-5D-01-00-" + ip.split(".")[3].padStart(2, "0"),
    Flags: flags,
    SchemaVersion: { Major: 2, Minor: 0 },
  };
}

/** The overlay node with one more CNI pod and an endpoint hnsproxy owns. */
function node() {
  const state = overlayHns();
  state.Endpoints!.push(endpoint(NEW_POD, "10.244.1.7", 0), endpoint(OWNED_EP, "10.244.2.7", 1));
  const api = new MemoryHcnApi({ state });
  const record = OwnershipRecord.inMemory([
    { kind: "Endpoint", id: OWNED_EP, key: "ep/remote/10.244.2.7" },
  ]);
  return { api, client: createHnsClient(api), record };
}

const opens = (api: MemoryHcnApi) => api.callCount("HcnOpenEndpoint");

/** What a read yields, for comparing two reads. */
function yielded(early: EarlyStart | undefined) {
  assert.ok(early, "the early read yielded");
  return { network: early.network, mode: early.mode, preread: early.preread };
}

async function withoutHint() {
  const { api, client, record } = node();
  const early = await readEarly(client, "vxlan0", false, record, { fullHnsReadOnStart: false });
  return { early: yielded(early), opens: opens(api) };
}

Deno.test("start/early read: hinted endpoints are read beside the listings, before the record is in; the read is the one without the hint", async () => {
  const plain = await withoutHint();
  assert.equal(plain.opens, 3, "the three CNI endpoints");
  assert.equal(plain.early.preread.mode, "trusted");

  const { api, client, record } = node();
  let loaded!: (r: OwnershipRecord) => void;
  const loading = new Promise<OwnershipRecord>((resolve) => (loaded = resolve));
  const read = readEarly(client, "vxlan0", false, loading, {
    fullHnsReadOnStart: false,
    endpointHint: Promise.resolve([LOCAL_EP_5, LOCAL_EP_6]),
  });
  for (let i = 0; i < 50 && opens(api) < 2; i++) await new Promise((r) => setTimeout(r));
  assert.equal(opens(api), 2, "the hinted endpoints were read before the record was in");
  loaded(record);
  assert.deepEqual(yielded(await read), plain.early);
  assert.equal(opens(api), 3, "the endpoint the hint did not name is read then; none twice");
  assert.equal(api.openHandles(), 0);
});

Deno.test("start/early read: a hint naming an owned endpoint and one HNS no longer has adds only their reads", async () => {
  const plain = await withoutHint();
  const { api, client, record } = node();
  const early = await readEarly(client, "vxlan0", false, record, {
    fullHnsReadOnStart: false,
    endpointHint: Promise.resolve([OWNED_EP, GONE_EP, LOCAL_EP_6.toLowerCase()]),
  });
  const got = yielded(early);
  assert.deepEqual(got, plain.early);
  assert.ok(got.preread.mode === "trusted");
  assert.deepEqual(got.preread.ownedEps, [OWNED_EP], "the owned endpoint stays owned, not read");
  assert.ok(!got.preread.others.some((ep) => ep.ID === OWNED_EP || ep.ID === GONE_EP));
  assert.equal(opens(api), 3 + 2, "the unneeded hinted reads only");
});

Deno.test("start/early read: with the full read asked for, the hinted endpoints are part of it, not read again", async () => {
  const full = async (hint?: string[]) => {
    const { api, client, record } = node();
    const early = await readEarly(client, "vxlan0", false, record, {
      fullHnsReadOnStart: true,
      endpointHint: hint && Promise.resolve(hint),
    });
    return { early: yielded(early), opens: opens(api) };
  };
  const plain = await full();
  assert.equal(plain.early.preread.mode, "full");
  const hinted = await full([LOCAL_EP_5, NEW_POD]);
  assert.deepEqual(hinted.early, plain.early);
  assert.equal(hinted.opens, plain.opens, "every endpoint read once");
});

Deno.test("start/early read: a hinted read that fails leaves the read to the start as without a hint", async () => {
  const plain = await withoutHint();
  const { api, client, record } = node();
  // The first endpoint read of the node fails: the hinted read's.
  api.failCall("HcnOpenEndpoint", 1, 0x80070005);
  const early = await readEarly(client, "vxlan0", false, record, {
    fullHnsReadOnStart: false,
    endpointHint: Promise.resolve([LOCAL_EP_5, LOCAL_EP_6]),
  });
  assert.deepEqual(yielded(early), plain.early);
  assert.equal(opens(api), 2 + 3, "the failed hinted read, then the read as without a hint");
  assert.equal(api.openHandles(), 0);
});

Deno.test("start/early read: the hinted endpoints are read ahead (beside the lists); the start's other reads are not", async () => {
  const { client, record } = node();
  const ahead: Array<boolean | undefined> = [];
  const spied = new Proxy(client, {
    get(target, key) {
      if (key === "getEndpoints") {
        return (ids: readonly string[], options?: ReadOptions) => {
          ahead.push(options?.ahead);
          return target.getEndpoints(ids, options);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const early = await readEarly(spied, "vxlan0", false, record, {
    fullHnsReadOnStart: false,
    endpointHint: Promise.resolve([LOCAL_EP_5, LOCAL_EP_6]),
  });
  assert.deepEqual(yielded(early), (await withoutHint()).early);
  assert.deepEqual(ahead, [true, undefined], "the hinted read, then the endpoint it did not name");
});
