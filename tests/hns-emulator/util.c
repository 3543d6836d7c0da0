/* util.c - see util.h. */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(_WIN32)
#include <malloc.h>
#endif

/*
 * The emulated HNS's memory. On a node HNS is a service of its own: none of its memory is the
 * agent's, and it takes no lock the agent's allocations take. Loaded into the agent's process,
 * on malloc its blocks would fill the holes the agent's frees leave in the shared arena (the
 * process's RSS less the emulator's count then reads low for the agent), and the agent's
 * threads and the emulator would take turns at the arena's lock. So where pages can be mapped
 * (POSIX) the library keeps its blocks on pages of its own: size classes with free lists on
 * 1 MiB chunks, larger blocks on mappings of their own, every page populated when mapped
 * (MAP_POPULATE, Linux: elsewhere pages become resident as they are touched), so on Linux what
 * it maps is resident. On Windows (the DLL under Wine, for the FFI paths) blocks come from
 * the CRT's heap.
 *
 * Two counts: the memory it holds (heap_bytes: the pages it mapped; on Windows, _msize of each
 * block) and the bytes asked for in blocks in use (heap_in_use, on every platform).
 *
 * A reserve (heap_reserve, POSIX): pages mapped and populated at once, counted as held from
 * then on, from which chunks and larger blocks are carved first. Once it exists a freed larger
 * block is kept, mapped, for reuse (one mapped before the reserve too), never unmapped. While the
 * library's needs fit, what it holds does not move at all, its own transients included (a larger
 * block grown by moving holds the old and the new block for a moment): a reader that subtracts
 * heap_bytes() from the process's RSS, or from its high-water mark, then subtracts the
 * library's exact figure of every moment.
 */
static int64_t g_held;   /* heap_bytes */
static int64_t g_in_use; /* heap_in_use */

static void oom(size_t n) {
  fprintf(stderr, "hnsemu: out of memory allocating %lu bytes\n", (unsigned long)n);
  abort();
}

int64_t heap_bytes(void) { return __atomic_load_n(&g_held, __ATOMIC_RELAXED); }

int64_t heap_in_use(void) { return __atomic_load_n(&g_in_use, __ATOMIC_RELAXED); }

#if defined(_WIN32)

/* Blocks come from the CRT's heap: there are no pages of the library's own to reserve. */
int64_t heap_reserve(size_t bytes) {
  (void)bytes;
  return 0;
}

static void count(void *p, int sign) {
  int64_t n = sign * (int64_t)_msize(p);
  __atomic_add_fetch(&g_held, n, __ATOMIC_RELAXED);
  __atomic_add_fetch(&g_in_use, n, __ATOMIC_RELAXED);
}

void xfree(void *p) {
  if (!p) return;
  count(p, -1);
  free(p);
}

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  count(p, 1);
  return p;
}

void *xcalloc(size_t count_, size_t size) {
  void *p = calloc(count_ ? count_ : 1, size ? size : 1);
  if (!p) oom(count_ * size);
  count(p, 1);
  return p;
}

void *xrealloc(void *p, size_t n) {
  if (p) count(p, -1);
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  count(q, 1);
  return q;
}

#else

#include <pthread.h>
#include <sys/mman.h>
#ifndef MAP_POPULATE
#define MAP_POPULATE 0
#endif

/* A block's header: its size class (BIG_BLOCK: a mapping of its own) and the bytes asked for. */
typedef struct block_head {
  uint32_t cls;
  uint32_t pad;
  size_t asked;
} block_head;

#define HEAD sizeof(block_head)
#define CHUNK ((size_t)1 << 20)
#define LARGEST ((size_t)256 << 10) /* the largest class; larger blocks get mappings of their own */
#define BIG_BLOCK UINT32_MAX
#define NCLASSES 96

static pthread_mutex_t g_alloc_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t g_class_size[NCLASSES]; /* header included */
static int g_nclasses;
static void *g_free_list[NCLASSES];
static char *g_chunk_next, *g_chunk_end;

/* Classes every 16 bytes to 1 KiB, then four per power of two (5/4, 6/4, 7/4 and 2 times the
   power of two below) to LARGEST. */
static void init_classes(void) {
  int n = 0;
  for (size_t s = 32; s <= 1024; s += 16) g_class_size[n++] = s;
  for (int p = 9; n < NCLASSES; p++) {
    for (size_t k = 5; k <= 8 && n < NCLASSES; k++) {
      size_t s = k << (p - 1);
      if (s > LARGEST) break;
      g_class_size[n++] = s;
    }
    if (g_class_size[n - 1] >= LARGEST) break;
  }
  g_nclasses = n;
}

static int class_of(size_t total) {
  if (total <= 1024) return total <= 32 ? 0 : (int)((total - 32 + 15) / 16);
  int c = (1024 - 32) / 16 + 1;
  while (c < g_nclasses && g_class_size[c] < total) c++;
  return c < g_nclasses ? c : -1;
}

static void *map_pages(size_t len, size_t asked) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) oom(asked);
  __atomic_add_fetch(&g_held, (int64_t)len, __ATOMIC_RELAXED);
  return p;
}

static size_t big_length(size_t asked) { return (asked + HEAD + 4095) & ~(size_t)4095; }

/* The reserve (see the notes above): its free ranges, by address, merged where they touch
   (ranges of two mappings that happen to touch too: both stay mapped for good). */
#define MAX_RANGES 1024
typedef struct free_range {
  char *p;
  size_t len;
} free_range;
static free_range g_ranges[MAX_RANGES];
static int g_nranges;
static char *g_reserve_lo;

