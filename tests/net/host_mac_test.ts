import assert from "node:assert/strict";
import { findHostMac, type HostInterface, systemInterfaces } from "../../lib/net/host_mac.ts";

const IFACES: HostInterface[] = [
  { name: "lo", address: "127.0.0.1", mac: "00:00:00:00:00:00" },
  { name: "lo", address: "::1", mac: "00:00:00:00:00:00" },
  { name: "vEthernet (Ethernet)", address: "192.168.1.11", mac: "00:15:5D:AA:BB:CC" },
  { name: "vEthernet (Ethernet)", address: "fd00:1::11", mac: "00:15:5D:AA:BB:CC" },
  { name: "Ethernet 2", address: "10.1.0.4", mac: "00-15-5d-11-22-33" },
  { name: "tun0", address: "10.8.0.1", mac: "" },
];

Deno.test("findHostMac: the MAC of the interface holding a node IP, in hnsproxy's form", () => {
  const table: Array<[string[], string | undefined, string]> = [
    [["192.168.1.11"], "00-15-5d-aa-bb-cc", "IPv4 node IP; colons and upper case normalized"],
    [["FD00:1:0::11"], "00-15-5d-aa-bb-cc", "IPv6 node IP spelled differently"],
    [["::ffff:192.168.1.11"], "00-15-5d-aa-bb-cc", "IPv4-mapped spelling"],
    [["10.1.0.4", "192.168.1.11"], "00-15-5d-11-22-33", "the first node IP wins"],
    [
      ["192.0.2.1", "192.168.1.11"],
      "00-15-5d-aa-bb-cc",
      "a later node IP when the first is absent",
    ],
    [["127.0.0.1"], undefined, "loopback's all-zero MAC is no hardware address"],
    [["10.8.0.1"], undefined, "an interface without a MAC"],
    [["192.0.2.1"], undefined, "no interface holds the IP"],
    [[], undefined, "no node IP known"],
  ];
  for (const [nodeIPs, want, why] of table) {
    const r = findHostMac(IFACES, nodeIPs);
    assert.equal("mac" in r ? r.mac : undefined, want, why);
  }
});

Deno.test("findHostMac: the error names the IPs looked for, the interfaces seen and --host-mac", () => {
  const r = findHostMac(IFACES, ["192.0.2.1", "fd00::9"]);
  assert.ok("error" in r);
  assert.match(r.error, /holds the node IP 192\.0\.2\.1 or fd00::9/);
  assert.match(r.error, /interfaces seen: lo 127\.0\.0\.1 00-00-00-00-00-00, /);
  assert.match(r.error, /vEthernet \(Ethernet\) 192\.168\.1\.11 00-15-5d-aa-bb-cc/);
  assert.match(r.error, /tun0 10\.8\.0\.1 no MAC/);
  assert.match(r.error, /--host-mac/);
  const none = findHostMac([], []);
  assert.ok("error" in none);
  assert.match(none.error, /node IP is not known.*interfaces seen: none/);
});

Deno.test("findHostMac on this machine's real interfaces", () => {
  const real = systemInterfaces();
  assert.ok(real.length > 0, "Deno lists at least loopback");
  const loopback = real.find((i) => i.address === "127.0.0.1");
  if (loopback) assert.ok("error" in findHostMac(real, ["127.0.0.1"]), "loopback does not count");
  const nic = real.find((i) => i.mac !== "00:00:00:00:00:00" && i.mac !== "");
  if (nic) {
    const r = findHostMac(real, [nic.address]);
    assert.ok("mac" in r, JSON.stringify(r));
    assert.equal(r.mac, nic.mac.toLowerCase().replaceAll(":", "-"));
  }
});
