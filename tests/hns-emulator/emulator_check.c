/*
 * emulator_check.c - exercises the HNS emulator library through its exported
 * ABI only: the library is loaded at run time (dlopen / LoadLibrary) and every
 * call goes through the same symbols the agent binds.
 *
 *   emulator_check LIB rules      every HNS rule, in one process (no state file)
 *   emulator_check LIB env        the HNSEMU_* environment knobs (set by the caller)
 *   emulator_check LIB heap       HnsEmuHeapInUse's unit (the bytes asked for) and, with
 *                                 glibc, that the library's blocks are off malloc (mallinfo2
 *                                 does not move while it creates 40,000 objects) on pages
 *                                 HnsEmuHeapBytes counts and that are resident; run with
 *                                 GLIBC_TUNABLES=glibc.malloc.tcache_count=0 (freed blocks
 *                                 then leave malloc's in-use count at once)
 *   emulator_check LIB reserve    HnsEmuReserveHeap: on Linux, what the library holds does not
 *                                 move while its blocks fit the reserve (large ones and a
 *                                 reset included), and grows past it; on Windows, nothing
 *                                 is reserved

 *   emulator_check LIB ctl CMD... drive a state-file HNS from another process;
 *                                 prints one JSON line per command
 *   emulator_check LIB cost [ROUNDS]  the library's own CPU time per call at a cold start's
 *                                 scale (a measurement for bench/analysis.md, not a check)
 *   --env NAME=VALUE (before the mode, repeatable) sets a knob in-process, for
 *   runners that pass no environment (Wine).
 *
 * ctl commands: enum KIND QUERY | get KIND ID | create-net JSON |
 *   create-ep NETID JSON | create-lb JSON | modify-lb ID JSON | delete KIND ID |
 *   create-eps NETID PREFIX N | count KIND | leaks
 * (KIND is network, endpoint or lb; IDs are GUID text; "-" as QUERY means NULL.)
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>
#endif

typedef uint16_t wch;
typedef void *HND;
typedef struct {
  uint32_t d1;
  uint16_t d2, d3;
  uint8_t d4[8];
} guid_t;

/* ---- the library's exports ------------------------------------------------------ */

typedef int32_t (*enum_fn)(const wch *, wch **, wch **);
typedef int32_t (*create_fn)(const guid_t *, const wch *, HND *, wch **);
typedef int32_t (*create_ep_fn)(HND, const guid_t *, const wch *, HND *, wch **);
typedef int32_t (*open_fn)(const guid_t *, HND *, wch **);
typedef int32_t (*modify_fn)(HND, const wch *, wch **);
typedef int32_t (*query_fn)(HND, const wch *, wch **, wch **);
typedef int32_t (*delete_fn)(const guid_t *, wch **);
typedef int32_t (*close_fn)(HND);

static struct {
  enum_fn enumerate[3];
  create_fn create_net, create_lb;
  create_ep_fn create_ep;
  open_fn open[3];
  modify_fn modify[3];
  query_fn query[3];
  delete_fn del[3];
  close_fn close[3];
  int32_t (*hns_call)(const wch *, const wch *, const wch *, wch **);
  void (*free_)(void *);
  void (*reset)(void);
  void (*set_version)(uint32_t, uint32_t);
  void (*set_latency)(uint32_t);
  int32_t (*fail_call)(const char *, uint32_t, int32_t);
  void (*clear_failures)(void);
  int64_t (*open_handles)(void);
  int64_t (*outstanding)(void);
  int64_t (*invalid_frees)(void);
  int64_t (*call_count)(const char *);
  int64_t (*object_count)(const char *);
  int64_t (*heap_bytes)(void);
  int64_t (*heap_in_use)(void);
  int64_t (*reserve_heap)(int64_t);
} L;

enum { NET = 0, EP = 1, LB = 2 };
static const char *const kind_names[3] = {"Network", "Endpoint", "LoadBalancer"};
static const char *const kind_plural[3] = {"Networks", "Endpoints", "LoadBalancers"};

static void *load_symbol(void *lib, const char *name) {
#ifdef _WIN32
  void *p = (void *)GetProcAddress((HMODULE)lib, name);
#else
  void *p = dlsym(lib, name);
#endif
  if (!p) {
    fprintf(stderr, "emulator_check: the library does not export %s\n", name);
    exit(2);
  }
  return p;
}

static void load_library(const char *path) {
#ifdef _WIN32
  void *lib = (void *)LoadLibraryA(path);
#else
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
#endif
  if (!lib) {
    fprintf(stderr, "emulator_check: cannot load %s\n", path);
    exit(2);
  }
  char name[64];
  for (int k = 0; k < 3; k++) {
    snprintf(name, sizeof name, "HcnEnumerate%s", kind_plural[k]);
    *(void **)&L.enumerate[k] = load_symbol(lib, name);
    snprintf(name, sizeof name, "HcnOpen%s", kind_names[k]);
    *(void **)&L.open[k] = load_symbol(lib, name);
    snprintf(name, sizeof name, "HcnModify%s", kind_names[k]);
    *(void **)&L.modify[k] = load_symbol(lib, name);
    snprintf(name, sizeof name, "HcnQuery%sProperties", kind_names[k]);
    *(void **)&L.query[k] = load_symbol(lib, name);
    snprintf(name, sizeof name, "HcnDelete%s", kind_names[k]);
    *(void **)&L.del[k] = load_symbol(lib, name);
    snprintf(name, sizeof name, "HcnClose%s", kind_names[k]);
    *(void **)&L.close[k] = load_symbol(lib, name);
  }
  *(void **)&L.create_net = load_symbol(lib, "HcnCreateNetwork");
  *(void **)&L.create_ep = load_symbol(lib, "HcnCreateEndpoint");
  *(void **)&L.create_lb = load_symbol(lib, "HcnCreateLoadBalancer");
  *(void **)&L.hns_call = load_symbol(lib, "HNSCall");
  *(void **)&L.free_ = load_symbol(lib, "CoTaskMemFree");
  *(void **)&L.reset = load_symbol(lib, "HnsEmuReset");
  *(void **)&L.set_version = load_symbol(lib, "HnsEmuSetVersion");
  *(void **)&L.set_latency = load_symbol(lib, "HnsEmuSetLatencyMicros");
  *(void **)&L.fail_call = load_symbol(lib, "HnsEmuFailCall");
  *(void **)&L.clear_failures = load_symbol(lib, "HnsEmuClearFailures");
  *(void **)&L.open_handles = load_symbol(lib, "HnsEmuOpenHandles");
  *(void **)&L.outstanding = load_symbol(lib, "HnsEmuOutstandingStrings");
  *(void **)&L.invalid_frees = load_symbol(lib, "HnsEmuInvalidFrees");
  *(void **)&L.call_count = load_symbol(lib, "HnsEmuCallCount");
  *(void **)&L.object_count = load_symbol(lib, "HnsEmuObjectCount");
  *(void **)&L.heap_bytes = load_symbol(lib, "HnsEmuHeapBytes");
  *(void **)&L.heap_in_use = load_symbol(lib, "HnsEmuHeapInUse");
  *(void **)&L.reserve_heap = load_symbol(lib, "HnsEmuReserveHeap");
}

/* ---- checking ------------------------------------------------------------------- */

static int g_checks, g_failures;

#define CHECK(cond) check_((cond) != 0, __LINE__, "%s", #cond)
#define CHECK_MSG(cond, ...) check_((cond) != 0, __LINE__, __VA_ARGS__)
/* Each operand is evaluated once: they are often calls with side effects. */
#define CHECK_HR(got, want) check_hr_((int32_t)(got), (int32_t)(want), #got, __LINE__)
#define CHECK_STR(got, want) check_str_((got), (want), #got, __LINE__)
#define CHECK_I64(got, want) check_i64_((int64_t)(got), (int64_t)(want), #got, __LINE__)

static void check_(int ok, int line, const char *fmt, ...) {
  g_checks++;
  if (ok) return;
  if (++g_failures > 50) return; /* the first failures tell the story */
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "FAIL emulator_check.c:%d: ", line);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void check_hr_(int32_t got, int32_t want, const char *expr, int line) {
  check_(got == want, line, "%s: got 0x%08X, want 0x%08X", expr, (unsigned)(uint32_t)got,
         (unsigned)(uint32_t)want);
}

static void check_str_(const char *got, const char *want, const char *expr, int line) {
  check_(got && strcmp(got, want) == 0, line, "%s: got %s, want %s", expr, got ? got : "(null)",
         want);
}

static void check_i64_(int64_t got, int64_t want, const char *expr, int line) {
  check_(got == want, line, "%s: got %lld, want %lld", expr, (long long)got, (long long)want);
}

/* ---- strings and GUIDs ------------------------------------------------------------- */

/* UTF-8 to a malloc'd UTF-16 string (the check's own converter, independent of the library's). */
static wch *W(const char *s) {
  size_t n = strlen(s);
  wch *w = malloc((n + 1) * sizeof *w);
  size_t o = 0;
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    uint32_t cp = u[i];
    int extra = cp >= 0xF0 ? 3 : cp >= 0xE0 ? 2 : cp >= 0xC0 ? 1 : 0;
    if (extra) cp &= 0x3Fu >> extra;
    for (int j = 1; j <= extra && i + j < n; j++) cp = cp << 6 | (u[i + j] & 0x3F);
    i += 1 + (size_t)extra;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      w[o++] = (wch)(0xD800 + (cp >> 10));
      w[o++] = (wch)(0xDC00 + (cp & 0x3FF));
    } else {
      w[o++] = (wch)cp;
    }
  }
  w[o] = 0;
  return w;
}

/* UTF-16 to malloc'd UTF-8. */
static char *A(const wch *w) {
  if (!w) return NULL;
  size_t n = 0;
  while (w[n]) n++;
  char *s = malloc(n * 4 + 1);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t cp = w[i];
    if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < n) cp = 0x10000 + ((cp - 0xD800) << 10) + (w[++i] - 0xDC00u);
    if (cp < 0x80) {
      s[o++] = (char)cp;
    } else if (cp < 0x800) {
      s[o++] = (char)(0xC0 | cp >> 6);
      s[o++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s[o++] = (char)(0xE0 | cp >> 12);
      s[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
      s[o++] = (char)(0x80 | (cp & 0x3F));
    } else {
      s[o++] = (char)(0xF0 | cp >> 18);
      s[o++] = (char)(0x80 | (cp >> 12 & 0x3F));
      s[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
      s[o++] = (char)(0x80 | (cp & 0x3F));
    }
  }
  s[o] = 0;
  return s;
}

/* Copy a returned string out and free it through the library's CoTaskMemFree. */
static char *take(wch *w) {
  char *s = A(w);
  L.free_(w);
  return s;
}

static int parse_guid(const char *s, guid_t *g) {
  unsigned v[11];
  if (strlen(s) != 36 ||
      sscanf(s, "%8x-%4x-%4x-%2x%2x-%2x%2x%2x%2x%2x%2x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
             &v[6], &v[7], &v[8], &v[9], &v[10]) != 11)
    return 0;
  g->d1 = v[0];
  g->d2 = (uint16_t)v[1];
  g->d3 = (uint16_t)v[2];
  for (int i = 0; i < 8; i++) g->d4[i] = (uint8_t)v[3 + i];
  return 1;
}

static guid_t G(const char *s) {
  guid_t g;
  memset(&g, 0, sizeof g);
  if (!parse_guid(s, &g)) {
    fprintf(stderr, "emulator_check: bad GUID %s\n", s);
    exit(2);
  }
  return g;
}

static const guid_t ZERO_GUID;

/* Value of "Key":"..." in a JSON text (first occurrence), malloc'd; NULL if absent. */
static char *json_field(const char *json, const char *key) {
  if (!json) return NULL;
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\":\"", key);
  const char *p = strstr(json, pat);
  if (!p) return NULL;
  p += strlen(pat);
  const char *e = strchr(p, '"');
  size_t n = (size_t)(e - p);
  char *out = malloc(n + 1);
  memcpy(out, p, n);
  out[n] = 0;
  return out;
}

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle); }

