/* kms: the app's KMS endpoint on 127.0.0.1:kms_proxy.listen_port. Checks
 * each request, attaches a Recipient (an attestation document over the
 * proxy's RSA-2048 key) where KMS supports one, re-signs with the instance
 * role's credentials (IMDSv2), sends it over HTTPS through the egress
 * tunnel, and decrypts CiphertextForRecipient for the app. The blocking
 * work runs on a thread per request, at most KMS_MAX_JOBS at once (more get
 * 503, which AWS SDKs retry); the answer returns through a pipe. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "odyn/internal.h"
#include "common/cose.h"
#include "common/json.h"

#define KMS_BODY_MAX (64 * 1024)
/* Requests in progress at once: each holds a thread, a tunnel and, for
 * Recipient actions, an NSM call; a stuck upstream must not make odyn grow
 * without bound. */
#define KMS_MAX_JOBS 16
/* Credentials are refreshed this long before they expire. */
#define CREDS_MARGIN_S 300

struct odyn_kms {
	struct httpd *srv;
	struct odyn_counters *counters;
	struct ev_handler pipe_h;
	int pipe_rd, pipe_wr;
	struct evloop *loop;
	struct odyn_kms_opts o;
	char *imds_host; /* o.imds_host points here */
	EVP_PKEY *rsa;
	uint8_t *spki;
	size_t spki_len;
	pthread_mutex_t lock; /* creds, region */
	struct kms_creds creds;
	char *region;
	size_t running;
};

struct kms_job {
	struct odyn_kms *kms;
	struct httpd_conn *conn; /* NULL once the client went away */
	char action[64];
	char *body;
	size_t body_len;
	/* result */
	int status;
	char content_type[96];
	struct buf out;
};

/* Actions KMS answers with CiphertextForRecipient when given a Recipient,
 * and the field the plaintext goes back in. */
static const char *recipient_field(const char *action)
{
	if (!strcmp(action, "Decrypt") || !strcmp(action, "GenerateDataKey") || !strcmp(action, "GenerateRandom"))
		return "Plaintext";
	if (!strcmp(action, "GenerateDataKeyPair"))
		return "PrivateKeyPlaintext";
	if (!strcmp(action, "DeriveSharedSecret"))
		return "SharedSecret";
	return NULL;
}

static void job_error(struct kms_job *j, int status, const char *type, const char *msg)
{
	j->status = status;
	snprintf(j->content_type, sizeof(j->content_type), "application/x-amz-json-1.1");
	json_t *o = json_pack("{s:s, s:s}", "__type", type, "message", msg);
	char *s = json_dumps(o, JSON_COMPACT);
	j->out.len = 0;
	buf_puts(&j->out, s);
	free(s);
	json_decref(o);
}

static int get_credentials(struct odyn_kms *k, struct kms_creds *out, char **region, struct err **err)
{
	pthread_mutex_lock(&k->lock);
	int rc = 0;
	if (k->creds.access_key == NULL || k->creds.expires - CREDS_MARGIN_S <= time(NULL)) {
		struct kms_creds fresh = {0};
		struct kms_target imds = {
		    .egress = &k->o.egress, .policy = k->o.policy, .host = k->o.imds_host, .port = k->o.imds_port};
		rc = kms_imds_credentials(&imds, &fresh, &k->region, err);
		if (rc == 0) {
			kms_creds_free(&k->creds);
			k->creds = fresh;
			log_info("kms: instance role credentials refreshed (expire in %lld s)",
			         (long long)(fresh.expires - time(NULL)));
		}
	}
	if (rc == 0) {
		out->access_key = xstrdup(k->creds.access_key);
		out->secret_key = xstrdup(k->creds.secret_key);
		out->token = k->creds.token ? xstrdup(k->creds.token) : NULL;
		out->expires = k->creds.expires;
		*region = xstrdup(k->region ? k->region : "");
	}
	pthread_mutex_unlock(&k->lock);
	return rc;
}

static const char *endpoint_for(const struct odyn_kms *k, const char *region)
{
	for (size_t i = 0; i < k->o.n_endpoints; i++)
		if (strcmp(k->o.endpoints[i].region, region) == 0)
			return k->o.endpoints[i].host;
	return NULL;
}

