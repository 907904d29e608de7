/* cmd_eif: `enclaver eif build` (a drop-in for the reference eif_build), `enclaver eif sign`
 * (nitro-cli sign-eif), both printing the measurements, and `enclaver eif measure` (what a
 * detached signer signs). */
#include <getopt.h>
#include <libgen.h>
#include <string.h>

#include "cli/cli.h"
#include "eif/eif.h"
#include "keys/keys.h"

static void eif_usage(FILE *f)
{
	fputs("Usage:\n"
	      "  enclaver eif build --kernel FILE --cmdline STRING --ramdisk FILE [--ramdisk FILE]...\n"
	      "                     --output FILE [options]\n"
	      "  enclaver eif sign  [--eif-path] FILE --signing-certificate PEM\n"
	      "                     (--private-key KEY | --signature FILE)\n"
	      "  enclaver eif measure FILE --signing-certificate PEM [--output FILE]\n"
	      "\n"
	      "eif build options (named as the reference eif_build's):\n"
	      "  --kernel FILE              kernel image (bzImage on x86_64, Image on aarch64)\n"
	      "  --cmdline STRING           kernel command line\n"
	      "  --ramdisk FILE             ramdisk (newc cpio); repeat, the first is the bootstrap one\n"
	      "  --output FILE              EIF to write (atomically)\n"
	      "  --arch x86_64|aarch64      architecture flag in the header (default x86_64)\n"
	      "  --name NAME                ImageName (default: the kernel file's name)\n"
	      "  --version VERSION          ImageVersion (default 1.0)\n"
	      "  --metadata FILE            custom metadata, a JSON file of at most 4096 bytes\n"
	      "  --build-time TIME          BuildTime (default: SOURCE_DATE_EPOCH, else now)\n"
	      "  --build-tool NAME          BuildTool (default enclaver)\n"
	      "  --build-tool-version V     BuildToolVersion (default this enclaver's version)\n"
	      "  --img-os NAME              OperatingSystem (default OS)\n"
	      "  --img-kernel VERSION       KernelVersion (default kernel)\n"
	      "  --kernel-config FILE       take OperatingSystem and KernelVersion from a kernel .config\n"
	      "  --algo sha384|sha256|sha512  hash for the printed measurements (default sha384)\n"
	      "  --signing-certificate PEM  sign (PCR8) with this certificate...\n"
	      "  --private-key KEY          ...and its EC key (P-256, P-384 or P-521): a PEM file, a\n"
	      "                             PKCS#11 URI (pkcs11:...) or an AWS KMS key ARN\n"
	      "\n"
	      "eif sign also takes --signature FILE instead of --private-key: a signature made elsewhere\n"
	      "(DER or raw r||s) over what `eif measure` printed, checked before it is attached.\n"
	      "eif measure prints what signs the EIF with that certificate (the COSE Sig_structure and\n"
	      "its digest, hex), and --output writes the Sig_structure's bytes.\n"
	      "\n"
	      "eif build and eif sign print the measurements as JSON on stdout.\n",
	      f);
}

enum {
	OPT_KERNEL = 256, OPT_CMDLINE, OPT_RAMDISK, OPT_OUTPUT, OPT_ARCH, OPT_NAME, OPT_VERSION, OPT_METADATA,
	OPT_BUILD_TIME, OPT_BUILD_TOOL, OPT_BUILD_TOOL_VERSION, OPT_IMG_OS, OPT_IMG_KERNEL, OPT_KERNEL_CONFIG,
	OPT_ALGO, OPT_CERT, OPT_KEY, OPT_EIF_PATH, OPT_SIGNATURE, OPT_HELP,
};

/* Custom metadata: the reference caps the file at 4096 bytes. */
#define MAX_CUSTOM_METADATA 4096

static int load_custom_metadata(const char *path, json_t **out, struct err **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (io_read_file(path, MAX_CUSTOM_METADATA, &text, &len, err) < 0)
		return err_wrap(err, "--metadata");
	json_error_t jerr;
	*out = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
	if (*out == NULL)
		return err_set(err, EINVAL, "--metadata %s: line %d, column %d: %s", path, jerr.line, jerr.column, jerr.text);
	return 0;
}

static int build_time_default(char out[32], struct err **err)
{
	int64_t t;
	if (time_source_date_epoch(&t, err) < 0)
		return -1;
	time_format_rfc3339(t, out);
	return 0;
}

