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
	int asked; /* times the token asked for it */
};

/* RFC 7512 values are percent-encoded. */
static int percent_decode(const char *s, size_t len, char **out, struct err **err)
{
	char *o = xmalloc(len + 1), *q = o;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%') {
			*q++ = s[i];
			continue;
		}
		int hi = i + 2 < len ? hex_digit_value(s[i + 1]) : -1;
		int lo = i + 2 < len ? hex_digit_value(s[i + 2]) : -1;
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

/* The UI the token asks for its PIN through: answers from struct pin, never prompts (the
 * default UI would write to the terminal and read from it). */
static int pin_reader(UI *ui, UI_STRING *uis)
{
	struct pin *p = UI_get0_user_data(ui);
	enum UI_string_types t = UI_get_string_type(uis);
	if (t != UIT_PROMPT && t != UIT_VERIFY)
		return 1;
	p->asked++;
	if (p->value == NULL)
		return -1;
	return UI_set_result(ui, uis, p->value) == 0 ? 1 : -1;
}

static UI_METHOD *pin_ui(void)
{
	UI_METHOD *m = UI_create_method("enclaver PKCS#11 PIN");
	if (m && UI_method_set_reader(m, pin_reader) != 0) {
		UI_destroy_method(m);
		m = NULL;
	}
	return m;
}

/* err_openssl when OpenSSL said why, else just what. */
static int err_token(struct err **err, int code, const char *what)
{
	if (ERR_peek_error() != 0)
		return err_openssl(err, what);
	return err_set(err, code, "%s", what);
}

/* The first object of type expect the URI names, or *out NULL when none. */
static int load_first(OSSL_LIB_CTX *libctx, const char *uri, UI_METHOD *ui, struct pin *pin, int expect,
		      EVP_PKEY **out, struct err **err)
{
	*out = NULL;
	OSSL_STORE_CTX *store = OSSL_STORE_open_ex(uri, libctx, NULL, ui, pin, NULL, NULL, NULL);
	if (store == NULL)
		return err_token(err, ENOENT, "no PKCS#11 token answers this URI");
	OSSL_STORE_expect(store, expect);
	while (*out == NULL && !OSSL_STORE_eof(store)) {
		OSSL_STORE_INFO *info = OSSL_STORE_load(store);
		if (info == NULL) {
			if (OSSL_STORE_error(store))
				break;
			continue;
		}
		if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
			*out = OSSL_STORE_INFO_get1_PKEY(info);
		else if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PUBKEY)
			*out = OSSL_STORE_INFO_get1_PUBKEY(info);
		OSSL_STORE_INFO_free(info);
	}
	OSSL_STORE_close(store);
	return 0;
}

/* The URI asking for the public key of the same object: type=public instead of type=private. */
static void public_uri(const char *uri, struct buf *pub)
{
	const char *type = strstr(uri, "type=private");
	if (type != NULL) {
		buf_append(pub, uri, (size_t)(type - uri));
		buf_puts(pub, "type=public");
		buf_puts(pub, type + 12);
	} else {
		size_t path_len = strcspn(uri, "?");
		buf_append(pub, uri, path_len);
		buf_puts(pub, ";type=public");
		buf_puts(pub, uri + path_len);
	}
}

/* Whether the URI, asked for a public key instead, names one (no login needed). */
static bool public_half_exists(OSSL_LIB_CTX *libctx, const char *uri, UI_METHOD *ui)
{
	struct buf pub = {0};
	public_uri(uri, &pub);
	struct pin none = {0};
	EVP_PKEY *key = NULL;
	struct err *ignored = NULL;
	load_first(libctx, buf_str(&pub), ui, &none, OSSL_STORE_INFO_PUBKEY, &key, &ignored);
	err_free(&ignored);
	buf_free(&pub);
	bool found = key != NULL;
	EVP_PKEY_free(key);
	ERR_clear_error();
	return found;
}

int keys_pkcs11_open(const char *uri, bool public_half, struct sign_key *k, struct err **err)
{
	struct pin pin = {0};
	_cleanup_free_ char *clean = NULL;
	if (split_uri(uri, &clean, &pin, err) < 0) {
		k->name = xstrdup("pkcs11:... (PIN attribute not shown)");
		return -1;
	}
	k->name = xstrdup(clean);
	/* The provider as the OpenSSL configuration (OPENSSL_CONF) sets it up, else with its own
	 * defaults (the module from PKCS11_PROVIDER_MODULE); in a library context of this key's. */
	int r = -1;
	UI_METHOD *ui = NULL;
	k->libctx = OSSL_LIB_CTX_new();
	const char *conf = getenv("OPENSSL_CONF");
	if (k->libctx == NULL || (conf && *conf && OSSL_LIB_CTX_load_config(k->libctx, conf) != 1)) {
		err_openssl(err, "OpenSSL configuration (OPENSSL_CONF)");
		goto done;
	}
	const char *names[2] = {"pkcs11", "default"};
	for (size_t i = 0; i < 2; i++) {
		if (OSSL_PROVIDER_available(k->libctx, names[i]))
			continue;
		k->prov[i] = OSSL_PROVIDER_load(k->libctx, names[i]);
		if (k->prov[i] == NULL) {
			err_openssl(err, i == 0 ? "the OpenSSL pkcs11 provider (Debian package pkcs11-provider) did not load"
						: "the OpenSSL default provider did not load");
			goto done;
		}
	}
	ui = pin_ui();
	if (ui == NULL) {
		err_openssl(err, "UI method");
		goto done;
	}
	if (public_half) {
		/* To check signatures: the public object, which needs no login. */
		_cleanup_buf_ struct buf pub = {0};
		public_uri(clean, &pub);
		struct pin none = {0};
		if (load_first(k->libctx, buf_str(&pub), ui, &none, OSSL_STORE_INFO_PUBKEY, &k->pkey, err) == 0) {
			if (k->pkey != NULL)
				r = 0;
			else
				err_token(err, ENOENT, "the URI names no public key in any token");
		}
		ERR_clear_error();
		goto done;
	}
	if (load_first(k->libctx, clean, ui, &pin, OSSL_STORE_INFO_PKEY, &k->pkey, err) < 0)
		goto done;
	if (k->pkey != NULL) {
		ERR_clear_error();
		r = 0;
	} else if (pin.asked && pin.value == NULL) {
		ERR_clear_error();
		err_set(err, EACCES,
			"the token asks for a PIN: give it as ?pin-value=, ?pin-source=file:PATH or ENCLAVER_PKCS11_PIN");
	} else if (pin.asked && public_half_exists(k->libctx, clean, ui)) {
		/* The public half is there without logging in: the login is what failed. */
		ERR_clear_error();
		err_set(err, EACCES, "the token refused the PIN (the key's public half is there, its private half "
				     "needs a login)");
	} else {
		err_token(err, ENOENT, "the URI names no private key in any token");
	}
done:
	UI_destroy_method(ui);
	pin_clear(&pin);
	return r;
}
