/*
 * hnsemu.c - the exported ABI: computenetwork.dll (Hcn*), vmcompute.dll
 * (HNSCall) and ole32.dll (CoTaskMemFree) in one library, plus HnsEmu*
 * control functions for tests and benchmarks.
 *
 * Every HCN call follows the same path: sleep the configured latency (outside
 * the lock, so concurrent calls overlap as with real HNS; or inside it in the
 * serialised mode, where HNS works one call at a time), take the global
 * lock, count the call, apply an injected failure if one is due, sync with
 * the state file, run the rule, and hand out strings and handles that the
 * leak counters track until CoTaskMemFree / HcnClose*.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "json.h"
#include "persist.h"
#include "platform.h"
#include "store.h"
#include "utf16.h"
#include "util.h"

#ifdef _WIN32
#define EXPORT __declspec(dllexport)
#else
#define EXPORT __attribute__((visibility("default")))
#endif

typedef uint16_t wch;
typedef void *HANDLE_T;

/* ---- function table (counters and failure injection) ---------------------- */

enum {
  FN_ENUMERATE, FN_CREATE, FN_OPEN, FN_MODIFY, FN_QUERY, FN_DELETE, FN_CLOSE, NOPS
};
#define FN_HCN(kind, op) ((kind) * NOPS + (op))
#define FN_HNSCALL (NKINDS * NOPS)
#define FN_COUNT (FN_HNSCALL + 1)

static const char *const fn_names[FN_COUNT] = {
    "HcnEnumerateNetworks", "HcnCreateNetwork", "HcnOpenNetwork", "HcnModifyNetwork",
    "HcnQueryNetworkProperties", "HcnDeleteNetwork", "HcnCloseNetwork",
    "HcnEnumerateEndpoints", "HcnCreateEndpoint", "HcnOpenEndpoint", "HcnModifyEndpoint",
    "HcnQueryEndpointProperties", "HcnDeleteEndpoint", "HcnCloseEndpoint",
    "HcnEnumerateLoadBalancers", "HcnCreateLoadBalancer", "HcnOpenLoadBalancer",
    "HcnModifyLoadBalancer", "HcnQueryLoadBalancerProperties", "HcnDeleteLoadBalancer",
    "HcnCloseLoadBalancer", "HNSCall",
};

static int fn_lookup(const char *name) {
  for (int i = 0; i < FN_COUNT; i++)
    if (ascii_casecmp(name, fn_names[i]) == 0) return i;
  return -1;
}

typedef struct fail_rule {
  int fn;
  uint32_t remaining; /* calls until it fires; 0 = every call */
  int32_t hr;
} fail_rule;

/* ---- global state (guarded by the platform mutex) --------------------------- */

static store g_store;
static hmap g_handles; /* "%llx" of the handle value -> handle_rec */
static uint64_t g_next_handle = 0x10000;
static int64_t g_open_handles;
static hmap g_strings; /* "%p" of a returned string -> generation it was counted in */
static uintptr_t g_string_gen = 1;
static int64_t g_outstanding;
static int64_t g_invalid_frees;
static int64_t g_calls[FN_COUNT];
static int64_t g_total_hcn_calls;
static fail_rule *g_rules;
static size_t g_nrules;
static uint32_t g_major, g_minor, g_env_major = 15, g_env_minor = 5;
/* The latency model: base + slope x objects held, read without the lock. Real HNS gets slower as
 * it holds more objects, and some of its work is serialised. */
static uint32_t g_latency_us, g_env_latency_us;
static uint32_t g_slope_ns, g_env_slope_ns; /* nanoseconds per object held */
static int32_t g_serial, g_env_serial;      /* sleep under the lock: calls do not overlap */
static int64_t g_objects_held;              /* objects of every kind, as of the last call's end */
static int64_t g_kind_held[NKINDS];         /* objects per kind, as of the last call's end */

typedef struct handle_rec {
  obj_kind kind;
  char *key;
} handle_rec;

static void add_rule(int fn, uint32_t nth, int32_t hr) {
  g_rules = xrealloc(g_rules, (g_nrules + 1) * sizeof *g_rules);
  g_rules[g_nrules++] = (fail_rule){fn, nth, hr};
}

static void parse_env_failures(const char *spec) {
  char *copy = xstrdup(spec);
  for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
    char name[128];
    char hrtext[64];
    unsigned long nth;
    if (sscanf(tok, " %127[^:]:%lu:%63s", name, &nth, hrtext) != 3 || fn_lookup(name) < 0) {
      fprintf(stderr, "hnsemu: ignoring HNSEMU_FAIL entry \"%s\" (want Function:nth:HRESULT)\n",
              tok);
      continue;
    }
    add_rule(fn_lookup(name), (uint32_t)nth, (int32_t)(uint32_t)strtoll(hrtext, NULL, 0));
  }
  xfree(copy);
}

