/* store.c - see store.h. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netaddr.h"
#include "platform.h"

static const char *const kind_array_names[NKINDS] = {"Networks", "Endpoints", "LoadBalancers"};

/* ---- keys ---------------------------------------------------------------- */

typedef struct keylist {
  char **v;
  size_t n, cap;
} keylist;

static void kl_push(keylist *l, const char *s) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 4;
    l->v = xrealloc(l->v, l->cap * sizeof *l->v);
  }
  l->v[l->n++] = xstrdup(s);
}

static void free_keys(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) xfree(v[i]);
  xfree(v);
}

static void kl_free(keylist *l) {
  free_keys(l->v, l->n);
  memset(l, 0, sizeof *l);
}

static int hexdigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int guid_canonical(const char *in, char out[37]) {
  size_t n = strlen(in);
  if (n == 38 && in[0] == '{' && in[37] == '}') {
    in++;
    n = 36;
  }
  if (n != 36) return 0;
  for (size_t i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (in[i] != '-') return 0;
    } else if (!hexdigit(in[i])) {
      return 0;
    }
  }
  memcpy(out, in, 36);
  out[36] = 0;
  ascii_upper(out);
  return 1;
}

/* The index key of an ID: canonical GUID, else the upper-cased text. */
static char *id_key(const char *id) {
  char canon[37];
  if (guid_canonical(id, canon)) return xstrdup(canon);
  char *k = xstrdup(id);
  ascii_upper(k);
  return k;
}

static uint64_t rng_next(store *s) {
  if (!s->rng) s->rng = plat_entropy() | 1;
  uint64_t z = (s->rng += 0x9E3779B97F4A7C15ULL); /* splitmix64 */
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void store_new_guid(store *s, char out[37]) {
  static const char hex[] = "0123456789ABCDEF";
  uint64_t r[2] = {rng_next(s), rng_next(s)};
  char digits[32];
  for (int i = 0; i < 32; i++) digits[i] = hex[(r[i / 16] >> (4 * (i % 16))) & 15];
  digits[12] = '4';                                /* version 4 */
  digits[16] = hex[8 | (r[1] >> 60 & 3)];          /* RFC 4122 variant */
  int o = 0;
  for (int i = 0; i < 32; i++) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out[o++] = '-';
    out[o++] = digits[i];
  }
  out[o] = 0;
}

/* ---- store basics ---------------------------------------------------------- */

void store_init(store *s) {
  memset(s, 0, sizeof *s);
  for (int k = 0; k < NKINDS; k++) hm_init(&s->by_id[k]);
  hm_init(&s->ep_ip);
  hm_init(&s->lb_port);
}

static void free_obj(obj *o) {
  xfree(o->text);
  xfree(o->id_json);
  xfree(o->net_val);
  xfree(o->key);
  xfree(o->net_key);
  free_keys(o->idx, o->nidx);
  free_keys(o->ep_keys, o->nep);
  xfree(o);
}

void store_clear(store *s) {
  uint64_t rng = s->rng;
  for (int k = 0; k < NKINDS; k++) {
    obj *o = s->head[k];
    while (o) {
      obj *next = o->next;
      free_obj(o);
      o = next;
    }
    hm_clear(&s->by_id[k]);
    xfree(s->list[k]);
  }
  hm_clear(&s->ep_ip);
  hm_clear(&s->lb_port);
  store_init(s);
  s->rng = rng;
}

int32_t store_not_found(obj_kind k) {
  switch (k) {
    case K_NETWORK: return HR_NETWORK_NOT_FOUND;
    case K_ENDPOINT: return HR_ENDPOINT_NOT_FOUND;
    default: return HR_NOT_FOUND;
  }
}

obj *store_find(const store *s, obj_kind k, const char *id) {
  char *key = id_key(id);
  obj *o = hm_get(&s->by_id[k], key);
  xfree(key);
  return o;
}

