/* test_eif: the EIF writer against the golden vectors, and the reader
 * against every kind of malformed file it must refuse with an offset. */
#include <fcntl.h>
#include <sys/stat.h>

#include "eif/internal.h"
#include "keys/keys.h"
#include "tests/harness.h"
#include "common/cose.h"

#define GOLDEN_TIME "2024-01-01T00:00:00+00:00"

static const struct eif_identity golden_identity = {
	.image_name = "kernel.bin",
	.image_version = "1.0",
	.build_time = GOLDEN_TIME,
	.build_tool = "eif_build",
	.build_tool_version = "0.3.1",
	.os = "OS",
	.kernel_version = "kernel",
};

static char *read_all(const char *path, size_t *len)
{
	char *data = NULL;
	if (io_read_file(path, 64u << 20, &data, len, NULL) < 0)
		return NULL;
	return data;
}

static bool files_equal(const char *a, const char *b)
{
	size_t la, lb;
	_cleanup_free_ char *da = read_all(a, &la), *db = read_all(b, &lb);
	return da && db && la == lb && memcmp(da, db, la) == 0;
}

static void write_all(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	io_write_full(fd, data, len, NULL);
	close(fd);
}

static int build_case1(const char *out, const struct eif_signer *signer, struct eif_measurements *m, struct err **err)
{
	_cleanup_free_ char *cmdline = NULL;
	size_t len;
	if (io_read_file(test_data("eif/cmdline.txt"), 4096, &cmdline, &len, err) < 0)
		return -1;
	char r1[256], r2[256];
	snprintf(r1, sizeof(r1), "%s", test_data("eif/ramdisk1.bin"));
	snprintf(r2, sizeof(r2), "%s", test_data("eif/ramdisk2.bin"));
	const char *ramdisks[] = {r1, r2};
	char kernel[256];
	snprintf(kernel, sizeof(kernel), "%s", test_data("eif/kernel.bin"));
	struct eif_build_spec spec = {.kernel_path = kernel, .cmdline = cmdline, .ramdisk_paths = ramdisks,
				      .n_ramdisks = 2, .identity = &golden_identity, .signer = signer};
	return eif_build(out, &spec, m, err);
}

static void hex_of(const uint8_t *p, size_t n, char *out)
{
	hex_encode(p, n, out);
}

TEST(writer_reproduces_golden_case1)
{
	_cleanup_free_ char *out = xasprintf("%s/case1.eif", test_tmpdir(t));
	struct eif_measurements m;
	struct err *e = NULL;
	REQUIRE(build_case1(out, NULL, &m, &e) == 0);
	CHECK(files_equal(out, test_data("eif/case1/case1.eif")));
	char h[129];
	hex_of(m.pcr0, 48, h);
	CHECK_STR_EQ(h, "bab6e924e4cdf70f57a29ad788092e1b79614ef820073e6a6d52c9244994fd948dd5eecb202986dfc8ee17c891e10e28");
	hex_of(m.pcr2, 48, h);
	CHECK_STR_EQ(h, "c8cb7411f0a41d0b85298451bb2929b4ea5243c7b8956164c21d9175213b332ebe62843ca11a8a5c2113e97882e67068");
	CHECK(!m.has_pcr8);
}

TEST(reader_recomputes_golden_measurements)
{
	struct eif_image *img = NULL;
	REQUIRE(eif_image_read(test_data("eif/case1/case1.eif"), &img, NULL) == 0);
	CHECK_INT_EQ(img->num_sections, 5);
	CHECK_INT_EQ(img->crc_stored, 0x08d1cb2f);
	CHECK_INT_EQ(img->crc_computed, 0x08d1cb2f);
	CHECK(!img->is_signed);
	char h[129];
	hex_of(img->measurements.pcr1, 48, h);
	CHECK_STR_EQ(h, "69395cda75ad3b00948c4b72712350f89009fdeeb541d44a79acf9326926356c7e1f813e665a04fd0fc382c4a739366c");
	CHECK_STR_EQ(json_string_value(json_object_get(img->metadata, "ImageName")), "kernel.bin");
	eif_image_free(img);
}

