/* kms_client: the blocking half of the KMS proxy, run on a worker thread:
 * tunnels through the host's egress endpoint, IMDSv2 credentials, HTTPS to
 * KMS with OpenSSL (certificate and host name verified), and the CMS
 * envelope KMS returns for a Recipient. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "odyn/internal.h"
#include "common/cose.h"
#include "common/json.h"

#define RESPONSE_MAX          (1u << 20)
#define KMS_TUNNEL_CONNECT_MS 10000
#define KMS_TUNNEL_REPLY_MS   30000

/* ---------------------------------------------------------------- tunnels */

int kms_tunnel_open(const struct transport_addr *egress, const char *host, uint16_t port, struct err **err)
{
	/* Each request holds one of the proxy's 16 threads: neither the connect nor the host's reply
	 * (which waits for its own connect to the target, 10 s per address) may hold it for minutes. */
	_cleanup_close_ int fd = transport_connect_timed(egress, KMS_TUNNEL_CONNECT_MS, err);
	if (fd < 0)
		return err_wrap(err, "egress endpoint");
	struct timeval tv = {.tv_sec = KMS_TUNNEL_REPLY_MS / 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	_cleanup_buf_ struct buf req = {0}, reply = {0};
	egress_frame_request(&req, host, port);
	if (io_write_full(fd, req.data, req.len, err) < 0)
		return err_wrap(err, "egress endpoint");
	/* Read the reply frame byte by byte: what follows belongs to the tunnel. */
	for (;;) {
		char c;
		ssize_t n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return err_set(err, ETIMEDOUT, "egress endpoint did not reply within %d ms for %s:%u",
			               KMS_TUNNEL_REPLY_MS, host, port);
		if (n <= 0)
			return err_set(err, ECONNRESET, "egress endpoint closed before replying for %s:%u", host, port);
		buf_append(&reply, &c, 1);
		struct egress_reply r;
		ssize_t fl = egress_frame_parse_reply(reply.data, reply.len, &r, err);
		if (fl < 0)
			return err_wrap(err, "egress endpoint reply");
		if (fl == 0)
			continue;
		if (!r.ok) {
			err_set(err, r.os_code > 0 ? r.os_code : ECONNREFUSED, "%s:%u: %s", host, port, r.message);
			free(r.message);
			return -1;
		}
		return steal_fd(&fd);
	}
}

/* ---------------------------------------------------------------- HTTP responses */

void kms_http_response_free(struct kms_http_response *r)
{
	free(r->raw);
	memset(r, 0, sizeof(*r));
}

/* Parses a whole response (read until EOF; Content-Length or chunked framing respected). */
int kms_http_response_parse(char *raw, size_t len, struct kms_http_response *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	char *end = memmem(raw, len, "\r\n\r\n", 4);
	if (end == NULL || strncmp(raw, "HTTP/1.", 7) != 0 || len < 12)
		return err_set(err, EPROTO, "not an HTTP response");
	char *sp = memchr(raw, ' ', (size_t)(end - raw));
	if (sp == NULL)
		return err_set(err, EPROTO, "bad status line");
	out->status = atoi(sp + 1);
	if (out->status < 100 || out->status > 599)
		return err_set(err, EPROTO, "bad status code");
	*end = '\0';
	char *body = end + 4;
	out->body = body;
	out->body_len = len - (size_t)(body - raw);
	bool chunked = false, have_length = false;
	for (char *line = strstr(raw, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
		char *h = line + 2;
		if (strncasecmp(h, "content-length:", 15) == 0) {
			long long cl = atoll(h + 15);
			if (cl < 0 || (size_t)cl > out->body_len)
				return err_set(err, EPROTO, "response body shorter than its Content-Length");
			out->body_len = (size_t)cl;
			have_length = true;
		} else if (strncasecmp(h, "transfer-encoding:", 18) == 0) {
			char *v = h + 18;
			while (*v == ' ' || *v == '\t')
				v++;
			size_t n = strcspn(v, "\r");
			while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
				n--;
			if (chunked)
				return err_set(err, EPROTO, "Transfer-Encoding given twice");
			/* Only chunked alone: a compressed body is no use to the proxy. */
			if (n != 7 || strncasecmp(v, "chunked", 7) != 0)
				return err_set(err, EPROTO,
				               "Transfer-Encoding \"%.*s\" is not supported (only chunked)",
				               (int)(n < 64 ? n : 64), v);
			chunked = true;
		} else if (strncasecmp(h, "content-type:", 13) == 0) {
			char *v = h + 13;
			while (*v == ' ')
				v++;
			size_t n = strcspn(v, "\r");
			snprintf(out->content_type, sizeof(out->content_type), "%.*s", (int)n, v);
		}
	}
	if (chunked && have_length)
		return err_set(err, EPROTO,
		               "response has both Content-Length and Transfer-Encoding (ambiguous framing)");
	if (chunked) {
		if (http_chunked_decode(body, len - (size_t)(body - raw), RESPONSE_MAX, &out->body_len, err) < 0)
			return -1;
		body[out->body_len] = '\0'; /* the encoding is longer than the data: there is room */
	}
	return 0;
}

static int read_all(int fd, SSL *ssl, struct buf *out, struct err **err)
{
	char b[16384];
	for (;;) {
		int n;
		if (ssl) {
			n = SSL_read(ssl, b, sizeof(b));
			if (n <= 0) {
				int e = SSL_get_error(ssl, n);
				if (e == SSL_ERROR_ZERO_RETURN)
					return 0;
				return err_openssl(err, "TLS read");
			}
		} else {
			ssize_t r = read(fd, b, sizeof(b));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return err_sys(err, "read");
			if (r == 0)
				return 0;
			n = (int)r;
		}
		buf_append(out, b, (size_t)n);
		if (out->len > RESPONSE_MAX)
			return err_set(err, E2BIG, "response over %u bytes", RESPONSE_MAX);
	}
}

/* The same decision the app's proxy makes (and the host makes again): odyn's own connections
 * get no way around the manifest's egress rules. */
static int policy_allows(const struct kms_target *t, struct err **err)
{
	static const struct egress_policy none;
	const char *rule = NULL;
	switch (egress_policy_check(t->policy ? t->policy : &none, t->host, t->port, &rule)) {
	case EGRESS_ALLOW: return 0;
	case EGRESS_DENY_RULE:
		return err_set(err, EPERM, "%s:%u is blocked by the egress policy: it matches deny rule \"%s\"",
		               t->host, t->port, rule);
	case EGRESS_BAD_HOST: return err_set(err, EPERM, "\"%s\" is not a valid host for the egress policy", t->host);
	default:
		return err_set(err, EPERM,
		               "%s:%u is blocked by the egress policy: it matches no allow rule (the KMS proxy's "
		               "connections need egress.allow too)",
		               t->host, t->port);
	}
}

int kms_http_exchange(const struct kms_target *t, const struct buf *request, struct kms_http_response *resp,
                      struct err **err)
{
	if (policy_allows(t, err) < 0)
		return -1;
	_cleanup_close_ int fd = kms_tunnel_open(t->egress, t->host, t->port, err);
	if (fd < 0)
		return -1;
	struct timeval tv = {.tv_sec = 30};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	_cleanup_buf_ struct buf raw = {0};
	int rc = -1;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	if (!t->tls) {
		if (io_write_full(fd, request->data, request->len, err) < 0 || read_all(fd, NULL, &raw, err) < 0)
			goto out;
	} else {
		ctx = SSL_CTX_new(TLS_client_method());
		if (ctx == NULL) {
			err_openssl(err, "TLS context");
			goto out;
		}
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
		/* Servers often close without close_notify after a complete
		 * response; truncation is still caught by Content-Length. */
		SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		int ok = t->ca_file ? SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL)
		                    : SSL_CTX_set_default_verify_paths(ctx);
		if (ok != 1) {
			err_openssl(err, t->ca_file ? t->ca_file : "default CA certificates");
			goto out;
		}
		ssl = SSL_new(ctx);
		if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_set_tlsext_host_name(ssl, t->host) != 1 ||
		    SSL_set1_host(ssl, t->host) != 1) {
			err_openssl(err, "TLS setup");
			goto out;
		}
		if (SSL_connect(ssl) != 1) {
			long v = SSL_get_verify_result(ssl);
			if (v != X509_V_OK) {
				ERR_clear_error();
				err_set(err, EPROTO, "TLS to %s: certificate not trusted: %s", t->host,
				        X509_verify_cert_error_string(v));
			} else {
				err_openssl(err, "TLS handshake");
			}
			goto out;
		}
		size_t off = 0;
		while (off < request->len) {
			int n = SSL_write(ssl, request->data + off, (int)(request->len - off));
			if (n <= 0) {
				err_openssl(err, "TLS write");
				goto out;
			}
			off += (size_t)n;
		}
		if (read_all(fd, ssl, &raw, err) < 0)
			goto out;
	}
	if (raw.len == 0) {
		err_set(err, EPROTO, "%s:%u closed without a response", t->host, t->port);
		goto out;
	}
	buf_putc(&raw, '\0');
	raw.len--;
	/* The parser clears *resp: the buffer is handed over after it. */
	if (kms_http_response_parse(raw.data, raw.len, resp, err) < 0) {
		err_wrap(err, "%s:%u", t->host, t->port);
		goto out;
	}
	resp->raw = steal_pointer(&raw.data);
	raw.len = raw.cap = 0;
	rc = 0;
out:
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	SSL_CTX_free(ctx);
	return rc;
}