/* The body KMS gets: the app's, plus a Recipient where one applies. */
static int build_body(struct odyn_kms *k, struct kms_job *j, json_t *req, struct err **err)
{
	if (recipient_field(j->action) == NULL)
		return 0;
	if (json_object_get(req, "Recipient"))
		return 0; /* the app brought its own: its business */
	struct nsm_attest_req nr = {.public_key = k->spki, .public_key_len = k->spki_len};
	_cleanup_buf_ struct buf doc = {0};
	struct nsm *d = NULL;
	int rc = nsm_open(k->o.nsm_path, &d, err);
	if (rc == 0)
		rc = nsm_attest(d, &nr, &doc, err);
	nsm_close(d);
	if (rc < 0)
		return -1;
	_cleanup_free_ char *b64 = base64_encode(doc.data, doc.len);
	json_object_set_new(
	    req, "Recipient",
	    json_pack("{s:s, s:s}", "AttestationDocument", b64, "KeyEncryptionAlgorithm", "RSAES_OAEP_SHA_256"));
	return 0;
}

/* Replaces CiphertextForRecipient by the plaintext field the app expects. */
static int unwrap(struct odyn_kms *k, struct kms_job *j, struct kms_http_response *r, struct err **err)
{
	const char *field = recipient_field(j->action);
	if (field == NULL || r->status != 200)
		return 0;
	json_error_t je;
	_cleanup_json_ json_t *o = json_loadb(r->body, r->body_len, 0, &je);
	if (!json_is_object(o))
		return err_set(err, EPROTO, "KMS answered 200 with a body that is not a JSON object");
	json_t *c = json_object_get(o, "CiphertextForRecipient");
	if (c == NULL)
		return 0; /* the app's own Recipient: pass through */
	if (!json_is_string(c))
		return err_set(err, EPROTO, "CiphertextForRecipient is not a string");
	uint8_t *der = NULL;
	size_t der_len;
	if (base64_decode(json_string_value(c), json_string_length(c), &der, &der_len) < 0)
		return err_set(err, EPROTO, "CiphertextForRecipient is not base64");
	_cleanup_buf_ struct buf plain = {0};
	int rc = kms_cms_decrypt(k->rsa, der, der_len, &plain, err);
	free(der);
	if (rc < 0)
		return -1;
	char *b64 = base64_encode(plain.data, plain.len);
	OPENSSL_cleanse(plain.data, plain.len);
	json_object_del(o, "CiphertextForRecipient");
	json_object_set_new(o, field, json_string(b64));
	OPENSSL_cleanse(b64, strlen(b64));
	free(b64);
	char *s = json_dumps(o, JSON_COMPACT);
	j->out.len = 0;
	buf_puts(&j->out, s);
	OPENSSL_cleanse(s, strlen(s));
	free(s);
	return 1;
}