/* ---- call helpers: every output string is copied out and freed ----------------------- */

typedef struct res {
  int32_t hr;
  char *out; /* ids / properties */
  char *err; /* error record */
  HND h;
} res;

static void res_free(res *r) {
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
}

/* A sentinel the library must overwrite: success sets NULL, failure sets a record. */
static wch *const SENTINEL = (wch *)(uintptr_t)0x1234;

static res finish(int32_t hr, wch *out, wch *err, HND h) {
  res r = {hr, NULL, NULL, h};
  CHECK_MSG(err != SENTINEL, "error record left untouched (hr 0x%08X)", (unsigned)hr);
  CHECK_MSG(out != SENTINEL, "output left untouched (hr 0x%08X)", (unsigned)hr);
  if (err == SENTINEL) err = NULL;
  if (out == SENTINEL) out = NULL;
  if (hr >= 0) {
    CHECK_MSG(err == NULL, "success (0x%08X) with an error record", (unsigned)hr);
  } else {
    CHECK_MSG(err != NULL, "failure 0x%08X without an error record", (unsigned)hr);
    CHECK_MSG(out == NULL, "failure 0x%08X with an output string", (unsigned)hr);
    CHECK_MSG(h == NULL, "failure 0x%08X with a handle", (unsigned)hr);
  }
  r.out = out ? take(out) : NULL;
  r.err = err ? take(err) : NULL;
  if (r.err) {
    char code[32];
    snprintf(code, sizeof code, "\"ErrorCode\":%lu}", (unsigned long)(uint32_t)hr);
    CHECK_MSG(contains(r.err, "{\"Success\":false,\"Error\":\"") && contains(r.err, code),
              "error record %s does not carry 0x%08X", r.err, (unsigned)hr);
  }
  return r;
}

static res enumerate(int k, const char *query) {
  wch *q = query ? W(query) : NULL;
  wch *out = SENTINEL, *err = SENTINEL;
  int32_t hr = L.enumerate[k](q, &out, &err);
  free(q);
  return finish(hr, out, err, NULL);
}

static res create(int k, HND net, const guid_t *id, const char *settings) {
  wch *s = W(settings);
  wch *err = SENTINEL;
  HND h = (HND)(uintptr_t)0x5678;
  int32_t hr = k == NET  ? L.create_net(id, s, &h, &err)
               : k == EP ? L.create_ep(net, id, s, &h, &err)
                         : L.create_lb(id, s, &h, &err);
  free(s);
  CHECK_MSG(h != (HND)(uintptr_t)0x5678, "create left the handle untouched");
  return finish(hr, NULL, err, hr >= 0 ? h : (h == (HND)(uintptr_t)0x5678 ? NULL : h));
}

static res open_(int k, const guid_t *id) {
  wch *err = SENTINEL;
  HND h = (HND)(uintptr_t)0x5678;
  int32_t hr = L.open[k](id, &h, &err);
  CHECK_MSG(h != (HND)(uintptr_t)0x5678, "open left the handle untouched");
  return finish(hr, NULL, err, h == (HND)(uintptr_t)0x5678 ? NULL : h);
}

static res query(int k, HND h, const char *q) {
  wch *qq = q ? W(q) : NULL;
  wch *out = SENTINEL, *err = SENTINEL;
  int32_t hr = L.query[k](h, qq, &out, &err);
  free(qq);
  return finish(hr, out, err, NULL);
}

static res modify(int k, HND h, const char *settings) {
  wch *s = W(settings);
  wch *err = SENTINEL;
  int32_t hr = L.modify[k](h, s, &err);
  free(s);
  return finish(hr, NULL, err, NULL);
}

static res delete_(int k, const guid_t *id) {
  wch *err = SENTINEL;
  int32_t hr = L.del[k](id, &err);
  return finish(hr, NULL, err, NULL);
}

/* The error record of the last failed create_id (for ctl output). */
static char *g_last_err;

/* Create, returning the new object's ID (read back through Query) and closing the handle. */
static char *create_id(int k, HND net, const char *settings, int32_t *hr_out) {
  res r = create(k, net, &ZERO_GUID, settings);
  if (hr_out) *hr_out = r.hr;
  free(g_last_err);
  g_last_err = r.err;
  r.err = NULL;
  char *id = NULL;
  if (r.hr >= 0) {
    res q = query(k, r.h, "");
    id = json_field(q.out, "ID");
    res_free(&q);
    CHECK_HR(L.close[k](r.h), 0);
  }
  res_free(&r);
  return id;
}

static char *props_of(int k, const char *id) {
  guid_t g = G(id);
  res o = open_(k, &g);
  if (o.hr < 0) {
    res_free(&o);
    return NULL;
  }
  res q = query(k, o.h, NULL);
  CHECK_HR(L.close[k](o.h), 0);
  res_free(&o);
  char *out = q.out;
  q.out = NULL;
  res_free(&q);
  return out;
}

static int is_guid_upper(const char *s) {
  if (!s || strlen(s) != 36) return 0;
  for (int i = 0; i < 36; i++) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return 0;
    } else if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) {
      return 0;
    }
  }
  return 1;
}

static void check_no_leaks(int line) {
  check_(L.outstanding() == 0, line, "outstanding strings: %lld", (long long)L.outstanding());
  check_(L.open_handles() == 0, line, "open handles: %lld", (long long)L.open_handles());
  check_(L.invalid_frees() == 0, line, "invalid frees: %lld", (long long)L.invalid_frees());
}

static char *hnscall(const char *method, const char *path, int32_t *hr) {
  wch *m = W(method), *p = W(path), *req = W("");
  wch *resp = SENTINEL;
  *hr = L.hns_call(m, p, req, &resp);
  free(m);
  free(p);
  free(req);
  CHECK_MSG(resp != SENTINEL && resp != NULL, "HNSCall gave no response (hr 0x%08X)", (unsigned)*hr);
  return resp == SENTINEL ? NULL : take(resp);
}

/* ---- the rules ---------------------------------------------------------------------- */

#define NET_SETTINGS(name, type) \
  "{\"Name\":\"" name "\",\"Type\":\"" type "\",\"SchemaVersion\":{\"Major\":2,\"Minor\":0}}"

static char *ep_json(const char *name, const char *ip, int flags) {
  char *s = malloc(512);
  snprintf(s, 512,
           "{\"Name\":\"%s\",\"IpConfigurations\":[{\"IpAddress\":\"%s\",\"PrefixLength\":32}],"
           "\"Flags\":%d,\"SchemaVersion\":{\"Major\":2,\"Minor\":0}}",
           name, ip, flags);
  return s;
}

static char *lb_json(const char *vip, int proto, int port, const char *ep1, const char *ep2) {
  char *s = malloc(1024);
  char vips[128] = "[]";
  if (vip) snprintf(vips, sizeof vips, "[\"%s\"]", vip);
  char eps[200] = "[]";
  if (ep1 && ep2) snprintf(eps, sizeof eps, "[\"%s\",\"%s\"]", ep1, ep2);
  else if (ep1) snprintf(eps, sizeof eps, "[\"%s\"]", ep1);
  snprintf(s, 1024,
           "{\"HostComputeEndpoints\":%s,\"SourceVIP\":\"10.0.0.2\",\"FrontendVIPs\":%s,"
           "\"PortMappings\":[{\"Protocol\":%d,\"InternalPort\":8080,\"ExternalPort\":%d,"
           "\"DistributionType\":0,\"Flags\":0}],\"Flags\":0,"
           "\"SchemaVersion\":{\"Major\":2,\"Minor\":0}}",
           eps, vips, proto, port);
  return s;
}

static void rules_version(void) {
  int32_t hr;
  char *r = hnscall("GET", "/globals/version", &hr); /* the default */
  CHECK_HR(hr, 0);
  CHECK_STR(r, "{\"Success\":true,\"Error\":\"\",\"Output\":{\"Major\":15,\"Minor\":5}}");
  free(r);
  L.set_version(15, 4);
  r = hnscall("GET", "/globals/version", &hr);
  CHECK_HR(hr, 0);
  CHECK_STR(r, "{\"Success\":true,\"Error\":\"\",\"Output\":{\"Major\":15,\"Minor\":4}}");
  free(r);
  L.set_version(9, 3);
  r = hnscall("get", "/globals/version", &hr);
  CHECK(contains(r, "\"Major\":9,\"Minor\":3"));
  free(r);
  L.set_version(0, 0);
  r = hnscall("GET", "/globals/version", &hr);
  CHECK(hr < 0);
  CHECK(contains(r, "\"Success\":false"));
  free(r);
  /* An unreadable version keeps the HCN API; below 9.2 there is none (HNSCall still answers). */
  res e = enumerate(NET, "");
  CHECK_HR(e.hr, 0);
  res_free(&e);
  L.set_version(9, 1);
  e = enumerate(NET, "");
  CHECK_HR(e.hr, 0x80004001);
  CHECK(e.out == NULL);
  CHECK(contains(e.err, "needs HNS 9.2 or later"));
  res_free(&e);
  int32_t hr_net;
  char *none = create_id(NET, NULL, NET_SETTINGS("old", "NAT"), &hr_net);
  CHECK_HR(hr_net, 0x80004001);
  CHECK(none == NULL);
  r = hnscall("GET", "/globals/version", &hr);
  CHECK(contains(r, "\"Major\":9,\"Minor\":1"));
  free(r);
  L.set_version(9, 2);
  e = enumerate(NET, "");
  CHECK_HR(e.hr, 0);
  res_free(&e);
  L.set_version(15, 5);
  r = hnscall("GET", "/networks", &hr);
  CHECK(hr < 0);
  CHECK(contains(r, "\"Success\":false"));
  free(r);
  CHECK_HR(L.hns_call(NULL, NULL, NULL, NULL), 0x80004003);
  check_no_leaks(__LINE__);
}

