import assert from "node:assert/strict";
import { desiredLoadBalancer, plainLoadBalancer } from "../../lib/proxy/desired_lb.ts";
import type { DesiredLoadBalancer } from "../../lib/proxy/model.ts";

const FIELDS: (keyof DesiredLoadBalancer)[] = [
  "key",
  "kind",
  "serviceKey",
  "portName",
  "family",
  "protocol",
  "vip",
  "externalPort",
  "internalPort",
  "flags",
  "portMappingFlags",
  "distributionType",
  "sourceVip",
  "backends",
];

const base: DesiredLoadBalancer = {
  key: "lb/udp/[fd00::a]:53",
  kind: "healthCheck",
  serviceKey: "ns/dns",
  portName: "dns",
  family: "IPv6",
  protocol: 17,
  vip: "fd00::a",
  externalPort: 53,
  internalPort: 5353,
  flags: 3,
  portMappingFlags: 31,
  distributionType: 2,
  sourceVip: "fd00::1",
  backends: ["ep/remote/fd00::2"],
};

Deno.test("desired LB record: reads back every field it was given, packed or not", () => {
  const cases: DesiredLoadBalancer[] = [
    base,
    { ...base, kind: "clusterIP", family: "IPv4", protocol: 6, flags: 0, portMappingFlags: 0 },
    { ...base, kind: "nodePort", vip: undefined, sourceVip: undefined, distributionType: 0 },
    { ...base, kind: "externalIP", protocol: 132, flags: 1, portMappingFlags: 16 },
    { ...base, kind: "ingress", portMappingFlags: 8 },
    // Values the packing cannot hold come back as they were.
    { ...base, protocol: 300 },
    { ...base, flags: 64 },
    { ...base, portMappingFlags: 128 },
    { ...base, distributionType: 7 },
  ];
  for (const want of cases) {
    const got = desiredLoadBalancer(want);
    for (const f of FIELDS) assert.deepEqual(got[f], want[f], `${f} of ${JSON.stringify(want)}`);
    assert.deepEqual(JSON.parse(JSON.stringify(got)), JSON.parse(JSON.stringify(want)));
  }
});

Deno.test("desired LB record: its plain form leaves unset optional fields out", () => {
  const plain = plainLoadBalancer(
    desiredLoadBalancer({ ...base, vip: undefined, sourceVip: undefined }),
  );
  assert.ok(!("vip" in plain) && !("sourceVip" in plain));
  assert.equal(Object.getPrototypeOf(plain), Object.prototype);
});
