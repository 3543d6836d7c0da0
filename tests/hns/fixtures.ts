/**
 * Small builders and assertions shared by the HNS tests.
 *
 * @module
 */

import { AssertionError, equal, ok } from "node:assert/strict";
import { formatHResult, HnsError } from "../../lib/hns/errors.ts";
import type { HcnApi, HcnLoadBalancer, HcnNetwork } from "../../lib/hns/types.ts";

/** Create a network through the raw API (the client does not create networks) and return its ID. */
export async function makeNetwork(api: HcnApi, network: HcnNetwork, id = ""): Promise<string> {
  const handle = await api.create("Network", id, JSON.stringify(network));
  try {
    return JSON.parse(await api.query("Network", handle, "")).ID;
  } finally {
    await api.close("Network", handle);
  }
}

/** A ClusterIP-style load balancer: one VIP, one TCP/UDP port mapping. */
export function clusterIpLb(
  vip: string,
  port: number,
  endpoints: string[],
  protocol = 6,
): HcnLoadBalancer {
  return {
    HostComputeEndpoints: endpoints,
    FrontendVIPs: [vip],
    PortMappings: [{ Protocol: protocol, InternalPort: port + 8000, ExternalPort: port }],
    SchemaVersion: { Major: 2, Minor: 0 },
  };
}

/** A NodePort-style load balancer: no VIP, LocalRoutedVIP|VipExternalIP. */
export function nodePortLb(port: number, endpoints: string[], protocol = 6): HcnLoadBalancer {
  return {
    HostComputeEndpoints: endpoints,
    FrontendVIPs: [],
    PortMappings: [{ Protocol: protocol, InternalPort: 8080, ExternalPort: port, Flags: 18 }],
    SchemaVersion: { Major: 2, Minor: 0 },
  };
}

/** Await `promise`, which must reject with an HnsError carrying `hresult`; return the error. */
export async function expectHnsError(
  promise: Promise<unknown>,
  hresult: number,
): Promise<HnsError> {
  let settled: unknown;
  try {
    settled = await promise;
  } catch (err) {
    if (!(err instanceof HnsError)) {
      throw new AssertionError({
        message: `expected HnsError ${formatHResult(hresult)}, got ${err}`,
        actual: err,
        expected: hresult,
      });
    }
    equal(formatHResult(err.hresult), formatHResult(hresult), err.message);
    ok(!err.message.includes("\n"), "the message is one line");
    ok(err.message.includes(formatHResult(hresult)), "the message names the HRESULT in hex");
    return err;
  }
  throw new AssertionError({
    message: `expected HnsError ${formatHResult(hresult)}, but the call succeeded with ${
      JSON.stringify(settled)
    }`,
  });
}

/** A GUID-shaped ID in HNS's upper-case form. */
export const GUID_RE = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/;