static void rules_networks(void) {
  int32_t hr;
  char *id = create_id(NET, NULL, NET_SETTINGS("cbr0", "L2Bridge"), &hr);
  CHECK_HR(hr, 0);
  CHECK_MSG(is_guid_upper(id), "assigned ID %s is not an upper-case GUID", id ? id : "(null)");
  CHECK(id && id[14] == '4'); /* version 4 */
  char *props = props_of(NET, id);
  CHECK(contains(props, "\"Name\":\"cbr0\",\"Type\":\"L2Bridge\""));
  CHECK(props && strncmp(props, "{\"ID\":\"", 7) == 0);
  free(props);

  /* A caller-chosen GUID, with the byte order of a REFGUID. */
  guid_t g;
  memset(&g, 0, sizeof g);
  g.d1 = 0x5B8DA6F4;
  g.d2 = 0x0E6A;
  g.d3 = 0x4C53;
  const uint8_t d4[8] = {0x9E, 0x33, 0x7A, 0xF1, 0xC1, 0xD7, 0xE0, 0xA1};
  memcpy(g.d4, d4, 8);
  res c = create(NET, NULL, &g, NET_SETTINGS("vxlan0", "Overlay"));
  CHECK_HR(c.hr, 0);
  res q = query(NET, c.h, "");
  CHECK(contains(q.out, "\"ID\":\"5B8DA6F4-0E6A-4C53-9E33-7AF1C1D7E0A1\""));
  res_free(&q);
  CHECK_HR(L.close[NET](c.h), 0);
  res_free(&c);
  const uint8_t *raw = (const uint8_t *)&g;
  CHECK(raw[0] == 0xF4 && raw[3] == 0x5B && raw[4] == 0x6A && raw[8] == 0x9E);

  c = create(NET, NULL, &g, NET_SETTINGS("again", "Overlay"));
  CHECK_HR(c.hr, 0x800700B7);
  res_free(&c);

  /* Enumerate: all, by name (case-insensitive), by ID (lower case), none. */
  res e = enumerate(NET, "");
  char want[200];
  snprintf(want, sizeof want, "[\"%s\",\"5B8DA6F4-0E6A-4C53-9E33-7AF1C1D7E0A1\"]", id);
  CHECK_STR(e.out, want);
  res_free(&e);
  e = enumerate(NET, NULL);
  CHECK_STR(e.out, want);
  res_free(&e);
  e = enumerate(NET, "{\"SchemaVersion\":{\"Major\":2,\"Minor\":0},\"Flags\":0,"
                     "\"Filter\":\"{\\\"Name\\\":\\\"VXLAN0\\\"}\"}");
  CHECK_STR(e.out, "[\"5B8DA6F4-0E6A-4C53-9E33-7AF1C1D7E0A1\"]");
  res_free(&e);
  e = enumerate(NET, "{\"SchemaVersion\":{\"Major\":2,\"Minor\":0},\"Flags\":0,"
                     "\"Filter\":\"{\\\"ID\\\":\\\"5b8da6f4-0e6a-4c53-9e33-7af1c1d7e0a1\\\"}\"}");
  CHECK_STR(e.out, "[\"5B8DA6F4-0E6A-4C53-9E33-7AF1C1D7E0A1\"]");
  res_free(&e);
  e = enumerate(NET, "{\"SchemaVersion\":{\"Major\":2,\"Minor\":0},\"Flags\":0,"
                     "\"Filter\":\"{\\\"Name\\\":\\\"nope\\\"}\"}");
  CHECK_STR(e.out, "[]");
  res_free(&e);
  e = enumerate(NET, "{\"Filter\":\"\"}");
  CHECK_STR(e.out, want);
  res_free(&e);

  /* Invalid JSON anywhere: settings, query, filter. */
  c = create(NET, NULL, &ZERO_GUID, "{\"Name\":");
  CHECK_HR(c.hr, 0x803B001B);
  res_free(&c);
  c = create(NET, NULL, &ZERO_GUID, "[1,2]");
  CHECK_HR(c.hr, 0x803B001B);
  res_free(&c);
  c = create(NET, NULL, &ZERO_GUID, "{\"Name\":\"x\"} trailing");
  CHECK_HR(c.hr, 0x803B001B);
  res_free(&c);
  e = enumerate(NET, "{not json");
  CHECK_HR(e.hr, 0x803B001B);
  res_free(&e);
  e = enumerate(NET, "{\"Filter\":\"{bad\"}");
  CHECK_HR(e.hr, 0x803B001B);
  res_free(&e);
  c = open_(NET, &g);
  q = query(NET, c.h, "nope");
  CHECK_HR(q.hr, 0x803B001B);
  res_free(&q);

  /* Modify: policies replaced, or changed by the request form hcsshim sends. */
  res m = modify(NET, c.h, "{\"Policies\":[{\"Type\":\"RemoteSubnetRoute\",\"Settings\":"
                           "{\"DestinationPrefix\":\"10.244.2.0/24\",\"IsolationId\":4096,"
                           "\"ProviderAddress\":\"192.168.1.12\","
                           "\"DistributedRouterMacAddress\":\"00-15-5D-00-00-01\"}}]}");
  CHECK_HR(m.hr, 0);
  res_free(&m);
  m = modify(NET, c.h, "{\"ResourceType\":\"Policy\",\"RequestType\":\"Add\",\"Settings\":"
                       "{\"Policies\":[{\"Type\":\"RemoteSubnetRoute\",\"Settings\":"
                       "{\"DestinationPrefix\":\"10.244.3.0/24\",\"IsolationId\":4096}}]}}");
  CHECK_HR(m.hr, 0);
  res_free(&m);
  q = query(NET, c.h, NULL);
  CHECK(contains(q.out, "\"IsolationId\":4096,\"ProviderAddress\":\"192.168.1.12\""));
  CHECK(contains(q.out, "10.244.3.0/24"));
  res_free(&q);
  m = modify(NET, c.h, "{\"ResourceType\":\"Policy\",\"RequestType\":\"Remove\",\"Settings\":"
                       "{\"Policies\":[{\"Type\":\"RemoteSubnetRoute\",\"Settings\":"
                       "{\"IsolationId\":4096,\"DestinationPrefix\":\"10.244.3.0/24\"}}]}}");
  CHECK_HR(m.hr, 0);
  res_free(&m);
  q = query(NET, c.h, NULL);
  CHECK(!contains(q.out, "10.244.3.0/24") && contains(q.out, "10.244.2.0/24"));
  res_free(&q);
  m = modify(NET, c.h, "{\"Name\":\"no policies\"}");
  CHECK_HR(m.hr, 0x80070057);
  res_free(&m);
  m = modify(NET, c.h, "{oops");
  CHECK_HR(m.hr, 0x803B001B);
  res_free(&m);
  CHECK_HR(L.close[NET](c.h), 0);
  res_free(&c);

  /* Delete, then not found everywhere; a handle to a deleted network still closes. */
  guid_t gid = G(id);
  res o = open_(NET, &gid);
  CHECK_HR(o.hr, 0);
  res d = delete_(NET, &gid);
  CHECK_HR(d.hr, 0);
  res_free(&d);
  q = query(NET, o.h, "");
  CHECK_HR(q.hr, 0x803B0001);
  res_free(&q);
  CHECK_HR(L.close[NET](o.h), 0);
  res_free(&o);
  d = delete_(NET, &gid);
  CHECK_HR(d.hr, 0x803B0001);
  res_free(&d);
  o = open_(NET, &gid);
  CHECK_HR(o.hr, 0x803B0001);
  res_free(&o);
  d = delete_(NET, &g);
  CHECK_HR(d.hr, 0);
  res_free(&d);
  free(id);
  CHECK_I64(L.object_count("Network"), 0);
  check_no_leaks(__LINE__);
}

static void rules_order(void) {
  char *a = create_id(NET, NULL, NET_SETTINGS("a", "NAT"), NULL);
  char *b = create_id(NET, NULL, NET_SETTINGS("b", "NAT"), NULL);
  char *c = create_id(NET, NULL, NET_SETTINGS("c", "NAT"), NULL);
  guid_t gb = G(b);
  res d = delete_(NET, &gb);
  res_free(&d);
  char *e = create_id(NET, NULL, NET_SETTINGS("e", "NAT"), NULL);
  res r = enumerate(NET, "");
  char want[200];
  snprintf(want, sizeof want, "[\"%s\",\"%s\",\"%s\"]", a, c, e);
  CHECK_STR(r.out, want);
  res_free(&r);
  free(a);
  free(b);
  free(c);
  free(e);
  L.reset();
  CHECK_I64(L.object_count("Network"), 0);
}

static void rules_endpoints(void) {
  int32_t hr;
  char *net1 = create_id(NET, NULL, NET_SETTINGS("vxlan0", "Overlay"), NULL);
  char *net2 = create_id(NET, NULL, NET_SETTINGS("cbr0", "L2Bridge"), NULL);
  guid_t g1 = G(net1), g2 = G(net2);
  res h1 = open_(NET, &g1), h2 = open_(NET, &g2);

  char *s = ep_json("pod-a", "10.244.1.5", 0);
  res c = create(EP, h1.h, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0);
  res q = query(EP, c.h, "");
  char want[120];
  snprintf(want, sizeof want, "\"HostComputeNetwork\":\"%s\"", net1);
  CHECK(contains(q.out, want));
  CHECK(contains(q.out, "\"Flags\":0"));
  char *ep_a = json_field(q.out, "ID");
  res_free(&q);
  CHECK_HR(L.close[EP](c.h), 0);
  res_free(&c);

  /* The same IP in the same network is refused; in another network it is fine. */
  c = create(EP, h1.h, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0x800700B7);
  res_free(&c);
  c = create(EP, h2.h, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0);
  CHECK_HR(L.close[EP](c.h), 0);
  res_free(&c);
  free(s);

  /* Addresses compare as addresses. */
  s = ep_json("v6", "fd00::1", 0);
  c = create(EP, h1.h, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0);
  CHECK_HR(L.close[EP](c.h), 0);
  res_free(&c);
  free(s);
  s = ep_json("v6-again", "FD00:0:0::0001", 0);
  c = create(EP, h1.h, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0x800700B7);
  res_free(&c);
  free(s);

  /* An IPv4-mapped IPv6 address is the IPv4 address: pod-a's is taken, another is free. */
  s = ep_json("mapped", "::ffff:10.244.1.5", 0);
  c = create(EP, h1.h, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0x800700B7);
  res_free(&c);
  free(s);
  s = ep_json("mapped", "::FFFF:10.244.1.9", 0);
  char *ep_m = create_id(EP, h1.h, s, &hr);
  CHECK_HR(hr, 0);
  free(s);
  s = ep_json("mapped-again", "10.244.1.9", 0);
  c = create(EP, h1.h, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0x800700B7);
  res_free(&c);
  free(s);
  if (ep_m) {
    guid_t gm = G(ep_m);
    res d = delete_(EP, &gm);
    CHECK_HR(d.hr, 0);
    res_free(&d);
    free(ep_m);
  }

  const char *bad_ips[] = {"10.244.1",        "10.244.1.256", "fd00:::1",
                           "hello",           "1.2.3.4.5",    "",
                           "::ffff:10.244.1", "1.2.3.4::1",   "::ffff:1.2.3.4:5",
                           "1:2:3:4:5:6:7:1.2.3.4"};
  for (size_t i = 0; i < sizeof bad_ips / sizeof *bad_ips; i++) {
    s = ep_json("bad", bad_ips[i], 0);
    c = create(EP, h1.h, &ZERO_GUID, s);
    CHECK_MSG((uint32_t)c.hr == 0x803B001Eu, "IP \"%s\": got 0x%08X", bad_ips[i], (unsigned)c.hr);
    res_free(&c);
    free(s);
  }

  /* A remote endpoint (Flags 1) with its provider address policy, kept as sent. */
  const char *remote =
      "{\"Name\":\"remote-10.244.2.15\",\"MacAddress\":\"02-11-0a-f4-02-0f\","
      "\"IpConfigurations\":[{\"IpAddress\":\"10.244.2.15\"}],\"Flags\":1,"
      "\"Policies\":[{\"Type\":\"ProviderAddress\",\"Settings\":{\"ProviderAddress\":\"192.168.1.12\"}}],"
      "\"SchemaVersion\":{\"Major\":2,\"Minor\":0}}";
  char *ep_r = create_id(EP, h1.h, remote, &hr);
  CHECK_HR(hr, 0);
  char *props = props_of(EP, ep_r);
  CHECK(contains(props, "\"Flags\":1,\"Policies\":[{\"Type\":\"ProviderAddress\""));
  free(props);

  /* Filters by network, old and new spelling. */
  char f[300];
  snprintf(f, sizeof f, "{\"Filter\":\"{\\\"VirtualNetwork\\\":\\\"%s\\\"}\"}", net2);
  res e = enumerate(EP, f);
  CHECK(e.out && strlen(e.out) == 40); /* exactly one ID */
  res_free(&e);
  snprintf(f, sizeof f, "{\"Filter\":\"{\\\"HostComputeNetwork\\\":\\\"%s\\\"}\"}", net1);
  e = enumerate(EP, f);
  CHECK(contains(e.out, ep_a) && contains(e.out, ep_r));
  CHECK(e.out && strlen(e.out) == 2 + 3 * 38 + 2);
  res_free(&e);

  /* Modify an endpoint's policies. */
  guid_t gr = G(ep_r);
  res o = open_(EP, &gr);
  res m = modify(EP, o.h, "{\"Policies\":[]}");
  CHECK_HR(m.hr, 0);
  res_free(&m);
  q = query(EP, o.h, NULL);
  CHECK(contains(q.out, "\"Policies\":[]"));
  res_free(&q);
  CHECK_HR(L.close[EP](o.h), 0);
  res_free(&o);

  /* Network handle rules: a bad handle, a deleted network. */
  s = ep_json("x", "10.244.9.9", 0);
  c = create(EP, (HND)(uintptr_t)0xDEAD0, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0x80070006);
  res_free(&c);
  c = create(EP, NULL, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0x80070006);
  res_free(&c);
  res d = delete_(NET, &g1);
  CHECK_HR(d.hr, 0x803B002C); /* it has endpoints */
  res_free(&d);
  char *tmpnet = create_id(NET, NULL, NET_SETTINGS("tmp", "NAT"), NULL);
  guid_t gt = G(tmpnet);
  res ht = open_(NET, &gt);
  d = delete_(NET, &gt);
  CHECK_HR(d.hr, 0);
  res_free(&d);
  c = create(EP, ht.h, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0x803B0001);
  res_free(&c);
  CHECK_HR(L.close[NET](ht.h), 0);
  res_free(&ht);
  free(tmpnet);
  free(s);

  /* Endpoint not found codes. */
  guid_t missing = G("00000000-0000-0000-0000-00000000BEEF");
  d = delete_(EP, &missing);
  CHECK_HR(d.hr, 0x803B0002);
  res_free(&d);
  o = open_(EP, &missing);
  CHECK_HR(o.hr, 0x803B0002);
  res_free(&o);

  CHECK_HR(L.close[NET](h1.h), 0);
  CHECK_HR(L.close[NET](h2.h), 0);
  res_free(&h1);
  res_free(&h2);
  free(ep_a);
  free(ep_r);
  free(net1);
  free(net2);
  check_no_leaks(__LINE__);
  L.reset();
}

