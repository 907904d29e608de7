/* registry: one HTTP client per registry: the /v2/ ping that settles the
 * scheme and the auth challenge, bearer tokens per scope (GET and the OAuth2
 * POST form), basic auth, retries with backoff, and errors people can act on. */
#include <dirent.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "oci/registry.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void reg_resp_free(struct reg_resp *r)
{
	free(r->location);
	free(r->content_type);
	free(r->docker_digest);
	free(r->www_authenticate);
	buf_free(&r->body);
	memset(r, 0, sizeof(*r));
}

bool registry_retryable_status(long status)
{
	return status == 429 || status == 408 || (status >= 500 && status <= 599 && status != 501);
}

void registry_backoff(int attempt)
{
	long ms = 250L << (attempt > 5 ? 4 : attempt - 1);
	if (ms > 4000)
		ms = 4000;
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* --cert-dir: every *.crt in the folder, as one PEM bundle. */
static int load_cert_dir(const char *dir, struct buf *out, struct err **err)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return err_sys(err, "--cert-dir %s", dir);
	int r = 0;
	for (struct dirent *de; r == 0 && (de = readdir(d));) {
		size_t n = strlen(de->d_name);
		if (n < 5 || strcmp(de->d_name + n - 4, ".crt") != 0)
			continue;
		_cleanup_free_ char *path = xasprintf("%s/%s", dir, de->d_name);
		_cleanup_free_ char *pem = NULL;
		size_t len;
		r = io_read_file(path, 1 << 20, &pem, &len, err);
		if (r == 0) {
			buf_append(out, pem, len);
			buf_putc(out, '\n');
		}
	}
	closedir(d);
	return r;
}

/* The share is used by handles on several threads: curl asks for these locks. */
static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
	(void)h, (void)access;
	struct registry *r = ud;
	pthread_mutex_lock(&r->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
	(void)h;
	struct registry *r = ud;
	pthread_mutex_unlock(&r->share_locks[data]);
}

int registry_new(const char *host, const struct oci_opts *opts, bool insecure, struct registry **out, struct err **err)
{
	pthread_once(&curl_once, curl_init_once);
	struct registry *r = xcalloc(1, sizeof(*r));
	r->host = xstrdup(host);
	r->opts = opts;
	r->insecure = insecure;
	/* Recursive: the token fetch, under the lock, reports errors through
	 * registry_status_error, which takes it too. */
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&r->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	pthread_mutex_init(&r->pool_lock, NULL);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&r->share_locks[i], NULL);
	const char *api = strcmp(host, "docker.io") == 0 ? "registry-1.docker.io" : host;
	r->base = xasprintf("https://%s", api);
	if (opts->cert_dir && load_cert_dir(opts->cert_dir, &r->ca_blob, err) < 0) {
		registry_free(r);
		return -1;
	}
	r->share = curl_share_init();
	curl_share_setopt(r->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(r->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(r->share, CURLSHOPT_USERDATA, r);
	/* Not CURL_LOCK_DATA_CONNECT: libcurl does not support one connection cache used by
	 * concurrent threads (the blob downloads run one per thread); a pulled blob then failed
	 * with "transfer closed with N bytes remaining". Each pooled handle keeps its own. */
	curl_share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	*out = r;
	return 0;
}

void registry_free(struct registry *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_idle; i++)
		curl_easy_cleanup(r->idle[i]);
	free(r->idle);
	if (r->share)
		curl_share_cleanup(r->share);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->pool_lock);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&r->share_locks[i]);
	for (size_t i = 0; i < r->n_tokens; i++) {
		free(r->tokens[i].scope);
		explicit_bzero(r->tokens[i].value, strlen(r->tokens[i].value));
		free(r->tokens[i].value);
	}
	free(r->tokens);
	oci_creds_free(&r->creds);
	free(r->host);
	free(r->base);
	free(r->realm);
	free(r->service);
	buf_free(&r->ca_blob);
	free(r);
}

