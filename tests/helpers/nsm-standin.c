/* nsm-standin: an NSM for odyn running as a host process, where /dev/nsm
 * cannot exist (odyn --nsm unix:PATH). Answers GetRandom, DescribeNSM,
 * DescribePCR and Attestation; documents are signed by a test PKI whose root
 * it writes to DIR/root.pem, so `enclaver verify-attestation --root` checks
 * them fully. The real NSM is exercised in the QEMU emulator (tests/e2e).
 * Usage: nsm-standin unix:PATH DIR */
#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "odyn/internal.h"
#include "common/cose.h"

static X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca, long serial)
{
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	X509_EXTENSION *bc =
	    X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(x, bc, -1);
	X509_EXTENSION_free(bc);
	X509_EXTENSION *ku = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage,
	                                         ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
	X509_add_ext(x, ku, -1);
	X509_EXTENSION_free(ku);
	X509_sign(x, issuer_key, EVP_sha384());
	return x;
}

static void put_der(struct buf *b, X509 *x)
{
	uint8_t *der = NULL;
	int n = i2d_X509(x, &der);
	cbor_put_bstr(b, der, (size_t)n);
	OPENSSL_free(der);
}

struct pki {
	EVP_PKEY *root_key, *leaf_key;
	X509 *root, *leaf;
};

/* PCR i holds 48 bytes of value i (PCR0-15), so tests know what to expect. */
static void pcr_value(unsigned i, uint8_t out[48])
{
	memset(out, (int)i, 48);
}

/* Reads an optional byte string field (bstr or null) of the Attestation request. */
static int opt_bytes(struct cbor_reader *r, const uint8_t **p, size_t *n)
{
	if (r->off < r->len && r->data[r->off] == 0xf6) {
		r->off++;
		*p = NULL;
		*n = 0;
		return 0;
	}
	return cbor_read_string(r, CBOR_BSTR, p, n, "field", NULL);
}

static void answer_error(struct buf *out, const char *code)
{
	cbor_put_head(out, CBOR_MAP, 1);
	cbor_put_tstr(out, "Error");
	cbor_put_tstr(out, code);
}

static void answer(const struct pki *k, const uint8_t *req, size_t len, struct buf *out)
{
	struct cbor_reader r = {.data = req, .len = len};
	enum cbor_major m;
	uint64_t n;
	const uint8_t *s;
	size_t sl;
	if (len > 0 && (req[0] >> 5) == CBOR_TSTR) {
		if (cbor_read_string(&r, CBOR_TSTR, &s, &sl, "request", NULL) < 0)
			return answer_error(out, "InvalidArgument");
		if (sl == 9 && memcmp(s, "GetRandom", 9) == 0) {
			uint8_t rnd[32];
			for (size_t i = 0; i < sizeof(rnd); i++)
				rnd[i] = (uint8_t)rand();
			cbor_put_head(out, CBOR_MAP, 1);
			cbor_put_tstr(out, "GetRandom");
			cbor_put_head(out, CBOR_MAP, 1);
			cbor_put_tstr(out, "random");
			cbor_put_bstr(out, rnd, sizeof(rnd));
			return;
		}
		if (sl == 11 && memcmp(s, "DescribeNSM", 11) == 0) {
			cbor_put_head(out, CBOR_MAP, 1);
			cbor_put_tstr(out, "DescribeNSM");
			cbor_put_head(out, CBOR_MAP, 7);
			cbor_put_tstr(out, "version_major");
			cbor_put_head(out, CBOR_UINT, 1);
			cbor_put_tstr(out, "version_minor");
			cbor_put_head(out, CBOR_UINT, 0);
			cbor_put_tstr(out, "version_patch");
			cbor_put_head(out, CBOR_UINT, 0);
			cbor_put_tstr(out, "module_id");
			cbor_put_tstr(out, "i-standin-enc0000000000000000");
			cbor_put_tstr(out, "max_pcrs");
			cbor_put_head(out, CBOR_UINT, 32);
			cbor_put_tstr(out, "locked_pcrs");
			cbor_put_head(out, CBOR_ARRAY, 16);
			for (unsigned i = 0; i < 16; i++)
				cbor_put_head(out, CBOR_UINT, i);
			cbor_put_tstr(out, "digest");
			cbor_put_tstr(out, "SHA384");
			return;
		}
		return answer_error(out, "InvalidOperation");
	}
	if (cbor_read_head(&r, &m, &n, NULL) < 0 || m != CBOR_MAP || n != 1 ||
	    cbor_read_string(&r, CBOR_TSTR, &s, &sl, "variant", NULL) < 0 ||
	    cbor_expect(&r, CBOR_MAP, &n, "fields", NULL) < 0)
		return answer_error(out, "InvalidArgument");
	if (sl == 11 && memcmp(s, "DescribePCR", 11) == 0) {
		uint64_t index;
		if (n != 1 || cbor_read_string(&r, CBOR_TSTR, &s, &sl, "index", NULL) < 0 ||
		    cbor_expect(&r, CBOR_UINT, &index, "index", NULL) < 0)
			return answer_error(out, "InvalidArgument");
		if (index >= 32)
			return answer_error(out, "InvalidIndex");
		uint8_t v[48];
		pcr_value((unsigned)index, v);
		cbor_put_head(out, CBOR_MAP, 1);
		cbor_put_tstr(out, "DescribePCR");
		cbor_put_head(out, CBOR_MAP, 2);
		cbor_put_tstr(out, "lock");
		cbor_put_head(out, CBOR_SIMPLE, index < 16 ? CBOR_SIMPLE_TRUE : CBOR_SIMPLE_FALSE);
		cbor_put_tstr(out, "data");
		cbor_put_bstr(out, v, 48);
		return;
	}
	if (!(sl == 11 && memcmp(s, "Attestation", 11) == 0) || n != 3)
		return answer_error(out, "InvalidOperation");
	const uint8_t *ud = NULL, *nonce = NULL, *pk = NULL;
	size_t ud_len = 0, nonce_len = 0, pk_len = 0;
	for (int i = 0; i < 3; i++) {
		if (cbor_read_string(&r, CBOR_TSTR, &s, &sl, "name", NULL) < 0)
			return answer_error(out, "InvalidArgument");
		int rc = sl == 9 && !memcmp(s, "user_data", 9)      ? opt_bytes(&r, &ud, &ud_len)
		         : sl == 5 && !memcmp(s, "nonce", 5)        ? opt_bytes(&r, &nonce, &nonce_len)
		         : sl == 10 && !memcmp(s, "public_key", 10) ? opt_bytes(&r, &pk, &pk_len)
		                                                    : -1;
		if (rc < 0)
			return answer_error(out, "InvalidArgument");
	}
	if (ud_len > 512 || nonce_len > 512 || pk_len > 1024)
		return answer_error(out, "InputTooLarge");
	_cleanup_buf_ struct buf p = {0};
	cbor_put_head(&p, CBOR_MAP, 9);
	cbor_put_tstr(&p, "module_id");
	cbor_put_tstr(&p, "i-standin-enc0000000000000000");
	cbor_put_tstr(&p, "digest");
	cbor_put_tstr(&p, "SHA384");
	cbor_put_tstr(&p, "timestamp");
	cbor_put_head(&p, CBOR_UINT, (uint64_t)time(NULL) * 1000);
	cbor_put_tstr(&p, "pcrs");
	cbor_put_head(&p, CBOR_MAP, 16);
	for (unsigned i = 0; i < 16; i++) {
		uint8_t v[48];
		pcr_value(i, v);
		cbor_put_head(&p, CBOR_UINT, i);
		cbor_put_bstr(&p, v, 48);
	}
	cbor_put_tstr(&p, "certificate");
	put_der(&p, k->leaf);
	cbor_put_tstr(&p, "cabundle");
	cbor_put_head(&p, CBOR_ARRAY, 1);
	put_der(&p, k->root);
	const char *names[] = {"public_key", "user_data", "nonce"};
	const uint8_t *vals[] = {pk, ud, nonce};
	size_t lens[] = {pk_len, ud_len, nonce_len};
	for (int i = 0; i < 3; i++) {
		cbor_put_tstr(&p, names[i]);
		if (vals[i])
			cbor_put_bstr(&p, vals[i], lens[i]);
		else
			cbor_put_head(&p, CBOR_SIMPLE, CBOR_SIMPLE_NULL);
	}
	_cleanup_buf_ struct buf doc = {0};
	if (cose_sign1_sign(k->leaf_key, (uint8_t *)p.data, p.len, &doc, NULL) < 0)
		return answer_error(out, "InternalError");
	cbor_put_head(out, CBOR_MAP, 1);
	cbor_put_tstr(out, "Attestation");
	cbor_put_head(out, CBOR_MAP, 1);
	cbor_put_tstr(out, "document");
	cbor_put_bstr(out, doc.data, doc.len);
}