/* ---- configuration: the environment, else `<library file>.env` ------------ */

/*
 * The sidecar file holds NAME=VALUE lines (blank lines and `#` comments
 * ignored, CRLF accepted). It configures processes that get no environment,
 * such as Windows services under Wine; a variable that is set wins over it.
 */
static char *g_sidecar; /* file contents, lines NUL-terminated in place */
static size_t g_sidecar_len;

static void load_sidecar(void) {
  char path[4096];
  if (plat_module_path(path, sizeof path - 8) != 0) return;
  strcat(path, ".env");
  char err[256];
  char *data = NULL;
  size_t len = 0;
  int r = plat_read_file(path, &data, &len, err, sizeof err);
  if (r < 0) fprintf(stderr, "hnsemu: ignoring %s: %s\n", path, err);
  if (r != 0) return;
  for (size_t i = 0; i < len; i++) {
    if (data[i] == '\n' || data[i] == '\r') data[i] = 0;
  }
  g_sidecar = data;
  g_sidecar_len = len;
}

/* The knob `name`: the environment's value, else the sidecar's, else NULL. */
static const char *knob(const char *name) {
  const char *v = getenv(name);
  if (v) return v;
  size_t n = strlen(name);
  for (size_t i = 0; i < g_sidecar_len; i += strlen(g_sidecar + i) + 1) {
    const char *line = g_sidecar + i;
    while (*line == ' ' || *line == '\t') line++;
    if (strncmp(line, name, n) == 0 && line[n] == '=') return line + n + 1;
  }
  return NULL;
}

static void restore_env_latency(void) {
  __atomic_store_n(&g_latency_us, g_env_latency_us, __ATOMIC_RELAXED);
  __atomic_store_n(&g_slope_ns, g_env_slope_ns, __ATOMIC_RELAXED);
  __atomic_store_n(&g_serial, g_env_serial, __ATOMIC_RELAXED);
}