/* The object's list entry's copy of its network value. */
static void entry_net(listent *e, const obj *o) {
  e->netlen = o->net_val ? o->net_val_len : SIZE_MAX;
  if (o->net_val && o->net_val_len <= LIST_INLINE) memcpy(e->net, o->net_val, o->net_val_len);
}

/* The object's document, parsed from its text (the caller frees it). */
static jval *obj_doc(const obj *o) {
  char err[200];
  jval *doc = json_parse(o->text, o->text_len, err, sizeof err);
  if (!doc) {
    fprintf(stderr, "hnsemu: an object's own text does not parse: %s\n", err);
    abort();
  }
  return doc;
}

/* Keep doc (which stays the caller's) as the object's text: exactly what json_write makes. */
static void set_text(obj *o, const jval *doc) {
  sbuf b;
  sb_init(&b);
  json_write(&b, doc);
  xfree(o->text);
  o->text = xstrndup(b.p, b.n);
  o->text_len = b.n;
  sb_free(&b);
}

/* The object's "ID" value, from its cached literal (the caller frees it). */
static jval *obj_id(const obj *o) {
  char err[200];
  jval *id = json_parse(o->id_json, o->id_json_len, err, sizeof err);
  if (!id) abort(); /* cache_id_json wrote a string literal */
  return id;
}

/* The endpoint's network value as the filter reads it (see matches). */
static void cache_net_val(obj *o, const jval *doc) {
  xfree(o->net_val);
  o->net_val = NULL;
  o->net_val_len = 0;
  if (o->kind != K_ENDPOINT) return;
  const jval *have = json_get(doc, "HostComputeNetwork");
  if (!have) have = json_get(doc, "VirtualNetwork");
  if (!have || have->t != J_STR) return;
  o->net_val = xstrndup(have->s, have->slen);
  o->net_val_len = have->slen;
}

/* The ID as Enumerate writes it: the doc's "ID" string, else the key. */
static void cache_id_json(obj *o, const jval *doc) {
  sbuf b;
  sb_init(&b);
  const jval *id = json_get(doc, "ID");
  if (id && id->t == J_STR) json_write_str(&b, id->s, id->slen);
  else json_write_str(&b, o->key, strlen(o->key));
  xfree(o->id_json);
  o->id_json_len = b.n;
  o->id_json = sb_take(&b);
}

static void list_add(store *s, obj *o) {
  int k = o->kind;
  if (s->nlist[k] == s->caplist[k]) {
    s->caplist[k] = s->caplist[k] ? s->caplist[k] * 2 : 64;
    s->list[k] = xrealloc(s->list[k], s->caplist[k] * sizeof *s->list[k]);
  }
  o->slot = s->nlist[k]++;
  listent *e = &s->list[k][o->slot];
  e->o = o;
  e->idlen = o->id_json_len;
  if (o->id_json_len <= LIST_INLINE) memcpy(e->id, o->id_json, o->id_json_len);
  entry_net(e, o);
}

/* Drop o's entry; compact the list once most of it is dropped entries. */
static void list_remove(store *s, obj *o) {
  int k = o->kind;
  s->list[k][o->slot].o = NULL;
  if (++s->ndead[k] < 1024 || s->ndead[k] * 2 < s->nlist[k]) return;
  size_t n = 0;
  for (size_t i = 0; i < s->nlist[k]; i++) {
    if (!s->list[k][i].o) continue;
    s->list[k][n] = s->list[k][i];
    s->list[k][n].o->slot = n;
    n++;
  }
  s->nlist[k] = n;
  s->ndead[k] = 0;
}

/* Link o with doc (which stays the caller's) as its content. */
static void link_obj(store *s, obj *o, const jval *doc) {
  set_text(o, doc);
  cache_id_json(o, doc);
  cache_net_val(o, doc);
  list_add(s, o);
  s->id_json_bytes[o->kind] += o->id_json_len;
  o->prev = s->tail[o->kind];
  o->next = NULL;
  if (o->prev) o->prev->next = o;
  else s->head[o->kind] = o;
  s->tail[o->kind] = o;
  s->count[o->kind]++;
  hm_put(&s->by_id[o->kind], o->key, o);
}

