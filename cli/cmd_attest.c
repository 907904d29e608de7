/* cmd_attest: `enclaver verify-attestation` (check an attestation document
 * from outside the enclave) and `enclaver trust` (measurements plus the KMS
 * key-policy condition that releases a key only to this EIF or release image). */
#include <getopt.h>
#include <string.h>


#include <stdlib.h>
#include <sys/stat.h>

#include "attest/attest.h"
#include "builder/builder.h"
#include "builder/statement.h"
#include "cli/cli.h"
#include "cli/oci_opts.h"
#include "eif/eif.h"
#include "keys/dsse.h"
#include "oci/oci.h"

#define MAX_DOC_SIZE (64u * 1024)

/* Raw CBOR (starts with an array or the COSE tag) or base64 of it. */
static int load_document(const char *path, uint8_t **out, size_t *out_len, struct err **err)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	if (io_read_file(strcmp(path, "-") == 0 ? "/dev/stdin" : path, MAX_DOC_SIZE, &data, &len, err) < 0)
		return -1;
	if (len > 0 && ((uint8_t)data[0] == 0x84 || (uint8_t)data[0] == 0xd2)) {
		*out = (uint8_t *)steal_pointer(&data);
		*out_len = len;
		return 0;
	}
	/* base64: drop whitespace, then decode strictly. */
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		if (!strchr(" \t\r\n", data[i]))
			data[n++] = data[i];
	if (n == 0 || n % 4 != 0)
		return err_set(err, EINVAL, "%s: neither a CBOR attestation document nor base64 of one", path);
	if (base64_decode(data, n, out, out_len) < 0)
		return err_set(err, EINVAL, "%s: not valid base64", path);
	return 0;
}