/* This call's latency under the model, in microseconds. */
static uint32_t call_latency_us(void) {
  uint64_t us = __atomic_load_n(&g_latency_us, __ATOMIC_RELAXED);
  uint64_t slope = __atomic_load_n(&g_slope_ns, __ATOMIC_RELAXED);
  if (slope) us += slope * (uint64_t)__atomic_load_n(&g_objects_held, __ATOMIC_RELAXED) / 1000;
  return us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int32_t load_state(const char *path);
static const char *g_heap_report;

/* HNSEMU_HEAP_REPORT: the heap the emulated HNS holds as the process exits, for a process whose
   memory is measured from outside (it calls no control export). */
static void write_heap_report(void) {
  FILE *f = fopen(g_heap_report, "w");
  if (!f) {
    fprintf(stderr, "hnsemu: HNSEMU_HEAP_REPORT: cannot write %s\n", g_heap_report);
    return;
  }
  fprintf(f, "{\"heapBytes\":%lld}\n", (long long)heap_bytes());
  fclose(f);
}

static void init_once(void) {
  store_init(&g_store);
  hm_init(&g_handles);
  hm_init(&g_strings);
  load_sidecar();
  const char *v = knob("HNSEMU_VERSION");
  if (v && *v) {
    unsigned a = 0, b = 0;
    if (sscanf(v, "%u.%u", &a, &b) >= 1) {
      g_env_major = a;
      g_env_minor = b;
    } else {
      fprintf(stderr, "hnsemu: ignoring HNSEMU_VERSION=\"%s\" (want Major.Minor)\n", v);
    }
  }
  g_major = g_env_major;
  g_minor = g_env_minor;
  const char *lat = knob("HNSEMU_LATENCY_US");
  if (lat && *lat) g_env_latency_us = (uint32_t)strtoul(lat, NULL, 10);
  const char *slope = knob("HNSEMU_LATENCY_SLOPE_NS");
  if (slope && *slope) g_env_slope_ns = (uint32_t)strtoul(slope, NULL, 10);
  const char *serial = knob("HNSEMU_LATENCY_SERIAL");
  if (serial && *serial) g_env_serial = strcmp(serial, "0") != 0;
  restore_env_latency();
  const char *fail = knob("HNSEMU_FAIL");
  if (fail && *fail) parse_env_failures(fail);
  persist_configure(knob("HNSEMU_STATE_FILE"));
  const char *seed = knob("HNSEMU_LOAD_STATE");
  if (seed && *seed) {
    if (persist_enabled())
      fprintf(stderr, "hnsemu: ignoring HNSEMU_LOAD_STATE: HNSEMU_STATE_FILE holds the state\n");
    else
      load_state(seed); /* says why on stderr when it cannot; HNS then starts empty */
  }
  const char *report = knob("HNSEMU_HEAP_REPORT");
  if (report && *report) {
    g_heap_report = report;
    atexit(write_heap_report);
  }
}

static void ensure_init(void) { plat_once(init_once); }

/* ---- returned strings ---------------------------------------------------- */

/* v in lower-case hex, NUL-terminated (at most 17 bytes): the key of a handle or pointer. */
static void hex_key(uint64_t v, char out[32]) {
  char tmp[16];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = 0;
}

static void ptr_key(const void *p, char out[32]) { hex_key((uint64_t)(uintptr_t)p, out); }

/* A UTF-16 copy of utf8 that the caller frees with CoTaskMemFree. Lock held. */
static wch *out_string(const char *utf8, size_t len) {
  wch *w = utf8_to_utf16(utf8, len);
  char k[32];
  ptr_key(w, k);
  hm_put(&g_strings, k, (void *)g_string_gen);
  g_outstanding++;
  return w;
}

static const char *hr_message(int32_t hr) {
  switch ((uint32_t)hr) {
    case 0x80004001u: return "Not implemented";
    case 0x80004003u: return "Invalid pointer";
    case 0x80004005u: return "Unspecified error";
    case 0x80070005u: return "Access is denied.";
    case 0x80070006u: return "The handle is invalid.";
    case 0x8007000Du: return "The data is invalid.";
    case 0x80070057u: return "The parameter is incorrect.";
    case 0x800700B7u: return "Cannot create a file when that file already exists.";
    case 0x80070490u: return "Element not found.";
    case 0x803B0001u: return "The network was not found.";
    case 0x803B0002u: return "The endpoint was not found.";
    case 0x803B000Fu: return "The operation is not valid for a remote endpoint.";
    case 0x803B0013u: return "The specified port already exists.";
    case 0x803B001Bu: return "The JSON document is invalid.";
    case 0x803B001Eu: return "The IP address is invalid.";
    case 0x803B0020u: return "The HNS manager is stopped.";
    case 0x803B002Cu: return "The object has references and cannot be deleted.";
    case 0x803B002Fu: return "The address is invalid or reserved.";
    default: return "The operation failed.";
  }
}

/* ---- the call envelope ----------------------------------------------------- */

typedef struct call {
  int fn;
  int32_t hr;
  int dirty;     /* the store changed: write the state file */
  int persisted; /* persist_begin succeeded: persist_end is due */
  char detail[512];
} call;

/* Start a call; returns 0 when it already failed (injected or state-file error). Lock taken. */
/* ---- what the reported version supports (hcsshim's hcn version ranges) ---- */

static int version_at_least(uint32_t major, uint32_t minor) {
  return g_major > major || (g_major == major && g_minor >= minor);
}

/* V2ApiSupport: 9.2+. Version 0.0 (unreadable) keeps the API. */
static int v2_api_supported(void) {
  return (g_major == 0 && g_minor == 0) || version_at_least(9, 2);
}

/* ModifyLoadbalancerVersion: 15.5-15.x and 16.0+ (15.4 has none). */
static int modify_lb_supported(void) {
  return (g_major == 15 && g_minor >= 5) || g_major >= 16;
}

static int call_begin(call *c, int fn, int uses_store) {
  ensure_init();
  memset(c, 0, sizeof *c);
  c->fn = fn;
  int serial = __atomic_load_n(&g_serial, __ATOMIC_RELAXED);
  if (!serial) plat_sleep_us(call_latency_us());
  plat_mutex_lock();
  if (serial) plat_sleep_us(call_latency_us());
  g_calls[fn]++;
  if (fn != FN_HNSCALL) g_total_hcn_calls++;
  for (size_t i = 0; i < g_nrules; i++) {
    fail_rule *r = &g_rules[i];
    if (r->fn != fn) continue;
    if (r->remaining == 0) {
      if (!c->hr) c->hr = r->hr;
    } else if (--r->remaining == 0) {
      if (!c->hr) c->hr = r->hr;
      g_rules[i--] = g_rules[--g_nrules];
    }
  }
  if (c->hr) return 0;
  /* Close still releases a handle made before the version changed. */
  if (fn != FN_HNSCALL && fn % NOPS != FN_CLOSE && !v2_api_supported()) {
    snprintf(c->detail, sizeof c->detail, "the HCN (v2) API needs HNS 9.2 or later");
    c->hr = HR_E_NOTIMPL;
    return 0;
  }
  if (uses_store && persist_enabled()) {
    c->hr = persist_begin(&g_store, c->detail, sizeof c->detail);
    if (c->hr) return 0;
    c->persisted = 1;
  }
  return 1;
}

/* Write the state back if needed. After this, c->hr is final; outputs may be handed out. */
static void call_commit(call *c) {
  if (!c->persisted) return;
  c->persisted = 0;
  int32_t hr = persist_end(&g_store, c->hr == HR_OK && c->dirty, c->detail, sizeof c->detail);
  if (c->hr == HR_OK) c->hr = hr;
}

/* Finish: error record on failure, unlock, return the HRESULT. */
static int32_t call_end(call *c, wch **error_record) {
  call_commit(c);
  int64_t held = 0;
  for (int k = 0; k < NKINDS; k++) {
    held += (int64_t)g_store.count[k];
    __atomic_store_n(&g_kind_held[k], (int64_t)g_store.count[k], __ATOMIC_RELAXED);
  }
  __atomic_store_n(&g_objects_held, held, __ATOMIC_RELAXED);
  if (c->hr < 0 && error_record) {
    sbuf b;
    sb_init(&b);
    sb_puts(&b, "{\"Success\":false,\"Error\":");
    sbuf msg;
    sb_init(&msg);
    sb_puts(&msg, hr_message(c->hr));
    if (c->detail[0]) sb_printf(&msg, " (%s)", c->detail);
    json_write_str(&b, msg.p, msg.n);
    sb_free(&msg);
    sb_printf(&b, ",\"ErrorCode\":%lu}", (unsigned long)(uint32_t)c->hr);
    *error_record = out_string(b.p, b.n);
    sb_free(&b);
  }
  plat_mutex_unlock();
  return c->hr;
}

/* Parse an ABI string as a JSON document; sets c->hr on failure. */
static jval *parse_arg(call *c, const wch *text, int allow_empty) {
  if (!text) {
    c->hr = allow_empty ? HR_OK : HR_E_INVALIDARG;
    return NULL;
  }
  size_t len;
  char *utf8 = utf16_to_utf8(text, &len);
  if (len == 0 && allow_empty) {
    xfree(utf8);
    return NULL;
  }
  char err[200];
  jval *v = json_parse(utf8, len, err, sizeof err);
  xfree(utf8);
  if (!v || v->t != J_OBJ) {
    if (v) snprintf(err, sizeof err, "not a JSON object");
    json_free(v);
    snprintf(c->detail, sizeof c->detail, "%s", err);
    c->hr = HR_INVALID_JSON;
    return NULL;
  }
  return v;
}

/* The GUID's canonical text, upper case: Data1..3 little-endian, Data4 in order. */
static void guid_text(const uint8_t *g, char out[37]) {
  static const int order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
  static const char digits[] = "0123456789ABCDEF";
  char *o = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
    *o++ = digits[g[order[i]] >> 4];
    *o++ = digits[g[order[i]] & 15];
  }
  *o = 0;
}