static void unlink_obj(store *s, obj *o) {
  if (o->prev) o->prev->next = o->next;
  else s->head[o->kind] = o->next;
  if (o->next) o->next->prev = o->prev;
  else s->tail[o->kind] = o->prev;
  s->count[o->kind]--;
  s->id_json_bytes[o->kind] -= o->id_json_len;
  list_remove(s, o);
  hm_del_if(&s->by_id[o->kind], o->key, o);
}

/* Index keys and references: what an object claims while it exists. */
static void attach(store *s, obj *o) {
  hmap *index = o->kind == K_ENDPOINT ? &s->ep_ip : &s->lb_port;
  for (size_t i = 0; i < o->nidx; i++)
    if (!hm_get(index, o->idx[i])) hm_put(index, o->idx[i], o);
  if (o->net_key) {
    obj *net = hm_get(&s->by_id[K_NETWORK], o->net_key);
    if (net) net->refs++;
  }
  for (size_t i = 0; i < o->nep; i++) {
    obj *ep = hm_get(&s->by_id[K_ENDPOINT], o->ep_keys[i]);
    if (ep) ep->refs++;
  }
}

static void detach(store *s, obj *o) {
  hmap *index = o->kind == K_ENDPOINT ? &s->ep_ip : &s->lb_port;
  for (size_t i = 0; i < o->nidx; i++) hm_del_if(index, o->idx[i], o);
  if (o->net_key) {
    obj *net = hm_get(&s->by_id[K_NETWORK], o->net_key);
    if (net) net->refs--;
  }
  for (size_t i = 0; i < o->nep; i++) {
    obj *ep = hm_get(&s->by_id[K_ENDPOINT], o->ep_keys[i]);
    if (ep) ep->refs--;
  }
}

/* ---- rule helpers ---------------------------------------------------------- */

static int is_absent(const jval *v) { return !v || v->t == J_NULL; }

/*
 * The IP index keys of an endpoint. strict: report bad input (create);
 * otherwise skip it (loading a state file takes objects as they are).
 */
static int32_t endpoint_ip_keys(const jval *doc, const char *net_key, int strict, keylist *out) {
  const jval *cfgs = json_get(doc, "IpConfigurations");
  if (is_absent(cfgs)) return HR_OK;
  if (cfgs->t != J_ARR) return strict ? HR_E_INVALIDARG : HR_OK;
  for (size_t i = 0; i < cfgs->n; i++) {
    const jval *c = cfgs->items[i];
    if (c->t != J_OBJ) {
      if (strict) return HR_E_INVALIDARG;
      continue;
    }
    const jval *ip = json_get(c, "IpAddress");
    if (is_absent(ip)) continue;
    char canon[IP_KEY_SIZE];
    if (ip->t != J_STR || !ip_canonical(ip->s, canon)) {
      if (strict) return HR_INVALID_IP;
      continue;
    }
    sbuf k;
    sb_init(&k);
    sb_printf(&k, "%s|%s", net_key, canon);
    kl_push(out, k.p);
    sb_free(&k);
  }
  return HR_OK;
}

static int32_t int_field(const jval *obj, const char *name, int64_t lo, int64_t hi, int64_t *out) {
  const jval *v = json_get(obj, name);
  *out = 0;
  if (is_absent(v)) return HR_OK;
  if (!json_int(v, out) || *out < lo || *out > hi) return HR_E_INVALIDARG;
  return HR_OK;
}