static void easy_configure(struct registry *r, CURL *h)
{
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_SHARE, r->share);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "enclaver/" ENCLAVER_VERSION);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
	/* A stalled transfer (under 1 KiB/s for 30 s) counts as a network error. */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, r->insecure ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, r->insecure ? 0L : 2L);
	if (r->ca_blob.len) {
		struct curl_blob blob = {.data = r->ca_blob.data, .len = r->ca_blob.len, .flags = CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
	}
}

CURL *registry_easy_new(struct registry *r)
{
	CURL *h = curl_easy_init();
	if (h == NULL)
		abort();
	easy_configure(r, h);
	return h;
}

char *registry_url(struct registry *r, const char *p)
{
	if (str_has_prefix(p, "http://") || str_has_prefix(p, "https://"))
		return xstrdup(p);
	return xasprintf("%s%s%s", r->base, p[0] == '/' ? "" : "/", p);
}

/* ---------------------------------------------------------------- one request */
struct xfer {
	const struct reg_req *req;
	struct reg_resp *resp;
	struct buf *out;
	size_t out_max;
	bool overflow;
	int64_t sent;
};

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* A new response (after a redirect or 100 Continue): forget the last. */
		free(x->resp->location);
		free(x->resp->content_type);
		free(x->resp->docker_digest);
		free(x->resp->www_authenticate);
		x->resp->location = x->resp->content_type = x->resp->docker_digest = x->resp->www_authenticate = NULL;
		return len;
	}
	const char *colon = memchr(data, ':', len);
	if (colon == NULL)
		return len;
	size_t klen = (size_t)(colon - data);
	const char *v = colon + 1;
	while (v < data + len && (*v == ' ' || *v == '\t'))
		v++;
	size_t vlen = (size_t)(data + len - v);
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;
	char **slot = NULL;
	if (klen == 8 && strncasecmp(data, "location", 8) == 0)
		slot = &x->resp->location;
	else if (klen == 12 && strncasecmp(data, "content-type", 12) == 0)
		slot = &x->resp->content_type;
	else if (klen == 21 && strncasecmp(data, "docker-content-digest", 21) == 0)
		slot = &x->resp->docker_digest;
	else if (klen == 16 && strncasecmp(data, "www-authenticate", 16) == 0)
		slot = &x->resp->www_authenticate;
	if (slot && *slot == NULL)
		*slot = oci_memdup_str(v, vlen);
	return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	if (x->out->len + len > x->out_max) {
		x->overflow = true;
		return 0; /* aborts the transfer */
	}
	buf_append(x->out, data, len);
	return len;
}

static size_t on_read(char *data, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	int64_t left = x->req->body_fd_len - x->sent;
	size_t want = size * n;
	if ((int64_t)want > left)
		want = (size_t)left;
	if (want == 0)
		return 0;
	ssize_t got = pread(x->req->body_fd, data, want, x->req->body_off + x->sent);
	if (got <= 0)
		return CURL_READFUNC_ABORT;
	x->sent += got;
	if (x->req->progress)
		__atomic_add_fetch(x->req->progress, (int64_t)got, __ATOMIC_RELAXED);
	return (size_t)got;
}

/* An easy handle for one request, from the pool (its connection state is
 * what makes reuse worthwhile), and back. */
static CURL *easy_borrow(struct registry *r)
{
	pthread_mutex_lock(&r->pool_lock);
	CURL *h = r->n_idle ? r->idle[--r->n_idle] : NULL;
	pthread_mutex_unlock(&r->pool_lock);
	if (h == NULL)
		return registry_easy_new(r);
	curl_easy_reset(h);
	easy_configure(r, h);
	return h;
}

static void easy_return(struct registry *r, CURL *h)
{
	pthread_mutex_lock(&r->pool_lock);
	r->idle = xrealloc(r->idle, (r->n_idle + 1) * sizeof(*r->idle));
	r->idle[r->n_idle++] = h;
	pthread_mutex_unlock(&r->pool_lock);
}

