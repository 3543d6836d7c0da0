/* hashmap.c - see hashmap.h. */
#include "hashmap.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ULL;
  }
  return h ^ (h >> 29);
}

void hm_init(hmap *m) {
  m->buckets = NULL;
  m->nbuckets = 0;
  m->count = 0;
}

void hm_clear(hmap *m) {
  for (size_t i = 0; i < m->nbuckets; i++) {
    hentry *e = m->buckets[i];
    while (e) {
      hentry *next = e->next;
      xfree(e);
      e = next;
    }
  }
  xfree(m->buckets);
  hm_init(m);
}

static hentry **slot(const hmap *m, const char *key, uint64_t h) {
  hentry **pp = &m->buckets[h & (m->nbuckets - 1)];
  while (*pp && !((*pp)->hash == h && strcmp((*pp)->key, key) == 0)) pp = &(*pp)->next;
  return pp;
}

void *hm_get(const hmap *m, const char *key) {
  if (!m->count) return NULL;
  hentry *e = *slot(m, key, hash_str(key));
  return e ? e->val : NULL;
}

static void rehash(hmap *m, size_t nb) {
  hentry **b = xcalloc(nb, sizeof *b);
  for (size_t i = 0; i < m->nbuckets; i++) {
    hentry *e = m->buckets[i];
    while (e) {
      hentry *next = e->next;
      size_t j = e->hash & (nb - 1);
      e->next = b[j];
      b[j] = e;
      e = next;
    }
  }
  xfree(m->buckets);
  m->buckets = b;
  m->nbuckets = nb;
}

void *hm_put(hmap *m, const char *key, void *val) {
  if (m->count + 1 > m->nbuckets) rehash(m, m->nbuckets ? m->nbuckets * 2 : 16);
  uint64_t h = hash_str(key);
  hentry **pp = slot(m, key, h);
  if (*pp) {
    void *old = (*pp)->val;
    (*pp)->val = val;
    return old;
  }
  size_t n = strlen(key);
  hentry *e = xmalloc(sizeof *e + n + 1);
  memcpy(e->key, key, n + 1);
  e->hash = h;
  e->val = val;
  e->next = NULL;
  *pp = e;
  m->count++;
  return NULL;
}

void *hm_del(hmap *m, const char *key) {
  if (!m->count) return NULL;
  hentry **pp = slot(m, key, hash_str(key));
  hentry *e = *pp;
  if (!e) return NULL;
  void *val = e->val;
  *pp = e->next;
  xfree(e);
  m->count--;
  return val;
}

void hm_del_if(hmap *m, const char *key, const void *val) {
  if (hm_get(m, key) == val) hm_del(m, key);
}
