/* cmd_describe: `enclaver describe-eif` and `enclaver pcr`, the read-only
 * commands users of nitro-cli know, with the same JSON. */
#include <getopt.h>
#include <string.h>

#include "cli/cli.h"
#include "eif/eif.h"

int cmd_describe_eif(int argc, char **argv)
{
	static const struct option opts[] = {
		{"eif-path", required_argument, NULL, 'e'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *path = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'e': path = optarg; break;
		case 'h':
			puts("Usage: enclaver describe-eif [--eif-path] FILE\n\n"
			     "Prints the EIF's version, measurements (PCR0/1/2, PCR8 when signed), signing\n"
			     "certificate, CRC and signature checks and metadata as JSON, as nitro-cli\n"
			     "describe-eif does. Exits 1 when the image is malformed or a check fails.");
			return EXIT_OK;
		default: return cli_usage_error("describe-eif", "unknown option");
		}
	}
	if (path == NULL && optind < argc)
		path = argv[optind++];
	if (path == NULL || optind < argc)
		return cli_usage_error("describe-eif", "expected one EIF file");
	_cleanup_err_ struct err *err = NULL;
	struct eif_image *img = NULL;
	if (eif_image_read(path, &img, &err) < 0)
		return cli_fail(&err);
	_cleanup_json_ json_t *doc = NULL;
	int r = eif_image_describe(img, &doc, &err);
	if (r == 0)
		r = cli_print_json(doc, &err);
	if (r == 0 && img->crc_stored != img->crc_computed)
		r = err_set(&err, EINVAL, "%s: CRC mismatch: header says %08x, contents give %08x", path, img->crc_stored,
			    img->crc_computed);
	if (r == 0 && img->is_signed && !img->signature_ok)
		r = err_set(&err, EINVAL, "%s: signature check failed: %s", path,
			    img->signature_problem ? img->signature_problem : "unknown reason");
	eif_image_free(img);
	return r < 0 ? cli_fail(&err) : EXIT_OK;
}

int cmd_pcr(int argc, char **argv)
{
	static const struct option opts[] = {
		{"input", required_argument, NULL, 'i'},
		{"signing-certificate", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *input = NULL, *cert = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'i': input = optarg; break;
		case 's': cert = optarg; break;
		case 'h':
			puts("Usage: enclaver pcr --input FILE | --signing-certificate PEM\n\n"
			     "Prints {\"PCR\": hex} for a file's contents, or {\"PCR8\": hex} for a signing\n"
			     "certificate (its DER form), as nitro-cli pcr does (SHA-384, extended from zero).");
			return EXIT_OK;
		default: return cli_usage_error("pcr", "unknown option");
		}
	}
	if ((input == NULL) == (cert == NULL) || optind < argc)
		return cli_usage_error("pcr", "give exactly one of --input FILE or --signing-certificate PEM");
	_cleanup_err_ struct err *err = NULL;
	uint8_t pcr[48];
	if ((cert ? eif_pcr8_of_certificate_file(cert, pcr, &err) : eif_pcr_of_file(EIF_HASH_SHA384, input, pcr, &err)) <
	    0)
		return cli_fail(&err);
	char hex[97];
	hex_encode(pcr, sizeof(pcr), hex);
	_cleanup_json_ json_t *doc = json_object();
	json_object_set_new(doc, cert ? "PCR8" : "PCR", json_string(hex));
	if (cli_print_json(doc, &err) < 0)
		return cli_fail(&err);
	return EXIT_OK;
}