static void amz_date_now(char out[17])
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static void job_run(struct kms_job *j)
{
	struct odyn_kms *k = j->kms;
	_cleanup_err_ struct err *e = NULL;
	struct kms_creds creds = {0};
	_cleanup_free_ char *region = NULL, *host_default = NULL, *auth = NULL, *body = NULL;
	json_error_t je;
	_cleanup_json_ json_t *req = json_loadb(j->body, j->body_len, JSON_REJECT_DUPLICATES, &je);
	if (get_credentials(k, &creds, &region, &e) < 0) {
		log_warn("kms: %s", e->msg);
		if (e->code == EPERM)
			job_error(j, 403, "EnclaverEgressDenied", e->msg);
		else
			job_error(j, 502, "EnclaverCredentialsError", e->msg);
		return;
	}
	if (k->o.region) {
		free(region);
		region = xstrdup(k->o.region);
	}
	const char *host = endpoint_for(k, region);
	if (host == NULL)
		host = host_default = xasprintf("kms.%s.amazonaws.com", region);
	if (build_body(k, j, req, &e) < 0) {
		log_warn("kms: %s: attestation: %s", j->action, e->msg);
		job_error(j, 500, "EnclaverAttestationError", e->msg);
		kms_creds_free(&creds);
		return;
	}
	body = json_dumps(req, JSON_COMPACT);
	/* host[:port] */
	_cleanup_free_ char *h = NULL;
	uint16_t port = 443;
	if (http_authority_split(host, &h, &port, &e) < 0) {
		job_error(j, 500, "EnclaverConfigError", e->msg);
		kms_creds_free(&creds);
		return;
	}
	if (port == 0)
		port = 443;
	char date[17];
	amz_date_now(date);
	_cleanup_free_ char *target = xasprintf("TrentService.%s", j->action);
	struct sigv4_header hdrs[5] = {
	    {"Content-Type", "application/x-amz-json-1.1"},
	    {"Host", host},
	    {"X-Amz-Date", date},
	    {"X-Amz-Target", target},
	    {"X-Amz-Security-Token", creds.token},
	};
	struct sigv4_request sr = {"POST", "/", "", hdrs, creds.token ? 5 : 4, date, body, strlen(body)};
	struct sigv4_key key = {creds.access_key, creds.secret_key, region, "kms"};
	int rc = sigv4_sign(&sr, &key, &auth, &e);
	_cleanup_buf_ struct buf out = {0};
	if (rc == 0) {
		buf_printf(&out, "POST / HTTP/1.1\r\n");
		for (size_t i = 0; i < sr.n_headers; i++)
			buf_printf(&out, "%s: %s\r\n", hdrs[i].name, hdrs[i].value);
		buf_printf(&out, "Authorization: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", auth,
		           strlen(body), body);
	}
	kms_creds_free(&creds);
	if (rc < 0) {
		job_error(j, 500, "EnclaverSigningError", e->msg);
		return;
	}
	struct kms_target t = {.egress = &k->o.egress,
	                       .policy = k->o.policy,
	                       .host = h,
	                       .port = port,
	                       .tls = true,
	                       .ca_file = k->o.ca_file};
	struct kms_http_response r = {0};
	if (kms_http_exchange(&t, &out, &r, &e) < 0) {
		log_warn("kms: %s: %s", j->action, e->msg);
		if (e->code == EPERM)
			job_error(j, 403, "EnclaverEgressDenied", e->msg);
		else
			job_error(j, 502, "EnclaverUpstreamError", e->msg);
		return;
	}
	j->status = r.status;
	snprintf(j->content_type, sizeof(j->content_type), "%s",
	         r.content_type[0] ? r.content_type : "application/x-amz-json-1.1");
	int u = unwrap(k, j, &r, &e);
	if (u < 0) {
		log_warn("kms: %s: %s", j->action, e->msg);
		job_error(j, 502, "EnclaverRecipientError", e->msg);
	} else if (u == 0) {
		buf_append(&j->out, r.body, r.body_len);
	}
	log_info("kms: %s -> %d", j->action, j->status);
	kms_http_response_free(&r);
}

static void *job_thread(void *arg)
{
	struct kms_job *j = arg;
	job_run(j);
	/* Hand the job back to the loop; a pipe write of a pointer is atomic. */
	while (write(j->kms->pipe_wr, &j, sizeof(j)) < 0 && errno == EINTR)
		;
	return NULL;
}

static void job_free(struct kms_job *j)
{
	if (j->body)
		OPENSSL_cleanse(j->body, j->body_len);
	free(j->body);
	if (j->out.data)
		OPENSSL_cleanse(j->out.data, j->out.len);
	buf_free(&j->out);
	free(j);
}

static void job_cancel(void *user)
{
	((struct kms_job *)user)->conn = NULL;
}

static void on_pipe(struct ev_handler *h, uint32_t events)
{
	struct odyn_kms *k = container_of(h, struct odyn_kms, pipe_h);
	(void)events;
	struct kms_job *j;
	while (read(k->pipe_rd, &j, sizeof(j)) == (ssize_t)sizeof(j)) {
		k->running--;
		odyn_counters_add(k->counters, WIRE_COUNTER_KMS, j->action, j->status == 200 ? "ok" : "error");
		if (j->conn)
			httpd_respond(j->conn, j->status, j->status == 200 ? "OK" : "Error", j->content_type,
			              j->out.data, j->out.len);
		job_free(j);
	}
}

