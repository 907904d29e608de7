/* registry: the HTTP side of the distribution API shared by pull and push:
 * one client per registry host, the /v2/ ping, WWW-Authenticate challenges,
 * tokens per scope, retries with backoff. Private to oci/. */
#ifndef ENCLAVER_OCI_REGISTRY_H
#define ENCLAVER_OCI_REGISTRY_H

#include <curl/curl.h>
#include <pthread.h>

#include "oci/internal.h"

struct reg_token {
	char *scope;
	char *value;
	int64_t refresh_at; /* CLOCK_MONOTONIC seconds: fetch a new one from then on */
};

/* A client may be used from several threads at once (parallel uploads):
 * `lock` guards the auth state below it (ping, challenge, credentials,
 * tokens); each request borrows an easy handle from the pool; the share
 * has its own locks. */
struct registry {
	char *host; /* as in the reference: "127.0.0.1:5000", "docker.io" */
	char *base; /* "https://registry-1.docker.io" (scheme settled by the ping) */
	const struct oci_opts *opts;
	bool insecure;
	struct oci_creds creds;
	pthread_mutex_t lock;
	bool creds_loaded;
	bool pinged;
	enum { REG_AUTH_NONE, REG_AUTH_BASIC, REG_AUTH_BEARER } scheme;
	char *realm, *service;
	struct reg_token *tokens;
	size_t n_tokens;
	struct buf ca_blob; /* --cert-dir *.crt, concatenated */
	CURLSH *share;      /* connections and DNS shared by every handle */
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;
	CURL **idle; /* easy handles between requests */
	size_t n_idle;
};

struct reg_req {
	const char *method; /* GET, HEAD, PUT, POST, PATCH, DELETE */
	const char *url;    /* absolute, or a path under the base ("/v2/...") */
	const char *scope;  /* token scope(s), space-separated; NULL: none */
	const char *accept;
	const char *content_type;
	const char *content_range;
	const void *body; /* a small body in memory... */
	size_t body_len;
	bool body_from_fd; /* ...or a range of a file */
	int body_fd;
	off_t body_off;
	int64_t body_fd_len;
	bool no_retry;     /* not idempotent: fail at the first network error */
	bool https_redirects; /* credentials in it: follow redirects to https:// only */
	int64_t *progress; /* body_from_fd: bytes sent so far, added to atomically */
	struct buf *out;   /* response body (NULL: kept only for error messages) */
	size_t out_max;
};

struct reg_resp {
	long status;
	char *location;
	char *content_type;
	char *docker_digest;
	char *www_authenticate;
	struct buf body; /* error bodies when req->out is NULL */
};
void reg_resp_free(struct reg_resp *r);

/* A client for a host. Every function below may be called from several
 * threads at once on the same client. */
/* insecure: no TLS verification and plain HTTP allowed (opts->insecure, or
 * registries.conf says so for this registry). */
int registry_new(const char *host, const struct oci_opts *opts, bool insecure, struct registry **out, struct err **err);
void registry_free(struct registry *r);
/* Does a request with authentication (fetching or refreshing a token on a
 * 401) and retries on network errors, 429 and 5xx. Any HTTP status returns 0;
 * the caller judges it and frees resp. On -1 resp holds nothing to free. */
int registry_do(struct registry *r, const struct reg_req *req, struct reg_resp *resp, struct err **err);
/* Makes sure a token (or basic credentials) for the scope is at hand and
 * returns the Authorization header line for it, or NULL. Caller frees. */
int registry_auth_header(struct registry *r, const char *scope, char **header, struct err **err);
/* Drops the token for a scope (after a 401). */
void registry_token_drop(struct registry *r, const char *scope);
/* A new easy handle configured like the client's (TLS, share, timeouts). */
CURL *registry_easy_new(struct registry *r);
/* Absolute URL for a path or a Location header value. Caller frees. */
char *registry_url(struct registry *r, const char *path_or_url);
/* An error for an unexpected status: the registry's own error codes, the
 * credential source on 401/403, "rate limited" on 429. */
int registry_status_error(struct registry *r, const char *what, const struct reg_resp *resp, struct err **err);
/* Backoff before attempt n (1-based): 250 ms doubling, capped at 4 s. */
void registry_backoff(int attempt);
bool registry_retryable_status(long status);

#define REG_MAX_ATTEMPTS 5

#endif