/* The frontend keys (VIP or "", protocol, external port) an LB claims. */
static int32_t lb_port_keys(const jval *doc, int strict, keylist *out) {
  const jval *pms = json_get(doc, "PortMappings");
  if (is_absent(pms) || pms->t != J_ARR || pms->n == 0) return strict ? HR_E_INVALIDARG : HR_OK;
  keylist vips = {0};
  const jval *fv = json_get(doc, "FrontendVIPs");
  if (!is_absent(fv)) {
    if (fv->t != J_ARR) {
      if (strict) return HR_E_INVALIDARG;
    } else {
      for (size_t i = 0; i < fv->n; i++) {
        char canon[IP_KEY_SIZE];
        if (fv->items[i]->t != J_STR || !ip_canonical(fv->items[i]->s, canon)) {
          if (strict) {
            kl_free(&vips);
            return HR_INVALID_IP;
          }
          continue;
        }
        kl_push(&vips, canon);
      }
    }
  }
  if (vips.n == 0) kl_push(&vips, "");
  int32_t hr = HR_OK;
  for (size_t i = 0; i < pms->n && hr == HR_OK; i++) {
    const jval *pm = pms->items[i];
    int64_t proto, port;
    if (pm->t != J_OBJ) {
      if (strict) hr = HR_E_INVALIDARG;
      continue;
    }
    int32_t e1 = int_field(pm, "Protocol", 0, 255, &proto);
    int32_t e2 = int_field(pm, "ExternalPort", 0, 65535, &port);
    if (e1 != HR_OK || e2 != HR_OK) {
      if (strict) hr = HR_E_INVALIDARG;
      continue;
    }
    for (size_t v = 0; v < vips.n; v++) {
      char k[96];
      snprintf(k, sizeof k, "%s|%lld|%lld", vips.v[v], (long long)proto, (long long)port);
      kl_push(out, k);
    }
  }
  kl_free(&vips);
  return hr;
}

/* The endpoints an LB references, as index keys; strict: each must exist. */
static int32_t lb_endpoint_keys(const store *s, const jval *doc, int strict, keylist *out) {
  const jval *eps = json_get(doc, "HostComputeEndpoints");
  if (is_absent(eps)) return HR_OK;
  if (eps->t != J_ARR) return strict ? HR_E_INVALIDARG : HR_OK;
  for (size_t i = 0; i < eps->n; i++) {
    const jval *e = eps->items[i];
    if (e->t != J_STR) {
      if (strict) return HR_E_INVALIDARG;
      continue;
    }
    obj *ep = store_find(s, K_ENDPOINT, e->s);
    if (!ep) {
      if (strict) return HR_ENDPOINT_NOT_FOUND;
      continue;
    }
    kl_push(out, ep->key);
  }
  return HR_OK;
}

static int32_t check_free(const hmap *index, const keylist *keys, const obj *self, int32_t hr) {
  for (size_t i = 0; i < keys->n; i++) {
    obj *holder = hm_get(index, keys->v[i]);
    if (holder && holder != self) return hr;
  }
  return HR_OK;
}

/* ---- operations ---------------------------------------------------------- */