static int parse_hex_arg(const char *opt, const char *hex, uint8_t **out, size_t *len)
{
	size_t n = strlen(hex);
	if (n == 0 || n % 2 != 0 || n > 1024)
		return -1;
	*out = xmalloc(n / 2);
	*len = n / 2;
	if (hex_decode(hex, *out, n / 2) < 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	(void)opt;
	return 0;
}

/* An expected PCR (48 bytes) unless one was given by hand. */
static void expect_pcr(struct attest_expect *expect, uint8_t **owned, int index, const uint8_t pcr[48])
{
	if (expect->pcr[index])
		return;
	owned[index] = xmalloc(48);
	memcpy(owned[index], pcr, 48);
	expect->pcr[index] = owned[index];
	expect->pcr_len[index] = 48;
}

/* --image IMAGE --key PUB: the PCRs of the image's statement that verifies with PUB
 * (builder/statement.h); *about gets what the report says of it. */
static int expect_from_image(const char *image, const char *key_path, const struct oci_opts *o,
                             struct attest_expect *expect, uint8_t **owned, json_t **about, struct err **err)
{
	EVP_PKEY *pub = NULL;
	if (keys_public_key_load(key_path, &pub, err) < 0)
		return err_wrap(err, "--key");
	struct bld_statement st;
	int r = bld_image_statement(image, NULL, o, pub, &st, err);
	EVP_PKEY_free(pub);
	if (r < 0)
		return err_wrap(err, "--image");
	const struct eif_measurements *m = &st.measurements;
	expect_pcr(expect, owned, 0, m->pcr0);
	expect_pcr(expect, owned, 1, m->pcr1);
	expect_pcr(expect, owned, 2, m->pcr2);
	if (m->has_pcr8)
		expect_pcr(expect, owned, 8, m->pcr8);
	*about = json_pack("{s:s, s:s, s:s, s:b}", "Image", image, "Subject", st.subject_digest, "EIF", st.eif_sha384,
	                   "PCR8", m->has_pcr8);
	bld_statement_free(&st);
	return 0;
}

int cmd_verify_attestation(int argc, char **argv)
{
	static const struct option opts[] = {
		{"pcr0", required_argument, NULL, 0x100}, {"pcr1", required_argument, NULL, 0x101},
		{"pcr2", required_argument, NULL, 0x102}, {"pcr3", required_argument, NULL, 0x103},
		{"pcr4", required_argument, NULL, 0x104}, {"pcr8", required_argument, NULL, 0x108},
		{"pcr", required_argument, NULL, 'p'},    {"nonce", required_argument, NULL, 'n'},
		{"root", required_argument, NULL, 'r'},   {"at-time", required_argument, NULL, 't'},
		{"insecure-skip-signature", no_argument, NULL, 'S'},
		{"pcrs-from", required_argument, NULL, 'F'},
		{"image", required_argument, NULL, 'I'},  {"key", required_argument, NULL, 'K'},
		CLI_OCI_LONG_OPTIONS,
		{"help", no_argument, NULL, 'h'},         {0},
	};
	struct attest_expect expect = {0};
	uint8_t *owned[ATTEST_MAX_PCRS + 1] = {0};
	int c, rc = EXIT_USAGE;
	const char *pcrs_from = NULL, *image = NULL, *key_path = NULL;
	struct oci_opts o = {0};
	_cleanup_json_ json_t *about = NULL;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		int index = -1;
		const char *hex = optarg;
		if (c >= 0x100 && c < 0x100 + ATTEST_MAX_PCRS) {
			index = c - 0x100;
		} else if (c == 'p') {
			/* --pcr N=HEX for any register */
			char *eq = strchr(optarg, '=');
			char *end = NULL;
			long v = eq ? strtol(optarg, &end, 10) : -1;
			if (eq == NULL || end != eq || v < 0 || v >= ATTEST_MAX_PCRS) {
				rc = cli_usage_error("verify-attestation", "--pcr %s: expected N=HEX with N from 0 to 31", optarg);
				goto out;
			}
			index = (int)v;
			hex = eq + 1;
		}
		if (index >= 0) {
			free(owned[index]);
			owned[index] = NULL;
			if (parse_hex_arg("--pcr", hex, &owned[index], &expect.pcr_len[index]) < 0) {
				rc = cli_usage_error("verify-attestation", "PCR%d: '%s' is not hex", index, hex);
				goto out;
			}
			expect.pcr[index] = owned[index];
			continue;
		}
		switch (c) {
		case 'n':
			free(owned[ATTEST_MAX_PCRS]);
			owned[ATTEST_MAX_PCRS] = NULL;
			if (parse_hex_arg("--nonce", optarg, &owned[ATTEST_MAX_PCRS], &expect.nonce_len) < 0) {
				rc = cli_usage_error("verify-attestation", "--nonce '%s' is not hex", optarg);
				goto out;
			}
			expect.nonce = owned[ATTEST_MAX_PCRS];
			break;
		case 'F': pcrs_from = optarg; break;
		case 'I': image = optarg; break;
		case 'K': key_path = optarg; break;
		case 'r': expect.root_pem_path = optarg; break;
		case 'S': expect.skip_signature = true; break;
		case 't': {
			char *end = NULL;
			long long t = strtoll(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || t <= 0) {
				rc = cli_usage_error("verify-attestation", "--at-time %s: seconds since 1970", optarg);
				goto out;
			}
			expect.at_time = t;
			break;
		}
		case 'h':
			puts("Usage: enclaver verify-attestation DOC [--pcrs-from FILE] [--pcr0 HEX] [--pcr1 HEX]\n"
			     "                                   [--pcr2 HEX] [--pcr8 HEX] [--pcr N=HEX]... [--nonce HEX]\n"
			     "                                   [--root CERT.pem]\n"
			     "                                   [--at-time SECONDS] [--insecure-skip-signature]\n\n"
			     "Verifies a Nitro Enclaves attestation document (raw CBOR or base64; '-' reads stdin):\n"
			     "its structure, the certificate chain to the AWS Nitro root (or --root) at the\n"
			     "document's time (or --at-time), the ES384 signature, and the expected PCRs and\n"
			     "nonce. Prints the verdict and the document as JSON; exits 0 when valid, 1 if not.\n\n"
			     "--pcrs-from FILE expects the PCRs of `enclaver build`'s JSON output (or describe-eif's,\n"
			     "or a bare {\"PCR0\": HEX, ...} object), as `enclaver run --verify-before-run` reads it;\n"
			     "a PCR also given with --pcrN/--pcr N=HEX takes that value instead.\n\n"
			     "--image IMAGE --key PUB expects the PCRs of the release image's signed statement instead\n"
			     "(the in-toto statement `enclaver build --push --sign-key` attaches, sha256-<hex>.att):\n"
			     "it must verify with the public key PUB (PEM) and name IMAGE's digest; PCR8 too when\n"
			     "the EIF is signed. Image options (--tls-verify, --creds, --cert-dir...) apply.\n\n"
			     "--insecure-skip-signature checks only the structure, PCRs and nonce: for documents\n"
			     "that carry no signature, such as those of the emulator's NSM (QEMU). Such a\n"
			     "verdict proves nothing about who made the document (\"Valid\" is null).");
			rc = EXIT_OK;
			goto out;
		default: {
			int r = cli_oci_option("verify-attestation", c, optarg, &o);
			if (r == 1)
				break;
			rc = r == 0 ? cli_usage_error("verify-attestation", "unknown option") : r;
			goto out;
		}
		}
	}
	if (!image != !key_path) {
		rc = cli_usage_error("verify-attestation", "--image IMAGE and --key PUB go together");
		goto out;
	}
	if (image && pcrs_from) {
		rc = cli_usage_error("verify-attestation", "--image and --pcrs-from both name the PCRs: give one");
		goto out;
	}
	if ((rc = cli_oci_options_check("verify-attestation", &o, true)) != 0)
		goto out;
	rc = EXIT_USAGE;
	if (optind != argc - 1) {
		rc = cli_usage_error("verify-attestation", "expected one attestation document");
		goto out;
	}
	{
		_cleanup_err_ struct err *err = NULL;
		if (pcrs_from) {
			/* The build's report (or describe-eif's JSON): its PCRs, unless given one by one. */
			struct eif_expected want;
			const int *index = eif_expected_index;
			if (eif_expected_load(pcrs_from, "--pcrs-from", &want, &err) < 0) {
				rc = cli_fail(&err);
				goto out;
			}
			for (int i = 0; i < EIF_EXPECTED_PCRS; i++) {
				if (want.has[i])
					expect_pcr(&expect, owned, index[i], want.pcr[i]);
			}
		}
		if (image && expect_from_image(image, key_path, &o, &expect, owned, &about, &err) < 0) {
			rc = cli_fail(&err);
			goto out;
		}
		_cleanup_free_ uint8_t *doc = NULL;
		size_t len = 0;
		struct attest_verdict v;
		if (load_document(argv[optind], &doc, &len, &err) < 0 || attest_verify(doc, len, &expect, &v, &err) < 0) {
			rc = cli_fail(&err);
			goto out;
		}
		_cleanup_json_ json_t *out = attest_verdict_json(&v);
		if (about)
			json_object_set(out, "Statement", about);
		if (cli_print_json(out, &err) < 0) {
			attest_verdict_free(&v);
			rc = cli_fail(&err);
			goto out;
		}
		if (v.skipped)
			fputs("enclaver: warning: --insecure-skip-signature: the certificate chain and the signature were NOT "
			      "checked; anyone could have made this document (only its structure, PCRs and nonce were "
			      "checked)\n",
			      stderr);
		if (!v.valid)
			fprintf(stderr, "enclaver: error: attestation document is not valid: %s\n", v.problem);
		rc = v.valid ? EXIT_OK : EXIT_FAIL;
		attest_verdict_free(&v);
	}
out:
	for (size_t i = 0; i <= ATTEST_MAX_PCRS; i++)
		free(owned[i]);
	return rc;
}