static int eif_build_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"kernel", required_argument, NULL, OPT_KERNEL},
		{"cmdline", required_argument, NULL, OPT_CMDLINE},
		{"ramdisk", required_argument, NULL, OPT_RAMDISK},
		{"output", required_argument, NULL, OPT_OUTPUT},
		{"arch", required_argument, NULL, OPT_ARCH},
		{"name", required_argument, NULL, OPT_NAME},
		{"image-name", required_argument, NULL, OPT_NAME},
		{"version", required_argument, NULL, OPT_VERSION},
		{"image-version", required_argument, NULL, OPT_VERSION},
		{"metadata", required_argument, NULL, OPT_METADATA},
		{"build-time", required_argument, NULL, OPT_BUILD_TIME},
		{"build-tool", required_argument, NULL, OPT_BUILD_TOOL},
		{"build-tool-version", required_argument, NULL, OPT_BUILD_TOOL_VERSION},
		{"img-os", required_argument, NULL, OPT_IMG_OS},
		{"image-os", required_argument, NULL, OPT_IMG_OS},
		{"img-kernel", required_argument, NULL, OPT_IMG_KERNEL},
		{"image-kernel", required_argument, NULL, OPT_IMG_KERNEL},
		{"kernel-config", required_argument, NULL, OPT_KERNEL_CONFIG},
		{"kernel_config", required_argument, NULL, OPT_KERNEL_CONFIG},
		{"algo", required_argument, NULL, OPT_ALGO},
		{"signing-certificate", required_argument, NULL, OPT_CERT},
		{"private-key", required_argument, NULL, OPT_KEY},
		{"help", no_argument, NULL, OPT_HELP},
		{0},
	};
	const char *kernel = NULL, *cmdline = NULL, *output = NULL, *cert = NULL, *key = NULL, *metadata_path = NULL,
		   *kernel_config = NULL;
	_cleanup_free_ const char **ramdisks = xcalloc((size_t)argc, sizeof(char *));
	size_t n_ramdisks = 0;
	struct eif_identity id = {.image_version = "1.0", .build_tool = "enclaver",
				  .build_tool_version = ENCLAVER_VERSION, .os = "OS", .kernel_version = "kernel"};
	uint16_t flags = 0;
	int alg = EIF_HASH_SHA384, c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case OPT_KERNEL: kernel = optarg; break;
		case OPT_CMDLINE: cmdline = optarg; break;
		case OPT_RAMDISK: ramdisks[n_ramdisks++] = optarg; break;
		case OPT_OUTPUT: output = optarg; break;
		case OPT_ARCH:
			if (strcmp(optarg, "x86_64") == 0)
				flags = 0;
			else if (strcmp(optarg, "aarch64") == 0)
				flags = EIF_FLAG_ARCH_AARCH64;
			else
				return cli_usage_error("eif build", "--arch %s: expected x86_64 or aarch64", optarg);
			break;
		case OPT_NAME: id.image_name = optarg; break;
		case OPT_VERSION: id.image_version = optarg; break;
		case OPT_METADATA: metadata_path = optarg; break;
		case OPT_BUILD_TIME: id.build_time = optarg; break;
		case OPT_BUILD_TOOL: id.build_tool = optarg; break;
		case OPT_BUILD_TOOL_VERSION: id.build_tool_version = optarg; break;
		case OPT_IMG_OS: id.os = optarg; break;
		case OPT_IMG_KERNEL: id.kernel_version = optarg; break;
		case OPT_KERNEL_CONFIG: kernel_config = optarg; break;
		case OPT_ALGO:
			alg = eif_hash_alg_parse(optarg);
			if (alg < 0)
				return cli_usage_error("eif build", "--algo %s: expected sha256, sha384 or sha512", optarg);
			break;
		case OPT_CERT: cert = optarg; break;
		case OPT_KEY: key = optarg; break;
		case OPT_HELP: eif_usage(stdout); return EXIT_OK;
		default: return cli_usage_error("eif build", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("eif build", "unexpected argument '%s'", argv[optind]);
	if (!kernel || !cmdline || !output || n_ramdisks == 0)
		return cli_usage_error("eif build", "--kernel, --cmdline, --output and at least one --ramdisk are required");
	if (!cert != !key)
		return cli_usage_error("eif build", "--signing-certificate and --private-key go together");

	_cleanup_err_ struct err *err = NULL;
	_cleanup_free_ char *kernel_copy = xstrdup(kernel), *os = NULL, *kver = NULL;
	_cleanup_json_ json_t *custom = NULL;
	char build_time[32];
	struct keys_eif_signer signer = {0};
	if (id.image_name == NULL)
		id.image_name = basename(kernel_copy);
	if (id.build_time == NULL) {
		if (build_time_default(build_time, &err) < 0)
			return cli_fail(&err);
		id.build_time = build_time;
	}
	if (kernel_config) {
		if (eif_kernel_config_identity(kernel_config, &os, &kver, &err) < 0)
			return cli_fail(&err);
		id.os = os;
		id.kernel_version = kver;
	}
	if (metadata_path && load_custom_metadata(metadata_path, &custom, &err) < 0)
		return cli_fail(&err);
	id.custom = custom;
	if (cert && keys_eif_signer_open(cert, key, NULL, &signer, &err) < 0) {
		keys_eif_signer_close(&signer);
		return cli_fail(&err);
	}

	struct eif_build_spec spec = {
		.kernel_path = kernel, .cmdline = cmdline, .ramdisk_paths = ramdisks, .n_ramdisks = n_ramdisks,
		.flags = flags, .identity = &id, .signer = signer.eif, .alg = (enum eif_hash_alg)alg,
	};
	struct eif_measurements m;
	int r = eif_build(output, &spec, &m, &err);
	keys_eif_signer_close(&signer);
	if (r < 0)
		return cli_fail(&err);
	log_info("wrote %s", output);
	_cleanup_json_ json_t *doc = eif_measurements_json(&m);
	if (cli_print_json(doc, &err) < 0)
		return cli_fail(&err);
	return EXIT_OK;
}