int64_t heap_reserve(size_t bytes) {
  size_t len = (bytes + CHUNK - 1) & ~(CHUNK - 1);
  pthread_mutex_lock(&g_alloc_lock);
  if (g_reserve_lo || len == 0) {
    pthread_mutex_unlock(&g_alloc_lock);
    return 0;
  }
  g_reserve_lo = map_pages(len, len);
  g_ranges[0] = (free_range){g_reserve_lo, len};
  g_nranges = 1;
  pthread_mutex_unlock(&g_alloc_lock);
  return (int64_t)len;
}

static void drop_range(int i) {
  memmove(&g_ranges[i], &g_ranges[i + 1], (size_t)(g_nranges - i - 1) * sizeof *g_ranges);
  g_nranges--;
}

/* `len` bytes (whole pages) of the reserve, first fit, or NULL. Under g_alloc_lock. */
static void *reserve_take(size_t len) {
  for (int i = 0; i < g_nranges; i++) {
    if (g_ranges[i].len < len) continue;
    char *p = g_ranges[i].p;
    g_ranges[i].p += len;
    g_ranges[i].len -= len;
    if (g_ranges[i].len == 0) drop_range(i);
    return p;
  }
  return NULL;
}

/* Keep `len` freed bytes at p for reuse: 0 when there is no reserve (unmap them). Under
   g_alloc_lock. A range that cannot be listed (the list is full) stays held, never reused. */
static int reserve_give(char *p, size_t len) {
  if (!g_reserve_lo) return 0;
  int i = 0;
  while (i < g_nranges && g_ranges[i].p < p) i++;
  int joins_prev = i > 0 && g_ranges[i - 1].p + g_ranges[i - 1].len == p;
  int joins_next = i < g_nranges && p + len == g_ranges[i].p;
  if (joins_prev && joins_next) {
    g_ranges[i - 1].len += len + g_ranges[i].len;
    drop_range(i);
  } else if (joins_prev) {
    g_ranges[i - 1].len += len;
  } else if (joins_next) {
    g_ranges[i].p = p;
    g_ranges[i].len += len;
  } else if (g_nranges < MAX_RANGES) {
    memmove(&g_ranges[i + 1], &g_ranges[i], (size_t)(g_nranges - i) * sizeof *g_ranges);
    g_ranges[i] = (free_range){p, len};
    g_nranges++;
  }
  return 1;
}

/* Pages for a chunk or a larger block: from the reserve while it has room, else mapped. */
static void *take_pages(size_t len, size_t asked) {
  void *p = reserve_take(len);
  return p ? p : map_pages(len, asked);
}

static void *alloc_block(size_t asked) {
  size_t total = asked + HEAD;
  block_head *h;
  pthread_mutex_lock(&g_alloc_lock);
  if (!g_nclasses) init_classes();
  int c = total <= LARGEST ? class_of(total) : -1;
  if (c < 0) {
    h = take_pages(big_length(asked), asked);
    h->cls = BIG_BLOCK;
  } else if (g_free_list[c]) {
    h = g_free_list[c];
    g_free_list[c] = *(void **)(h + 1);
  } else {
    size_t size = g_class_size[c];
    if ((size_t)(g_chunk_end - g_chunk_next) < size) {
      /* The rest of the old chunk is left unused: counted as held, as it is mapped. */
      g_chunk_next = take_pages(CHUNK, asked);
      g_chunk_end = g_chunk_next + CHUNK;
    }
    h = (block_head *)g_chunk_next;
    g_chunk_next += size;
  }
  if (c >= 0) h->cls = (uint32_t)c;
  h->asked = asked;
  __atomic_add_fetch(&g_in_use, (int64_t)asked, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&g_alloc_lock);
  return h + 1;
}

/* Bytes the block can hold. */
static size_t capacity(const block_head *h) {
  return h->cls == BIG_BLOCK ? big_length(h->asked) - HEAD : g_class_size[h->cls] - HEAD;
}

void xfree(void *p) {
  if (!p) return;
  block_head *h = (block_head *)p - 1;
  __atomic_sub_fetch(&g_in_use, (int64_t)h->asked, __ATOMIC_RELAXED);
  if (h->cls == BIG_BLOCK) {
    size_t len = big_length(h->asked);
    pthread_mutex_lock(&g_alloc_lock);
    int kept = reserve_give((char *)h, len);
    pthread_mutex_unlock(&g_alloc_lock);
    if (kept) return;
    __atomic_sub_fetch(&g_held, (int64_t)len, __ATOMIC_RELAXED);
    munmap(h, len);
    return;
  }
  uint32_t c = h->cls;
  pthread_mutex_lock(&g_alloc_lock);
  /* A free block links to the next of its class from where its bytes would be. */
  *(void **)(h + 1) = g_free_list[c];
  g_free_list[c] = h;
  pthread_mutex_unlock(&g_alloc_lock);
}

void *xmalloc(size_t n) { return alloc_block(n ? n : 1); }

void *xcalloc(size_t count_, size_t size) {
  size_t n = count_ * size;
  if (size && n / size != count_) oom(n);
  void *p = alloc_block(n ? n : 1);
  memset(p, 0, n);
  return p;
}

void *xrealloc(void *p, size_t n) {
  if (!p) return xmalloc(n);
  if (!n) n = 1;
  block_head *h = (block_head *)p - 1;
  if (n <= capacity(h) && h->cls != BIG_BLOCK) {
    __atomic_add_fetch(&g_in_use, (int64_t)n - (int64_t)h->asked, __ATOMIC_RELAXED);
    h->asked = n;
    return p;
  }
  void *q = alloc_block(n);
  memcpy(q, p, h->asked < n ? h->asked : n);
  xfree(p);
  return q;
}

#endif

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