static void rules_load_balancers(void) {
  char *net = create_id(NET, NULL, NET_SETTINGS("vxlan0", "Overlay"), NULL);
  guid_t gn = G(net);
  res hn = open_(NET, &gn);
  char *s1 = ep_json("a", "10.244.1.5", 0), *s2 = ep_json("b", "10.244.2.6", 1);
  char *ep1 = create_id(EP, hn.h, s1, NULL), *ep2 = create_id(EP, hn.h, s2, NULL);
  free(s1);
  free(s2);

  char *s = lb_json("10.96.0.10", 6, 80, ep1, ep2);
  int32_t hr;
  char *lb1 = create_id(LB, NULL, s, &hr);
  CHECK_HR(hr, 0);
  char *props = props_of(LB, lb1);
  CHECK(props && strncmp(props, "{\"ID\":\"", 7) == 0);
  CHECK(contains(props, "\"PortMappings\":[{\"Protocol\":6,\"InternalPort\":8080,"
                        "\"ExternalPort\":80,\"DistributionType\":0,\"Flags\":0}]"));
  free(props);

  /* The same (VIP, protocol, port) is taken; the record carries HNS's message. */
  res c = create(LB, NULL, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0x803B0013);
  CHECK(contains(c.err, "\"Error\":\"The specified port already exists.\""));
  CHECK(contains(c.err, "\"ErrorCode\":2151350291}"));
  res_free(&c);
  free(s);
  /* Another protocol, port or VIP is fine. */
  s = lb_json("10.96.0.10", 17, 80, ep1, NULL);
  char *lb_udp = create_id(LB, NULL, s, &hr);
  CHECK_HR(hr, 0);
  free(s);
  s = lb_json("10.96.0.11", 6, 80, ep1, NULL);
  char *lb_vip2 = create_id(LB, NULL, s, &hr);
  CHECK_HR(hr, 0);
  free(s);
  /* NodePorts: no VIP; FrontendVIPs [] and absent are the same key. */
  s = lb_json(NULL, 6, 30080, ep1, NULL);
  char *lb_np = create_id(LB, NULL, s, &hr);
  CHECK_HR(hr, 0);
  free(s);
  c = create(LB, NULL, &ZERO_GUID,
             "{\"HostComputeEndpoints\":[],\"PortMappings\":[{\"Protocol\":6,\"InternalPort\":1,"
             "\"ExternalPort\":30080}]}");
  CHECK_HR(c.hr, 0x803B0013);
  res_free(&c);
  s = lb_json("10.96.0.12", 6, 30080, ep1, NULL); /* VIP + same port: a different key */
  char *lb_vip3 = create_id(LB, NULL, s, &hr);
  CHECK_HR(hr, 0);
  free(s);
  /* IPv6 VIPs compare as addresses. */
  s = lb_json("fd00:10:96::a", 6, 53, ep1, NULL);
  char *lb_v6 = create_id(LB, NULL, s, &hr);
  CHECK_HR(hr, 0);
  free(s);
  s = lb_json("FD00:10:96:0:0:0:0:A", 6, 53, ep1, NULL);
  c = create(LB, NULL, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0x803B0013);
  res_free(&c);
  free(s);

  /* Missing endpoints, missing or empty port mappings, bad VIP. */
  s = lb_json("10.96.0.20", 6, 80, "00000000-0000-0000-0000-00000000BEEF", NULL);
  c = create(LB, NULL, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0x803B0002);
  res_free(&c);
  free(s);
  c = create(LB, NULL, &ZERO_GUID, "{\"HostComputeEndpoints\":[],\"FrontendVIPs\":[\"10.96.0.30\"]}");
  CHECK_HR(c.hr, 0x80070057);
  res_free(&c);
  c = create(LB, NULL, &ZERO_GUID, "{\"FrontendVIPs\":[\"10.96.0.30\"],\"PortMappings\":[]}");
  CHECK_HR(c.hr, 0x80070057);
  res_free(&c);
  s = lb_json("10.96.0.300", 6, 80, ep1, NULL);
  c = create(LB, NULL, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0x803B001E);
  res_free(&c);
  free(s);

  /* Referenced endpoints cannot be deleted. */
  guid_t g1 = G(ep1), g2 = G(ep2);
  res d = delete_(EP, &g2);
  CHECK_HR(d.hr, 0x803B002C);
  res_free(&d);

  /* Modify (15.5+): replace settings, keep the ID; conflicts exclude the LB itself. */
  guid_t gl = G(lb1);
  res o = open_(LB, &gl);
  s = lb_json("10.96.0.10", 6, 80, ep1, NULL); /* same key as itself, one endpoint fewer */
  res m = modify(LB, o.h, s);
  CHECK_HR(m.hr, 0);
  res_free(&m);
  free(s);
  res q = query(LB, o.h, "");
  char want[80];
  snprintf(want, sizeof want, "{\"ID\":\"%s\"", lb1);
  CHECK(q.out && strncmp(q.out, want, strlen(want)) == 0);
  CHECK(!contains(q.out, ep2));
  res_free(&q);
  d = delete_(EP, &g2); /* no longer referenced */
  CHECK_HR(d.hr, 0);
  res_free(&d);
  s = lb_json("10.96.0.11", 6, 80, ep1, NULL); /* held by lb_vip2 */
  m = modify(LB, o.h, s);
  CHECK_HR(m.hr, 0x803B0013);
  res_free(&m);
  free(s);
  s = lb_json("10.96.0.10", 6, 80, "00000000-0000-0000-0000-00000000BEEF", NULL);
  m = modify(LB, o.h, s);
  CHECK_HR(m.hr, 0x803B0002);
  res_free(&m);
  free(s);
  m = modify(LB, o.h, "{\"PortMappings\":[]}");
  CHECK_HR(m.hr, 0x80070057);
  res_free(&m);
  q = query(LB, o.h, ""); /* failed modifies changed nothing */
  CHECK(contains(q.out, "\"FrontendVIPs\":[\"10.96.0.10\"]"));
  res_free(&q);
  /* In-place update exists on 15.5-15.x and 16.0+ only (hcsshim's ModifyLoadbalancerVersion). */
  s = lb_json("10.96.0.10", 6, 81, ep1, NULL);
  static const uint32_t without[][2] = {{15, 4}, {15, 3}, {14, 0}, {12, 0}, {10, 0}};
  for (size_t i = 0; i < sizeof without / sizeof without[0]; i++) {
    L.set_version(without[i][0], without[i][1]);
    m = modify(LB, o.h, s);
    CHECK_MSG(m.hr == (int32_t)0x80004001, "modify on %u.%u: 0x%08X", (unsigned)without[i][0],
              (unsigned)without[i][1], (unsigned)m.hr);
    CHECK(contains(m.err, "needs HNS 15.5-15.x or 16.0+"));
    res_free(&m);
  }
  q = query(LB, o.h, ""); /* refused modifies changed nothing */
  CHECK(contains(q.out, "\"ExternalPort\":80,"));
  res_free(&q);
  static const uint32_t with[][2] = {{15, 5}, {15, 9}, {16, 0}, {17, 2}};
  for (size_t i = 0; i < sizeof with / sizeof with[0]; i++) {
    L.set_version(with[i][0], with[i][1]);
    m = modify(LB, o.h, s);
    CHECK_MSG(m.hr == 0, "modify on %u.%u: 0x%08X", (unsigned)with[i][0], (unsigned)with[i][1],
              (unsigned)m.hr);
    res_free(&m);
  }
  L.set_version(15, 5);
  free(s);
  /* Port 80 on 10.96.0.10/TCP is free again. */
  s = lb_json("10.96.0.10", 6, 80, NULL, NULL);
  char *lb_again = create_id(LB, NULL, s, &hr);
  CHECK_HR(hr, 0);
  free(s);

  /* A deleted LB: its handle still closes, queries say not found. */
  d = delete_(LB, &gl);
  CHECK_HR(d.hr, 0);
  res_free(&d);
  q = query(LB, o.h, "");
  CHECK_HR(q.hr, 0x80070490);
  res_free(&q);
  s = lb_json("10.96.0.10", 6, 81, NULL, NULL);
  m = modify(LB, o.h, s);
  CHECK_HR(m.hr, 0x80070490);
  res_free(&m);
  free(s);
  CHECK_HR(L.close[LB](o.h), 0);
  res_free(&o);
  d = delete_(LB, &gl);
  CHECK_HR(d.hr, 0x80070490);
  res_free(&d);
  o = open_(LB, &gl);
  CHECK_HR(o.hr, 0x80070490);
  res_free(&o);

  CHECK_I64(L.object_count("LoadBalancer"), 6);
  CHECK_I64(L.object_count("Endpoint"), 1);
  CHECK_I64(L.object_count("bogus"), -1);
  res e = enumerate(LB, "{\"SchemaVersion\":{\"Major\":2,\"Minor\":0},\"Flags\":0,\"Filter\":\"{}\"}");
  CHECK(e.out && strlen(e.out) == 2 + 6 * 38 + 5);
  res_free(&e);

  /* Delete every LB, then the endpoint and the network go too. */
  char *lbs[] = {lb_udp, lb_vip2, lb_np, lb_vip3, lb_v6, lb_again};
  for (int i = 0; i < 6; i++) {
    guid_t g = G(lbs[i]);
    d = delete_(LB, &g);
    CHECK_HR(d.hr, 0);
    res_free(&d);
    free(lbs[i]);
  }
  d = delete_(EP, &g1);
  CHECK_HR(d.hr, 0);
  res_free(&d);
  CHECK_HR(L.close[NET](hn.h), 0);
  res_free(&hn);
  d = delete_(NET, &gn);
  CHECK_HR(d.hr, 0);
  res_free(&d);
  free(net);
  free(ep1);
  free(ep2);
  free(lb1);
  check_no_leaks(__LINE__);
}

