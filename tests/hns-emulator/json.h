/*
 * json.h - a small JSON document model: strict RFC 8259 parser, compact
 * serializer, and the few accessors the HNS rules need.
 *
 * Objects keep their keys in insertion order so that a document is returned
 * the way it was sent. Numbers keep their original text so that re-serializing
 * never changes them (64-bit IDs, 2151350291, 1e3 all survive untouched).
 * Strings are UTF-8 with an explicit length (they may contain NUL).
 */
#ifndef HNSEMU_JSON_H
#define HNSEMU_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval jval;
struct jval {
  jtype t;
  int b;        /* J_BOOL */
  char *s;      /* J_STR: UTF-8 text; J_NUM: the number's source text */
  size_t slen;  /* length of s */
  size_t n;     /* J_ARR / J_OBJ: element count */
  size_t cap;
  jval **items; /* J_ARR / J_OBJ: values */
  char **keys;  /* J_OBJ: keys, parallel to items */
};

/* Parse text (UTF-8, len bytes). NULL on error with a message in err. */
jval *json_parse(const char *text, size_t len, char *err, size_t errlen);
void json_free(jval *v);
jval *json_clone(const jval *v);
int json_equal(const jval *a, const jval *b);
/* Append the compact serialization of v to b. */
void json_write(sbuf *b, const jval *v);
/* Append s as a JSON string literal. */
void json_write_str(sbuf *b, const char *s, size_t n);

jval *json_new_null(void);
jval *json_new_str(const char *s);
jval *json_new_strn(const char *s, size_t n);
jval *json_new_int(int64_t i);
jval *json_new_arr(void);
jval *json_new_obj(void);
/* Append to an array (takes ownership of item). */
void json_push(jval *arr, jval *item);

/* Object member by key: exact match first, then ASCII case-insensitive. */
jval *json_get(const jval *obj, const char *key);
/* Set a member (takes ownership of v); replaces an existing (case-insensitive) key in place. */
void json_set(jval *obj, const char *key, jval *v);
/* Like json_set, but a new key goes first rather than last. */
void json_set_first(jval *obj, const char *key, jval *v);
/* Remove a member if present (case-insensitive key). */
void json_del(jval *obj, const char *key);
/* Remove array element i. */
void json_arr_remove(jval *arr, size_t i);

/* The string of a J_STR value, or NULL. */
const char *json_str(const jval *v);
/* The integral value of a J_NUM; 0 when v is not an integral number. */
int json_int(const jval *v, int64_t *out);

#endif