static int guid_is_zero(const uint8_t *g) {
  for (int i = 0; i < 16; i++)
    if (g[i]) return 0;
  return 1;
}

static HANDLE_T new_handle(obj_kind k, const char *key) {
  uint64_t h = g_next_handle;
  g_next_handle += 8;
  handle_rec *r = xmalloc(sizeof *r);
  r->kind = k;
  r->key = xstrdup(key);
  char hk[32];
  hex_key(h, hk);
  hm_put(&g_handles, hk, r);
  g_open_handles++;
  return (HANDLE_T)(uintptr_t)h;
}

static handle_rec *find_handle(HANDLE_T h, obj_kind k) {
  char hk[32];
  hex_key((uint64_t)(uintptr_t)h, hk);
  handle_rec *r = hm_get(&g_handles, hk);
  return r && r->kind == k ? r : NULL;
}

static void drop_handles(void) {
  for (size_t i = 0; i < g_handles.nbuckets; i++)
    for (hentry *e = g_handles.buckets[i]; e; e = e->next) {
      handle_rec *r = e->val;
      xfree(r->key);
      xfree(r);
    }
  hm_clear(&g_handles);
  g_open_handles = 0;
}

/* ---- generic HCN operations (one body per operation, three kinds) ------------ */

static int32_t do_enumerate(obj_kind k, const wch *query, wch **ids, wch **err) {
  call c;
  if (ids) *ids = NULL;
  if (err) *err = NULL;
  if (!call_begin(&c, FN_HCN(k, FN_ENUMERATE), 1)) return call_end(&c, err);
  if (!ids) {
    c.hr = HR_E_POINTER;
    return call_end(&c, err);
  }
  jval *q = parse_arg(&c, query, 1);
  jval *filter = NULL;
  if (c.hr == HR_OK && q) {
    const jval *f = json_get(q, "Filter");
    if (f && f->t == J_STR && f->slen > 0) {
      char perr[200];
      filter = json_parse(f->s, f->slen, perr, sizeof perr);
      if (!filter || filter->t != J_OBJ) {
        snprintf(c.detail, sizeof c.detail, "Filter: %s", filter ? "not a JSON object" : perr);
        c.hr = HR_INVALID_JSON;
      }
    } else if (f && f->t == J_OBJ) {
      filter = json_clone(f);
    } else if (f && f->t != J_NULL && f->t != J_STR) {
      snprintf(c.detail, sizeof c.detail, "Filter must be a string");
      c.hr = HR_INVALID_JSON;
    }
  }
  sbuf out;
  sb_init(&out);
  if (c.hr == HR_OK) store_enumerate(&g_store, k, filter, &out);
  json_free(q);
  json_free(filter);
  call_commit(&c);
  if (c.hr == HR_OK) *ids = out_string(out.p, out.n);
  sb_free(&out);
  return call_end(&c, err);
}

