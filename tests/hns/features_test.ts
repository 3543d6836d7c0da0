/** Feature flags from the HNS version table, IP canonical forms, and descriptions in words. */

import { deepEqual, equal } from "node:assert/strict";
import {
  describeEndpoint,
  describeLoadBalancer,
  loadBalancerWords,
} from "../../lib/hns/describe.ts";
import { enabledFeatures, featuresOf, NO_FEATURES } from "../../lib/hns/features.ts";

Deno.test("features: thresholds of the version table, inclusive", () => {
  const on = (major: number, minor: number) => enabledFeatures(featuresOf({ major, minor }));
  deepEqual(on(9, 1), []);
  deepEqual(on(9, 2), ["api"]);
  deepEqual(on(9, 3), ["api", "dsr"]);
  deepEqual(on(9, 99), ["api", "dsr"]);
  deepEqual(on(10, 0), ["api"]);
  deepEqual(on(10, 2), ["api", "dsr"]);
  deepEqual(on(11, 9), ["api", "dsr"]);
  deepEqual(on(11, 10), ["api", "dsr", "ipv6DualStack"]);
  deepEqual(on(12, 0), ["api", "dsr", "ipv6DualStack", "sessionAffinity"]);
  deepEqual(on(15, 3), ["api", "dsr", "ipv6DualStack", "sessionAffinity"]);
  // hcsshim's ModifyLoadbalancerVersion: 15.5–15.x and 16.0+, not 15.4.
  deepEqual(on(15, 4), ["api", "dsr", "ipv6DualStack", "sessionAffinity"]);
  const all = ["api", "dsr", "ipv6DualStack", "sessionAffinity", "modifyLoadBalancer"];
  deepEqual(on(15, 5), all);
  deepEqual(on(15, 99), all);
  deepEqual(on(16, 0), all);
  deepEqual(on(17, 3), all);
});

Deno.test("features: an unreadable version supports nothing", () => {
  deepEqual(featuresOf(null), { ...NO_FEATURES });
  deepEqual(enabledFeatures(featuresOf(null)), []);
});

Deno.test("descriptions: load balancers and endpoints in words", () => {
  const lb = {
    HostComputeEndpoints: [],
    FrontendVIPs: ["10.96.0.10"],
    PortMappings: [{
      Protocol: 17,
      InternalPort: 53,
      ExternalPort: 53,
      DistributionType: 2,
      Flags: 28,
    }],
    Flags: 3,
  };
  equal(describeLoadBalancer(lb), "load balancer 10.96.0.10:53/UDP");
  deepEqual(loadBalancerWords(lb), [
    "DSR",
    "IPv6",
    "UseMux",
    "PreserveDIP",
    "VipExternalIP",
    "affinity:SourceIP",
  ]);
  equal(
    describeLoadBalancer({ PortMappings: [{ Protocol: 6, InternalPort: 1, ExternalPort: 30080 }] }),
    "load balancer *:30080/TCP",
  );
  equal(describeLoadBalancer({ ID: "X" }), "load balancer X");
  deepEqual(loadBalancerWords({ Flags: 64 }), ["0x40"]);
  equal(describeEndpoint({ IpConfigurations: [{ IpAddress: "10.1.2.3" }] }), "endpoint 10.1.2.3");
  equal(describeEndpoint({ ID: "E" }), "endpoint E");
});