/* One client: framed requests until it closes. */
static void serve(const struct pki *k, int fd)
{
	for (;;) {
		uint8_t h[4];
		if (io_read_full(fd, h, 4, NULL) != 4)
			return;
		size_t len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
		if (len > NSM_REQUEST_MAX)
			return;
		_cleanup_free_ uint8_t *req = xmalloc(len ? len : 1);
		if (io_read_full(fd, req, len, NULL) != (ssize_t)len)
			return;
		_cleanup_buf_ struct buf out = {0};
		answer(k, req, len, &out);
		uint8_t oh[4] = {(uint8_t)(out.len >> 24), (uint8_t)(out.len >> 16), (uint8_t)(out.len >> 8),
		                 (uint8_t)out.len};
		if (io_write_full(fd, oh, 4, NULL) < 0 || io_write_full(fd, out.data, out.len, NULL) < 0)
			return;
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fputs("usage: nsm-standin unix:PATH DIR\n", stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	struct pki k;
	k.root_key = EVP_EC_gen("secp384r1");
	k.leaf_key = EVP_EC_gen("secp384r1");
	k.root = new_cert(k.root_key, "nsm-standin-root", NULL, k.root_key, true, 1);
	k.leaf = new_cert(k.leaf_key, "nsm-standin-leaf", k.root, k.root_key, false, 2);
	_cleanup_free_ char *root_path = xasprintf("%s/root.pem", argv[2]);
	FILE *f = fopen(root_path, "w");
	if (f == NULL || !PEM_write_X509(f, k.root) || fclose(f) != 0) {
		perror(root_path);
		return 1;
	}
	struct transport_addr a;
	struct err *e = NULL;
	int lfd;
	if (transport_parse(argv[1], &a, &e) < 0 || (lfd = transport_listen(&a, 16, &e)) < 0) {
		fprintf(stderr, "nsm-standin: %s\n", e->msg);
		err_free(&e);
		return 1;
	}
	for (;;) {
		struct pollfd pfd = {.fd = lfd, .events = POLLIN};
		if (poll(&pfd, 1, -1) < 0)
			continue;
		int none = -1;
		int fd = transport_accept(lfd, &none, &e);
		if (fd < 0) {
			err_free(&e);
			continue;
		}
		/* The listener is non-blocking; each client is served blocking. */
		int fl = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
		serve(&k, fd);
		close(fd);
	}
}
