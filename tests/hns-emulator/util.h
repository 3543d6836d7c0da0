/*
 * util.h - allocation that aborts on exhaustion, and a growable byte buffer.
 *
 * The emulator is a test fixture: running out of memory is not a condition it
 * models, so allocation failures abort loudly instead of threading NULL checks
 * through every rule.
 */
#ifndef HNSEMU_UTIL_H
#define HNSEMU_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Frees a block from x*alloc (NULL is fine); every block the library allocates goes back here. */
void xfree(void *p);
/* The memory the emulated HNS holds now: the pages it mapped for its blocks (POSIX; resident,
   see util.c), or on Windows the CRT heap's _msize of each block. */
int64_t heap_bytes(void);
/* Bytes asked for in x*alloc blocks in use now (every platform): what its objects take. */
int64_t heap_in_use(void);
/* POSIX: map `bytes` (whole MiB) of populated pages at once as a reserve that chunks and larger
   blocks are taken from first, larger blocks freed from then on kept for reuse (see util.c),
   counted in heap_bytes from now; the bytes reserved, 0 when a reserve exists already or on
   Windows (blocks come from the CRT's heap there). */
int64_t heap_reserve(size_t bytes);

/* ASCII case-insensitive comparisons (JSON keys, GUIDs and names are ASCII). */
int ascii_casecmp(const char *a, const char *b);
int ascii_casecmp_n(const char *a, size_t alen, const char *b, size_t blen);
void ascii_upper(char *s);

/* A growable NUL-terminated byte buffer. */
typedef struct sbuf {
  char *p;
  size_t n;
  size_t cap;
} sbuf;

void sb_init(sbuf *b);
void sb_free(sbuf *b);
/* Make room for extra more bytes (and the terminator) at once. */
void sb_reserve(sbuf *b, size_t extra);
void sb_putn(sbuf *b, const char *s, size_t n);
void sb_puts(sbuf *b, const char *s);
void sb_putc(sbuf *b, char c);
void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Hand the buffer's storage to the caller (never NULL) and reset the buffer. */
char *sb_take(sbuf *b);

#endif