static void rules_handles(void) {
  char *net = create_id(NET, NULL, NET_SETTINGS("n", "NAT"), NULL);
  guid_t g = G(net);
  res o = open_(NET, &g);
  res o2 = open_(NET, &g);
  CHECK(o.h != o2.h);
  CHECK_I64(L.open_handles(), 2);
  CHECK_HR(L.close[EP](o.h), 0x80070006); /* a network handle is not an endpoint handle */
  res q = query(EP, o.h, "");
  CHECK_HR(q.hr, 0x80070006);
  res_free(&q);
  CHECK_HR(L.close[NET](o.h), 0);
  CHECK_HR(L.close[NET](o.h), 0x80070006);
  CHECK_HR(L.close[NET]((HND)(uintptr_t)0xABCDEF0), 0x80070006);
  CHECK_HR(L.close[NET](NULL), 0x80070006);
  q = query(NET, o.h, "");
  CHECK_HR(q.hr, 0x80070006);
  res_free(&q);
  CHECK_HR(L.close[NET](o2.h), 0);
  CHECK_I64(L.open_handles(), 0);
  res_free(&o);
  res_free(&o2);

  /* NULL out-pointers and IDs. */
  wch *err = SENTINEL;
  wch *settings = W("{}");
  CHECK_HR(L.create_net(&ZERO_GUID, settings, NULL, &err), 0x80004003);
  CHECK(err != SENTINEL && err != NULL);
  if (err != SENTINEL) L.free_(err);
  HND h = NULL;
  CHECK_HR(L.create_net(NULL, settings, &h, NULL), 0x80070057); /* and no record asked for */
  free(settings);
  CHECK_HR(L.enumerate[NET](NULL, NULL, NULL), 0x80004003);

  /* CoTaskMemFree: NULL is a no-op; a double free is counted, not performed. */
  L.free_(NULL);
  res e = enumerate(NET, "");
  res_free(&e);
  wch *ids = NULL;
  CHECK_HR(L.enumerate[NET](NULL, &ids, NULL), 0);
  CHECK_I64(L.outstanding(), 1);
  L.free_(ids);
  CHECK_I64(L.outstanding(), 0);
  L.free_(ids);
  CHECK_I64(L.invalid_frees(), 1);
  CHECK_I64(L.outstanding(), 0);

  guid_t gid = G(net);
  res d = delete_(NET, &gid);
  res_free(&d);
  free(net);
  L.reset();
  check_no_leaks(__LINE__);
}

static void rules_failures(void) {
  /* The 3rd next create fails with the given HRESULT, once, without side effects. */
  CHECK_I64(L.fail_call("HcnCreateLoadBalancer", 3, (int32_t)0x803B0020u), 0);
  CHECK_I64(L.fail_call("HcnNoSuchFunction", 1, 1), -1);
  int32_t hrs[4];
  for (int i = 0; i < 4; i++) {
    char *s = lb_json(NULL, 6, 31000 + i, NULL, NULL);
    char *id = create_id(LB, NULL, s, &hrs[i]);
    free(s);
    free(id);
  }
  CHECK_HR(hrs[0], 0);
  CHECK_HR(hrs[1], 0);
  CHECK_HR(hrs[2], 0x803B0020);
  CHECK_HR(hrs[3], 0);
  CHECK_I64(L.object_count("LoadBalancer"), 3);
  CHECK_I64(L.call_count("HcnCreateLoadBalancer"), 4);

  /* nth 0: every call, until cleared. */
  L.fail_call("HcnEnumerateNetworks", 0, (int32_t)0x80070005u);
  for (int i = 0; i < 3; i++) {
    res e = enumerate(NET, "");
    CHECK_HR(e.hr, 0x80070005);
    CHECK(contains(e.err, "\"ErrorCode\":2147942405"));
    res_free(&e);
  }
  L.clear_failures();
  res e = enumerate(NET, "");
  CHECK_HR(e.hr, 0);
  res_free(&e);

  /* Close can fail too: then the handle stays open, as a leak check would show. */
  char *net = create_id(NET, NULL, NET_SETTINGS("n", "NAT"), NULL);
  guid_t g = G(net);
  res o = open_(NET, &g);
  L.fail_call("HcnCloseNetwork", 1, (int32_t)0x803B0020u);
  CHECK_HR(L.close[NET](o.h), 0x803B0020);
  CHECK_I64(L.open_handles(), 1);
  CHECK_HR(L.close[NET](o.h), 0);
  res_free(&o);
  free(net);

  /* HNSCall can be failed like any function. */
  L.fail_call("HNSCall", 1, (int32_t)0x80070005u);
  int32_t hr;
  char *r = hnscall("GET", "/globals/version", &hr);
  CHECK_HR(hr, 0x80070005);
  CHECK(contains(r, "\"Success\":false"));
  free(r);

  /* Counters: per function and the total of HCN calls. */
  int64_t total = L.call_count(NULL);
  CHECK(total >= 4 + 3 * 4 + 4);
  e = enumerate(LB, "");
  res_free(&e);
  CHECK_I64(L.call_count(NULL), total + 1);
  CHECK_I64(L.call_count("HcnEnumerateLoadBalancers"), 1);
  CHECK_I64(L.call_count("HNSCall"), 1);
  CHECK_I64(L.call_count("Nope"), -1);

  /* Reset clears objects, counters and failure rules. */
  L.fail_call("HcnEnumerateNetworks", 0, (int32_t)0x80070005u);
  L.reset();
  CHECK_I64(L.call_count(NULL), 0);
  CHECK_I64(L.object_count("LoadBalancer"), 0);
  CHECK_I64(L.object_count("Network"), 0);
  e = enumerate(NET, "");
  CHECK_HR(e.hr, 0);
  CHECK_STR(e.out, "[]");
  res_free(&e);
  check_no_leaks(__LINE__);
}

static void rules_unicode_and_numbers(void) {
  const char *settings = "{\"Name\":\"n\xC3\xA4me-\xF0\x9F\x98\x80\",\"Big\":2151350291,"
                         "\"Neg\":-1.5e3,\"Esc\":\"a\\\"b\\\\c\\n\\u0001\",\"Null\":null,"
                         "\"T\":true,\"F\":false,\"Nested\":{\"A\":[1,[2,{}]]}}";
  res c = create(NET, NULL, &ZERO_GUID, settings);
  CHECK_HR(c.hr, 0);
  res q = query(NET, c.h, "");
  CHECK_MSG(q.out && strlen(q.out) > 45 && strcmp(q.out + 45, settings + 1) == 0, "round trip: %s", q.out ? q.out : "(null)");
  res_free(&q);
  CHECK_HR(L.close[NET](c.h), 0);
  res_free(&c);
  res e = enumerate(NET, "{\"Filter\":\"{\\\"Name\\\":\\\"N\xC3\xA4ME-\xF0\x9F\x98\x80\\\"}\"}");
  CHECK(e.out && strlen(e.out) == 40);
  res_free(&e);
  L.reset();
}

/* Concurrent callers: the lock keeps the rules intact. */
#define THREADS 4
#define PER_THREAD 200

static int32_t thread_results[THREADS][PER_THREAD];

#ifdef _WIN32
static DWORD WINAPI worker(LPVOID arg)
#else
static void *worker(void *arg)
#endif
{
  int t = (int)(intptr_t)arg;
  for (int i = 0; i < PER_THREAD; i++) {
    /* Every thread tries the same ports: each port can be won once. */
    char *s = lb_json("10.96.1.1", 6, 1000 + i, NULL, NULL);
    wch *w = W(s);
    HND h = NULL;
    wch *err = NULL;
    thread_results[t][i] = L.create_lb(&ZERO_GUID, w, &h, &err);
    if (h) L.close[LB](h);
    if (err) L.free_(err);
    free(w);
    free(s);
  }
  return 0;
}

static void rules_threads(void) {
  L.set_latency(200);
#ifdef _WIN32
  HANDLE th[THREADS];
  for (int t = 0; t < THREADS; t++) th[t] = CreateThread(NULL, 0, worker, (LPVOID)(intptr_t)t, 0, NULL);
  WaitForMultipleObjects(THREADS, th, TRUE, INFINITE);
  for (int t = 0; t < THREADS; t++) CloseHandle(th[t]);
#else
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
#endif
  L.set_latency(0);
  for (int i = 0; i < PER_THREAD; i++) {
    int ok = 0, taken = 0;
    for (int t = 0; t < THREADS; t++) {
      if (thread_results[t][i] == 0) ok++;
      else if ((uint32_t)thread_results[t][i] == 0x803B0013u) taken++;
    }
    CHECK_MSG(ok == 1 && taken == THREADS - 1, "port %d: %d created, %d refused", 1000 + i, ok,
              taken);
  }
  CHECK_I64(L.object_count("LoadBalancer"), PER_THREAD);
  CHECK_I64(L.call_count("HcnCreateLoadBalancer"), THREADS * PER_THREAD);
  check_no_leaks(__LINE__);
  L.reset();
}

