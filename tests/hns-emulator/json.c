/* json.c - see json.h. */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 256

typedef struct parser {
  const char *p;
  const char *end;
  const char *start;
  char *err;
  size_t errlen;
  int failed;
} parser;

static jval *jnew(jtype t) {
  jval *v = xcalloc(1, sizeof *v);
  v->t = t;
  return v;
}

/* A string or number node whose text (n bytes, NUL added) lives in the node's own block. */
static jval *jnew_text(jtype t, const char *text, size_t n) {
  jval *v = xcalloc(1, sizeof *v + n + 1);
  v->t = t;
  v->s = (char *)(v + 1);
  memcpy(v->s, text, n);
  v->slen = n;
  return v;
}

static void fail(parser *ps, const char *what) {
  if (ps->failed) return;
  ps->failed = 1;
  if (ps->err && ps->errlen)
    snprintf(ps->err, ps->errlen, "%s at offset %lu", what, (unsigned long)(ps->p - ps->start));
}

static void skip_ws(parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

static void put_utf8(sbuf *b, uint32_t cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  sb_putn(b, u, n);
}

static int hex4(parser *ps, uint32_t *out) {
  if (ps->end - ps->p < 4) return 0;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    char c = ps->p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
    else return 0;
  }
  ps->p += 4;
  *out = v;
  return 1;
}

