/**
 * Typed HNS failures: the HRESULT, the operation, the object and HNS's own
 * message, with names for the HRESULTs hnsproxy reacts to.
 *
 * @module
 */

/** HRESULTs worth naming (as unsigned 32-bit values). */
export const HResult = {
  E_NOTIMPL: 0x80004001,
  E_HANDLE: 0x80070006,
  ERROR_NOT_SUPPORTED: 0x80070032,
  ERROR_CALL_NOT_IMPLEMENTED: 0x80070078,
  E_INVALIDARG: 0x80070057,
  ERROR_NOT_FOUND: 0x80070490,
  ERROR_ALREADY_EXISTS: 0x800700b7,
  NETWORK_NOT_FOUND: 0x803b0001,
  ENDPOINT_NOT_FOUND: 0x803b0002,
  INVALID_REMOTE_ENDPOINT_OPERATION: 0x803b000f,
  PORT_ALREADY_EXISTS: 0x803b0013,
  INVALID_JSON: 0x803b001b,
  INVALID_IP: 0x803b001e,
  MANAGER_STOPPED: 0x803b0020,
  ENTITY_HAS_REFERENCES: 0x803b002c,
  ADDRESS_INVALID_OR_RESERVED: 0x803b002f,
} as const;

/** Render an HRESULT as `0x803B0013` (unsigned, upper-case hex). */
export function formatHResult(hr: number): string {
  return "0x" + (hr >>> 0).toString(16).toUpperCase().padStart(8, "0");
}

/** True when the HRESULT is a failure (negative as int32). */
export function isFailure(hr: number): boolean {
  return (hr | 0) < 0;
}

/** Options for {@link HnsError}. */
export interface HnsErrorInit {
  /** The HRESULT (signed or unsigned; stored unsigned). */
  hresult: number;
  /** The C function or client operation, e.g. `HcnCreateLoadBalancer`. */
  operation: string;
  /** What was being operated on, e.g. `lb/tcp/10.96.0.10:80` or an ID. */
  object?: string;
  /** HNS's message from the error record, if any. */
  hnsMessage?: string;
  /** The raw error record, if any. */
  errorRecord?: string;
}

/** A failed HNS call. */
export class HnsError extends Error {
  /** Unsigned HRESULT. */
  readonly hresult: number;
  /** C function or client operation. */
  readonly operation: string;
  /** Object operated on, when known. */
  readonly object?: string;
  /** HNS's message from the error record, when present. */
  readonly hnsMessage?: string;
  /** The raw error record, when present. */
  readonly errorRecord?: string;

  /** Build an error from its parts; the message is one line naming all of them. */
  constructor(init: HnsErrorInit) {
    const parts = [`${init.operation} failed with ${formatHResult(init.hresult)}`];
    const name = HRESULT_NAMES.get(init.hresult >>> 0);
    if (name) parts[0] += ` (${name})`;
    if (init.object) parts.push(`object ${init.object}`);
    if (init.hnsMessage) parts.push(`HNS says: ${init.hnsMessage}`);
    super(parts.join("; "));
    this.name = "HnsError";
    this.hresult = init.hresult >>> 0;
    this.operation = init.operation;
    this.object = init.object;
    this.hnsMessage = init.hnsMessage;
    this.errorRecord = init.errorRecord;
  }

  /** The same failure, attributed to a client operation and object. */
  withContext(operation: string, object?: string): HnsError {
    return new HnsError({
      hresult: this.hresult,
      operation,
      object: object ?? this.object,
      hnsMessage: this.hnsMessage,
      errorRecord: this.errorRecord,
    });
  }
}

const HRESULT_NAMES = new Map<number, string>([
  [HResult.E_NOTIMPL, "not implemented"],
  [HResult.E_HANDLE, "invalid handle"],
  [HResult.ERROR_NOT_SUPPORTED, "not supported"],
  [HResult.ERROR_CALL_NOT_IMPLEMENTED, "call not implemented"],
  [HResult.E_INVALIDARG, "invalid argument"],
  [HResult.ERROR_NOT_FOUND, "element not found"],
  [HResult.ERROR_ALREADY_EXISTS, "already exists"],
  [HResult.NETWORK_NOT_FOUND, "network not found"],
  [HResult.ENDPOINT_NOT_FOUND, "endpoint not found"],
  [HResult.INVALID_REMOTE_ENDPOINT_OPERATION, "invalid remote endpoint operation"],
  [HResult.PORT_ALREADY_EXISTS, "port already exists"],
  [HResult.INVALID_JSON, "invalid JSON"],
  [HResult.INVALID_IP, "invalid IP"],
  [HResult.MANAGER_STOPPED, "HNS manager stopped"],
  [HResult.ENTITY_HAS_REFERENCES, "entity has references"],
  [HResult.ADDRESS_INVALID_OR_RESERVED, "address invalid or reserved"],
]);

/** True for the "object is not there" family of HRESULTs. */
export function isNotFound(err: unknown): boolean {
  if (!(err instanceof HnsError)) return false;
  return err.hresult === HResult.ERROR_NOT_FOUND ||
    err.hresult === HResult.ENDPOINT_NOT_FOUND ||
    err.hresult === HResult.NETWORK_NOT_FOUND;
}

/** True when the error is HNS's "the specified port already exists". */
export function isPortConflict(err: unknown): boolean {
  return err instanceof HnsError && err.hresult === HResult.PORT_ALREADY_EXISTS;
}

const UNSUPPORTED = new Set<number>([
  HResult.E_NOTIMPL,
  HResult.ERROR_NOT_SUPPORTED,
  HResult.ERROR_CALL_NOT_IMPLEMENTED,
]);

/**
 * True when HNS refused a call as something this HNS cannot do: E_NOTIMPL,
 * ERROR_NOT_SUPPORTED or ERROR_CALL_NOT_IMPLEMENTED, or an error record that
 * says "not supported" / "not implemented" whatever the HRESULT.
 */
export function isUnsupported(err: unknown): boolean {
  if (!(err instanceof HnsError)) return false;
  if (UNSUPPORTED.has(err.hresult)) return true;
  return /\bnot (supported|implemented)\b/i.test(err.hnsMessage ?? "");
}