/* The caller's request, checked before anything leaves the enclave. */
int odyn_kms_check_request(const struct http_request *req, const uint8_t *body, size_t len, char action[64],
                           struct err **err)
{
	if (strcmp(req->method, "POST") != 0)
		return err_set(err, EINVAL, "KMS requests are POST");
	if (strcmp(req->target, "/") != 0)
		return err_set(err, EINVAL, "KMS requests go to /");
	const char *target = NULL, *ctype = NULL;
	size_t tlen = 0, clen = 0;
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct http_header *hd = &req->headers[i];
		if (hd->name_len == 12 && strncasecmp(hd->name, "x-amz-target", 12) == 0) {
			if (target)
				return err_set(err, EINVAL, "X-Amz-Target given twice");
			target = hd->value, tlen = hd->value_len;
		} else if (hd->name_len == 12 && strncasecmp(hd->name, "content-type", 12) == 0) {
			ctype = hd->value, clen = hd->value_len;
		}
	}
	if (target == NULL || tlen < 14 || strncmp(target, "TrentService.", 13) != 0 || tlen - 13 >= 64)
		return err_set(err, EINVAL, "X-Amz-Target must be TrentService.<Action>");
	for (size_t i = 13; i < tlen; i++)
		if (!((target[i] >= 'A' && target[i] <= 'Z') || (target[i] >= 'a' && target[i] <= 'z')))
			return err_set(err, EINVAL, "X-Amz-Target: bad action name");
	memcpy(action, target + 13, tlen - 13);
	action[tlen - 13] = '\0';
	if (ctype == NULL || clen < 26 || strncasecmp(ctype, "application/x-amz-json-1.1", 26) != 0)
		return err_set(err, EINVAL, "Content-Type must be application/x-amz-json-1.1");
	json_error_t je;
	_cleanup_json_ json_t *o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL)
		return err_set(err, EINVAL, "body: not JSON (%s)", je.text);
	if (!json_is_object(o))
		return err_set(err, EINVAL, "body: expected a JSON object");
	json_t *rcp = json_object_get(o, "Recipient");
	if (rcp && !json_is_object(rcp))
		return err_set(err, EINVAL, "body: Recipient must be an object");
	return 0;
}

static void on_request(void *arg, struct httpd_conn *c, const struct http_request *req, const uint8_t *body, size_t len)
{
	struct odyn_kms *k = arg;
	_cleanup_err_ struct err *e = NULL;
	char action[64];
	if (odyn_kms_check_request(req, body, len, action, &e) < 0) {
		struct kms_job tmp = {0};
		job_error(&tmp, 400, "EnclaverBadRequest", e->msg);
		httpd_respond(c, 400, "Bad Request", tmp.content_type, tmp.out.data, tmp.out.len);
		buf_free(&tmp.out);
		return;
	}
	if (k->running >= KMS_MAX_JOBS) {
		struct kms_job tmp = {0};
		char msg[128];
		snprintf(msg, sizeof(msg),
		         "kms proxy: %d requests already in progress (the most it runs at once); retry", KMS_MAX_JOBS);
		job_error(&tmp, 503, "EnclaverBusy", msg);
		log_warn("kms: %s refused: %d requests in progress", action, KMS_MAX_JOBS);
		httpd_respond(c, 503, "Service Unavailable", tmp.content_type, tmp.out.data, tmp.out.len);
		buf_free(&tmp.out);
		return;
	}
	struct kms_job *j = xcalloc(1, sizeof(*j));
	j->kms = k;
	j->conn = c;
	snprintf(j->action, sizeof(j->action), "%s", action);
	j->body = xmalloc(len + 1);
	memcpy(j->body, body, len);
	j->body_len = len;
	pthread_t th;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&th, &attr, job_thread, j);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		job_free(j);
		struct kms_job tmp = {0};
		job_error(&tmp, 503, "EnclaverBusy", "kms proxy: cannot start a worker thread");
		httpd_respond(c, 503, "Service Unavailable", tmp.content_type, tmp.out.data, tmp.out.len);
		buf_free(&tmp.out);
		return;
	}
	k->running++;
	httpd_set_pending(c, j, job_cancel);
}