static CURLcode perform(struct registry *r, const struct reg_req *req, const char *auth, struct reg_resp *resp,
                        bool *overflow, char errbuf[CURL_ERROR_SIZE])
{
	CURL *h = easy_borrow(r);
	_cleanup_free_ char *url = registry_url(r, req->url);
	curl_easy_setopt(h, CURLOPT_URL, url);
	struct curl_slist *hdrs = NULL;
	_cleanup_free_ char *accept = req->accept ? xasprintf("Accept: %s", req->accept) : NULL;
	_cleanup_free_ char *ctype = req->content_type ? xasprintf("Content-Type: %s", req->content_type) : NULL;
	_cleanup_free_ char *crange = req->content_range ? xasprintf("Content-Range: %s", req->content_range) : NULL;
	if (accept)
		hdrs = curl_slist_append(hdrs, accept);
	if (ctype)
		hdrs = curl_slist_append(hdrs, ctype);
	if (crange)
		hdrs = curl_slist_append(hdrs, crange);
	if (auth)
		hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	struct xfer x = {.req = req,
	                 .resp = resp,
	                 .out = req->out ? req->out : &resp->body,
	                 .out_max = req->out ? req->out_max : 65536};
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	errbuf[0] = '\0';
	if (req->https_redirects)
		curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	const char *m = req->method ? req->method : "GET";
	if (strcmp(m, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (req->body_from_fd) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &x);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_fd_len);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
	} else if (strcmp(m, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? req->body_len : 0));
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
	}
	CURLcode cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_slist_free_all(hdrs);
	easy_return(r, h);
	*overflow = x.overflow;
	return cc;
}

/* ---------------------------------------------------------------- challenges and tokens */
/* Reads `key="value"` pairs of a WWW-Authenticate header. */
static char *challenge_param(const char *h, const char *key)
{
	size_t klen = strlen(key);
	for (const char *p = h; (p = strcasestr(p, key)) != NULL; p += klen) {
		if (p != h && p[-1] != ' ' && p[-1] != ',')
			continue;
		const char *v = p + klen;
		while (*v == ' ')
			v++;
		if (*v != '=')
			continue;
		v++;
		while (*v == ' ')
			v++;
		struct buf b = {0};
		if (*v == '"') {
			for (v++; *v && *v != '"'; v++) {
				if (*v == '\\' && v[1])
					v++;
				buf_putc(&b, *v);
			}
		} else {
			for (; *v && *v != ',' && *v != ' '; v++)
				buf_putc(&b, *v);
		}
		buf_str(&b);
		return b.data;
	}
	return NULL;
}

static void parse_challenge(struct registry *r, const char *h)
{
	free(r->realm);
	free(r->service);
	r->realm = r->service = NULL;
	if (h == NULL) {
		r->scheme = REG_AUTH_NONE;
	} else if (strncasecmp(h, "bearer", 6) == 0) {
		r->scheme = REG_AUTH_BEARER;
		r->realm = challenge_param(h + 6, "realm");
		r->service = challenge_param(h + 6, "service");
	} else if (strncasecmp(h, "basic", 5) == 0) {
		r->scheme = REG_AUTH_BASIC;
	} else {
		r->scheme = REG_AUTH_NONE;
	}
}

static int load_creds(struct registry *r, struct err **err)
{
	if (r->creds_loaded)
		return 0;
	if (oci_creds_lookup(r->host, r->opts->creds, &r->creds, err) < 0)
		return -1;
	r->creds_loaded = true;
	return 0;
}

static char *basic_header(const struct oci_creds *c)
{
	_cleanup_free_ char *raw = xasprintf("%s:%s", c->username, c->password);
	size_t n = strlen(raw);
	char *b64 = xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)raw, (int)n);
	explicit_bzero(raw, n);
	char *h = xasprintf("Authorization: Basic %s", b64);
	explicit_bzero(b64, strlen(b64));
	free(b64);
	return h;
}

static const char *creds_source(struct registry *r)
{
	return r->creds.source ? r->creds.source : "none";
}