/* Parses a string literal (ps->p at the opening quote) into b. */
static int parse_string_into(parser *ps, sbuf *b) {
  ps->p++; /* opening quote */
  for (;;) {
    const char *run = ps->p;
    while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' && (unsigned char)*ps->p >= 0x20)
      ps->p++;
    sb_putn(b, run, (size_t)(ps->p - run));
    if (ps->p >= ps->end) {
      fail(ps, "unterminated string");
      return 0;
    }
    char c = *ps->p;
    if (c == '"') {
      ps->p++;
      if (!b->p) sb_putn(b, "", 0);
      return 1;
    }
    if ((unsigned char)c < 0x20) {
      fail(ps, "control character in string");
      return 0;
    }
    /* backslash escape */
    ps->p++;
    if (ps->p >= ps->end) {
      fail(ps, "unterminated escape");
      return 0;
    }
    c = *ps->p++;
    switch (c) {
      case '"': sb_putc(b, '"'); break;
      case '\\': sb_putc(b, '\\'); break;
      case '/': sb_putc(b, '/'); break;
      case 'b': sb_putc(b, '\b'); break;
      case 'f': sb_putc(b, '\f'); break;
      case 'n': sb_putc(b, '\n'); break;
      case 'r': sb_putc(b, '\r'); break;
      case 't': sb_putc(b, '\t'); break;
      case 'u': {
        uint32_t cp;
        if (!hex4(ps, &cp)) {
          fail(ps, "bad \\u escape");
          return 0;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t lo;
          const char *save = ps->p;
          if (ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
            ps->p += 2;
            if (hex4(ps, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else {
              ps->p = save;
              cp = 0xFFFD;
            }
          } else {
            cp = 0xFFFD;
          }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          cp = 0xFFFD;
        }
        put_utf8(b, cp);
        break;
      }
      default:
        fail(ps, "bad escape");
        return 0;
    }
  }
}

/*
 * A string literal without escapes at ps->p (the opening quote): its text in
 * the input and its length, the parser moved past it. 0, nothing moved, when
 * it has escapes or is malformed (parse_string_into then says which).
 */
static int plain_string(parser *ps, const char **text, size_t *len) {
  const char *q = ps->p + 1;
  while (q < ps->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
  if (q >= ps->end || *q != '"') return 0;
  *text = ps->p + 1;
  *len = (size_t)(q - ps->p - 1);
  ps->p = q + 1;
  return 1;
}

/* Parses a string literal (ps->p at the opening quote) into a new exact-size string. */
static char *parse_string(parser *ps, size_t *len) {
  const char *text;
  if (plain_string(ps, &text, len)) return xstrndup(text, *len);
  sbuf b;
  sb_init(&b);
  if (!parse_string_into(ps, &b)) {
    sb_free(&b);
    return NULL;
  }
  *len = b.n;
  return sb_take(&b);
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static jval *parse_number(parser *ps) {
  const char *s = ps->p;
  if (ps->p < ps->end && *ps->p == '-') ps->p++;
  if (ps->p >= ps->end) goto bad;
  if (*ps->p == '0') {
    ps->p++;
  } else if (is_digit(*ps->p)) {
    while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
  } else {
    goto bad;
  }
  if (ps->p < ps->end && *ps->p == '.') {
    ps->p++;
    if (ps->p >= ps->end || !is_digit(*ps->p)) goto bad;
    while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
  }
  if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
    ps->p++;
    if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
    if (ps->p >= ps->end || !is_digit(*ps->p)) goto bad;
    while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
  }
  return jnew_text(J_NUM, s, (size_t)(ps->p - s));
bad:
  fail(ps, "invalid number");
  return NULL;
}

static int literal(parser *ps, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return 0;
  ps->p += n;
  return 1;
}

static void grow(jval *v) {
  if (v->n < v->cap) return;
  v->cap = v->cap ? v->cap * 2 : 4;
  v->items = xrealloc(v->items, v->cap * sizeof *v->items);
  if (v->t == J_OBJ) v->keys = xrealloc(v->keys, v->cap * sizeof *v->keys);
}

static jval *parse_value(parser *ps, int depth);

static jval *parse_array(parser *ps, int depth) {
  jval *a = jnew(J_ARR);
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == ']') {
    ps->p++;
    return a;
  }
  for (;;) {
    jval *item = parse_value(ps, depth + 1);
    if (!item) goto bad;
    json_push(a, item);
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') {
      ps->p++;
      continue;
    }
    if (ps->p < ps->end && *ps->p == ']') {
      ps->p++;
      return a;
    }
    fail(ps, "expected ',' or ']'");
    goto bad;
  }
bad:
  json_free(a);
  return NULL;
}

static jval *parse_object(parser *ps, int depth) {
  jval *o = jnew(J_OBJ);
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == '}') {
    ps->p++;
    return o;
  }
  for (;;) {
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != '"') {
      fail(ps, "expected a string key");
      goto bad;
    }
    size_t keylen;
    char *key = parse_string(ps, &keylen);
    if (!key) goto bad;
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != ':') {
      xfree(key);
      fail(ps, "expected ':'");
      goto bad;
    }
    ps->p++;
    jval *item = parse_value(ps, depth + 1);
    if (!item) {
      xfree(key);
      goto bad;
    }
    /* Duplicate keys: the last one wins, as with most JSON decoders. */
    size_t i;
    for (i = 0; i < o->n; i++)
      if (strcmp(o->keys[i], key) == 0) break;
    if (i < o->n) {
      json_free(o->items[i]);
      o->items[i] = item;
      xfree(key);
    } else {
      grow(o);
      o->keys[o->n] = key;
      o->items[o->n++] = item;
    }
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') {
      ps->p++;
      continue;
    }
    if (ps->p < ps->end && *ps->p == '}') {
      ps->p++;
      return o;
    }
    fail(ps, "expected ',' or '}'");
    goto bad;
  }
bad:
  json_free(o);
  return NULL;
}

static jval *parse_value(parser *ps, int depth) {
  if (depth > MAX_DEPTH) {
    fail(ps, "nesting too deep");
    return NULL;
  }
  skip_ws(ps);
  if (ps->p >= ps->end) {
    fail(ps, "unexpected end of input");
    return NULL;
  }
  switch (*ps->p) {
    case '{': return parse_object(ps, depth);
    case '[': return parse_array(ps, depth);
    case '"': {
      const char *text;
      size_t n;
      if (plain_string(ps, &text, &n)) return jnew_text(J_STR, text, n);
      char *s = parse_string(ps, &n);
      if (!s) return NULL;
      jval *v = jnew_text(J_STR, s, n);
      xfree(s);
      return v;
    }
    case 't':
    case 'f':
    case 'n': {
      if (literal(ps, "true")) {
        jval *v = jnew(J_BOOL);
        v->b = 1;
        return v;
      }
      if (literal(ps, "false")) return jnew(J_BOOL);
      if (literal(ps, "null")) return jnew(J_NULL);
      fail(ps, "invalid literal");
      return NULL;
    }
    default:
      if (*ps->p == '-' || is_digit(*ps->p)) return parse_number(ps);
      fail(ps, "unexpected character");
      return NULL;
  }
}

