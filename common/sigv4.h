/* sigv4: AWS Signature Version 4 (common/sigv4.c), shared by odyn's KMS proxy and the
 * host's KMS signing key (keys/). */
#ifndef ENCLAVER_SIGV4_H
#define ENCLAVER_SIGV4_H

#include "common/common.h"

/* sigv4: AWS Signature Version 4. headers must include Host and X-Amz-Date
 * (and X-Amz-Security-Token with temporary credentials); path and query
 * are given already canonical. *authorization gets the header's value. */
struct sigv4_header {
	const char *name, *value;
};
struct sigv4_request {
	const char *method, *path, *query;
	const struct sigv4_header *headers;
	size_t n_headers;
	const char *amz_date; /* YYYYMMDDTHHMMSSZ, the X-Amz-Date value */
	const void *body;
	size_t body_len;
};
struct sigv4_key {
	const char *access_key, *secret_key, *region, *service;
};
int sigv4_sign(const struct sigv4_request *r, const struct sigv4_key *k, char **authorization, struct err **err);

#endif
