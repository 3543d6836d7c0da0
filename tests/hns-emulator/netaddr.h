/*
 * netaddr.h - IPv4/IPv6 text parsing into a canonical form, so that
 * "10.0.0.1" and "::ffff:10.0.0.1" or "fd00::1" and "FD00:0::1" compare as
 * HNS compares them (as addresses, not as strings). The rules are
 * lib/net/ip.ts's: IPv4 leading zeros are decimal, an IPv4-mapped IPv6
 * address is the IPv4 address, no zone IDs, hex digits in either case.
 */
#ifndef HNSEMU_NETADDR_H
#define HNSEMU_NETADDR_H

/* Bytes of a canonical address key: "6:" and 32 hex digits, or "4:" and 8, and the NUL. */
#define IP_KEY_SIZE 35

/* Parse an address; on success write a canonical key (IP_KEY_SIZE bytes) and return 1. */
int ip_canonical(const char *text, char key[IP_KEY_SIZE]);

#endif