jval *json_parse(const char *text, size_t len, char *err, size_t errlen) {
  parser ps = {text, text + len, text, err, errlen, 0};
  if (err && errlen) err[0] = 0;
  jval *v = parse_value(&ps, 0);
  if (!v) return NULL;
  skip_ws(&ps);
  if (ps.p != ps.end) {
    fail(&ps, "trailing characters after the document");
    json_free(v);
    return NULL;
  }
  return v;
}

void json_free(jval *v) {
  if (!v) return;
  for (size_t i = 0; i < v->n; i++) {
    json_free(v->items[i]);
    if (v->t == J_OBJ) xfree(v->keys[i]);
  }
  xfree(v->items);
  xfree(v->keys);
  if (v->s != (char *)(v + 1)) xfree(v->s);
  xfree(v);
}

jval *json_clone(const jval *v) {
  if (!v) return NULL;
  jval *c = v->s ? jnew_text(v->t, v->s, v->slen) : jnew(v->t);
  c->b = v->b;
  if (v->n) {
    c->cap = c->n = v->n;
    c->items = xmalloc(v->n * sizeof *c->items);
    if (v->t == J_OBJ) c->keys = xmalloc(v->n * sizeof *c->keys);
    for (size_t i = 0; i < v->n; i++) {
      c->items[i] = json_clone(v->items[i]);
      if (v->t == J_OBJ) c->keys[i] = xstrdup(v->keys[i]);
    }
  }
  return c;
}

int json_equal(const jval *a, const jval *b) {
  if (a == b) return 1;
  if (!a || !b || a->t != b->t) return 0;
  switch (a->t) {
    case J_NULL: return 1;
    case J_BOOL: return a->b == b->b;
    case J_NUM: {
      if (a->slen == b->slen && memcmp(a->s, b->s, a->slen) == 0) return 1;
      return strtod(a->s, NULL) == strtod(b->s, NULL);
    }
    case J_STR: return a->slen == b->slen && memcmp(a->s, b->s, a->slen) == 0;
    case J_ARR:
      if (a->n != b->n) return 0;
      for (size_t i = 0; i < a->n; i++)
        if (!json_equal(a->items[i], b->items[i])) return 0;
      return 1;
    case J_OBJ:
      if (a->n != b->n) return 0;
      for (size_t i = 0; i < a->n; i++) {
        size_t j;
        for (j = 0; j < b->n; j++)
          if (strcmp(a->keys[i], b->keys[j]) == 0) break;
        if (j == b->n || !json_equal(a->items[i], b->items[j])) return 0;
      }
      return 1;
  }
  return 0;
}

void json_write_str(sbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  sb_putc(b, '"');
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    sb_putn(b, s + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': sb_puts(b, "\\\""); break;
      case '\\': sb_puts(b, "\\\\"); break;
      case '\n': sb_puts(b, "\\n"); break;
      case '\r': sb_puts(b, "\\r"); break;
      case '\t': sb_puts(b, "\\t"); break;
      case '\b': sb_puts(b, "\\b"); break;
      case '\f': sb_puts(b, "\\f"); break;
      default: {
        char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        sb_putn(b, u, 6);
      }
    }
  }
  sb_putn(b, s + run, n - run);
  sb_putc(b, '"');
}

