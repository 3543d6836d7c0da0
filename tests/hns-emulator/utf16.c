/* utf16.c - see utf16.h. */
#include "utf16.h"

#include "util.h"

/* The code point at s[*i] (a lone surrogate is U+FFFD); advances *i past it. */
static uint32_t next_code_point(const uint16_t *s, size_t n, size_t *i) {
  uint32_t cp = s[*i];
  if (cp >= 0xD800 && cp <= 0xDBFF && *i + 1 < n && s[*i + 1] >= 0xDC00 && s[*i + 1] <= 0xDFFF) {
    cp = 0x10000 + ((cp - 0xD800) << 10) + (s[*i + 1] - 0xDC00u);
    (*i)++;
  } else if (cp >= 0xD800 && cp <= 0xDFFF) {
    cp = 0xFFFD;
  }
  (*i)++;
  return cp;
}

static size_t utf8_width(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

/* Two passes: the exact length first, then one allocation (calls carry kilobytes of JSON). */
char *utf16_to_utf8(const uint16_t *s, size_t *outlen) {
  size_t n = 0, bytes = 0;
  while (s[n]) n++;
  for (size_t i = 0; i < n;) bytes += utf8_width(next_code_point(s, n, &i));
  char *out = xmalloc(bytes + 1);
  char *u = out;
  for (size_t i = 0; i < n;) {
    uint32_t cp = next_code_point(s, n, &i);
    if (cp < 0x80) {
      *u++ = (char)cp;
    } else if (cp < 0x800) {
      *u++ = (char)(0xC0 | (cp >> 6));
      *u++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      *u++ = (char)(0xE0 | (cp >> 12));
      *u++ = (char)(0x80 | ((cp >> 6) & 0x3F));
      *u++ = (char)(0x80 | (cp & 0x3F));
    } else {
      *u++ = (char)(0xF0 | (cp >> 18));
      *u++ = (char)(0x80 | ((cp >> 12) & 0x3F));
      *u++ = (char)(0x80 | ((cp >> 6) & 0x3F));
      *u++ = (char)(0x80 | (cp & 0x3F));
    }
  }
  *u = 0;
  if (outlen) *outlen = bytes;
  return out;
}

uint16_t *utf8_to_utf16(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  uint16_t *out = xmalloc((len + 1) * sizeof *out); /* UTF-16 never needs more units than UTF-8 bytes */
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t need;
    unsigned char c = s[i];
    if (c < 0x80) {
      cp = c;
      need = 0;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      need = 1;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      need = 2;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      need = 3;
    } else {
      out[o++] = 0xFFFD;
      i++;
      continue;
    }
    if (need && i + need >= len) { /* truncated sequence */
      out[o++] = 0xFFFD;
      break;
    }
    size_t j;
    for (j = 1; j <= need; j++) {
      if ((s[i + j] & 0xC0) != 0x80) break;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if (j <= need) {
      out[o++] = 0xFFFD;
      i += j;
      continue;
    }
    i += need + 1;
    if (cp >= 0x10000 && cp <= 0x10FFFF) {
      cp -= 0x10000;
      out[o++] = (uint16_t)(0xD800 + (cp >> 10));
      out[o++] = (uint16_t)(0xDC00 + (cp & 0x3FF));
    } else if (cp > 0x10FFFF) {
      out[o++] = 0xFFFD;
    } else {
      out[o++] = (uint16_t)cp;
    }
  }
  out[o] = 0;
  return out;
}