/* ---------------------------------------------------------------- IMDSv2 */

static int imds_get(const struct kms_target *imds, const char *method, const char *path, const char *token,
                    struct kms_http_response *r, struct err **err)
{
	_cleanup_buf_ struct buf req = {0};
	buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, imds->host);
	if (token)
		buf_printf(&req, "X-aws-ec2-metadata-token: %s\r\n", token);
	else
		buf_puts(&req, "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n");
	buf_puts(&req, strcmp(method, "PUT") == 0 ? "Content-Length: 0\r\n\r\n" : "\r\n");
	if (kms_http_exchange(imds, &req, r, err) < 0)
		return err_wrap(err, "IMDS %s %s", method, path);
	if (r->status != 200) {
		int s = r->status;
		kms_http_response_free(r);
		return err_set(err, EACCES, "IMDS %s %s: HTTP %d", method, path, s);
	}
	return 0;
}

/* "2024-01-02T03:04:05Z" */
static int parse_time(const char *s, time_t *out)
{
	struct tm tm = {0};
	const char *e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (e == NULL || (*e != 'Z' && *e != '\0' && *e != '.'))
		return -1;
	*out = timegm(&tm);
	return 0;
}

void kms_creds_free(struct kms_creds *c)
{
	if (c->secret_key)
		OPENSSL_cleanse(c->secret_key, strlen(c->secret_key));
	free(c->access_key);
	free(c->secret_key);
	free(c->token);
	memset(c, 0, sizeof(*c));
}