static int ping(struct registry *r, struct err **err)
{
	struct reg_req req = {.url = "/v2/"};
	char errbuf[CURL_ERROR_SIZE];
	for (int attempt = 1;; attempt++) {
		struct reg_resp resp = {0};
		bool overflow;
		CURLcode cc = perform(r, &req, NULL, &resp, &overflow, errbuf);
		if (cc != CURLE_OK && r->insecure && str_has_prefix(r->base, "https://")) {
			/* --insecure: a registry that does not speak TLS is tried in plain HTTP. */
			char *plain = xasprintf("http://%s", r->base + 8);
			free(r->base);
			r->base = plain;
			reg_resp_free(&resp);
			attempt--;
			continue;
		}
		if (cc != CURLE_OK) {
			reg_resp_free(&resp);
			if (attempt < REG_MAX_ATTEMPTS && cc != CURLE_PEER_FAILED_VERIFICATION &&
			    cc != CURLE_SSL_CONNECT_ERROR && cc != CURLE_SSL_CACERT_BADFILE) {
				registry_backoff(attempt);
				continue;
			}
			bool tls = cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CONNECT_ERROR ||
			           cc == CURLE_SSL_CACERT_BADFILE;
			return err_set(err, tls ? EPROTO : EHOSTUNREACH, "%s: %s: %s%s", r->host,
			               tls ? "TLS failure" : "cannot reach the registry",
			               errbuf[0] ? errbuf : curl_easy_strerror(cc),
			               tls ? " (use --cert-dir for a private CA, or --tls-verify=false)" : "");
		}
		if (registry_retryable_status(resp.status) && attempt < REG_MAX_ATTEMPTS) {
			reg_resp_free(&resp);
			registry_backoff(attempt);
			continue;
		}
		if (resp.status == 401)
			parse_challenge(r, resp.www_authenticate);
		else if (resp.status == 200)
			r->scheme = REG_AUTH_NONE;
		else {
			int rc = registry_status_error(r, "ping /v2/", &resp, err);
			reg_resp_free(&resp);
			return rc;
		}
		reg_resp_free(&resp);
		r->pinged = true;
		return 0;
	}
}

static int64_t mono_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* RFC 3339 as token servers write it: "2026-11-22T23:00:00Z", maybe with
 * fractions and a numeric offset. -1 when it is not that. */
static int64_t parse_rfc3339(const char *text)
{
	struct tm tm = {0};
	const char *p = text ? strptime(text, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (p == NULL)
		return -1;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	int64_t t = (int64_t)timegm(&tm);
	if (*p == 'Z' || *p == 'z')
		return p[1] == '\0' ? t : -1;
	int hh, mm;
	if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &hh, &mm) == 2 && strlen(p) == 6)
		return t - (*p == '+' ? 1 : -1) * (hh * 3600 + mm * 60);
	return -1;
}

/* When to fetch a new token, in CLOCK_MONOTONIC seconds: expires_in
 * (default 60, as the token spec says) counted from issued_at when the
 * server says it was issued earlier than now (a token that already aged),
 * less a margin so no request goes out with a token about to lapse. */
static int64_t token_refresh_at(const json_t *doc)
{
	json_int_t lifetime = json_integer_value(json_object_get(doc, "expires_in"));
	if (lifetime <= 0)
		lifetime = 60;
	int64_t age = 0;
	int64_t issued = parse_rfc3339(json_string_value(json_object_get(doc, "issued_at")));
	if (issued > 0) {
		age = (int64_t)time(NULL) - issued;
		age = age < 0 ? 0 : age > lifetime ? lifetime : age;
	}
	int64_t margin = lifetime / 4 < 30 ? lifetime / 4 : 30;
	return mono_seconds() + (lifetime - age) - margin;
}

static void token_drop_locked(struct registry *r, const char *scope)
{
	for (size_t i = 0; i < r->n_tokens; i++) {
		if (strcmp(r->tokens[i].scope, scope ? scope : "") == 0) {
			free(r->tokens[i].scope);
			explicit_bzero(r->tokens[i].value, strlen(r->tokens[i].value));
			free(r->tokens[i].value);
			r->tokens[i] = r->tokens[--r->n_tokens];
			return;
		}
	}
}

void registry_token_drop(struct registry *r, const char *scope)
{
	pthread_mutex_lock(&r->lock);
	token_drop_locked(r, scope);
	pthread_mutex_unlock(&r->lock);
}