/* 60,000 objects: counts, conflicts and deletes stay right at scale. */
static void rules_scale(void) {
  char *net = create_id(NET, NULL, NET_SETTINGS("vxlan0", "Overlay"), NULL);
  guid_t gn = G(net);
  res hn = open_(NET, &gn);
  enum { N = 30000 };
  char **eps = malloc(N * sizeof *eps);
  char **lbs = malloc(N * sizeof *lbs);
  int bad = 0;
  for (int i = 0; i < N; i++) {
    char ip[32], name[32];
    snprintf(ip, sizeof ip, "10.%d.%d.%d", 100 + i / 65536, (i / 256) % 256, i % 256);
    snprintf(name, sizeof name, "ep-%d", i);
    char *s = ep_json(name, ip, 1);
    int32_t hr;
    eps[i] = create_id(EP, hn.h, s, &hr);
    bad += hr != 0;
    free(s);
  }
  for (int i = 0; i < N; i++) {
    char vip[32];
    snprintf(vip, sizeof vip, "10.96.%d.%d", i / 256, i % 256);
    char *s = lb_json(vip, 6, 80, eps[i], eps[(i + 1) % N]);
    int32_t hr;
    lbs[i] = create_id(LB, NULL, s, &hr);
    bad += hr != 0;
    free(s);
  }
  CHECK_I64(bad, 0);
  CHECK_I64(L.object_count("Endpoint"), N);
  CHECK_I64(L.object_count("LoadBalancer"), N);
  char *s = lb_json("10.96.117.47", 6, 80, NULL, NULL); /* i = 29999 */
  res c = create(LB, NULL, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0x803B0013);
  res_free(&c);
  free(s);
  s = ep_json("dup", "10.100.117.47", 1);
  c = create(EP, hn.h, &ZERO_GUID, s);
  CHECK_HR(c.hr, 0x800700B7);
  res_free(&c);
  free(s);
  res e = enumerate(EP, "");
  CHECK(e.out && strlen(e.out) == 2 + (size_t)N * 39 - 1);
  res_free(&e);
  for (int i = 0; i < N; i++) {
    guid_t g = G(lbs[i]);
    res d = delete_(LB, &g);
    bad += d.hr != 0;
    res_free(&d);
    free(lbs[i]);
  }
  /* Every other endpoint deleted (Enumerate's list compacts on the way): the rest keep
   * their creation order, with and without a network filter. */
  for (int i = 0; i < N; i += 2) {
    guid_t g = G(eps[i]);
    res d = delete_(EP, &g);
    bad += d.hr != 0;
    res_free(&d);
  }
  CHECK_I64(bad, 0);
  char *want = malloc((size_t)N / 2 * 39 + 3);
  size_t n = 0;
  want[n++] = '[';
  for (int i = 1; i < N; i += 2) n += (size_t)sprintf(want + n, "%s\"%s\"", i > 1 ? "," : "", eps[i]);
  want[n++] = ']';
  want[n] = 0;
  e = enumerate(EP, "");
  CHECK(e.out && strcmp(e.out, want) == 0);
  res_free(&e);
  char lower[40], q[200];
  snprintf(lower, sizeof lower, "%s", net);
  for (char *p = lower; *p; p++) *p = (char)tolower((unsigned char)*p); /* case-insensitive */
  snprintf(q, sizeof q, "{\"Filter\":\"{\\\"VirtualNetwork\\\":\\\"%s\\\"}\"}", lower);
  e = enumerate(EP, q);
  CHECK(e.out && strcmp(e.out, want) == 0);
  res_free(&e);
  free(want);
  for (int i = 0; i < N; i++) {
    if (i % 2 == 0) {
      free(eps[i]);
      continue;
    }
    guid_t g = G(eps[i]);
    res d = delete_(EP, &g);
    bad += d.hr != 0;
    res_free(&d);
    free(eps[i]);
  }
  CHECK_I64(bad, 0);
  e = enumerate(EP, "");
  CHECK_STR(e.out, "[]");
  res_free(&e);
  free(eps);
  free(lbs);
  CHECK_HR(L.close[NET](hn.h), 0);
  res_free(&hn);
  free(net);
  check_no_leaks(__LINE__);
  L.reset();
}

static int run_rules(void) {
  L.reset();
  rules_version();
  rules_networks();
  rules_order();
  rules_endpoints();
  rules_load_balancers();
  rules_handles();
  rules_failures();
  rules_unicode_and_numbers();
  rules_threads();
  rules_scale();
  check_no_leaks(__LINE__);
  return 0;
}

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define HAVE_MALLINFO2 1

/* Bytes malloc has handed out and not had back: arena chunks and chunks of their own mapping. */
static int64_t malloc_in_use(void) {
  struct mallinfo2 m = mallinfo2();
  return (int64_t)(m.uordblks + m.hblkhd);
}
#endif

/*
 * What HnsEmuHeapInUse grows by while the library holds one network named `len` letters; with
 * `returns`, the count must be back where it was once the network is deleted (the store's
 * tables, made by the first object, stay).
 */
static int64_t heap_of_named_network(size_t len, int returns) {
  static const char tmpl[] = "{\"Name\":\"%s\",\"Type\":\"NAT\",\"SchemaVersion\":{\"Major\":2,\"Minor\":0}}";
  char *name = malloc(len + 1);
  memset(name, 'n', len);
  name[len] = 0;
  char *settings = malloc(len + sizeof tmpl);
  snprintf(settings, len + sizeof tmpl, tmpl, name);
  guid_t g = {0xC0000000u | (uint32_t)len, 1, 2, {3, 4, 5, 6, 7, 8, 9, 10}};
  int64_t h0 = L.heap_in_use();
  res c = create(NET, NULL, &g, settings);
  CHECK_HR(c.hr, 0);
  CHECK_HR(L.close[NET](c.h), 0);
  res_free(&c);
  int64_t held = L.heap_in_use() - h0;
  res d = delete_(NET, &g);
  CHECK_HR(d.hr, 0);
  res_free(&d);
  check_(!returns || L.heap_in_use() == h0, __LINE__, "after the delete HnsEmuHeapInUse is %lld, before the create %lld",
         (long long)L.heap_in_use(), (long long)h0);
  free(settings);
  free(name);
  return held;
}

/*
 * The in-use counter's unit, on every platform (the Windows build under Wine included): a
 * network's name is a plain string, kept as one block of its document whose size is the
 * text's plus a fixed part, so a name STEP bytes longer must cost exactly STEP more. STEP is
 * odd, so that a count of rounded sizes (size classes, usable sizes) would fail. On Windows
 * HnsEmuHeapBytes is the same count (_msize: the size asked for). Prints the figures, so that
 * a runner can tell the check ran.
 */
static void heap_unit(void) {
  enum { STEP = 1001 };
  L.reset();
  heap_of_named_network(8, 0);
  int64_t base = heap_of_named_network(100, 1);
  int64_t longer = heap_of_named_network(100 + STEP, 1);
  int64_t diff = longer - base;
  printf("heap unit: a network named 100 letters holds %lld bytes; a name %d bytes longer "
         "costs %lld bytes more\n",
         (long long)base, STEP, (long long)diff);
  CHECK_MSG(base > 100, "a network named 100 letters holds %lld bytes", (long long)base);
  check_(diff == STEP, __LINE__, "a name %d bytes longer costs %lld bytes more, not %d", STEP,
         (long long)diff, STEP);
  /* The same past the largest size class (POSIX: blocks on mappings of their own, unmapped when
     freed; a document grown past it is moved, not grown in place). */
  int64_t big = heap_of_named_network(300000, 1);
  int64_t big_diff = heap_of_named_network(300000 + STEP, 1) - big;
  printf("heap unit: a network named 300000 letters holds %lld bytes; a name %d bytes longer "
         "costs %lld bytes more\n",
         (long long)big, STEP, (long long)big_diff);
  check_(big_diff == STEP, __LINE__, "a name of 300000 letters %d bytes longer costs %lld bytes more, not %d",
         STEP, (long long)big_diff, STEP);
#ifdef _WIN32
  check_(L.heap_bytes() == L.heap_in_use(), __LINE__, "HnsEmuHeapBytes %lld, HnsEmuHeapInUse %lld",
         (long long)L.heap_bytes(), (long long)L.heap_in_use());
#endif
  L.reset();
  check_no_leaks(__LINE__);
}

#ifdef HAVE_MALLINFO2
/* The process's resident bytes (/proc/self/statm), or -1. */
static int64_t resident_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return -1;
  long long size = 0, resident = -1;
  if (fscanf(f, "%lld %lld", &size, &resident) != 2) resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * (int64_t)sysconf(_SC_PAGESIZE);
}
#endif

/*
 * The emulator's heap: the in-use counter's unit on every platform (heap_unit), and with glibc
 * that the library's blocks are its own, as a separate HNS's would be. While it creates 40,000
 * objects (this check keeps nothing: IDs are its own, every string and handle is freed at
 * once) malloc's in-use bytes must not move, HnsEmuHeapBytes (the pages it mapped) must grow
 * and hold at least HnsEmuHeapInUse, and the process's RSS must grow by about as much as the
 * pages (they are populated as mapped). A reset takes HnsEmuHeapInUse back below where it began; the
 * pages stay mapped for reuse.
 */
#ifdef HAVE_MALLINFO2
/* A network and n endpoints on it with a load balancer each, every handle closed; failed calls. */
static int create_pairs(int n) {
  char *net = create_id(NET, NULL, NET_SETTINGS("heap0", "Overlay"), NULL);
  guid_t gn = G(net);
  res hn = open_(NET, &gn);
  free(net);
  int bad = 0;
  char ip[32], name[32], vip[32];
  for (int i = 0; i < n; i++) {
    guid_t ep = {0xE0000000u | (uint32_t)i, 1, 2, {3, 4, 5, 6, 7, 8, 9, 10}};
    snprintf(ip, sizeof ip, "10.%d.%d.%d", 100 + i / 65536, (i / 256) % 256, i % 256);
    snprintf(name, sizeof name, "ep-%d", i);
    char *s = ep_json(name, ip, 1);
    res c = create(EP, hn.h, &ep, s);
    free(s);
    bad += c.hr != 0 || L.close[EP](c.h) != 0;
    res_free(&c);
    snprintf(vip, sizeof vip, "10.96.%d.%d", i / 256, i % 256);
    char epid[40];
    snprintf(epid, sizeof epid, "%08X-0001-0002-0304-05060708090A", 0xE0000000u | (unsigned)i);
    s = lb_json(vip, 6, 80, epid, NULL);
    guid_t lb = {0xB0000000u | (uint32_t)i, 1, 2, {3, 4, 5, 6, 7, 8, 9, 10}};
    c = create(LB, NULL, &lb, s);
    free(s);
    bad += c.hr != 0 || L.close[LB](c.h) != 0;
    res_free(&c);
  }
  bad += L.close[NET](hn.h) != 0;
  res_free(&hn);
  return bad;
}
#endif

/*
 * The emulator's heap: the in-use counter's unit on every platform (heap_unit), and with glibc
 * that the library's blocks are its own, as a separate HNS's would be. While it creates 40,000
 * objects (this check keeps nothing: IDs are its own, every string and handle is freed at
 * once) malloc's in-use bytes must not move, HnsEmuHeapBytes (the pages it mapped) must grow
 * and hold at least HnsEmuHeapInUse, and the process's RSS must grow by about as much as the
 * pages (they are populated as mapped). A reset takes HnsEmuHeapInUse back to about where it
 * began; the pages stay mapped, and the same objects made again reuse them.
 */
