/* tls: TLS termination for ingress. OpenSSL runs over memory BIOs, so the relay keeps reading and
 * writing plain non-blocking sockets itself and TLS never blocks or touches a descriptor: raw
 * bytes in (tls_conn_feed), plaintext out (tls_conn_read), plaintext in (tls_conn_write), raw
 * bytes out (tls_conn_flush). The handshake happens inside the first reads. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "wire/tls.h"
#include "common/cose.h"

struct tls_server {
	SSL_CTX *ctx;
};

struct tls_conn {
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	bool eof_fed;
};

int tls_server_new(const char *cert_file, const char *key_file, struct tls_server **out, struct err **err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return err_openssl(err, "TLS context");
	/* TLS 1.2 and 1.3 only; OpenSSL's default ciphers. Clients that end the connection without
	 * close_notify (common) read as an ordinary end of stream. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	int r = -1;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
		err_openssl(err, cert_file);
	else if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1)
		err_openssl(err, key_file);
	else if (SSL_CTX_check_private_key(ctx) != 1)
		err_set(err, EINVAL, "%s does not match the certificate in %s", key_file, cert_file);
	else
		r = 0;
	if (r < 0) {
		SSL_CTX_free(ctx);
		return err_wrap(err, "ingress TLS");
	}
	*out = xcalloc(1, sizeof(**out));
	(*out)->ctx = ctx;
	return 0;
}

void tls_server_free(struct tls_server *s)
{
	if (!s)
		return;
	SSL_CTX_free(s->ctx);
	free(s);
}

struct tls_conn *tls_conn_new(struct tls_server *s)
{
	struct tls_conn *c = xcalloc(1, sizeof(*c));
	c->ssl = SSL_new(s->ctx);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (!c->ssl || !c->rbio || !c->wbio) {
		out_of_memory("TLS connection");
	}
	/* An empty read BIO means "more bytes may come", not end of stream. */
	BIO_set_mem_eof_return(c->rbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_accept_state(c->ssl);
	return c;
}

void tls_conn_free(struct tls_conn *c)
{
	if (!c)
		return;
	SSL_free(c->ssl);
	free(c);
}

void tls_conn_feed(struct tls_conn *c, const void *data, size_t n)
{
	if (n > 0 && BIO_write(c->rbio, data, (int)n) != (int)n) {
		out_of_memory("TLS input");
	}
}

void tls_conn_feed_eof(struct tls_conn *c)
{
	BIO_set_mem_eof_return(c->rbio, 0);
	c->eof_fed = true;
}

bool tls_conn_buffered(const struct tls_conn *c)
{
	return SSL_pending(c->ssl) > 0 || BIO_ctrl_pending(c->rbio) > 0;
}

bool tls_conn_established(const struct tls_conn *c)
{
	return SSL_is_init_finished(c->ssl);
}

ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t n, struct err **err)
{
	ERR_clear_error();
	int k = SSL_read(c->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
	if (k > 0)
		return k;
	switch (SSL_get_error(c->ssl, k)) {
	case SSL_ERROR_WANT_READ:
		/* More input needed; once the peer's stream ended nothing more will come. */
		return c->eof_fed ? TLS_EOF : TLS_WANT_INPUT;
	case SSL_ERROR_ZERO_RETURN:
		return TLS_EOF;
	case SSL_ERROR_SYSCALL:
		if (c->eof_fed)
			return TLS_EOF;
		/* fallthrough */
	default:
		err_openssl(err, SSL_is_init_finished(c->ssl) ? "TLS" : "TLS handshake");
		return TLS_FAILED;
	}
}

int tls_conn_write(struct tls_conn *c, const void *data, size_t n, struct err **err)
{
	/* A memory BIO takes everything: the whole buffer becomes records at once. */
	ERR_clear_error();
	size_t done = 0;
	while (done < n) {
		size_t chunk = n - done > INT32_MAX ? INT32_MAX : n - done;
		int k = SSL_write(c->ssl, (const char *)data + done, (int)chunk);
		if (k <= 0)
			return err_openssl(err, "TLS write");
		done += (size_t)k;
	}
	return 0;
}

void tls_conn_close_notify(struct tls_conn *c)
{
	ERR_clear_error();
	SSL_shutdown(c->ssl); /* queues close_notify in the write BIO; the peer's is not awaited */
}

size_t tls_conn_pending_out(const struct tls_conn *c)
{
	return BIO_ctrl_pending(c->wbio);
}

int tls_conn_flush(struct tls_conn *c, int fd)
{
	char *data;
	long len;
	while ((len = BIO_get_mem_data(c->wbio, &data)) > 0) {
		ssize_t n = send(fd, data, (size_t)len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 1 : -1;
		}
		/* Drop what was sent from the front of the BIO. */
		char sink[16384];
		for (ssize_t left = n; left > 0;) {
			int k = BIO_read(c->wbio, sink, left > (ssize_t)sizeof(sink) ? (int)sizeof(sink) : (int)left);
			if (k <= 0)
				return -1;
			left -= k;
		}
	}
	return 0;
}
