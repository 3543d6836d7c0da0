/* netaddr.c - see netaddr.h. Own parser: mingw has no inet_pton without winsock. */
#include "netaddr.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int parse_v4(const char *s, const char *end, uint8_t out[4]) {
  int part = 0;
  while (part < 4) {
    if (s >= end || *s < '0' || *s > '9') return 0;
    /* Leading zeros are decimal, any number of them (lib/net/ip.ts, ParseIPSloppy). */
    unsigned v = 0;
    while (s < end && *s >= '0' && *s <= '9') {
      v = v * 10 + (unsigned)(*s - '0');
      if (v > 255) return 0;
      s++;
    }
    out[part++] = (uint8_t)v;
    if (part < 4) {
      if (s >= end || *s != '.') return 0;
      s++;
    }
  }
  return s == end;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int parse_v6(const char *s, const char *end, uint8_t out[16]) {
  uint16_t groups[8];
  int n = 0, gap = -1;
  if (s < end && *s == ':') {
    if (end - s < 2 || s[1] != ':') return 0;
    gap = 0;
    s += 2;
  }
  while (s < end) {
    /* An embedded IPv4 tail ("::ffff:10.0.0.1") can only be the last group:
       a dot with no colon after it. */
    if (memchr(s, '.', (size_t)(end - s)) && !memchr(s, ':', (size_t)(end - s))) {
      uint8_t v4[4];
      if (n > 6 || !parse_v4(s, end, v4)) return 0;
      groups[n++] = (uint16_t)(v4[0] << 8 | v4[1]);
      groups[n++] = (uint16_t)(v4[2] << 8 | v4[3]);
      s = end;
      break;
    }
    unsigned v = 0;
    int digits = 0;
    int h;
    while (s < end && (h = hexval(*s)) >= 0) {
      v = v << 4 | (unsigned)h;
      if (++digits > 4) return 0;
      s++;
    }
    if (!digits || n >= 8) return 0;
    groups[n++] = (uint16_t)v;
    if (s == end) break;
    if (*s != ':') return 0;
    s++;
    if (s < end && *s == ':') {
      if (gap >= 0) return 0;
      gap = n;
      s++;
      if (s == end) break;
    } else if (s == end) {
      return 0;
    }
  }
  if (gap < 0 && n != 8) return 0;
  if (gap >= 0 && n > 7) return 0;
  uint16_t full[8] = {0};
  if (gap < 0) {
    memcpy(full, groups, sizeof full);
  } else {
    for (int i = 0; i < gap; i++) full[i] = groups[i];
    int tail = n - gap;
    for (int i = 0; i < tail; i++) full[8 - tail + i] = groups[gap + i];
  }
  for (int i = 0; i < 8; i++) {
    out[2 * i] = (uint8_t)(full[i] >> 8);
    out[2 * i + 1] = (uint8_t)full[i];
  }
  return 1;
}

int ip_canonical(const char *text, char key[IP_KEY_SIZE]) {
  uint8_t b[16];
  const char *end = text + strlen(text);
  if (strchr(text, ':')) {
    if (!parse_v6(text, end, b)) return 0;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(b, mapped, 12) == 0) {
      snprintf(key, IP_KEY_SIZE, "4:%02x%02x%02x%02x", b[12], b[13], b[14], b[15]);
      return 1;
    }
    key[0] = '6';
    key[1] = ':';
    for (int i = 0; i < 16; i++) snprintf(key + 2 + 2 * i, 3, "%02x", b[i]);
    return 1;
  }
  if (!parse_v4(text, end, b)) return 0;
  snprintf(key, IP_KEY_SIZE, "4:%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
  return 1;
}