static int run_heap(void) {
  heap_unit();
#ifdef HAVE_MALLINFO2
  enum { N = 20000 };
  L.reset();
  int64_t m0 = malloc_in_use(), h0 = L.heap_bytes(), u0 = L.heap_in_use(), r0 = resident_bytes();
  CHECK_I64(create_pairs(N), 0);
  int64_t m1 = malloc_in_use(), h1 = L.heap_bytes(), u1 = L.heap_in_use(), r1 = resident_bytes();
  CHECK_I64(L.object_count("LoadBalancer"), N);
  printf("heap: %d objects: in use +%lld bytes, pages +%lld, RSS +%lld, malloc in use %+lld\n",
         2 * N + 1, (long long)(u1 - u0), (long long)(h1 - h0), (long long)(r1 - r0),
         (long long)(m1 - m0));
  CHECK_MSG(u1 - u0 > (int64_t)N * 2 * 200, "in use grew by %lld bytes for %d objects",
            (long long)(u1 - u0), 2 * N);
  check_(m1 == m0, __LINE__, "malloc in use moved by %lld bytes while the library created %d objects",
         (long long)(m1 - m0), 2 * N);
  check_(h1 > h0 && h1 >= u1, __LINE__, "pages %lld bytes (before %lld), blocks in use %lld",
         (long long)h1, (long long)h0, (long long)u1);
  check_(r0 < 0 || r1 - r0 >= (h1 - h0) / 10 * 9, __LINE__,
         "RSS grew by %lld bytes, the library's pages by %lld", (long long)(r1 - r0), (long long)(h1 - h0));
  L.reset();
  int64_t m2 = malloc_in_use(), u2 = L.heap_in_use();
  /* What a reset keeps on purpose: the returned-strings table's first 16 buckets (128 bytes;
     strings handed out before a reset stay freeable), made by the first string; not the objects'
     megabytes. */
  check_(u2 - u0 < 4096, __LINE__, "in use after the reset %lld, before the objects %lld",
         (long long)u2, (long long)u0);
  check_(m2 == m1, __LINE__, "the reset moved malloc in use by %lld bytes", (long long)(m2 - m1));
  CHECK_I64(create_pairs(N), 0);
  int64_t h3 = L.heap_bytes();
  printf("heap: the same objects again: pages %+lld bytes\n", (long long)(h3 - h1));
  check_(h3 <= h1, __LINE__, "made again, the same objects took %lld bytes of new pages",
         (long long)(h3 - h1));
  L.reset();
  check_no_leaks(__LINE__);
  return 0;
#else
  printf("the comparison with malloc's own count skipped: needs glibc's mallinfo2\n");
  return 0;
#endif
}

/*
 * The reserve (HnsEmuReserveHeap; tests/hns-emulator/util.c): on Linux a reserve of whole MiB,
 * counted in HnsEmuHeapBytes and resident at once; one per process. While 40,001 objects, a
 * block past the largest size class, the free of one mapped before the reserve and a reset go
 * through it, HnsEmuHeapBytes must not move and the process's RSS must stay within a few MiB
 * (what the check itself allocates); objects that outgrow it map pages as before. On Windows
 * (blocks on the CRT's heap) nothing is reserved.
 */
static int run_reserve(void) {
  const int64_t mib = 1 << 20;
  L.reset();
  int64_t h0 = L.heap_bytes();
#if defined(_WIN32)
  CHECK_I64(L.reserve_heap(64 * mib), 0);
  CHECK_I64(L.heap_bytes(), h0);
  printf("reserve: none on Windows\n");
  return 0;
#elif defined(HAVE_MALLINFO2)
  enum { N = 20000 };
  /* A network whose document is past the largest size class, made before the reserve. */
  size_t len = 300000;
  char *settings = malloc(len + 100);
  int at = snprintf(settings, 100, "{\"Name\":\"");
  memset(settings + at, 'n', len);
  snprintf(settings + at + len, 100, "\",\"Type\":\"NAT\",\"SchemaVersion\":{\"Major\":2,\"Minor\":0}}");
  guid_t big = {0xC1000000u, 1, 2, {3, 4, 5, 6, 7, 8, 9, 10}};
  res c = create(NET, NULL, &big, settings);
  CHECK_HR(c.hr, 0);
  CHECK_HR(L.close[NET](c.h), 0);
  res_free(&c);
  free(settings);
  h0 = L.heap_bytes();
  int64_t r0 = resident_bytes();
  int64_t got = L.reserve_heap(64 * mib + 1);
  int64_t h1 = L.heap_bytes(), r1 = resident_bytes();
  printf("reserve: %lld bytes reserved, pages %+lld, RSS %+lld\n", (long long)got,
         (long long)(h1 - h0), (long long)(r1 - r0));
  CHECK_I64(got, 65 * mib);
  CHECK_I64(h1 - h0, got);
  check_(r0 < 0 || r1 - r0 >= got / 10 * 9, __LINE__, "RSS grew by %lld bytes for a reserve of %lld",
         (long long)(r1 - r0), (long long)got);
  CHECK_I64(L.reserve_heap(mib), 0);
  res d = delete_(NET, &big);
  CHECK_HR(d.hr, 0);
  res_free(&d);
  CHECK_I64(L.heap_bytes(), h1);
  CHECK_I64(create_pairs(N), 0);
  int64_t u2 = L.heap_in_use(), h2 = L.heap_bytes(), r2 = resident_bytes();
  heap_of_named_network(300000, 1);
  L.reset();
  CHECK_I64(create_pairs(N), 0);
  int64_t h3 = L.heap_bytes(), r3 = resident_bytes();
  printf("reserve: %d objects (%lld bytes in use): pages %+lld, RSS %+lld; again after a reset: "
         "pages %+lld, RSS %+lld\n",
         2 * N + 1, (long long)u2, (long long)(h2 - h1), (long long)(r2 - r1), (long long)(h3 - h1),
         (long long)(r3 - r1));
  check_(u2 > (int64_t)N * 2 * 200, __LINE__, "only %lld bytes in use for %d objects", (long long)u2,
         2 * N);
  CHECK_I64(h2, h1);
  CHECK_I64(h3, h1);
  check_(r0 < 0 || (r2 - r1 < 4 * mib && r3 - r1 < 4 * mib), __LINE__,
         "RSS moved by %lld and %lld bytes while the objects fit the reserve", (long long)(r2 - r1),
         (long long)(r3 - r1));
  L.reset();
  CHECK_I64(create_pairs(2 * N), 0);
  int64_t h4 = L.heap_bytes();
  printf("reserve: %d objects outgrow it: pages %+lld\n", 4 * N + 1, (long long)(h4 - h1));
  check_(h4 > h1, __LINE__, "%d objects took no pages beyond a reserve of %lld bytes", 4 * N + 1,
         (long long)got);
  L.reset();
  check_no_leaks(__LINE__);
  return 0;
#else
  (void)h0;
  printf("the reserve's check skipped: needs Linux (glibc)\n");
  return 0;
#endif
}

/* Expects HNSEMU_VERSION=9.3 HNSEMU_LATENCY_US=1000
 * HNSEMU_FAIL=HcnCreateNetwork:2:0x803B0020,HcnDeleteNetwork:0:0x80070005,bogus. */
static int run_env(void) {
  int32_t hr;
  char *r = hnscall("GET", "/globals/version", &hr);
  CHECK_STR(r, "{\"Success\":true,\"Error\":\"\",\"Output\":{\"Major\":9,\"Minor\":3}}");
  free(r);
  int32_t hr1, hr2, hr3;
  char *a = create_id(NET, NULL, NET_SETTINGS("a", "NAT"), &hr1);
  char *b = create_id(NET, NULL, NET_SETTINGS("b", "NAT"), &hr2);
  char *c = create_id(NET, NULL, NET_SETTINGS("c", "NAT"), &hr3);
  CHECK_HR(hr1, 0);
  CHECK_HR(hr2, 0x803B0020);
  CHECK_HR(hr3, 0);
  guid_t ga = G(a);
  for (int i = 0; i < 2; i++) {
    res d = delete_(NET, &ga);
    CHECK_HR(d.hr, 0x80070005);
    CHECK(contains(d.err, "\"Error\":\"Access is denied.\""));
    res_free(&d);
  }
  /* Reset drops the rules but keeps the environment's version. */
  L.set_version(1, 1);
  L.reset();
  r = hnscall("GET", "/globals/version", &hr);
  CHECK(contains(r, "\"Major\":9,\"Minor\":3"));
  free(r);
  char *d = create_id(NET, NULL, NET_SETTINGS("d", "NAT"), &hr1);
  CHECK_HR(hr1, 0);
  guid_t gd = G(d);
  res del = delete_(NET, &gd);
  CHECK_HR(del.hr, 0);
  res_free(&del);
  free(a);
  free(b);
  free(c);
  free(d);
  check_no_leaks(__LINE__);
  return 0;
}

/* ---- ctl: one JSON line per command, for cross-process tests ---------------------- */

static int kind_arg(const char *s) {
  if (strcmp(s, "network") == 0) return NET;
  if (strcmp(s, "endpoint") == 0) return EP;
  if (strcmp(s, "lb") == 0) return LB;
  fprintf(stderr, "emulator_check: unknown kind %s\n", s);
  exit(2);
}

static void print_json_str(const char *s) {
  if (!s) {
    fputs("null", stdout);
    return;
  }
  putchar('"');
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') printf("\\%c", ch);
    else if (ch < 0x20) printf("\\u%04x", ch);
    else putchar(ch);
  }
  putchar('"');
}

static void print_res(const char *cmd, int32_t hr, const char *out, const char *err) {
  printf("{\"cmd\":\"%s\",\"hr\":\"0x%08X\",\"out\":", cmd, (unsigned)(uint32_t)hr);
  print_json_str(out);
  fputs(",\"err\":", stdout);
  print_json_str(err);
  puts("}");
  fflush(stdout);
}

static int need(int argc, int i, int n) {
  if (i + n >= argc) {
    fprintf(stderr, "emulator_check: missing arguments\n");
    exit(2);
  }
  return 1;
}

