/* metadata: the EIF v4 metadata section (the reference's EifIdentityInfo as
 * serde_json writes it) and the OS/kernel identity read from a kernel config. */
#include <errno.h>
#include <string.h>

#include "eif/internal.h"

int eif_metadata_encode(const struct eif_identity *id, struct buf *out, struct err **err)
{
	const struct {
		const char *field, *value;
	} fields[] = {{"ImageName", id->image_name},        {"ImageVersion", id->image_version},
		      {"BuildTime", id->build_time},        {"BuildTool", id->build_tool},
		      {"BuildToolVersion", id->build_tool_version}, {"OperatingSystem", id->os},
		      {"KernelVersion", id->kernel_version}};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (fields[i].value == NULL)
			return err_set(err, EINVAL, "metadata: %s needs a value", fields[i].field);
		/* The reference stores Rust Strings: valid UTF-8 only. */
		_cleanup_json_ json_t *probe = json_string(fields[i].value);
		if (probe == NULL)
			return err_set(err, EINVAL, "metadata: %s is not valid UTF-8", fields[i].field);
	}
	/* Struct fields keep their declared order; the two free-form values are
	 * serde_json Values, whose maps are sorted. */
	_cleanup_json_ json_t *build = json_object();
	json_object_set_new(build, "BuildTime", json_string(id->build_time));
	json_object_set_new(build, "BuildTool", json_string(id->build_tool));
	json_object_set_new(build, "BuildToolVersion", json_string(id->build_tool_version));
	json_object_set_new(build, "OperatingSystem", json_string(id->os));
	json_object_set_new(build, "KernelVersion", json_string(id->kernel_version));
	_cleanup_json_ json_t *doc = json_object();
	json_object_set_new(doc, "ImageName", json_string(id->image_name));
	json_object_set_new(doc, "ImageVersion", json_string(id->image_version));
	json_object_set(doc, "BuildMetadata", build);
	json_object_set_new(doc, "DockerInfo", id->docker_info ? json_sorted_copy(id->docker_info) : json_null());
	json_object_set_new(doc, "CustomMetadata", id->custom ? json_sorted_copy(id->custom) : json_null());
	return json_serde_write(out, doc, 0, err);
}

int eif_kernel_config_identity(const char *config_path, char **os, char **kernel_version, struct err **err)
{
	_cleanup_fclose_ FILE *f = fopen(config_path, "re");
	if (f == NULL)
		return err_sys(err, "open kernel config %s", config_path);
	char line[1024];
	for (int i = 0; i < 3; i++) {
		if (fgets(line, sizeof(line), f) == NULL)
			return err_set(err, EINVAL, "kernel config %s: fewer than 3 lines (line 3 names the kernel)",
				       config_path);
	}
	line[strcspn(line, "\r\n")] = '\0';
	/* Split on ' ', '/' and '-' keeping empty words, as the reference does:
	 * "# Linux/x86_64 4.14.256-197 Kernel Configuration" -> words 1 and 3. */
	char *words[8] = {0};
	int n = 0;
	char *p = line;
	while (n < 8) {
		words[n++] = p;
		size_t k = strcspn(p, " /-");
		if (p[k] == '\0')
			break;
		p[k] = '\0';
		p += k + 1;
	}
	*os = xstrdup(n > 1 ? words[1] : "Unknown");
	*kernel_version = xstrdup(n > 3 ? words[3] : "Unknown");
	return 0;
}