static int32_t do_create(obj_kind k, HANDLE_T network, const void *id, const wch *settings,
                         HANDLE_T *out, wch **err) {
  call c;
  if (out) *out = NULL;
  if (err) *err = NULL;
  if (!call_begin(&c, FN_HCN(k, FN_CREATE), 1)) return call_end(&c, err);
  if (!out) {
    c.hr = HR_E_POINTER;
    return call_end(&c, err);
  }
  if (!id) {
    c.hr = HR_E_INVALIDARG;
    return call_end(&c, err);
  }
  const char *net_key = NULL;
  if (k == K_ENDPOINT) {
    handle_rec *nh = find_handle(network, K_NETWORK);
    if (!nh) {
      c.hr = HR_E_HANDLE;
      return call_end(&c, err);
    }
    net_key = nh->key;
  }
  jval *doc = parse_arg(&c, settings, 0);
  if (!doc) return call_end(&c, err);
  char idtext[37];
  guid_text(id, idtext);
  obj *o = NULL;
  c.hr = store_create(&g_store, k, guid_is_zero(id) ? NULL : idtext, net_key, doc, &o);
  c.dirty = c.hr == HR_OK;
  char key[64] = "";
  if (o) snprintf(key, sizeof key, "%s", o->key);
  call_commit(&c);
  if (c.hr == HR_OK) *out = new_handle(k, key);
  return call_end(&c, err);
}

static int32_t do_open(obj_kind k, const void *id, HANDLE_T *out, wch **err) {
  call c;
  if (out) *out = NULL;
  if (err) *err = NULL;
  if (!call_begin(&c, FN_HCN(k, FN_OPEN), 1)) return call_end(&c, err);
  if (!out || !id) {
    c.hr = !out ? HR_E_POINTER : HR_E_INVALIDARG;
    return call_end(&c, err);
  }
  char idtext[37];
  guid_text(id, idtext);
  obj *o = store_find(&g_store, k, idtext);
  if (!o) c.hr = store_not_found(k);
  call_commit(&c);
  if (c.hr == HR_OK) *out = new_handle(k, idtext);
  return call_end(&c, err);
}

static int32_t do_modify(obj_kind k, HANDLE_T h, const wch *settings, wch **err) {
  call c;
  if (err) *err = NULL;
  if (!call_begin(&c, FN_HCN(k, FN_MODIFY), 1)) return call_end(&c, err);
  if (k == K_LB && !modify_lb_supported()) {
    snprintf(c.detail, sizeof c.detail, "in-place load balancer update needs HNS 15.5-15.x or 16.0+");
    c.hr = HR_E_NOTIMPL;
    return call_end(&c, err);
  }
  handle_rec *r = find_handle(h, k);
  if (!r) {
    c.hr = HR_E_HANDLE;
    return call_end(&c, err);
  }
  obj *o = store_find(&g_store, k, r->key);
  if (!o) {
    c.hr = store_not_found(k);
    return call_end(&c, err);
  }
  jval *doc = parse_arg(&c, settings, 0);
  if (!doc) return call_end(&c, err);
  c.hr = store_modify(&g_store, o, doc);
  c.dirty = c.hr == HR_OK;
  return call_end(&c, err);
}

static int32_t do_query(obj_kind k, HANDLE_T h, const wch *query, wch **props, wch **err) {
  call c;
  if (props) *props = NULL;
  if (err) *err = NULL;
  if (!call_begin(&c, FN_HCN(k, FN_QUERY), 1)) return call_end(&c, err);
  if (!props) {
    c.hr = HR_E_POINTER;
    return call_end(&c, err);
  }
  handle_rec *r = find_handle(h, k);
  if (!r) {
    c.hr = HR_E_HANDLE;
    return call_end(&c, err);
  }
  json_free(parse_arg(&c, query, 1)); /* validated, otherwise unused */
  if (c.hr != HR_OK) return call_end(&c, err);
  obj *o = store_find(&g_store, k, r->key);
  if (!o) {
    c.hr = store_not_found(k);
    return call_end(&c, err);
  }
  call_commit(&c);
  if (c.hr == HR_OK) *props = out_string(o->text, o->text_len);
  return call_end(&c, err);
}

