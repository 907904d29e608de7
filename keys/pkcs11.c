/* pkcs11: a private key in a token, named by a PKCS#11 URI (RFC 7512) and loaded through
 * OpenSSL 3's store API from the "pkcs11" provider (Debian's pkcs11-provider): the key never
 * leaves the token, OpenSSL hands the signing to it. The PIN (?pin-value=, ?pin-source=file:PATH
 * or ENCLAVER_PKCS11_PIN) is taken out of the URI here and given to the provider only through
 * the passphrase callback, so no OpenSSL message or ours can carry it. */
#include <errno.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/store.h>
#include <openssl/ui.h>

#include "keys/internal.h"
#include "common/cose.h"

#define MAX_PIN 256

struct pin {
	char *value; /* NULL: none given */
	bool asked;
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 7512 values are percent-encoded. */
static int percent_decode(const char *s, size_t len, char **out, struct err **err)
{
	char *o = xmalloc(len + 1), *q = o;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%') {
			*q++ = s[i];
			continue;
		}
		int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
		int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
		if (hi < 0 || lo < 0) {
			OPENSSL_cleanse(o, len + 1);
			free(o);
			return err_set(err, EINVAL, "a bad %%-escape in a PIN attribute");
		}
		*q++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*q = '\0';
	*out = o;
	return 0;
}

static void pin_clear(struct pin *p)
{
	if (p->value) {
		OPENSSL_cleanse(p->value, strlen(p->value));
		free(p->value);
		p->value = NULL;
	}
}

static int pin_from_file(const char *path, struct pin *p, struct err **err)
{
	char *data = NULL;
	size_t len = 0;
	if (io_read_file(path, MAX_PIN, &data, &len, err) < 0)
		return err_wrap(err, "pin-source");
	/* The first line, as the provider reads it. */
	size_t n = strcspn(data, "\r\n");
	p->value = xstrndup(data, n);
	OPENSSL_cleanse(data, len);
	free(data);
	return 0;
}

/* Splits the URI into the one OpenSSL gets (no pin-value, no pin-source) and the PIN. */
static int split_uri(const char *uri, char **clean, struct pin *pin, struct err **err)
{
	const char *q = strchr(uri, '?');
	struct buf out = {0};
	buf_append(&out, uri, q ? (size_t)(q - uri) : strlen(uri));
	_cleanup_free_ char *source = NULL;
	bool first = true;
	while (q != NULL) {
		const char *a = q + 1;
		q = strchr(a, '&');
		size_t len = q ? (size_t)(q - a) : strlen(a);
		if (len > 10 && memcmp(a, "pin-value=", 10) == 0) {
			pin_clear(pin);
			if (percent_decode(a + 10, len - 10, &pin->value, err) < 0)
				goto fail;
		} else if (len > 11 && memcmp(a, "pin-source=", 11) == 0) {
			free(source);
			if (percent_decode(a + 11, len - 11, &source, err) < 0)
				goto fail;
		} else if (len > 0) {
			buf_putc(&out, first ? '?' : '&');
			buf_append(&out, a, len);
			first = false;
		}
	}
	if (source != NULL && pin->value == NULL) {
		const char *path = str_has_prefix(source, "file:") ? source + 5 : source;
		if (path[0] != '/') {
			err_set(err, EINVAL, "pin-source \"%s\": expected file:/ABSOLUTE/PATH", source);
			goto fail;
		}
		if (pin_from_file(path, pin, err) < 0)
			goto fail;
	}
	const char *env = getenv("ENCLAVER_PKCS11_PIN");
	if (pin->value == NULL && env != NULL && *env != '\0')
		pin->value = xstrdup(env);
	*clean = xstrdup(buf_str(&out));
	buf_free(&out);
	return 0;
fail:
	buf_free(&out);
	pin_clear(pin);
	return -1;
}

/* OpenSSL's pem_password_cb shape: the token asks for its PIN through it. */
static int pin_callback(char *buf, int size, int rwflag, void *u)
{
	(void)rwflag;
	struct pin *p = u;
	p->asked = true;
	if (p->value == NULL)
		return -1;
	size_t n = strlen(p->value);
	if (n > (size_t)size)
		return -1;
	memcpy(buf, p->value, n);
	return (int)n;
}

int keys_pkcs11_open(const char *uri, struct sign_key *k, struct err **err)
{
	struct pin pin = {0};
	_cleanup_free_ char *clean = NULL;
	if (split_uri(uri, &clean, &pin, err) < 0) {
		k->name = xstrdup("pkcs11:... (PIN attribute not shown)");
		return -1;
	}
	k->name = xstrdup(clean);
	/* Loaded by the OpenSSL configuration (OPENSSL_CONF), or here with the provider's own
	 * defaults (the module from PKCS11_PROVIDER_MODULE). */
	if (!OSSL_PROVIDER_available(NULL, "pkcs11")) {
		k->prov = OSSL_PROVIDER_try_load(NULL, "pkcs11", 1);
		if (k->prov == NULL) {
			pin_clear(&pin);
			return err_openssl(err, "the OpenSSL pkcs11 provider (Debian package pkcs11-provider) did not load");
		}
	}
	UI_METHOD *ui = UI_UTIL_wrap_read_pem_callback(pin_callback, 0);
	OSSL_STORE_CTX *store = ui ? OSSL_STORE_open(clean, ui, &pin, NULL, NULL) : NULL;
	int r = -1;
	if (store == NULL) {
		err_openssl(err, "no PKCS#11 token answers this URI");
		goto done;
	}
	OSSL_STORE_expect(store, OSSL_STORE_INFO_PKEY);
	while (k->pkey == NULL && !OSSL_STORE_eof(store)) {
		OSSL_STORE_INFO *info = OSSL_STORE_load(store);
		if (info == NULL) {
			if (OSSL_STORE_error(store))
				break;
			continue;
		}
		if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
			k->pkey = OSSL_STORE_INFO_get1_PKEY(info);
		OSSL_STORE_INFO_free(info);
	}
	OSSL_STORE_close(store);
	if (k->pkey != NULL) {
		ERR_clear_error();
		r = 0;
	} else if (pin.asked && pin.value == NULL) {
		ERR_clear_error();
		err_set(err, EACCES,
			"the token asks for a PIN: give it as ?pin-value=, ?pin-source=file:PATH or ENCLAVER_PKCS11_PIN");
	} else if (pin.asked) {
		err_openssl(err, "the token refused the PIN, or holds no such private key");
	} else {
		err_openssl(err, "the URI names no private key");
	}
done:
	UI_destroy_method(ui);
	pin_clear(&pin);
	return r;
}
