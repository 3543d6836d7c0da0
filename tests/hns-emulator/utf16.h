/*
 * utf16.h - conversion between the ABI's UTF-16LE strings (uint16_t, never
 * wchar_t, which is 32-bit on Linux) and the UTF-8 used inside.
 */
#ifndef HNSEMU_UTF16_H
#define HNSEMU_UTF16_H

#include <stddef.h>
#include <stdint.h>

/* NUL-terminated UTF-16 to malloc'd UTF-8; lone surrogates become U+FFFD. */
char *utf16_to_utf8(const uint16_t *s, size_t *outlen);
/* UTF-8 (len bytes) to malloc'd NUL-terminated UTF-16; invalid bytes become U+FFFD. */
uint16_t *utf8_to_utf16(const char *s, size_t len);

#endif