TEST(reader_verifies_golden_signed_case3)
{
	struct eif_image *img = NULL;
	REQUIRE(eif_image_read(test_data("eif/case3/case3.eif"), &img, NULL) == 0);
	CHECK(img->is_signed);
	CHECK(img->signature_ok);
	CHECK(img->measurements.has_pcr8);
	char h[129];
	hex_of(img->measurements.pcr8, 48, h);
	CHECK_STR_EQ(h, "4565d120c57d27c31760569d9091d9ef5b36cef981f169e51256512be7772033371cfb7ff9afaa39d24bca20c7cbfb3c");
	eif_image_free(img);
}

TEST(signed_build_verifies_and_varies_only_in_signature)
{
	struct keys_eif_signer ks = {0};
	struct err *e = NULL;
	REQUIRE(keys_eif_signer_open(test_data("eif/signing_cert.pem"), test_data("eif/signing_key.pem"), NULL, &ks, &e) ==
		0);
	_cleanup_free_ char *out = xasprintf("%s/signed.eif", test_tmpdir(t));
	struct eif_measurements m;
	REQUIRE(build_case1(out, ks.eif, &m, &e) == 0);
	keys_eif_signer_close(&ks);
	CHECK(m.has_pcr8);
	struct eif_image *img = NULL;
	REQUIRE(eif_image_read(out, &img, &e) == 0);
	CHECK(img->signature_ok);
	CHECK_INT_EQ(img->crc_stored, img->crc_computed);
	CHECK_INT_EQ(img->num_sections, 6);
	CHECK_INT_EQ(img->sections[5].type, EIF_SECTION_SIGNATURE);
	CHECK(memcmp(img->measurements.pcr8, m.pcr8, 48) == 0);
	eif_image_free(img);
	/* Everything before the signature section is the unsigned image's bytes,
	 * apart from the header (section count, table, CRC). */
	size_t a_len, b_len;
	_cleanup_free_ char *a = read_all(out, &a_len), *b = read_all(test_data("eif/case1/case1.eif"), &b_len);
	REQUIRE(a && b && a_len > b_len);
	CHECK(memcmp(a + EIF_HEADER_SIZE, b + EIF_HEADER_SIZE, b_len - EIF_HEADER_SIZE) == 0);
}

TEST(sign_in_place_then_resign)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *path = xasprintf("%s/x.eif", dir);
	size_t len;
	_cleanup_free_ char *orig = read_all(test_data("eif/case1/case1.eif"), &len);
	write_all(path, orig, len);
	struct keys_eif_signer ks = {0};
	REQUIRE(keys_eif_signer_open(test_data("eif/signing_cert.pem"), test_data("eif/signing_key.pem"), NULL, &ks,
				     NULL) == 0);
	struct eif_measurements m1, m2;
	REQUIRE(eif_sign_file(path, ks.eif, &m1, NULL) == 0);
	REQUIRE(eif_sign_file(path, ks.eif, &m2, NULL) == 0); /* replaces, does not add */
	keys_eif_signer_close(&ks);
	CHECK(memcmp(m1.pcr0, m2.pcr0, 48) == 0);
	struct eif_image *img = NULL;
	REQUIRE(eif_image_read(path, &img, NULL) == 0);
	CHECK_INT_EQ(img->num_sections, 6);
	CHECK(img->signature_ok);
	CHECK_INT_EQ(img->crc_stored, img->crc_computed);
	eif_image_free(img);
}

