/* outer_ports: `-p [HOST_ADDR:]HOST_PORT:ENCLAVE_PORT` as docker spells it; loopback unless an
 * address is given, and never one of the enclave's own ports (status, log, egress). */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "runtime/outer.h"

static int port_num(const char *s, size_t n, bool zero_ok, uint16_t *out)
{
	if (n == 0 || n > 5)
		return -1;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535 || (v == 0 && !zero_ok))
		return -1;
	*out = (uint16_t)v;
	return 0;
}

int outer_port_parse(const char *spec, struct outer_port *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	const char *ports = spec;
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		struct in6_addr a6;
		size_t n = close ? (size_t)(close - spec - 1) : 0;
		if (!close || close[1] != ':' || n == 0 || n >= sizeof(out->host_addr))
			return err_set(err, EINVAL, "-p %s: want [IPv6]:HOST_PORT:ENCLAVE_PORT", spec);
		memcpy(out->host_addr, spec + 1, n);
		if (inet_pton(AF_INET6, out->host_addr, &a6) != 1)
			return err_set(err, EINVAL, "-p %s: \"%s\" is not an IPv6 address", spec, out->host_addr);
		ports = close + 2;
	} else {
		size_t colons = 0;
		for (const char *c = spec; *c; c++)
			colons += *c == ':';
		if (colons == 2) {
			const char *c = strchr(spec, ':');
			size_t n = (size_t)(c - spec);
			struct in_addr a4;
			if (n == 0 || n >= sizeof(out->host_addr))
				return err_set(err, EINVAL, "-p %s: empty or overlong host address", spec);
			memcpy(out->host_addr, spec, n);
			if (inet_pton(AF_INET, out->host_addr, &a4) != 1)
				return err_set(err, EINVAL,
				               "-p %s: \"%s\" is not a numeric IPv4 address (IPv6 goes in brackets)",
				               spec, out->host_addr);
			ports = c + 1;
		} else if (colons != 1) {
			return err_set(err, EINVAL, "-p %s: want [HOST_ADDR:]HOST_PORT:ENCLAVE_PORT", spec);
		}
	}
	if (!out->host_addr[0])
		strcpy(out->host_addr, "127.0.0.1");
	const char *c = strchr(ports, ':');
	if (!c || strchr(c + 1, ':'))
		return err_set(err, EINVAL, "-p %s: want [HOST_ADDR:]HOST_PORT:ENCLAVE_PORT", spec);
	if (port_num(ports, (size_t)(c - ports), true, &out->host_port) < 0)
		return err_set(err, EINVAL, "-p %s: host port \"%.*s\" is not a number in 0..65535", spec,
		               (int)(c - ports), ports);
	if (port_num(c + 1, strlen(c + 1), false, &out->enclave_port) < 0)
		return err_set(err, EINVAL, "-p %s: enclave port \"%s\" is not a number in 1..65535", spec, c + 1);
	if (out->enclave_port >= WIRE_PORT_FIRST && out->enclave_port <= WIRE_PORT_LAST)
		return err_set(err, EINVAL, "-p %s: enclave port %u is one of odyn's own (%d-%d)", spec,
		               out->enclave_port, WIRE_PORT_FIRST, WIRE_PORT_LAST);
	return 0;
}