static int32_t do_delete(obj_kind k, const void *id, wch **err) {
  call c;
  if (err) *err = NULL;
  if (!call_begin(&c, FN_HCN(k, FN_DELETE), 1)) return call_end(&c, err);
  if (!id) {
    c.hr = HR_E_INVALIDARG;
    return call_end(&c, err);
  }
  char idtext[37];
  guid_text(id, idtext);
  c.hr = store_delete(&g_store, k, idtext);
  c.dirty = c.hr == HR_OK;
  return call_end(&c, err);
}

static int32_t do_close(obj_kind k, HANDLE_T h) {
  call c;
  if (!call_begin(&c, FN_HCN(k, FN_CLOSE), 0)) return call_end(&c, NULL);
  handle_rec *r = find_handle(h, k);
  if (!r) {
    c.hr = HR_E_HANDLE;
    return call_end(&c, NULL);
  }
  char hk[32];
  hex_key((uint64_t)(uintptr_t)h, hk);
  hm_del(&g_handles, hk);
  xfree(r->key);
  xfree(r);
  g_open_handles--;
  return call_end(&c, NULL);
}

/* ---- computenetwork.dll ---------------------------------------------------- */

EXPORT int32_t HcnEnumerateNetworks(const wch *query, wch **networks, wch **err) {
  return do_enumerate(K_NETWORK, query, networks, err);
}
EXPORT int32_t HcnCreateNetwork(const void *id, const wch *settings, HANDLE_T *network,
                                wch **err) {
  return do_create(K_NETWORK, NULL, id, settings, network, err);
}
EXPORT int32_t HcnOpenNetwork(const void *id, HANDLE_T *network, wch **err) {
  return do_open(K_NETWORK, id, network, err);
}
EXPORT int32_t HcnModifyNetwork(HANDLE_T network, const wch *settings, wch **err) {
  return do_modify(K_NETWORK, network, settings, err);
}
EXPORT int32_t HcnQueryNetworkProperties(HANDLE_T network, const wch *query, wch **props,
                                         wch **err) {
  return do_query(K_NETWORK, network, query, props, err);
}
EXPORT int32_t HcnDeleteNetwork(const void *id, wch **err) { return do_delete(K_NETWORK, id, err); }
EXPORT int32_t HcnCloseNetwork(HANDLE_T network) { return do_close(K_NETWORK, network); }

EXPORT int32_t HcnEnumerateEndpoints(const wch *query, wch **endpoints, wch **err) {
  return do_enumerate(K_ENDPOINT, query, endpoints, err);
}
EXPORT int32_t HcnCreateEndpoint(HANDLE_T network, const void *id, const wch *settings,
                                 HANDLE_T *endpoint, wch **err) {
  return do_create(K_ENDPOINT, network, id, settings, endpoint, err);
}
EXPORT int32_t HcnOpenEndpoint(const void *id, HANDLE_T *endpoint, wch **err) {
  return do_open(K_ENDPOINT, id, endpoint, err);
}
EXPORT int32_t HcnModifyEndpoint(HANDLE_T endpoint, const wch *settings, wch **err) {
  return do_modify(K_ENDPOINT, endpoint, settings, err);
}
EXPORT int32_t HcnQueryEndpointProperties(HANDLE_T endpoint, const wch *query, wch **props,
                                          wch **err) {
  return do_query(K_ENDPOINT, endpoint, query, props, err);
}
EXPORT int32_t HcnDeleteEndpoint(const void *id, wch **err) {
  return do_delete(K_ENDPOINT, id, err);
}
EXPORT int32_t HcnCloseEndpoint(HANDLE_T endpoint) { return do_close(K_ENDPOINT, endpoint); }

EXPORT int32_t HcnEnumerateLoadBalancers(const wch *query, wch **lbs, wch **err) {
  return do_enumerate(K_LB, query, lbs, err);
}
EXPORT int32_t HcnCreateLoadBalancer(const void *id, const wch *settings, HANDLE_T *lb,
                                     wch **err) {
  return do_create(K_LB, NULL, id, settings, lb, err);
}
EXPORT int32_t HcnOpenLoadBalancer(const void *id, HANDLE_T *lb, wch **err) {
  return do_open(K_LB, id, lb, err);
}
EXPORT int32_t HcnModifyLoadBalancer(HANDLE_T lb, const wch *settings, wch **err) {
  return do_modify(K_LB, lb, settings, err);
}
EXPORT int32_t HcnQueryLoadBalancerProperties(HANDLE_T lb, const wch *query, wch **props,
                                              wch **err) {
  return do_query(K_LB, lb, query, props, err);
}
EXPORT int32_t HcnDeleteLoadBalancer(const void *id, wch **err) { return do_delete(K_LB, id, err); }
EXPORT int32_t HcnCloseLoadBalancer(HANDLE_T lb) { return do_close(K_LB, lb); }