TEST(sign_refuses_damaged_image)
{
	_cleanup_free_ char *path = xasprintf("%s/x.eif", test_tmpdir(t));
	size_t len;
	_cleanup_free_ char *data = read_all(test_data("eif/case1/case1.eif"), &len);
	data[1000] ^= 1; /* inside the kernel */
	write_all(path, data, len);
	struct keys_eif_signer ks = {0};
	struct err *e = NULL;
	REQUIRE(keys_eif_signer_open(test_data("eif/signing_cert.pem"), test_data("eif/signing_key.pem"), NULL, &ks,
				     NULL) == 0);
	struct eif_measurements m;
	CHECK(eif_sign_file(path, ks.eif, &m, &e) < 0);
	keys_eif_signer_close(&ks);
	CHECK_ERR_CONTAINS(e, "CRC mismatch");
	err_free(&e);
	size_t len2;
	_cleanup_free_ char *after = read_all(path, &len2);
	CHECK(len2 == len && memcmp(after, data, len) == 0); /* untouched */
}

TEST(signer_rejects_mismatched_key)
{
	struct keys_eif_signer ks = {0};
	struct err *e = NULL;
	/* The certificate file as a key: not a private key at all. */
	CHECK(keys_eif_signer_open(test_data("eif/signing_cert.pem"), test_data("eif/signing_cert.pem"), NULL, &ks, &e) <
	      0);
	keys_eif_signer_close(&ks);
	CHECK_ERR_CONTAINS(e, "not a PEM private key");
	err_free(&e);
	CHECK(keys_eif_signer_open(test_data("eif/ramdisk1.bin"), test_data("eif/signing_key.pem"), NULL, &ks, &e) < 0);
	keys_eif_signer_close(&ks);
	CHECK_ERR_CONTAINS(e, "not a PEM certificate");
	err_free(&e);
}

TEST(build_failure_leaves_nothing_behind)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *out = xasprintf("%s/out.eif", dir);
	const char *ramdisks[] = {"/nonexistent/ramdisk"};
	struct eif_build_spec spec = {.kernel_path = test_data("eif/kernel.bin"), .cmdline = "x",
				      .ramdisk_paths = ramdisks, .n_ramdisks = 1, .identity = &golden_identity};
	struct eif_measurements m;
	struct err *e = NULL;
	CHECK(eif_build(out, &spec, &m, &e) < 0);
	CHECK_ERR_CONTAINS(e, "ramdisk 1: open /nonexistent/ramdisk: No such file");
	err_free(&e);
	/* Neither the output nor a temporary file. */
	_cleanup_free_ char *cmd = xasprintf("test -z \"$(ls -A %s)\"", dir);
	CHECK(system(cmd) == 0);
}

TEST(build_rejects_too_many_ramdisks)
{
	const char *ramdisks[30];
	for (int i = 0; i < 30; i++)
		ramdisks[i] = "x";
	struct eif_build_spec spec = {.kernel_path = "k", .cmdline = "", .ramdisk_paths = ramdisks, .n_ramdisks = 30,
				      .identity = &golden_identity};
	struct eif_measurements m;
	struct err *e = NULL;
	CHECK(eif_build("/nonexistent/out", &spec, &m, &e) < 0);
	CHECK_ERR_CONTAINS(e, "at most 32 sections");
	err_free(&e);
}

/* ---------------------------------------------------------------- malformed input */

/* Writes case1 with `mutate` applied and expects the reader to fail with
 * `needle` in the message. */
static void expect_reject(struct test_ctx *t, const char *needle, void (*mutate)(char *data, size_t *len))
{
	size_t len;
	_cleanup_free_ char *data = read_all(test_data("eif/case1/case1.eif"), &len);
	REQUIRE(data != NULL);
	data = xrealloc(data, len + 4096);
	mutate(data, &len);
	_cleanup_free_ char *path = xasprintf("%s/bad.eif", test_tmpdir(t));
	write_all(path, data, len);
	struct eif_image *img = NULL;
	struct err *e = NULL;
	if (eif_image_read(path, &img, &e) == 0) {
		test_fail(t, __FILE__, __LINE__, "accepted a file that should fail with \"%s\"", needle);
		eif_image_free(img);
		return;
	}
	CHECK_ERR_CONTAINS(e, needle);
	CHECK_ERR_CONTAINS(e, "bad.eif");
	err_free(&e);
}