int kms_imds_credentials(const struct kms_target *imds, struct kms_creds *out, char **region, struct err **err)
{
	struct kms_http_response r;
	if (imds_get(imds, "PUT", "/latest/api/token", NULL, &r, err) < 0)
		return -1;
	_cleanup_free_ char *token = xstrndup(r.body, r.body_len);
	kms_http_response_free(&r);
	if (token[0] == '\0' || strpbrk(token, "\r\n"))
		return err_set(err, EPROTO, "IMDS: bad session token");
	if (imds_get(imds, "GET", "/latest/meta-data/iam/security-credentials/", token, &r, err) < 0)
		return -1;
	_cleanup_free_ char *role =
	    xstrndup(r.body, strcspn(r.body, "\r\n") < r.body_len ? strcspn(r.body, "\r\n") : r.body_len);
	kms_http_response_free(&r);
	if (role[0] == '\0' || strpbrk(role, "/ ?#%"))
		return err_set(err, EPROTO, "IMDS: no instance role (attach an IAM role to the instance)");
	_cleanup_free_ char *path = xasprintf("/latest/meta-data/iam/security-credentials/%s", role);
	if (imds_get(imds, "GET", path, token, &r, err) < 0)
		return -1;
	json_error_t je;
	_cleanup_json_ json_t *j = json_loadb(r.body, r.body_len, 0, &je);
	kms_http_response_free(&r);
	const char *ak = json_string_value(json_object_get(j, "AccessKeyId"));
	const char *sk = json_string_value(json_object_get(j, "SecretAccessKey"));
	const char *tk = json_string_value(json_object_get(j, "Token"));
	const char *exp = json_string_value(json_object_get(j, "Expiration"));
	time_t t;
	if (!ak || !sk || !exp || parse_time(exp, &t) < 0)
		return err_set(err, EPROTO, "IMDS: role credentials lack AccessKeyId, SecretAccessKey or Expiration");
	out->access_key = xstrdup(ak);
	out->secret_key = xstrdup(sk);
	out->token = tk ? xstrdup(tk) : NULL;
	out->expires = t;
	if (region && *region == NULL) {
		if (imds_get(imds, "GET", "/latest/meta-data/placement/region", token, &r, err) < 0) {
			kms_creds_free(out);
			return -1;
		}
		*region = xstrndup(r.body, r.body_len);
		kms_http_response_free(&r);
	}
	return 0;
}

/* ---------------------------------------------------------------- CMS */

int kms_cms_decrypt(EVP_PKEY *key, const uint8_t *der, size_t len, struct buf *out, struct err **err)
{
	const uint8_t *p = der;
	CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	if (cms == NULL || p != der + len) {
		CMS_ContentInfo_free(cms);
		return err_openssl(err, "CiphertextForRecipient: not a CMS structure");
	}
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_enveloped) {
		CMS_ContentInfo_free(cms);
		return err_set(err, EPROTO, "CiphertextForRecipient: not CMS EnvelopedData");
	}
	BIO *bio = BIO_new(BIO_s_mem());
	/* No certificate: every recipient is tried with the key; DEBUG_DECRYPT
	 * off, so a wrong key fails instead of yielding random bytes. */
	int ok = bio && CMS_decrypt(cms, key, NULL, NULL, bio, CMS_BINARY) == 1;
	CMS_ContentInfo_free(cms);
	if (!ok) {
		BIO_free(bio);
		return err_openssl(err, "CiphertextForRecipient: CMS decrypt");
	}
	char *data;
	long n = BIO_get_mem_data(bio, &data);
	buf_append(out, data, (size_t)n);
	OPENSSL_cleanse(data, (size_t)n);
	BIO_free(bio);
	return 0;
}