static int trust_eif(const char *name, const char *path, bool want1, bool want2, bool want8);

/* The release image's EIF, copied out to a private temporary folder. */
static int trust_fetch_eif(const char *ref, const struct oci_opts *o, char **dir_out, char **eif_out,
                           struct err **err)
{
	_cleanup_free_ char *dir = NULL;
	if (io_tmpdir_create(NULL, "enclaver-trust", &dir, err) < 0)
		return -1;
	_cleanup_free_ char *eif = xasprintf("%s/application.eif", dir);
	struct bld_image_file f = {.path = BLD_RELEASE_EIF_PATH, .out = eif};
	if (bld_image_files_extract(ref, o, NULL, &f, 1, dir, NULL, err) < 0) {
		io_remove_tree(dir);
		return -1;
	}
	*dir_out = steal_pointer(&dir);
	*eif_out = steal_pointer(&eif);
	return 0;
}

int cmd_trust(int argc, char **argv)
{
	static const struct option opts[] = {
		{"pcr1", no_argument, NULL, '1'},
		{"pcr2", no_argument, NULL, '2'},
		{"pcr8", no_argument, NULL, '8'},
		{"all", no_argument, NULL, 'a'},
		CLI_OCI_LONG_OPTIONS,
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool want1 = false, want2 = false, want8 = false;
	struct oci_opts o = {0};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case '1': want1 = true; break;
		case '2': want2 = true; break;
		case '8': want8 = true; break;
		case 'a': want1 = want2 = want8 = true; break;
		case 'h':
			puts("Usage: enclaver trust EIF|IMAGE [--pcr1] [--pcr2] [--pcr8] [--all] [image options]\n\n"
			     "Prints the measurements of an EIF file, or of the EIF inside a release image\n"
			     "(/enclave/application.eif; any reference: registry, oci:DIR[:TAG], oci-archive:,\n"
			     "docker-archive:), and a KMS key-policy condition that releases a key only to\n"
			     "enclaves running it (PCR0; add PCR1/PCR2/PCR8 as asked; PCR8 only when signed).\n\n"
			     "Image options:\n" CLI_OCI_USAGE);
			return EXIT_OK;
		default: {
			int r = cli_oci_option("trust", c, optarg, &o);
			if (r == 1)
				break;
			return r == 0 ? cli_usage_error("trust", "unknown option") : r;
		}
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("trust", "expected one EIF file or release image");
	int orc = cli_oci_options_check("trust", &o, true);
	if (orc != 0)
		return orc;
	const char *arg = argv[optind];
	/* An existing file is an EIF; anything else is an image reference. */
	struct stat st;
	_cleanup_free_ char *tmp_dir = NULL, *tmp_eif = NULL;
	const char *eif_path = arg;
	if (stat(arg, &st) != 0 || !S_ISREG(st.st_mode)) {
		_cleanup_err_ struct err *ferr = NULL;
		if (trust_fetch_eif(arg, &o, &tmp_dir, &tmp_eif, &ferr) < 0)
			return cli_fail(&ferr);
		eif_path = tmp_eif;
	}
	int rc = trust_eif(arg, eif_path, want1, want2, want8);
	if (tmp_dir)
		io_remove_tree(tmp_dir);
	return rc;
}

static int trust_eif(const char *name, const char *path, bool want1, bool want2, bool want8)
{
	_cleanup_err_ struct err *err = NULL;
	struct eif_image *img = NULL;
	if (eif_image_read(path, &img, &err) < 0)
		return cli_fail(&err);
	if (img->crc_stored != img->crc_computed || (img->is_signed && !img->signature_ok)) {
		err_set(&err, EINVAL, "%s: %s: refusing to derive a policy from a damaged image", name,
			img->crc_stored != img->crc_computed ? "CRC mismatch" : "signature check failed");
		eif_image_free(img);
		return cli_fail(&err);
	}
	if (want8 && !img->is_signed) {
		err_set(&err, EINVAL, "%s: --pcr8 asked for, but the image is not signed", name);
		eif_image_free(img);
		return cli_fail(&err);
	}
	const struct eif_measurements *m = &img->measurements;
	char hex[97];
	json_t *cond = json_object();
	const struct {
		bool want;
		const char *key;
		const uint8_t *pcr;
	} rows[] = {
		{true, "kms:RecipientAttestation:PCR0", m->pcr0},
		{want1, "kms:RecipientAttestation:PCR1", m->pcr1},
		{want2, "kms:RecipientAttestation:PCR2", m->pcr2},
		{want8, "kms:RecipientAttestation:PCR8", m->pcr8},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (!rows[i].want)
			continue;
		hex_encode(rows[i].pcr, 48, hex);
		json_object_set_new(cond, rows[i].key, json_string(hex));
	}
	_cleanup_json_ json_t *doc = json_object();
	json_object_set_new(doc, "Measurements", eif_measurements_json(m));
	json_t *policy = json_object();
	json_object_set_new(policy, "StringEqualsIgnoreCase", cond);
	json_object_set_new(doc, "KeyPolicyCondition", policy);
	eif_image_free(img);
	if (cli_print_json(doc, &err) < 0)
		return cli_fail(&err);
	return EXIT_OK;
}