static int eif_sign_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"eif-path", required_argument, NULL, OPT_EIF_PATH},
		{"signing-certificate", required_argument, NULL, OPT_CERT},
		{"private-key", required_argument, NULL, OPT_KEY},
		{"signature", required_argument, NULL, OPT_SIGNATURE},
		{"help", no_argument, NULL, OPT_HELP},
		{0},
	};
	const char *path = NULL, *cert = NULL, *key = NULL, *signature = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case OPT_EIF_PATH: path = optarg; break;
		case OPT_CERT: cert = optarg; break;
		case OPT_KEY: key = optarg; break;
		case OPT_SIGNATURE: signature = optarg; break;
		case OPT_HELP: eif_usage(stdout); return EXIT_OK;
		default: return cli_usage_error("eif sign", "unknown option");
		}
	}
	if (path == NULL && optind < argc)
		path = argv[optind++];
	if (optind < argc)
		return cli_usage_error("eif sign", "unexpected argument '%s'", argv[optind]);
	if (!path || !cert || !key == !signature)
		return cli_usage_error("eif sign", "an EIF, --signing-certificate and one of --private-key or --signature "
						   "are required");
	_cleanup_err_ struct err *err = NULL;
	struct keys_eif_signer signer = {0};
	struct eif_measurements m;
	int r = keys_eif_signer_open(cert, key, signature, &signer, &err);
	if (r == 0)
		r = eif_sign_file(path, signer.eif, &m, &err);
	keys_eif_signer_close(&signer);
	if (r < 0)
		return cli_fail(&err);
	_cleanup_json_ json_t *doc = eif_measurements_json(&m);
	if (cli_print_json(doc, &err) < 0)
		return cli_fail(&err);
	return EXIT_OK;
}

static int eif_measure_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"eif-path", required_argument, NULL, OPT_EIF_PATH},
		{"signing-certificate", required_argument, NULL, OPT_CERT},
		{"output", required_argument, NULL, OPT_OUTPUT},
		{"help", no_argument, NULL, OPT_HELP},
		{0},
	};
	const char *path = NULL, *cert = NULL, *output = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case OPT_EIF_PATH: path = optarg; break;
		case OPT_CERT: cert = optarg; break;
		case OPT_OUTPUT: output = optarg; break;
		case OPT_HELP: eif_usage(stdout); return EXIT_OK;
		default: return cli_usage_error("eif measure", "unknown option");
		}
	}
	if (path == NULL && optind < argc)
		path = argv[optind++];
	if (optind < argc)
		return cli_usage_error("eif measure", "unexpected argument '%s'", argv[optind]);
	if (!path || !cert)
		return cli_usage_error("eif measure", "an EIF and --signing-certificate are required");
	_cleanup_err_ struct err *err = NULL;
	struct eif_to_sign t;
	if (eif_to_sign_of_file(path, cert, &t, &err) < 0)
		return cli_fail(&err);
	_cleanup_buf_ struct buf tbs = t.tbs;
	if (output && atomic_file_write(output, 0644, tbs.data, tbs.len, &err) < 0) {
		err_wrap(&err, "--output");
		return cli_fail(&err);
	}
	char pcr0[97], digest[129];
	_cleanup_free_ char *tbs_hex = xmalloc(2 * tbs.len + 1);
	hex_encode(t.pcr0, 48, pcr0);
	hex_encode(t.digest, t.digest_len, digest);
	hex_encode((uint8_t *)tbs.data, tbs.len, tbs_hex);
	_cleanup_json_ json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s}", "PCR0", pcr0, "Algorithm", t.cose_alg,
					       "DigestAlgorithm", t.digest_name, "Digest", digest, "ToBeSigned",
					       tbs_hex);
	if (cli_print_json(doc, &err) < 0)
		return cli_fail(&err);
	return EXIT_OK;
}

int cmd_eif(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		eif_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (strcmp(argv[1], "build") == 0)
		return eif_build_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "sign") == 0)
		return eif_sign_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "measure") == 0)
		return eif_measure_main(argc - 1, argv + 1);
	return cli_usage_error("eif", "unknown subcommand '%s' (build, sign or measure)", argv[1]);
}