/* ---- vmcompute.dll ----------------------------------------------------------- */

EXPORT int32_t HNSCall(const wch *method, const wch *path, const wch *request, wch **response) {
  (void)request;
  call c;
  if (response) *response = NULL;
  int ok = call_begin(&c, FN_HNSCALL, 0);
  if (!response) {
    plat_mutex_unlock();
    return HR_E_POINTER;
  }
  char *m = method ? utf16_to_utf8(method, NULL) : xstrdup("");
  char *p = path ? utf16_to_utf8(path, NULL) : xstrdup("");
  sbuf out;
  sb_init(&out);
  if (ok) {
    if (ascii_casecmp(m, "GET") != 0 || ascii_casecmp(p, "/globals/version") != 0) {
      c.hr = HR_E_NOTIMPL;
    } else if (g_major == 0 && g_minor == 0) {
      c.hr = HR_NOT_FOUND; /* an HNS too old to report its version */
    } else {
      sb_printf(&out, "{\"Success\":true,\"Error\":\"\",\"Output\":{\"Major\":%lu,\"Minor\":%lu}}",
                (unsigned long)g_major, (unsigned long)g_minor);
    }
  }
  if (c.hr < 0) {
    sb_puts(&out, "{\"Success\":false,\"Error\":");
    json_write_str(&out, hr_message(c.hr), strlen(hr_message(c.hr)));
    sb_puts(&out, "}");
  }
  *response = out_string(out.p, out.n);
  sb_free(&out);
  xfree(m);
  xfree(p);
  return call_end(&c, NULL);
}

/* ---- ole32.dll ------------------------------------------------------------- */

EXPORT void CoTaskMemFree(void *p) {
  if (!p) return;
  ensure_init();
  plat_mutex_lock();
  char k[32];
  ptr_key(p, k);
  uintptr_t gen = (uintptr_t)hm_get(&g_strings, k);
  if (gen) {
    hm_del(&g_strings, k);
    if (gen == g_string_gen) g_outstanding--;
    xfree(p);
  } else {
    /* Not ours, or already freed: count it instead of corrupting the heap. */
    g_invalid_frees++;
  }
  plat_mutex_unlock();
}

/* ---- control exports --------------------------------------------------------- */

EXPORT void HnsEmuReset(void) {
  ensure_init();
  plat_mutex_lock();
  store_clear(&g_store);
  drop_handles();
  memset(g_calls, 0, sizeof g_calls);
  g_total_hcn_calls = 0;
  xfree(g_rules);
  g_rules = NULL;
  g_nrules = 0;
  g_major = g_env_major;
  g_minor = g_env_minor;
  restore_env_latency();
  __atomic_store_n(&g_objects_held, 0, __ATOMIC_RELAXED);
  for (int k = 0; k < NKINDS; k++) __atomic_store_n(&g_kind_held[k], 0, __ATOMIC_RELAXED);
  /* Strings handed out before the reset are still freeable but no longer counted. */
  g_string_gen++;
  g_outstanding = 0;
  g_invalid_frees = 0;
  if (persist_enabled()) {
    char detail[512];
    if (persist_begin(&g_store, detail, sizeof detail) == HR_OK) {
      store_clear(&g_store);
      persist_end(&g_store, 1, detail, sizeof detail);
    }
  }
  plat_mutex_unlock();
}

/* Write every object to path (the state file's format); 0 ok, -1 when the file cannot be written. */
EXPORT int32_t HnsEmuSaveState(const char *path) {
  ensure_init();
  plat_mutex_lock();
  sbuf b;
  sb_init(&b);
  store_dump(&g_store, &b);
  char err[400];
  int rc = plat_write_atomic(path, b.p, b.n, err, sizeof err);
  sb_free(&b);
  plat_mutex_unlock();
  if (rc != 0) fprintf(stderr, "hnsemu: HnsEmuSaveState: %s\n", err);
  return rc == 0 ? 0 : -1;
}

/*
 * Replace every object with those saved in path by HnsEmuSaveState (handles
 * are dropped); 0 ok, -1 when the file cannot be read or is not a saved state.
 */
