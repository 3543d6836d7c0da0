import assert from "node:assert/strict";
import {
  canonicalCidr,
  canonicalIp,
  canonicalIpv4Value,
  cidrContains,
  ipFamilyOf,
  joinHostPort,
  parseCidr,
  splitHostPort,
} from "../../lib/net/ip.ts";

Deno.test("canonicalIp: one rule set (ParseIPSloppy's), RFC 5952 output", () => {
  const table: Array<[string, string | undefined, string]> = [
    ["10.96.0.10", "10.96.0.10", "plain IPv4"],
    ["0.0.0.0", "0.0.0.0", "all zeros"],
    ["255.255.255.255", "255.255.255.255", "all ones"],
    ["010.0.0.1", "10.0.0.1", "leading zero: decimal, not octal"],
    ["010.000.000.001", "10.0.0.1", "leading zeros in every octet"],
    ["0010.0.0.1", "10.0.0.1", "more leading zeros"],
    ["0x0a.0.0.1", undefined, "no hex IPv4"],
    ["256.1.1.1", undefined, "octet > 255"],
    ["1.2.3", undefined, "three parts"],
    ["1.2.3.4.5", undefined, "five parts"],
    ["1..2.3", undefined, "empty part"],
    [" 10.0.0.1", undefined, "whitespace"],
    ["10.0.0.1 ", undefined, "trailing whitespace"],
    ["FD00:0:0::A", "fd00::a", "upper case, redundant zeros"],
    ["fd00::a", "fd00::a", "canonical IPv6"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1", "longest zero run compressed first"],
    ["2001:DB8::", "2001:db8::", "trailing ::"],
    ["::", "::", "unspecified"],
    ["::1", "::1", "loopback"],
    ["1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7", "a single zero group is not compressed"],
    ["::ffff:10.0.0.1", "10.0.0.1", "IPv4-mapped: the IPv4 address"],
    ["::FFFF:a00:1", "10.0.0.1", "IPv4-mapped in hex groups"],
    ["::ffff:010.0.0.1", "10.0.0.1", "IPv4-mapped with a leading zero"],
    ["0:0:0:0:0:ffff:10.0.0.1", "10.0.0.1", "IPv4-mapped, uncompressed"],
    ["::10.0.0.1", "::a00:1", "IPv4-compatible (deprecated) stays IPv6"],
    ["64:ff9b::10.0.0.1", "64:ff9b::a00:1", "NAT64 stays IPv6"],
    ["fe80::1%eth0", undefined, "zone ID"],
    ["fe80::1%1", undefined, "numeric zone ID"],
    ["[fd00::1]", undefined, "brackets"],
    ["1::2::3", undefined, "two ::"],
    ["1:2:3:4:5:6:7:8:9", undefined, "nine groups"],
    ["12345::", undefined, "five hex digits"],
    [":::", undefined, "three colons"],
    ["1.2.3.4::", undefined, "IPv4 not last"],
    ["", undefined, "empty"],
    ["None", undefined, "a word"],
  ];
  for (const [input, want, why] of table) {
    assert.equal(canonicalIp(input), want, `${input}: ${why}`);
  }
});

Deno.test("canonicalIpv4Value: the four bytes of canonical IPv4 text only", () => {
  const table: Array<[string, number]> = [
    ["10.244.2.15", 0x0af4020f],
    ["0.0.0.0", 0],
    ["255.255.255.255", 0xffffffff],
    ["192.168.0.1", 0xc0a80001],
    ["010.0.0.1", -1], // an IPv4 address, but not canonical
    ["10.0.0.01", -1],
    ["256.1.1.1", -1],
    ["1.2.3", -1],
    ["1.2.3.4.5", -1],
    ["1..2.3", -1],
    [" 10.0.0.1", -1],
    ["::ffff:10.0.0.1", -1],
    ["fd00::1", -1],
    ["", -1],
  ];
  for (const [input, want] of table) assert.equal(canonicalIpv4Value(input), want, input);
});

Deno.test("ipFamilyOf: an IPv4-mapped address is IPv4", () => {
  const table: Array<[string, string | undefined]> = [
    ["10.0.0.1", "IPv4"],
    ["010.0.0.1", "IPv4"],
    ["fd00::1", "IPv6"],
    ["::ffff:10.0.0.1", "IPv4"],
    ["fe80::1%eth0", undefined],
    ["x", undefined],
  ];
  for (const [input, want] of table) assert.equal(ipFamilyOf(input), want, input);
});

Deno.test("CIDRs: parsing, canonical form, containment across spellings", () => {
  const canon: Array<[string, string | undefined]> = [
    ["10.244.0.0/16", "10.244.0.0/16"],
    ["010.244.0.0/16", "10.244.0.0/16"],
    ["FD00:0::/56", "fd00::/56"],
    ["10.0.0.0/08", "10.0.0.0/8"],
    ["10.244.0.0/33", undefined],
    ["fd00::/129", undefined],
    ["10.244.0.0", undefined],
    ["10.244.0.0/", undefined],
    ["10.244.0.0/1234", undefined],
  ];
  for (const [input, want] of canon) assert.equal(canonicalCidr(input), want, input);
  const contains: Array<[string, string, boolean]> = [
    ["10.244.2.0/24", "10.244.2.7", true],
    ["10.244.2.0/24", "10.244.3.7", false],
    ["10.244.0.0/16", "10.244.3.7", true],
    ["10.244.3.128/25", "10.244.3.127", false],
    ["0.0.0.0/0", "8.8.8.8", true],
    ["10.244.2.0/24", "010.244.002.007", true],
    ["10.244.2.0/24", "::ffff:10.244.2.7", true],
    ["fd00:244::/32", "FD00:244:2::7", true],
    ["fd00:244::/32", "10.244.2.7", false],
    ["10.244.2.0/33", "10.244.2.7", false],
    ["garbage", "10.244.2.7", false],
  ];
  for (const [cidr, ip, want] of contains) {
    assert.equal(cidrContains(cidr, ip), want, `${cidr} ∋ ${ip}`);
  }
  assert.equal(parseCidr("10.0.0.0/8")?.prefix, 8);
});

Deno.test("host:port: split (host canonical), join with IPv6 brackets", () => {
  const table: Array<[string, { host: string; port: number } | undefined]> = [
    ["[::1]:10249", { host: "::1", port: 10249 }],
    ["[FD00:0::1]:80", { host: "fd00::1", port: 80 }],
    ["127.0.0.1:0", { host: "127.0.0.1", port: 0 }],
    ["010.0.0.1:80", { host: "10.0.0.1", port: 80 }],
    ["localhost:80", undefined],
    ["1.2.3.4:65536", undefined],
    ["1.2.3.4:080", undefined],
    ["::1:80", undefined],
    ["[10.0.0.1]:80", undefined],
    ["[fe80::1%eth0]:80", undefined],
  ];
  for (const [input, want] of table) assert.deepEqual(splitHostPort(input), want, input);
  assert.equal(joinHostPort("fd00::1", 80), "[fd00::1]:80");
  assert.equal(joinHostPort("10.0.0.1", 80), "10.0.0.1:80");
});