int32_t store_create(store *s, obj_kind k, const char *id, const char *net_key, jval *settings,
                     obj **out) {
  int32_t hr = HR_OK;
  keylist idx = {0}, eps = {0};
  obj *net = NULL;
  char idbuf[37];
  *out = NULL;
  if (settings->t != J_OBJ) {
    hr = HR_INVALID_JSON;
    goto fail;
  }
  if (k == K_ENDPOINT) {
    net = net_key ? hm_get(&s->by_id[K_NETWORK], net_key) : NULL;
    if (!net) {
      hr = HR_NETWORK_NOT_FOUND;
      goto fail;
    }
  }
  if (id) {
    if (store_find(s, k, id)) {
      hr = HR_ALREADY_EXISTS;
      goto fail;
    }
    snprintf(idbuf, sizeof idbuf, "%s", id);
  } else {
    do store_new_guid(s, idbuf);
    while (hm_get(&s->by_id[k], idbuf));
  }
  if (k == K_ENDPOINT) {
    if ((hr = endpoint_ip_keys(settings, net->key, 1, &idx)) != HR_OK) goto fail;
    if ((hr = check_free(&s->ep_ip, &idx, NULL, HR_ALREADY_EXISTS)) != HR_OK) goto fail;
    json_set(settings, "HostComputeNetwork", obj_id(net));
  } else if (k == K_LB) {
    if ((hr = lb_port_keys(settings, 1, &idx)) != HR_OK) goto fail;
    if ((hr = lb_endpoint_keys(s, settings, 1, &eps)) != HR_OK) goto fail;
    if ((hr = check_free(&s->lb_port, &idx, NULL, HR_PORT_EXISTS)) != HR_OK) goto fail;
  }
  json_set_first(settings, "ID", json_new_str(idbuf));
  obj *o = xcalloc(1, sizeof *o);
  o->kind = k;
  o->key = xstrdup(idbuf);
  o->idx = idx.v;
  o->nidx = idx.n;
  o->ep_keys = eps.v;
  o->nep = eps.n;
  if (net) o->net_key = xstrdup(net->key);
  link_obj(s, o, settings);
  attach(s, o);
  json_free(settings);
  *out = o;
  return HR_OK;
fail:
  kl_free(&idx);
  kl_free(&eps);
  json_free(settings);
  return hr;
}

static int32_t modify_lb(store *s, obj *o, jval *settings) {
  keylist idx = {0}, eps = {0};
  int32_t hr;
  if ((hr = lb_port_keys(settings, 1, &idx)) != HR_OK ||
      (hr = lb_endpoint_keys(s, settings, 1, &eps)) != HR_OK ||
      (hr = check_free(&s->lb_port, &idx, o, HR_PORT_EXISTS)) != HR_OK) {
    kl_free(&idx);
    kl_free(&eps);
    json_free(settings);
    return hr;
  }
  detach(s, o);
  json_set_first(settings, "ID", obj_id(o));
  set_text(o, settings);
  json_free(settings);
  free_keys(o->idx, o->nidx);
  free_keys(o->ep_keys, o->nep);
  o->idx = idx.v;
  o->nidx = idx.n;
  o->ep_keys = eps.v;
  o->nep = eps.n;
  attach(s, o);
  return HR_OK;
}

/*
 * Networks and endpoints: either {"Policies":[...]} (replace), or the request
 * form hcsshim sends: {"ResourceType":"Policy","RequestType":"Add|Remove|Update|Refresh",
 * "Settings":{"Policies":[...]}}.
 */
static int32_t modify_policies(jval *doc, const jval *settings) {
  const jval *req = json_get(settings, "RequestType");
  const jval *policies;
  const char *mode = "Update";
  if (!is_absent(req)) {
    const jval *res = json_get(settings, "ResourceType");
    if (!is_absent(res) && (res->t != J_STR || ascii_casecmp(res->s, "Policy") != 0))
      return HR_E_NOTIMPL;
    if (req->t != J_STR) return HR_E_INVALIDARG;
    mode = req->s;
    policies = json_get(json_get(settings, "Settings"), "Policies");
  } else {
    policies = json_get(settings, "Policies");
  }
  if (!policies || policies->t != J_ARR) return HR_E_INVALIDARG;
  jval *cur = json_get(doc, "Policies");
  if (!cur || cur->t != J_ARR) {
    json_set(doc, "Policies", json_new_arr());
    cur = json_get(doc, "Policies");
  }
  if (ascii_casecmp(mode, "Add") == 0) {
    for (size_t i = 0; i < policies->n; i++) json_push(cur, json_clone(policies->items[i]));
  } else if (ascii_casecmp(mode, "Remove") == 0) {
    for (size_t i = 0; i < policies->n; i++)
      for (size_t j = 0; j < cur->n; j++)
        if (json_equal(cur->items[j], policies->items[i])) {
          json_arr_remove(cur, j);
          break;
        }
  } else if (ascii_casecmp(mode, "Update") == 0 || ascii_casecmp(mode, "Refresh") == 0) {
    json_set(doc, "Policies", json_clone(policies));
  } else {
    return HR_E_INVALIDARG;
  }
  return HR_OK;
}