static void truncate_header(char *d, size_t *len) { (void)d; *len = 100; }
static void truncate_body(char *d, size_t *len) { (void)d; *len -= 10; }
static void bad_magic(char *d, size_t *len) { (void)len; d[0] = 'X'; }
static void bad_version(char *d, size_t *len) { (void)len; put_be16((uint8_t *)d + 4, 9); }
static void too_many_sections(char *d, size_t *len) { (void)len; put_be16((uint8_t *)d + 26, 33); }
static void zero_sections(char *d, size_t *len) { (void)len; put_be16((uint8_t *)d + 26, 0); }
static void unknown_type(char *d, size_t *len) { (void)len; put_be16((uint8_t *)d + 300560, 9); }
static void type_zero(char *d, size_t *len) { (void)len; put_be16((uint8_t *)d + 300560, 0); }
/* Ramdisk 2's size grows past EOF, in the table and its own header. */
static void section_past_eof(char *d, size_t *len)
{
	(void)len;
	put_be64((uint8_t *)d + 305055 + 4, 1u << 30);
	put_be64((uint8_t *)d + 284 + 8 * 4, 1u << 30);
}
/* The table claims section 2 starts inside section 1. */
static void overlapping(char *d, size_t *len)
{
	(void)len;
	put_be64((uint8_t *)d + 28 + 8 * 2, 300600);
}
static void table_size_mismatch(char *d, size_t *len) { (void)len; put_be64((uint8_t *)d + 284 + 8 * 3, 4095); }
static void trailing_garbage(char *d, size_t *len)
{
	memset(d + *len, 0, 20);
	*len += 20;
}
static void ramdisk_first(char *d, size_t *len)
{
	(void)len;
	put_be16((uint8_t *)d + 548, EIF_SECTION_RAMDISK); /* the kernel section claims to be a ramdisk */
}
static void bad_metadata(char *d, size_t *len) { (void)len; d[300691 + 12] = '['; }

TEST(reader_rejects_truncated_header) { expect_reject(t, "truncated: 100 bytes, shorter than the 548-byte", truncate_header); }
TEST(reader_rejects_truncated_body) { expect_reject(t, "offset 305055: section 4 (ramdisk) of 5003 bytes runs past the end", truncate_body); }
TEST(reader_rejects_bad_magic) { expect_reject(t, "offset 0: bad magic", bad_magic); }
TEST(reader_rejects_bad_version) { expect_reject(t, "offset 4: EIF version 9", bad_version); }
TEST(reader_rejects_too_many_sections) { expect_reject(t, "offset 26: num_sections is 33", too_many_sections); }
TEST(reader_rejects_zero_sections) { expect_reject(t, "offset 26: num_sections is 0", zero_sections); }
TEST(reader_rejects_unknown_section_type) { expect_reject(t, "offset 300560: section 1 has unknown type 9", unknown_type); }
TEST(reader_rejects_invalid_section_type) { expect_reject(t, "unknown type 0", type_zero); }
TEST(reader_rejects_section_past_eof) { expect_reject(t, "runs past the end of the file (310070 bytes)", section_past_eof); }
TEST(reader_rejects_overlapping_sections) { expect_reject(t, "overlapping section 1", overlapping); }
TEST(reader_rejects_table_size_mismatch) { expect_reject(t, "offset 308: section 3 (ramdisk) is 4095 bytes in the table", table_size_mismatch); }
TEST(reader_rejects_trailing_bytes) { expect_reject(t, "20 bytes after the last section", trailing_garbage); }
TEST(reader_rejects_ramdisk_before_kernel) { expect_reject(t, "ramdisk before the kernel", ramdisk_first); }
TEST(reader_rejects_bad_metadata_json) { expect_reject(t, "offset 300716: metadata is not valid JSON (byte 13", bad_metadata); }