static void token_store(struct registry *r, const char *scope, const char *value, int64_t refresh_at)
{
	token_drop_locked(r, scope);
	r->tokens = xrealloc(r->tokens, (r->n_tokens + 1) * sizeof(*r->tokens));
	r->tokens[r->n_tokens].scope = xstrdup(scope ? scope : "");
	r->tokens[r->n_tokens].value = xstrdup(value);
	r->tokens[r->n_tokens].refresh_at = refresh_at;
	r->n_tokens++;
}

static struct reg_token *token_find(struct registry *r, const char *scope)
{
	for (size_t i = 0; i < r->n_tokens; i++)
		if (strcmp(r->tokens[i].scope, scope ? scope : "") == 0)
			return &r->tokens[i];
	return NULL;
}

static void append_form(struct buf *b, const char *key, const char *value)
{
	char *e = curl_easy_escape(NULL, value, 0);
	buf_printf(b, "%s%s=%s", b->len ? "&" : "", key, e);
	curl_free(e);
}

/* GET realm?service=&scope= (basic auth when we have credentials), or the
 * OAuth2 POST form for identity tokens and servers that want it. */
static int fetch_token(struct registry *r, const char *scope, struct err **err)
{
	if (r->realm == NULL)
		return err_set(err, EPROTO, "%s: bearer challenge without a realm", r->host);
	/* A registry reached over verified TLS may not send our credentials (and
	 * the tokens it trusts) through a cleartext token server. A realm without
	 * a scheme resolves against the registry's own base (registry_url). */
	if (!r->insecure && strstr(r->realm, "://") && strncasecmp(r->realm, "https://", 8) != 0)
		return err_set(err, EPERM,
		               "%s: the registry's token server %s is not HTTPS: refused, credentials would travel in "
		               "clear (only a registry made insecure by --tls-verify=false or registries.conf may use one)",
		               r->host, r->realm);
	if (load_creds(r, err) < 0)
		return -1;
	bool have = r->creds.username != NULL;
	_cleanup_buf_ struct buf form = {0};
	if (r->service)
		append_form(&form, "service", r->service);
	if (scope) {
		_cleanup_free_ char *copy = xstrdup(scope);
		for (char *save = NULL, *s = strtok_r(copy, " ", &save); s; s = strtok_r(NULL, " ", &save))
			append_form(&form, "scope", s);
	}
	bool post = have && r->creds.identity_token;
	_cleanup_buf_ struct buf body = {0};
	for (int round = 0; round < 2; round++) {
		/* A 307 from an https realm to http:// would resend the POST form (a password or
		 * refresh token) in clear. */
		struct reg_req req = {.out = &body, .out_max = 1 << 20, .https_redirects = !r->insecure};
		_cleanup_free_ char *url = NULL;
		_cleanup_free_ char *auth = NULL;
		_cleanup_buf_ struct buf pf = {0};
		if (post) {
			buf_append(&pf, form.data, form.len);
			append_form(&pf, "client_id", "enclaver");
			if (r->creds.identity_token) {
				append_form(&pf, "grant_type", "refresh_token");
				append_form(&pf, "refresh_token", r->creds.password);
			} else {
				append_form(&pf, "grant_type", "password");
				append_form(&pf, "username", r->creds.username);
				append_form(&pf, "password", r->creds.password);
			}
			url = xstrdup(r->realm);
			req.method = "POST";
			req.content_type = "application/x-www-form-urlencoded";
			req.body = pf.data;
			req.body_len = pf.len;
		} else {
			url = xasprintf("%s%s%s", r->realm, strchr(r->realm, '?') ? "&" : "?", buf_str(&form));
			if (have)
				auth = basic_header(&r->creds);
		}
		req.url = url;
		struct reg_resp resp = {0};
		char errbuf[CURL_ERROR_SIZE];
		bool overflow;
		body.len = 0;
		CURLcode cc = perform(r, &req, auth, &resp, &overflow, errbuf);
		if (pf.len)
			explicit_bzero(pf.data, pf.len);
		if (cc == CURLE_UNSUPPORTED_PROTOCOL && req.https_redirects) {
			reg_resp_free(&resp);
			return err_set(err, EPERM,
			               "%s: the token server %s redirected to an address that is not HTTPS: refused, "
			               "credentials would travel in clear",
			               r->host, r->realm);
		}
		if (cc != CURLE_OK) {
			reg_resp_free(&resp);
			return err_set(err, EHOSTUNREACH, "%s: token server %s: %s", r->host, r->realm,
			               errbuf[0] ? errbuf : curl_easy_strerror(cc));
		}
		/* Servers without the OAuth2 form answer 404/405 to POST, and some
		 * with only the form refuse GET: try the other once. */
		if (round == 0 && have && !r->creds.identity_token && (resp.status == 404 || resp.status == 405)) {
			post = !post;
			reg_resp_free(&resp);
			continue;
		}
		if (resp.status == 401 || resp.status == 403) {
			long status = resp.status;
			reg_resp_free(&resp);
			return err_set(
			    err, EACCES, "%s: unauthorized: the token server %s refused %s (HTTP %ld); credentials: %s",
			    r->host, r->realm, have ? "the credentials" : "anonymous access", status, creds_source(r));
		}
		if (resp.status != 200) {
			int rc = registry_status_error(r, "token request", &resp, err);
			reg_resp_free(&resp);
			return rc;
		}
		reg_resp_free(&resp);
		json_error_t je;
		_cleanup_json_ json_t *doc = json_loadb(body.data, body.len, 0, &je);
		const char *tok = json_string_value(json_object_get(doc, "token"));
		if (tok == NULL || *tok == '\0')
			tok = json_string_value(json_object_get(doc, "access_token"));
		if (tok == NULL || *tok == '\0')
			return err_set(err, EBADMSG, "%s: the token server's reply has no token", r->host);
		token_store(r, scope, tok, token_refresh_at(doc));
		explicit_bzero(body.data, body.len);
		return 0;
	}
	return err_set(err, EPROTO, "%s: the token server %s accepts neither GET nor POST", r->host, r->realm);
}