int32_t store_modify(store *s, obj *o, jval *settings) {
  if (settings->t != J_OBJ) {
    json_free(settings);
    return HR_INVALID_JSON;
  }
  if (o->kind == K_LB) return modify_lb(s, o, settings);
  /* What modify_policies changed stays changed when it then fails, as it always has. */
  jval *doc = obj_doc(o);
  int32_t hr = modify_policies(doc, settings);
  json_free(settings);
  set_text(o, doc);
  cache_net_val(o, doc);
  json_free(doc);
  entry_net(&s->list[o->kind][o->slot], o);
  return hr;
}

int32_t store_delete(store *s, obj_kind k, const char *id) {
  obj *o = store_find(s, k, id);
  if (!o) return store_not_found(k);
  if (o->refs > 0) return HR_HAS_REFERENCES;
  detach(s, o);
  unlink_obj(s, o);
  free_obj(o);
  return HR_OK;
}

static int value_matches(const jval *have, const jval *want) {
  if (!have) return 0;
  if (have->t == J_STR && want->t == J_STR)
    return ascii_casecmp_n(have->s, have->slen, want->s, want->slen) == 0;
  return json_equal(have, want);
}

static int matches(const listent *e, const jval *filter) {
  const obj *o = e->o;
  if (!filter) return 1;
  jval *doc = NULL; /* parsed from the text when a filter key needs it */
  int ok = 1;
  for (size_t i = 0; i < filter->n && ok; i++) {
    const char *key = filter->keys[i];
    const char *field;
    if (ascii_casecmp(key, "ID") == 0) {
      field = "ID";
    } else if (ascii_casecmp(key, "Name") == 0) {
      field = "Name";
    } else if (o->kind == K_ENDPOINT && (ascii_casecmp(key, "VirtualNetwork") == 0 ||
                                         ascii_casecmp(key, "HostComputeNetwork") == 0)) {
      const jval *want = filter->items[i];
      if (e->netlen != SIZE_MAX && want->t == J_STR) {
        /* The cached string: value_matches without reading the doc. */
        const char *net = e->netlen <= LIST_INLINE ? e->net : o->net_val;
        if (e->netlen == want->slen && memcmp(net, want->s, want->slen) == 0) continue;
        if (ascii_casecmp_n(net, e->netlen, want->s, want->slen) != 0) ok = 0;
        continue;
      }
      field = NULL;
    } else {
      continue; /* HNS ignores filter keys it does not know */
    }
    if (!doc) doc = obj_doc(o);
    const jval *have = field ? json_get(doc, field) : json_get(doc, "HostComputeNetwork");
    if (!field && !have) have = json_get(doc, "VirtualNetwork");
    if (!value_matches(have, filter->items[i])) ok = 0;
  }
  json_free(doc);
  return ok;
}

static void write_id(sbuf *out, const listent *e, int *first) {
  if (!*first) out->p[out->n++] = ',';
  *first = 0;
  memcpy(out->p + out->n, e->idlen <= LIST_INLINE ? e->id : e->o->id_json, e->idlen);
  out->n += e->idlen;
}

