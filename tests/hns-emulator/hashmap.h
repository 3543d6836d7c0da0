/*
 * hashmap.h - string-keyed hash map (separate chaining, grows at load 1).
 * Keys are copied; values are borrowed pointers the caller owns.
 */
#ifndef HNSEMU_HASHMAP_H
#define HNSEMU_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hentry {
  struct hentry *next;
  uint64_t hash;
  void *val;
  char key[];
} hentry;

typedef struct hmap {
  hentry **buckets;
  size_t nbuckets;
  size_t count;
} hmap;

void hm_init(hmap *m);
/* Drop every entry (values are not freed). */
void hm_clear(hmap *m);
void *hm_get(const hmap *m, const char *key);
/* Insert or replace; returns the previous value or NULL. */
void *hm_put(hmap *m, const char *key, void *val);
/* Remove; returns the removed value or NULL. */
void *hm_del(hmap *m, const char *key);
/* Remove only when the key currently maps to val. */
void hm_del_if(hmap *m, const char *key, const void *val);

#endif