TEST(reader_reports_crc_mismatch_without_failing)
{
	size_t len;
	_cleanup_free_ char *data = read_all(test_data("eif/case1/case1.eif"), &len);
	data[2000] ^= 0x40;
	_cleanup_free_ char *path = xasprintf("%s/crc.eif", test_tmpdir(t));
	write_all(path, data, len);
	struct eif_image *img = NULL;
	REQUIRE(eif_image_read(path, &img, NULL) == 0);
	CHECK(img->crc_stored != img->crc_computed);
	eif_image_free(img);
}

/* Replaces case3's signature section payload with `payload`. */
static char *with_signature(const uint8_t *payload, size_t plen, size_t *out_len)
{
	size_t len;
	char *data = read_all(test_data("eif/case3/case3.eif"), &len);
	size_t sig_off = 310070;
	data = xrealloc(data, sig_off + 12 + plen);
	put_be64((uint8_t *)data + sig_off + 4, plen);
	put_be64((uint8_t *)data + 284 + 8 * 5, plen);
	memcpy(data + sig_off + 12, payload, plen);
	*out_len = sig_off + 12 + plen;
	return data;
}

TEST(reader_rejects_bad_signature_cbor)
{
	static const struct {
		const char *name;
		uint8_t bytes[16];
		size_t len;
		const char *needle;
	} cases[] = {
		{"empty", {0}, 0, "offset 310082: CBOR ends early"},
		{"not an array", {0xa0}, 1, "expected a CBOR array, found a map"},
		{"two entries", {0x82, 0xa0, 0xa0}, 3, "has 2 entries, expected 1"},
		{"indefinite", {0x81, 0xbf}, 2, "indefinite length"},
		{"huge array", {0x81, 0xa1, 0x69, 's', 'i', 'g', 'n', 'a', 't', 'u', 'r', 'e', 0x9b, 0xff, 0xff, 0xff}, 16,
		 "CBOR ends inside"},
		{"unknown key", {0x81, 0xa1, 0x61, 'x', 0x80}, 5, "unexpected or repeated key \"x\""},
		{"missing cert", {0x81, 0xa1, 0x69, 's', 'i', 'g', 'n', 'a', 't', 'u', 'r', 'e', 0x80}, 13,
		 "lacks \"signing_certificate\""},
		{"big element", {0x81, 0xa1, 0x69, 's', 'i', 'g', 'n', 'a', 't', 'u', 'r', 'e', 0x81, 0x19, 0x01, 0x00}, 16,
		 "is 256, not a byte"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len;
		_cleanup_free_ char *data = with_signature(cases[i].bytes, cases[i].len, &len);
		_cleanup_free_ char *path = xasprintf("%s/sig.eif", test_tmpdir(t));
		write_all(path, data, len);
		struct eif_image *img = NULL;
		struct err *e = NULL;
		if (eif_image_read(path, &img, &e) == 0) {
			test_fail(t, __FILE__, __LINE__, "case '%s' accepted", cases[i].name);
			eif_image_free(img);
			continue;
		}
		CHECK_ERR_CONTAINS(e, cases[i].needle);
		err_free(&e);
	}
}

TEST(reader_reports_tampered_signature)
{
	size_t len;
	_cleanup_free_ char *data = read_all(test_data("eif/case3/case3.eif"), &len);
	/* The COSE signature's last byte is the section's last CBOR uint. */
	uint8_t *last = (uint8_t *)data + len - 1;
	*last = *last == 0 ? 1 : (uint8_t)(*last - 1);
	if (*last < 24 && len >= 2 && data[len - 2] == 0x18)
		*last = 24; /* keep a valid uint encoding */
	_cleanup_free_ char *path = xasprintf("%s/tampered.eif", test_tmpdir(t));
	write_all(path, data, len);
	struct eif_image *img = NULL;
	REQUIRE(eif_image_read(path, &img, NULL) == 0);
	CHECK(img->is_signed);
	CHECK(!img->signature_ok);
	CHECK(img->signature_problem != NULL && strstr(img->signature_problem, "does not verify") != NULL);
	eif_image_free(img);
}

TEST(cbor_heads_are_minimal)
{
	_cleanup_buf_ struct buf b = {0};
	cbor_put_head(&b, CBOR_UINT, 23);
	cbor_put_head(&b, CBOR_UINT, 24);
	cbor_put_head(&b, CBOR_ARRAY, 256);
	cbor_put_head(&b, CBOR_NINT, 34);
	cbor_put_head(&b, CBOR_BSTR, 70000);
	static const uint8_t want[] = {0x17, 0x18, 0x18, 0x99, 0x01, 0x00, 0x38, 0x22, 0x5a, 0x00, 0x01, 0x11, 0x70};
	CHECK_INT_EQ(b.len, sizeof(want));
	CHECK(memcmp(b.data, want, sizeof(want)) == 0);
}

TEST(kernel_config_identity)
{
	_cleanup_free_ char *path = xasprintf("%s/config", test_tmpdir(t));
	const char *text = "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86_64 6.12.9 Kernel Configuration\n";
	write_all(path, text, strlen(text));
	_cleanup_free_ char *os = NULL, *ver = NULL;
	REQUIRE(eif_kernel_config_identity(path, &os, &ver, NULL) == 0);
	CHECK_STR_EQ(os, "Linux");
	CHECK_STR_EQ(ver, "6.12.9");
	free(os);
	free(ver);
	os = ver = NULL;
	const char *amzn = "#\n#\n# Linux/x86_64 4.14.256-197.484.amzn2.x86_64 Kernel Configuration\n";
	write_all(path, amzn, strlen(amzn));
	REQUIRE(eif_kernel_config_identity(path, &os, &ver, NULL) == 0);
	CHECK_STR_EQ(ver, "4.14.256");
	struct err *e = NULL;
	write_all(path, "#\n", 2);
	free(os);
	free(ver);
	os = ver = NULL;
	CHECK(eif_kernel_config_identity(path, &os, &ver, &e) < 0);
	CHECK_ERR_CONTAINS(e, "fewer than 3 lines");
	err_free(&e);
}

TEST(memory_needed_formula)
{
	/* kernel once, ramdisks twice, rounded up to MiB, plus the margin */
	CHECK_INT_EQ(eif_memory_needed_mib(0, 0), EIF_MEMORY_MARGIN_MIB);
	CHECK_INT_EQ(eif_memory_needed_mib(1, 0), 1 + EIF_MEMORY_MARGIN_MIB);
	CHECK_INT_EQ(eif_memory_needed_mib(8u << 20, 205u << 20), 8 + 410 + EIF_MEMORY_MARGIN_MIB);
	/* the case: 512 MiB cannot hold a 205 MiB customer ramdisk */
	CHECK(eif_memory_needed_mib(8u << 20, (205u + 4u) << 20) > 512);
	CHECK_INT_EQ(eif_memory_needed_mib(1u << 20, (1u << 20) / 2 + 1), 1 + 2 + EIF_MEMORY_MARGIN_MIB);
}

TEST(memory_needed_of_file)
{
	_cleanup_free_ char *out = xasprintf("%s/m.eif", test_tmpdir(t));
	struct eif_measurements m;
	REQUIRE(build_case1(out, NULL, &m, NULL) == 0);
	struct stat k, r1, r2;
	REQUIRE(stat(test_data("eif/kernel.bin"), &k) == 0);
	REQUIRE(stat(test_data("eif/ramdisk1.bin"), &r1) == 0);
	REQUIRE(stat(test_data("eif/ramdisk2.bin"), &r2) == 0);
	uint64_t need = 0;
	REQUIRE(eif_file_memory_needed_mib(out, &need, NULL) == 0);
	CHECK_INT_EQ(need, eif_memory_needed_mib((uint64_t)k.st_size, (uint64_t)(r1.st_size + r2.st_size)));
	struct err *e = NULL;
	CHECK(eif_file_memory_needed_mib(test_data("eif/cmdline.txt"), &need, &e) < 0);
	CHECK_ERR_CONTAINS(e, "cmdline.txt");
	err_free(&e);
}

/* ---------------------------------------------------------------- expected measurements */
static void expected_json(struct test_ctx *t, const char *json, const char *msg)
{
	_cleanup_free_ char *path = xasprintf("%s/m.json", test_tmpdir(t));
	FILE *f = fopen(path, "w");
	REQUIRE(f);
	fputs(json, f);
	fclose(f);
	struct eif_expected want;
	struct err *e = NULL;
	CHECK(eif_expected_load(path, "--verify-before-run", &want, &e) < 0);
	CHECK_ERR_CONTAINS(e, msg);
	CHECK_ERR_CONTAINS(e, "--verify-before-run");
	err_free(&e);
}

TEST(expected_rejects_bad_json)
{
	char pcr[97];
	memset(pcr, 'a', 96);
	pcr[96] = '\0';
	char buf[512];
	expected_json(t, "", "line 1 column");
	expected_json(t, "{\"PCR0\": ", "line 1 column");
	expected_json(t, "[]", "want an object");
	expected_json(t, "{\"Measurements\": 3}", "want an object");
	expected_json(t, "{}", "no PCR0, PCR1, PCR2 or PCR8");
	expected_json(t, "{\"HashAlgorithm\": \"Sha384 { ... }\"}", "no PCR0");
	expected_json(t, "{\"PCR3\": \"00\"}", "unknown key \"PCR3\"");
	expected_json(t, "{\"PCR0\": 5}", "PCR0: want 96 hex digits");
	expected_json(t, "{\"PCR1\": \"abc\"}", "PCR1: want 96 hex digits");
	snprintf(buf, sizeof(buf), "{\"PCR2\": \"%.95sz\"}", pcr);
	expected_json(t, buf, "PCR2: want 96 hex digits");
	snprintf(buf, sizeof(buf), "{\"PCR0\": \"%s\", \"PCR0\": \"%s\"}", pcr, pcr);
	expected_json(t, buf, "duplicate");
	struct eif_expected want;
	struct err *e = NULL;
	CHECK(eif_expected_load("/nonexistent.json", "--verify-before-run", &want, &e) < 0);
	CHECK_ERR_CONTAINS(e, "/nonexistent.json");
	err_free(&e);
}

/* The golden case's own measurements pass; one changed PCR is named with both values; PCR8 of an
 * unsigned EIF is "none". */
TEST(expected_check_names_each_difference)
{
	struct eif_image *img = NULL;
	struct err *e = NULL;
	REQUIRE(eif_image_read(test_data("eif/case1/case1.eif"), &img, &e) == 0);
	struct eif_expected want = {.has = {true, true, true, false}};
	memcpy(want.pcr[0], img->measurements.pcr0, 48);
	memcpy(want.pcr[1], img->measurements.pcr1, 48);
	memcpy(want.pcr[2], img->measurements.pcr2, 48);
	CHECK(eif_expected_check(&img->measurements, &want, &e) == 0);
	want.pcr[1][0] ^= 1;
	want.has[3] = true;
	CHECK(eif_expected_check(&img->measurements, &want, &e) < 0);
	CHECK_ERR_CONTAINS(e, "PCR1: expected ");
	CHECK_ERR_CONTAINS(e, "PCR8: expected ");
	CHECK_ERR_CONTAINS(e, "(none: the EIF is not signed)");
	CHECK(strstr(e->msg, "PCR0") == NULL);
	err_free(&e);
	CHECK_INT_EQ(eif_image_memory_needed_mib(img) > EIF_MEMORY_MARGIN_MIB, 1);
	eif_image_free(img);
}