void store_enumerate(const store *s, obj_kind k, const jval *filter, sbuf *out) {
  int first = 1;
  /* Room for every ID at once (the most a listing holds): write_id only copies. */
  sb_reserve(out, s->id_json_bytes[k] + s->count[k] + 2);
  sb_putc(out, '[');
  const jval *fid = filter ? json_get(filter, "ID") : NULL;
  if (fid && fid->t == J_STR) {
    obj *o = store_find(s, k, fid->s);
    if (o && matches(&s->list[k][o->slot], filter)) write_id(out, &s->list[k][o->slot], &first);
  } else {
    const listent *end = s->list[k] + s->nlist[k];
    for (const listent *e = s->list[k]; e < end; e++)
      if (e->o && matches(e, filter)) write_id(out, e, &first);
  }
  sb_putc(out, ']');
  out->p[out->n] = 0;
}

/* ---- state documents ------------------------------------------------------ */

void store_dump(const store *s, sbuf *out) {
  sb_putc(out, '{');
  for (int k = 0; k < NKINDS; k++) {
    if (k) sb_putc(out, ',');
    sb_printf(out, "\"%s\":[", kind_array_names[k]);
    for (const obj *o = s->head[k]; o; o = o->next) {
      if (o != s->head[k]) sb_putc(out, ',');
      sb_putn(out, o->text, o->text_len);
    }
    sb_putc(out, ']');
  }
  sb_puts(out, "}\n");
}

int store_load(store *s, const jval *doc, int *changed, char *err, size_t errlen) {
  store_clear(s);
  *changed = 0;
  if (doc->t != J_OBJ) {
    snprintf(err, errlen, "the state document is not a JSON object");
    return -1;
  }
  for (int k = 0; k < NKINDS; k++) {
    const jval *arr = json_get(doc, kind_array_names[k]);
    if (is_absent(arr)) continue;
    if (arr->t != J_ARR) {
      snprintf(err, errlen, "\"%s\" is not an array", kind_array_names[k]);
      store_clear(s);
      return -1;
    }
    for (size_t i = 0; i < arr->n; i++) {
      if (arr->items[i]->t != J_OBJ) {
        snprintf(err, errlen, "%s[%lu] is not an object", kind_array_names[k], (unsigned long)i);
        store_clear(s);
        return -1;
      }
      jval *d = json_clone(arr->items[i]);
      const jval *idv = json_get(d, "ID");
      char canon[37];
      char *key;
      if (!idv || idv->t != J_STR || idv->slen == 0) {
        store_new_guid(s, canon);
        json_set_first(d, "ID", json_new_str(canon));
        key = xstrdup(canon);
        *changed = 1;
      } else if (guid_canonical(idv->s, canon)) {
        if (strcmp(canon, idv->s) != 0) {
          json_set_first(d, "ID", json_new_str(canon));
          *changed = 1;
        }
        key = xstrdup(canon);
      } else {
        key = id_key(idv->s);
      }
      if (hm_get(&s->by_id[k], key)) {
        fprintf(stderr, "hnsemu: state file: dropping duplicate %s ID %s\n", kind_array_names[k],
                key);
        xfree(key);
        json_free(d);
        *changed = 1;
        continue;
      }
      obj *o = xcalloc(1, sizeof *o);
      o->kind = (obj_kind)k;
      o->key = key;
      keylist idx = {0}, eps = {0};
      if (k == K_ENDPOINT) {
        const jval *nv = json_get(d, "HostComputeNetwork");
        if (!nv || nv->t != J_STR) nv = json_get(d, "VirtualNetwork");
        const char *nid = json_str(nv) ? nv->s : "";
        obj *net = store_find(s, K_NETWORK, nid);
        char *nkey = net ? xstrdup(net->key) : id_key(nid);
        endpoint_ip_keys(d, nkey, 0, &idx);
        if (net) o->net_key = nkey;
        else xfree(nkey);
      } else if (k == K_LB) {
        lb_port_keys(d, 0, &idx);
        lb_endpoint_keys(s, d, 0, &eps);
      }
      o->idx = idx.v;
      o->nidx = idx.n;
      o->ep_keys = eps.v;
      o->nep = eps.n;
      link_obj(s, o, d);
      attach(s, o);
      json_free(d);
    }
  }
  return 0;
}
