/* egress: the egress policy (allow/deny patterns, deny wins): manifest/ compiles the manifest's
 * patterns with it, odyn and the host's runtime both enforce it. The tunnel's frames are wire/'s. */
#ifndef ENCLAVER_EGRESS_H
#define ENCLAVER_EGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common.h"

/* ---------------------------------------------------------------- egress policy
 * A pattern is an IPv4/IPv6 address, a CIDR, or a domain pattern (labels
 * compared right to left, case-insensitive, one trailing dot ignored; `*` is
 * exactly one label, `**` one or more), each optionally followed by `:PORT`
 * (IPv6 forms then in brackets: "[::1]:443", "[2001:db8::/32]:443").
 * Deny wins over allow; nothing matches by default. */
struct egress_rule;
struct egress_policy {
	struct egress_rule *allow;
	struct egress_rule *deny;
	size_t n_allow, n_deny;
};
enum egress_verdict { EGRESS_DENY_DEFAULT = 0, EGRESS_ALLOW, EGRESS_DENY_RULE, EGRESS_BAD_HOST };
int egress_policy_add(struct egress_policy *p, bool deny, const char *pattern, struct err **err);
/* host: a name, an IPv4 address, or an IPv6 address with or without brackets.
 * *rule (may be NULL) gets the text of the deciding rule. */
enum egress_verdict egress_policy_check(const struct egress_policy *p, const char *host, uint16_t port,
                                        const char **rule);
/* The host as it will be sent to the host side: lowercase, no trailing
 * dot, IPv4 in dotted-quad form (so "127.1" cannot dodge an IP rule), IPv6
 * without brackets. NULL when it is not a valid host. Caller frees. */
char *egress_host_normalize(const char *host);
void egress_policy_free(struct egress_policy *p);

#endif