static int run_ctl(int argc, char **argv, int i) {
  while (i < argc) {
    const char *cmd = argv[i];
    if (strcmp(cmd, "enum") == 0 && need(argc, i, 2)) {
      const char *q = strcmp(argv[i + 2], "-") == 0 ? NULL : argv[i + 2];
      res r = enumerate(kind_arg(argv[i + 1]), q);
      print_res(cmd, r.hr, r.out, r.err);
      res_free(&r);
      i += 3;
    } else if (strcmp(cmd, "get") == 0 && need(argc, i, 2)) {
      int k = kind_arg(argv[i + 1]);
      guid_t g = G(argv[i + 2]);
      res o = open_(k, &g);
      if (o.hr < 0) {
        print_res(cmd, o.hr, NULL, o.err);
      } else {
        res q = query(k, o.h, "");
        print_res(cmd, q.hr, q.out, q.err);
        res_free(&q);
        L.close[k](o.h);
      }
      res_free(&o);
      i += 3;
    } else if ((strcmp(cmd, "create-net") == 0 || strcmp(cmd, "create-lb") == 0) &&
               need(argc, i, 1)) {
      int k = cmd[7] == 'n' ? NET : LB;
      int32_t hr;
      char *id = create_id(k, NULL, argv[i + 1], &hr);
      print_res(cmd, hr, id, hr < 0 ? g_last_err : NULL);
      free(id);
      i += 2;
    } else if (strcmp(cmd, "create-ep") == 0 && need(argc, i, 2)) {
      guid_t g = G(argv[i + 1]);
      res hn = open_(NET, &g);
      int32_t hr = hn.hr;
      char *id = NULL;
      if (hr >= 0) {
        id = create_id(EP, hn.h, argv[i + 2], &hr);
        L.close[NET](hn.h);
      }
      print_res(cmd, hr, id, hn.hr < 0 ? hn.err : hr < 0 ? g_last_err : NULL);
      free(id);
      res_free(&hn);
      i += 3;
    } else if (strcmp(cmd, "modify-lb") == 0 && need(argc, i, 2)) {
      guid_t g = G(argv[i + 1]);
      res o = open_(LB, &g);
      int32_t hr = o.hr;
      char *err = o.err;
      o.err = NULL;
      if (hr >= 0) {
        res m = modify(LB, o.h, argv[i + 2]);
        hr = m.hr;
        err = m.err;
        m.err = NULL;
        res_free(&m);
        L.close[LB](o.h);
      }
      print_res(cmd, hr, NULL, err);
      free(err);
      res_free(&o);
      i += 3;
    } else if (strcmp(cmd, "delete") == 0 && need(argc, i, 2)) {
      guid_t g = G(argv[i + 2]);
      res d = delete_(kind_arg(argv[i + 1]), &g);
      print_res(cmd, d.hr, NULL, d.err);
      res_free(&d);
      i += 3;
    } else if (strcmp(cmd, "create-eps") == 0 && need(argc, i, 3)) {
      /* N endpoints PREFIX.a.b in one network; another process may race for the same IPs. */
      guid_t g = G(argv[i + 1]);
      int n = atoi(argv[i + 3]), ok = 0, exists = 0, other = 0;
      res hn = open_(NET, &g);
      for (int j = 0; j < n && hn.hr >= 0; j++) {
        char ip[64];
        snprintf(ip, sizeof ip, "%s.%d.%d", argv[i + 2], j / 250, j % 250);
        char *s = ep_json(ip, ip, 0);
        int32_t hr;
        char *id = create_id(EP, hn.h, s, &hr);
        free(id);
        free(s);
        if (hr == 0) ok++;
        else if ((uint32_t)hr == 0x800700B7u) exists++;
        else other++;
      }
      if (hn.hr >= 0) L.close[NET](hn.h);
      printf("{\"cmd\":\"create-eps\",\"hr\":\"0x%08X\",\"ok\":%d,\"exists\":%d,\"other\":%d}\n",
             (unsigned)(uint32_t)hn.hr, ok, exists, other);
      fflush(stdout);
      res_free(&hn);
      i += 4;
    } else if (strcmp(cmd, "count") == 0 && need(argc, i, 1)) {
      printf("{\"cmd\":\"count\",\"count\":%lld}\n",
             (long long)L.object_count(kind_names[kind_arg(argv[i + 1])]));
      fflush(stdout);
      i += 2;
    } else if (strcmp(cmd, "leaks") == 0) {
      printf("{\"cmd\":\"leaks\",\"strings\":%lld,\"handles\":%lld,\"invalidFrees\":%lld}\n",
             (long long)L.outstanding(), (long long)L.open_handles(),
             (long long)L.invalid_frees());
      fflush(stdout);
      i += 1;
    } else {
      fprintf(stderr, "emulator_check: unknown or incomplete command %s\n", cmd);
      return 2;
    }
  }
  return 0;
}

/* ---- cost: the library's CPU per call ------------------------------------------------ */

/* A remote endpoint's settings, as the agent sends them (bench/seed.ts's node, 10,000 services). */
static char *remote_ep_json(int i) {
  char *s = malloc(256);
  snprintf(s, 256,
           "{\"IpConfigurations\":[{\"IpAddress\":\"10.%d.%d.%d\"}],"
           "\"MacAddress\":\"02-11-0a-%02x-%02x-%02x\",\"Flags\":1,"
           "\"SchemaVersion\":{\"Major\":2,\"Minor\":0}}",
           128 + i / 65536, i / 256 % 256, i % 256, 128 + i / 65536, i / 256 % 256, i % 256);
  return s;
}

/* A load balancer's settings: a ClusterIP with 5 of the remote endpoints, as the agent sends. */
static char *cost_lb_json(int i, int nremote) {
  char eps[5 * 40 + 8] = "[";
  for (int j = 0; j < 5; j++) {
    snprintf(eps + strlen(eps), sizeof eps - strlen(eps), "%s\"%08X-0001-0002-0304-05060708090A\"",
             j ? "," : "", 0xE0000000u | (unsigned)((i * 5 + j) % nremote));
  }
  strcat(eps, "]");
  char *s = malloc(1024);
  snprintf(s, 1024,
           "{\"HostComputeEndpoints\":%s,\"FrontendVIPs\":[\"10.96.%d.%d\"],"
           "\"PortMappings\":[{\"Protocol\":6,\"InternalPort\":8080,\"ExternalPort\":80,"
           "\"DistributionType\":0,\"Flags\":0}],\"Flags\":0,"
           "\"SchemaVersion\":{\"Major\":2,\"Minor\":0}}",
           eps, i / 256, i % 256);
  return s;
}

static double cpu_us(void) { return (double)clock() * 1e6 / CLOCKS_PER_SEC; }

/*
 * What the emulated HNS itself costs per call at issue 15's 10,000 services: the node's 10,000
 * CNI endpoints (not timed), then a cold start's creates (40,000 remote endpoints, 12,000 load
 * balancers, each handle closed at once), then a restart's reads (Open, Query, Close of each CNI
 * endpoint, in three passes as the agent makes them). Settings are converted to UTF-16 before the
 * clock starts, so the times are the library's (process CPU time; wall time where clock() is).
 */
static int run_cost(int rounds) {
  enum { NCNI = 10000, NREMOTE = 40000, NLB = 12000 };
  wch **cni = malloc(NCNI * sizeof *cni), **remote = malloc(NREMOTE * sizeof *remote);
  wch **lbs = malloc(NLB * sizeof *lbs);
  guid_t *cni_ids = malloc(NCNI * sizeof *cni_ids);
  HND *h = malloc(NCNI * sizeof *h);
  wch **props = malloc(NCNI * sizeof *props);
  char ip[32], name[48];
  for (int i = 0; i < NCNI; i++) {
    snprintf(ip, sizeof ip, "10.200.%d.%d", i / 250, 2 + i % 250);
    snprintf(name, sizeof name, "pod-%s_eth0", ip);
    char *t = ep_json(name, ip, 0);
    cni[i] = W(t);
    free(t);
    cni_ids[i] = (guid_t){0xC0000000u | (uint32_t)i, 1, 2, {3, 4, 5, 6, 7, 8, 9, 10}};
  }
  for (int i = 0; i < NREMOTE; i++) {
    char *t = remote_ep_json(i);
    remote[i] = W(t);
    free(t);
  }
  for (int i = 0; i < NLB; i++) {
    char *t = cost_lb_json(i, NREMOTE);
    lbs[i] = W(t);
    free(t);
  }
  wch *empty_query = W("{}");
  double t_ep = 0, t_lb = 0, t_open = 0, t_query = 0, t_close = 0;
  int bad = 0;
  for (int r = 0; r < rounds; r++) {
    L.reset();
    char *net = create_id(NET, NULL, NET_SETTINGS("cost", "L2Bridge"), NULL);
    guid_t gn = G(net);
    free(net);
    res hn = open_(NET, &gn);
    wch *err = NULL;
    HND one;
    for (int i = 0; i < NCNI; i++) {
      bad += L.create_ep(hn.h, &cni_ids[i], cni[i], &one, &err) != 0 || L.close[EP](one) != 0;
    }
    double t0 = cpu_us();
    for (int i = 0; i < NREMOTE; i++) {
      guid_t id = {0xE0000000u | (uint32_t)i, 1, 2, {3, 4, 5, 6, 7, 8, 9, 10}};
      bad += L.create_ep(hn.h, &id, remote[i], &one, &err) != 0 || L.close[EP](one) != 0;
    }
    double t1 = cpu_us();
    for (int i = 0; i < NLB; i++) {
      guid_t id = {0xB0000000u | (uint32_t)i, 1, 2, {3, 4, 5, 6, 7, 8, 9, 10}};
      bad += L.create_lb(&id, lbs[i], &one, &err) != 0 || L.close[LB](one) != 0;
    }
    double t2 = cpu_us();
    for (int i = 0; i < NCNI; i++) bad += L.open[EP](&cni_ids[i], &h[i], &err) != 0;
    double t3 = cpu_us();
    for (int i = 0; i < NCNI; i++) bad += L.query[EP](h[i], empty_query, &props[i], &err) != 0;
    double t4 = cpu_us();
    for (int i = 0; i < NCNI; i++) bad += L.close[EP](h[i]) != 0;
    double t5 = cpu_us();
    for (int i = 0; i < NCNI; i++) L.free_(props[i]);
    t_ep += t1 - t0;
    t_lb += t2 - t1;
    t_open += t3 - t2;
    t_query += t4 - t3;
    t_close += t5 - t4;
    CHECK_HR(L.close[NET](hn.h), 0);
    res_free(&hn);
  }
  CHECK_I64(bad, 0);
  printf("{\"rounds\":%d,\"heapBytes\":%lld,\"usPerCall\":{\"createEndpointAndClose\":%.2f,"
         "\"createLoadBalancerAndClose\":%.2f,\"openEndpoint\":%.2f,\"queryEndpoint\":%.2f,"
         "\"closeEndpoint\":%.2f}}\n",
         rounds, (long long)L.heap_bytes(), t_ep / rounds / NREMOTE, t_lb / rounds / NLB,
         t_open / rounds / NCNI, t_query / rounds / NCNI, t_close / rounds / NCNI);
  L.reset();
  for (int i = 0; i < NCNI; i++) free(cni[i]);
  for (int i = 0; i < NREMOTE; i++) free(remote[i]);
  for (int i = 0; i < NLB; i++) free(lbs[i]);
  free(cni), free(remote), free(lbs), free(cni_ids), free(h), free(props), free(empty_query);
  return 0;
}

int main(int argc, char **argv) {
  /* --env NAME=VALUE sets a knob before the library first reads it (Wine passes no environment). */
  int i = 2;
  while (i + 1 < argc && strcmp(argv[i], "--env") == 0) {
    putenv(argv[i + 1]);
    i += 2;
  }
  if (i >= argc) {
    fprintf(stderr, "usage: emulator_check LIB [--env NAME=VALUE]... rules|env|heap|reserve|cost [N]|ctl CMD...\n");
    return 2;
  }
  load_library(argv[1]);
  int rc;
  if (strcmp(argv[i], "rules") == 0) rc = run_rules();
  else if (strcmp(argv[i], "env") == 0) rc = run_env();
  else if (strcmp(argv[i], "heap") == 0) rc = run_heap();
  else if (strcmp(argv[i], "reserve") == 0) rc = run_reserve();
  else if (strcmp(argv[i], "ctl") == 0) return run_ctl(argc, argv, i + 1);
  else if (strcmp(argv[i], "cost") == 0) rc = run_cost(i + 1 < argc ? atoi(argv[i + 1]) : 1);
  else {
    fprintf(stderr, "emulator_check: unknown mode %s\n", argv[i]);
    return 2;
  }
  if (rc) return rc;
  printf("%d checks, %d failed\n", g_checks, g_failures);
  return g_failures ? 1 : 0;
}