static int auth_header_locked(struct registry *r, const char *scope, char **header, struct err **err)
{
	if (!r->pinged && ping(r, err) < 0)
		return -1;
	switch (r->scheme) {
	case REG_AUTH_NONE: return 0;
	case REG_AUTH_BASIC:
		if (load_creds(r, err) < 0)
			return -1;
		if (r->creds.username)
			*header = basic_header(&r->creds);
		return 0;
	case REG_AUTH_BEARER: {
		struct reg_token *t = token_find(r, scope);
		if (t && t->refresh_at <= mono_seconds()) {
			log_debug("%s: the token for %s is due for renewal", r->host, scope ? scope : "(no scope)");
			t = NULL;
		}
		/* A token fresh from the server is used even if it is already due:
		 * asking again would get the same. */
		if (t == NULL && fetch_token(r, scope, err) < 0)
			return -1;
		t = token_find(r, scope);
		if (t)
			*header = xasprintf("Authorization: Bearer %s", t->value);
		return 0;
	}
	}
	return 0;
}

int registry_auth_header(struct registry *r, const char *scope, char **header, struct err **err)
{
	*header = NULL;
	pthread_mutex_lock(&r->lock);
	int rc = auth_header_locked(r, scope, header, err);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* ---------------------------------------------------------------- requests */
int registry_status_error(struct registry *r, const char *what, const struct reg_resp *resp, struct err **err)
{
	_cleanup_buf_ struct buf detail = {0};
	json_t *doc = resp->body.len ? json_loadb(resp->body.data, resp->body.len, 0, NULL) : NULL;
	json_t *errors = json_object_get(doc, "errors");
	for (size_t i = 0; i < json_array_size(errors); i++) {
		json_t *e = json_array_get(errors, i);
		const char *code = json_string_value(json_object_get(e, "code"));
		const char *msg = json_string_value(json_object_get(e, "message"));
		buf_printf(&detail, "%s%s%s%s", detail.len ? "; " : ": ", code ? code : "", code && msg ? " " : "",
		           msg ? msg : "");
	}
	json_decref(doc);
	const char *d = detail.len ? buf_str(&detail) : "";
	switch (resp->status) {
	case 401:
	case 403: {
		pthread_mutex_lock(&r->lock);
		_cleanup_free_ char *source = xstrdup(creds_source(r));
		pthread_mutex_unlock(&r->lock);
		return err_set(err, EACCES, "%s: %s: %s (HTTP %ld)%s; credentials: %s", r->host, what,
		               resp->status == 401 ? "unauthorized" : "denied", resp->status, d, source);
	}
	case 404: return err_set(err, ENOENT, "%s: %s: not found (HTTP 404)%s", r->host, what, d);
	case 429:
		return err_set(err, EAGAIN,
		               "%s: %s: rate limited by the registry (HTTP 429, gave up after %d attempts)%s", r->host,
		               what, REG_MAX_ATTEMPTS, d);
	default:
		/* EAGAIN marks what a caller may try again (5xx). */
		return err_set(err, registry_retryable_status(resp->status) ? EAGAIN : EPROTO,
		               "%s: %s: unexpected HTTP %ld%s", r->host, what, resp->status, d);
	}
}

static int request_with_retries(struct registry *r, const struct reg_req *req, struct reg_resp *resp, struct err **err)
{
	size_t out_start = req->out ? req->out->len : 0;
	bool reauthed = false;
	for (int attempt = 1;; attempt++) {
		_cleanup_free_ char *auth = NULL;
		if (registry_auth_header(r, req->scope, &auth, err) < 0)
			return -1;
		reg_resp_free(resp);
		if (req->out)
			req->out->len = out_start;
		char errbuf[CURL_ERROR_SIZE];
		bool overflow = false;
		CURLcode cc = perform(r, req, auth, resp, &overflow, errbuf);
		if (auth)
			explicit_bzero(auth, strlen(auth));
		if (overflow)
			return err_set(err, EFBIG, "%s: %s %s: response larger than %zu bytes", r->host,
			               req->method ? req->method : "GET", req->url, req->out_max);
		if (cc != CURLE_OK) {
			if (!req->no_retry && attempt < REG_MAX_ATTEMPTS) {
				log_debug("%s: %s (attempt %d), retrying", r->host,
				          errbuf[0] ? errbuf : curl_easy_strerror(cc), attempt);
				registry_backoff(attempt);
				continue;
			}
			return err_set(err, EHOSTUNREACH, "%s: %s %s: %s", r->host, req->method ? req->method : "GET",
			               req->url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
		}
		pthread_mutex_lock(&r->lock);
		bool authed = r->scheme != REG_AUTH_NONE;
		pthread_mutex_unlock(&r->lock);
		if (resp->status == 401 && !reauthed && authed) {
			/* An expired token, or a scope the server wants widened. */
			reauthed = true;
			pthread_mutex_lock(&r->lock);
			token_drop_locked(r, req->scope);
			if (resp->www_authenticate)
				parse_challenge(r, resp->www_authenticate);
			pthread_mutex_unlock(&r->lock);
			attempt--;
			continue;
		}
		if (resp->status == 401 && !authed && resp->www_authenticate && !reauthed) {
			/* The ping needed no auth but this path does. */
			reauthed = true;
			pthread_mutex_lock(&r->lock);
			parse_challenge(r, resp->www_authenticate);
			pthread_mutex_unlock(&r->lock);
			attempt--;
			continue;
		}
		if (registry_retryable_status(resp->status) && !req->no_retry && attempt < REG_MAX_ATTEMPTS) {
			log_debug("%s: HTTP %ld (attempt %d), retrying", r->host, resp->status, attempt);
			registry_backoff(attempt);
			continue;
		}
		return 0;
	}
}

int registry_do(struct registry *r, const struct reg_req *req, struct reg_resp *resp, struct err **err)
{
	memset(resp, 0, sizeof(*resp));
	/* A failure (a body over the cap, the network, credentials) may come after on_header kept
	 * strings: the caller frees resp only on success. */
	if (request_with_retries(r, req, resp, err) < 0) {
		reg_resp_free(resp);
		return -1;
	}
	return 0;
}