void json_write(sbuf *b, const jval *v) {
  switch (v->t) {
    case J_NULL: sb_puts(b, "null"); break;
    case J_BOOL: sb_puts(b, v->b ? "true" : "false"); break;
    case J_NUM: sb_putn(b, v->s, v->slen); break;
    case J_STR: json_write_str(b, v->s, v->slen); break;
    case J_ARR:
      sb_putc(b, '[');
      for (size_t i = 0; i < v->n; i++) {
        if (i) sb_putc(b, ',');
        json_write(b, v->items[i]);
      }
      sb_putc(b, ']');
      break;
    case J_OBJ:
      sb_putc(b, '{');
      for (size_t i = 0; i < v->n; i++) {
        if (i) sb_putc(b, ',');
        json_write_str(b, v->keys[i], strlen(v->keys[i]));
        sb_putc(b, ':');
        json_write(b, v->items[i]);
      }
      sb_putc(b, '}');
      break;
  }
}

jval *json_new_null(void) { return jnew(J_NULL); }

jval *json_new_strn(const char *s, size_t n) { return jnew_text(J_STR, s, n); }

jval *json_new_str(const char *s) { return json_new_strn(s, strlen(s)); }

jval *json_new_int(int64_t i) {
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%lld", (long long)i);
  return jnew_text(J_NUM, tmp, strlen(tmp));
}

jval *json_new_arr(void) { return jnew(J_ARR); }

jval *json_new_obj(void) { return jnew(J_OBJ); }

void json_push(jval *arr, jval *item) {
  grow(arr);
  arr->items[arr->n++] = item;
}

static long find_key(const jval *obj, const char *key) {
  if (!obj || obj->t != J_OBJ) return -1;
  for (size_t i = 0; i < obj->n; i++)
    if (strcmp(obj->keys[i], key) == 0) return (long)i;
  for (size_t i = 0; i < obj->n; i++)
    if (ascii_casecmp(obj->keys[i], key) == 0) return (long)i;
  return -1;
}

jval *json_get(const jval *obj, const char *key) {
  long i = find_key(obj, key);
  return i < 0 ? NULL : obj->items[i];
}

void json_set(jval *obj, const char *key, jval *v) {
  long i = find_key(obj, key);
  if (i >= 0) {
    json_free(obj->items[i]);
    obj->items[i] = v;
    return;
  }
  grow(obj);
  obj->keys[obj->n] = xstrdup(key);
  obj->items[obj->n++] = v;
}

void json_set_first(jval *obj, const char *key, jval *v) {
  long i = find_key(obj, key);
  if (i >= 0) {
    json_free(obj->items[i]);
    obj->items[i] = v;
    return;
  }
  grow(obj);
  memmove(obj->items + 1, obj->items, obj->n * sizeof *obj->items);
  memmove(obj->keys + 1, obj->keys, obj->n * sizeof *obj->keys);
  obj->keys[0] = xstrdup(key);
  obj->items[0] = v;
  obj->n++;
}

void json_del(jval *obj, const char *key) {
  long i = find_key(obj, key);
  if (i < 0) return;
  json_free(obj->items[i]);
  xfree(obj->keys[i]);
  memmove(obj->items + i, obj->items + i + 1, (obj->n - (size_t)i - 1) * sizeof *obj->items);
  memmove(obj->keys + i, obj->keys + i + 1, (obj->n - (size_t)i - 1) * sizeof *obj->keys);
  obj->n--;
}

void json_arr_remove(jval *arr, size_t i) {
  if (i >= arr->n) return;
  json_free(arr->items[i]);
  memmove(arr->items + i, arr->items + i + 1, (arr->n - i - 1) * sizeof *arr->items);
  arr->n--;
}

const char *json_str(const jval *v) { return v && v->t == J_STR ? v->s : NULL; }

int json_int(const jval *v, int64_t *out) {
  if (!v || v->t != J_NUM) return 0;
  char *end;
  double d = strtod(v->s, &end);
  if (d != d || d < -9.2e18 || d > 9.2e18) return 0;
  int64_t i = (int64_t)d;
  if ((double)i != d) return 0;
  /* Integers beyond double precision: reparse exactly when written plainly. */
  if (d > 9.0e15 || d < -9.0e15) {
    long long ll = strtoll(v->s, &end, 10);
    if (*end == 0) i = (int64_t)ll;
  }
  *out = i;
  return 1;
}
