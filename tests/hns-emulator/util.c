/* util.c - see util.h. */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>

/*
 * What one block costs the allocator, bytes. With glibc that is the chunk: the usable size
 * plus the size word in front of it (two words for a chunk of its own mapping), exactly what
 * mallinfo2 counts in use. Elsewhere (mingw's msvcrt, whose _msize is the size asked for) the
 * heap's own overhead is not known, so only the usable size is counted.
 */
static size_t held_size(void *p) {
#if defined(_WIN32)
  return _msize(p);
#elif defined(__GLIBC__)
  /* The chunk's size word sits right before the block; its bit 1 (IS_MMAPPED) marks a chunk of
     its own mapping. Read through an address, as the compiler rightly sees no object there. */
  size_t word;
  memcpy(&word, (const void *)((uintptr_t)p - sizeof word), sizeof word);
  size_t header = (word & 2) ? 2 * sizeof(size_t) : sizeof(size_t);
  return malloc_usable_size(p) + header;
#else
  return malloc_usable_size(p);
#endif
}

/* Bytes the library holds in blocks from x*alloc, as the allocator pays for them. */
static int64_t g_heap_bytes;

static void heap_add(void *p) {
  __atomic_add_fetch(&g_heap_bytes, (int64_t)held_size(p), __ATOMIC_RELAXED);
}

static void heap_sub(void *p) {
  __atomic_sub_fetch(&g_heap_bytes, (int64_t)held_size(p), __ATOMIC_RELAXED);
}

int64_t heap_bytes(void) { return __atomic_load_n(&g_heap_bytes, __ATOMIC_RELAXED); }

void xfree(void *p) {
  if (!p) return;
  heap_sub(p);
  free(p);
}

static void oom(size_t n) {
  fprintf(stderr, "hnsemu: out of memory allocating %lu bytes\n", (unsigned long)n);
  abort();
}

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  heap_add(p);
  return p;
}

void *xcalloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p) oom(count * size);
  heap_add(p);
  return p;
}

void *xrealloc(void *p, size_t n) {
  if (p) heap_sub(p);
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  heap_add(q);
  return q;
}

char *xstrndup(const char *s, size_t n) {
  char *d = xmalloc(n + 1);
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

int ascii_casecmp_n(const char *a, size_t alen, const char *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  for (size_t i = 0; i < n; i++) {
    int d = lower((unsigned char)a[i]) - lower((unsigned char)b[i]);
    if (d) return d;
  }
  return alen < blen ? -1 : alen > blen ? 1 : 0;
}

int ascii_casecmp(const char *a, const char *b) {
  return ascii_casecmp_n(a, strlen(a), b, strlen(b));
}

void ascii_upper(char *s) {
  for (; *s; s++)
    if (*s >= 'a' && *s <= 'z') *s = (char)(*s - 32);
}

void sb_init(sbuf *b) {
  b->p = NULL;
  b->n = 0;
  b->cap = 0;
}

void sb_free(sbuf *b) {
  xfree(b->p);
  sb_init(b);
}

void sb_reserve(sbuf *b, size_t extra) {
  if (b->n + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->n + extra + 1) cap *= 2;
  b->p = xrealloc(b->p, cap);
  b->cap = cap;
}

void sb_putn(sbuf *b, const char *s, size_t n) {
  sb_reserve(b, n);
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

void sb_putc(sbuf *b, char c) { sb_putn(b, &c, 1); }

void sb_printf(sbuf *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) {
    sb_putn(b, tmp, (size_t)n);
    return;
  }
  sb_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)n;
}

char *sb_take(sbuf *b) {
  if (!b->p) sb_reserve(b, 0), b->p[0] = 0;
  char *p = b->p;
  sb_init(b);
  return p;
}