int odyn_kms_start(struct evloop *loop, const struct transport_addr *addr, const struct odyn_kms_opts *o,
                   struct odyn_kms **out, struct err **err)
{
	struct odyn_kms *k = xcalloc(1, sizeof(*k));
	k->loop = loop;
	k->o = *o;
	/* The caller's strings may not outlive this call; the config's do. */
	k->imds_host = xstrdup(o->imds_host);
	k->o.imds_host = k->imds_host;
	k->pipe_rd = k->pipe_wr = -1;
	pthread_mutex_init(&k->lock, NULL);
	/* The proxy's own key: made fresh at every start, never leaves odyn. */
	k->rsa = EVP_RSA_gen(2048);
	uint8_t *der = NULL;
	int n = k->rsa ? i2d_PUBKEY(k->rsa, &der) : -1;
	if (n <= 0) {
		odyn_kms_free(k);
		return err_openssl(err, "kms proxy: RSA-2048 key");
	}
	k->spki = xmalloc((size_t)n);
	memcpy(k->spki, der, (size_t)n);
	k->spki_len = (size_t)n;
	OPENSSL_free(der);
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		odyn_kms_free(k);
		return err_sys(err, "kms proxy: pipe");
	}
	k->pipe_rd = p[0], k->pipe_wr = p[1];
	/* Workers block on the write end only if the loop stops reading. */
	fcntl(k->pipe_wr, F_SETFL, 0);
	/* No policy allows nothing, as on the host. */
	static const struct egress_policy no_policy;
	if (k->o.policy == NULL)
		k->o.policy = &no_policy;
	/* Said once at start: otherwise the first sign would be every request failing. */
	if (egress_policy_check(k->o.policy, o->imds_host, o->imds_port, NULL) != EGRESS_ALLOW)
		log_warn("kms proxy: the egress policy does not allow IMDS (%s:%u), where the credentials come from: "
		         "add it to egress.allow",
		         o->imds_host, o->imds_port);
	for (size_t i = 0; i < o->n_endpoints; i++) {
		_cleanup_free_ char *h = NULL;
		uint16_t port = 443;
		_cleanup_err_ struct err *e = NULL;
		if (http_authority_split(o->endpoints[i].host, &h, &port, &e) == 0 &&
		    egress_policy_check(k->o.policy, h, port ? port : 443, NULL) != EGRESS_ALLOW)
			log_warn(
			    "kms proxy: the egress policy does not allow the KMS endpoint %s: add it to egress.allow",
			    o->endpoints[i].host);
	}
	k->pipe_h.fn = on_pipe;
	if (evloop_add(loop, k->pipe_rd, EPOLLIN, &k->pipe_h, err) < 0 ||
	    httpd_start(loop, addr, "kms proxy", &(struct httpd_limits){.body_max = KMS_BODY_MAX}, on_request, k,
	                &k->srv, err) < 0) {
		odyn_kms_free(k);
		return -1;
	}
	*out = k;
	return 0;
}

void odyn_kms_free(struct odyn_kms *k)
{
	if (k == NULL)
		return;
	httpd_free(k->srv);
	/* Wait for workers still out: they write to the pipe when done. */
	while (k->running > 0 && k->pipe_rd >= 0) {
		struct kms_job *j;
		ssize_t n = read(k->pipe_rd, &j, sizeof(j));
		if (n == (ssize_t)sizeof(j)) {
			k->running--;
			job_free(j);
		} else {
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	if (k->pipe_rd >= 0) {
		evloop_del(k->loop, k->pipe_rd);
		close(k->pipe_rd);
		close(k->pipe_wr);
	}
	kms_creds_free(&k->creds);
	free(k->region);
	free(k->imds_host);
	free(k->spki);
	EVP_PKEY_free(k->rsa);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

void odyn_kms_set_counters(struct odyn_kms *k, struct odyn_counters *c)
{
	if (k)
		k->counters = c;
}
