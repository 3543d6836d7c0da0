/**
 * The Service Control Manager's process-side API from advapi32.dll, bound with Deno FFI:
 * `StartServiceCtrlDispatcherW`, `RegisterServiceCtrlHandlerExW` and `SetServiceStatus`.
 *
 * The protocol (what to report when) lives in `scm.ts`; this module only marshals.
 * The dispatcher call blocks its thread for the life of the service, so it runs
 * `nonblocking` (on a worker thread), and ServiceMain and HandlerEx are thread-safe
 * callbacks: the SCM calls them from its own threads and each waits for the JS thread.
 *
 * @module
 */
import { encodeWide, readWide } from "../hns/wstr.ts";

/** `dwServiceType` of a service that runs alone in its process. */
export const SERVICE_WIN32_OWN_PROCESS = 0x10;

/** `dwCurrentState` values. */
export const ServiceState = {
  STOPPED: 1,
  START_PENDING: 2,
  STOP_PENDING: 3,
  RUNNING: 4,
} as const;

/** `dwControlsAccepted` bits. */
export const ServiceAccept = {
  STOP: 0x1,
  SHUTDOWN: 0x4,
  PRESHUTDOWN: 0x100,
} as const;

/** Control codes delivered to HandlerEx. */
export const ServiceControl = {
  STOP: 1,
  INTERROGATE: 4,
  SHUTDOWN: 5,
  PRESHUTDOWN: 0xf,
} as const;

/** Win32 error codes this protocol uses. */
export const Win32Error = {
  NO_ERROR: 0,
  ERROR_CALL_NOT_IMPLEMENTED: 120,
  ERROR_TIMEOUT: 1460,
  ERROR_SERVICE_SPECIFIC_ERROR: 1066,
  ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: 1063,
} as const;

/** The fields of a Win32 `SERVICE_STATUS` (the service type is always own-process). */
export interface ServiceStatus {
  /** One of {@link ServiceState}. */
  state: number;
  /** Bits of {@link ServiceAccept}; 0 while pending. */
  controlsAccepted: number;
  /** 0, or a Win32 error; ERROR_SERVICE_SPECIFIC_ERROR to use `serviceSpecificExitCode`. */
  win32ExitCode: number;
  /** The service's own exit code when `win32ExitCode` is ERROR_SERVICE_SPECIFIC_ERROR. */
  serviceSpecificExitCode: number;
  /** Progress counter during a pending state; 0 otherwise. */
  checkPoint: number;
  /** Milliseconds the SCM should wait for the next progress report. */
  waitHint: number;
}

/** What the SCM calls back into: the service's entry point and its control handler. */
export interface ServiceHandlers {
  /**
   * ServiceMain, after the control handler is registered. `args` are the start parameters.
   * `error` is set when the handler could not be registered (the service cannot report).
   */
  serviceMain(args: string[], error?: Error): void;
  /** HandlerEx: returns a Win32 error code (NO_ERROR when the control was handled). */
  control(code: number, eventType: number): number;
}

/**
 * The process side of the SCM protocol. The real one is {@link openAdvapi32};
 * tests drive `scm.ts` through a double.
 */
export interface ScmBackend {
  /**
   * Connects to the SCM and dispatches until every service in the process reported
   * STOPPED. Resolves true then, or false when the process was not started by the SCM.
   */
  runDispatcher(name: string, handlers: ServiceHandlers): Promise<boolean>;
  /** Reports a status synchronously. Never call it with STOPPED from inside a control. */
  setStatus(status: ServiceStatus): boolean;
  /** Reports a status from a worker thread: the safe way to report STOPPED. */
  setStatusAsync(status: ServiceStatus): Promise<boolean>;
}

const SYMBOLS = {
  StartServiceCtrlDispatcherW: { parameters: ["buffer"], result: "i32", nonblocking: true },
  RegisterServiceCtrlHandlerExW: {
    parameters: ["buffer", "function", "pointer"],
    result: "pointer",
  },
  SetServiceStatus: { parameters: ["pointer", "buffer"], result: "i32" },
  SetServiceStatusAsync: {
    name: "SetServiceStatus",
    parameters: ["pointer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

const SERVICE_MAIN = { parameters: ["u32", "pointer"], result: "void" } as const;
const HANDLER_EX = { parameters: ["u32", "u32", "pointer", "pointer"], result: "u32" } as const;

/** Encodes a SERVICE_STATUS (seven DWORDs, 28 bytes). */
export function encodeServiceStatus(status: ServiceStatus): Uint32Array<ArrayBuffer> {
  return new Uint32Array([
    SERVICE_WIN32_OWN_PROCESS,
    status.state,
    status.controlsAccepted,
    status.win32ExitCode,
    status.serviceSpecificExitCode,
    status.checkPoint,
    status.waitHint,
  ]);
}

/** Reads ServiceMain's `argv` (argc pointers to UTF-16 strings). */
function readArgv(argc: number, argv: Deno.PointerValue): string[] {
  if (argv === null || argc === 0) return [];
  const view = new Deno.UnsafePointerView(argv);
  const args: string[] = [];
  for (let i = 0; i < argc; i++) {
    const p = view.getPointer(i * 8);
    args.push(p === null ? "" : readWide(p));
  }
  return args;
}

/**
 * Binds advapi32.dll. Windows only. The returned backend serves one service for the life
 * of the process: its callbacks are never closed (the SCM may call them until the
 * process exits), only unref'd once the dispatcher returns.
 */
export function openAdvapi32(): ScmBackend {
  const lib = Deno.dlopen("advapi32.dll", SYMBOLS);
  let handle: Deno.PointerValue = null;
  // Buffers the SCM reads after the call that passed them returned: keep them reachable.
  const keep: unknown[] = [];

  return {
    async runDispatcher(name, handlers) {
      const nameBuf = encodeWide(name);
      const handlerCb = Deno.UnsafeCallback.threadSafe(
        HANDLER_EX,
        (control: number, eventType: number) => handlers.control(control, eventType),
      );
      const mainCb = Deno.UnsafeCallback.threadSafe(
        SERVICE_MAIN,
        (argc: number, argv: Deno.PointerValue) => {
          handle = lib.symbols.RegisterServiceCtrlHandlerExW(nameBuf, handlerCb.pointer, null);
          const error = handle === null
            ? new Error(`RegisterServiceCtrlHandlerExW(${name}) failed`)
            : undefined;
          handlers.serviceMain(readArgv(argc, argv), error);
        },
      );
      // SERVICE_TABLE_ENTRYW[2]: { name, ServiceMain }, then the terminating { NULL, NULL }.
      const table = new BigUint64Array(4);
      table[0] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(nameBuf)));
      table[1] = BigInt(Deno.UnsafePointer.value(mainCb.pointer));
      keep.push(nameBuf, table, handlerCb, mainCb);
      try {
        return (await lib.symbols.StartServiceCtrlDispatcherW(table)) !== 0;
      } finally {
        handlerCb.unref();
        mainCb.unref();
      }
    },
    setStatus(status) {
      if (handle === null) return false;
      return lib.symbols.SetServiceStatus(handle, encodeServiceStatus(status)) !== 0;
    },
    async setStatusAsync(status) {
      if (handle === null) return false;
      const buf = encodeServiceStatus(status);
      keep.push(buf);
      try {
        return (await lib.symbols.SetServiceStatusAsync(handle, buf)) !== 0;
      } finally {
        keep.splice(keep.indexOf(buf), 1);
      }
    },
  };
}