static int32_t load_state(const char *path) {
  char *data = NULL;
  size_t len = 0;
  char err[400] = "no such file";
  if (plat_read_file(path, &data, &len, err, sizeof err) != 0) {
    fprintf(stderr, "hnsemu: HnsEmuLoadState %s: %s\n", path, err);
    return -1;
  }
  jval *doc = json_parse(data, len, err, sizeof err);
  xfree(data);
  if (!doc) {
    fprintf(stderr, "hnsemu: HnsEmuLoadState %s: invalid JSON: %s\n", path, err);
    return -1;
  }
  plat_mutex_lock();
  drop_handles();
  int changed = 0;
  int rc = store_load(&g_store, doc, &changed, err, sizeof err);
  int64_t held = 0;
  for (int k = 0; k < NKINDS; k++) {
    held += (int64_t)g_store.count[k];
    __atomic_store_n(&g_kind_held[k], (int64_t)g_store.count[k], __ATOMIC_RELAXED);
  }
  __atomic_store_n(&g_objects_held, held, __ATOMIC_RELAXED);
  plat_mutex_unlock();
  json_free(doc);
  if (rc != 0) fprintf(stderr, "hnsemu: HnsEmuLoadState %s: %s\n", path, err);
  return rc == 0 ? 0 : -1;
}

EXPORT int32_t HnsEmuLoadState(const char *path) {
  ensure_init();
  return load_state(path);
}

EXPORT void HnsEmuSetVersion(uint32_t major, uint32_t minor) {
  ensure_init();
  plat_mutex_lock();
  g_major = major;
  g_minor = minor;
  plat_mutex_unlock();
}

EXPORT void HnsEmuSetLatencyMicros(uint32_t us) {
  ensure_init();
  __atomic_store_n(&g_latency_us, us, __ATOMIC_RELAXED);
}

EXPORT void HnsEmuSetLatencyModel(uint32_t base_us, uint32_t slope_ns, int32_t serial) {
  ensure_init();
  __atomic_store_n(&g_latency_us, base_us, __ATOMIC_RELAXED);
  __atomic_store_n(&g_slope_ns, slope_ns, __ATOMIC_RELAXED);
  __atomic_store_n(&g_serial, serial != 0, __ATOMIC_RELAXED);
}

EXPORT int32_t HnsEmuFailCall(const char *fn, uint32_t nth, int32_t hresult) {
  ensure_init();
  int id = fn ? fn_lookup(fn) : -1;
  if (id < 0) return -1;
  plat_mutex_lock();
  add_rule(id, nth, hresult);
  plat_mutex_unlock();
  return 0;
}

EXPORT void HnsEmuClearFailures(void) {
  ensure_init();
  plat_mutex_lock();
  xfree(g_rules);
  g_rules = NULL;
  g_nrules = 0;
  plat_mutex_unlock();
}

static int64_t read_counter(const int64_t *c) {
  ensure_init();
  plat_mutex_lock();
  int64_t v = *c;
  plat_mutex_unlock();
  return v;
}

EXPORT int64_t HnsEmuOpenHandles(void) { return read_counter(&g_open_handles); }

EXPORT int64_t HnsEmuOutstandingStrings(void) { return read_counter(&g_outstanding); }

EXPORT int64_t HnsEmuInvalidFrees(void) { return read_counter(&g_invalid_frees); }

EXPORT int64_t HnsEmuCallCount(const char *fn) {
  if (!fn) return read_counter(&g_total_hcn_calls);
  int id = fn_lookup(fn);
  return id < 0 ? -1 : read_counter(&g_calls[id]);
}

EXPORT uint32_t HnsEmuNextLatencyMicros(void) {
  ensure_init();
  return call_latency_us();
}

EXPORT int64_t HnsEmuHeapBytes(void) {
  ensure_init();
  return heap_bytes();
}

EXPORT int64_t HnsEmuHeapInUse(void) {
  ensure_init();
  return heap_in_use();
}

EXPORT int64_t HnsEmuReserveHeap(int64_t bytes) {
  ensure_init();
  return bytes > 0 ? heap_reserve((size_t)bytes) : 0;
}

EXPORT int64_t HnsEmuObjectCount(const char *kind) {
  static const char *const names[NKINDS] = {"Network", "Endpoint", "LoadBalancer"};
  int k;
  for (k = 0; k < NKINDS; k++)
    if (kind && ascii_casecmp(kind, names[k]) == 0) break;
  if (k == NKINDS) return -1;
  ensure_init();
  /* Without a state file only calls change the store, and each publishes its counts as it
     ends: a benchmark polling for convergence never waits for the lock of a call. */
  if (!persist_enabled()) return __atomic_load_n(&g_kind_held[k], __ATOMIC_RELAXED);
  plat_mutex_lock();
  int64_t n = -1;
  char detail[512];
  if (persist_begin(&g_store, detail, sizeof detail) == HR_OK) {
    n = (int64_t)g_store.count[k];
    persist_end(&g_store, 0, detail, sizeof detail);
  }
  plat_mutex_unlock();
  return n;
}
