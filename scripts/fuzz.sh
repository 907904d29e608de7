#!/usr/bin/env bash
# fuzz.sh: runs every libFuzzer target built by `make fuzz`, seeded from
# testdata, for a bounded number of runs (default 20000 each; FUZZ_RUNS
# overrides, FUZZ_RUNS=-1 fuzzes until stopped). Prints "# counts P F" so
# tests/run.sh counts one result per target. A crash keeps its input in
# build/fuzz/crashes/ for reproduction.
set -u
cd "$(dirname "$0")/.."
runs=${FUZZ_RUNS:-20000}
pass=0
fail=0
mkdir -p build/fuzz/crashes
export ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}"
for bin in build/fuzz/bin/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	corpus=build/fuzz/corpus/$name
	mkdir -p "$corpus"
	# Seeds: small EIFs (unsigned, signed, two ramdisks) made by the
	# release binary, so runs stay fast; for the signature target, the
	# signature section's payload.
	seed_dir=build/fuzz/seeds
	if [ ! -f "$seed_dir/signed.eif" ]; then
		mkdir -p "$seed_dir"
		head -c 64 testdata/eif/kernel.bin >"$seed_dir/k"
		head -c 32 testdata/eif/ramdisk1.bin >"$seed_dir/r"
		common=(--kernel "$seed_dir/k" --cmdline "console=ttyS0" --build-time 2024-01-01T00:00:00+00:00)
		bin/enclaver eif build "${common[@]}" --ramdisk "$seed_dir/r" --output "$seed_dir/one.eif" >/dev/null
		bin/enclaver eif build "${common[@]}" --ramdisk "$seed_dir/r" --ramdisk "$seed_dir/r" \
			--output "$seed_dir/two.eif" >/dev/null
		bin/enclaver eif build "${common[@]}" --ramdisk "$seed_dir/r" --output "$seed_dir/signed.eif" \
			--signing-certificate testdata/eif/signing_cert.pem --private-key testdata/eif/signing_key.pem \
			>/dev/null
		rm -f "$seed_dir/k" "$seed_dir/r"
	fi
	if [ "$name" = fuzz_attest ]; then
		if [ -x build/release/tests/tools/make_attestation ]; then
			build/release/tests/tools/make_attestation "$corpus" "$(printf '00%.0s' $(seq 48))" 0011 >/dev/null
			rm -f "$corpus"/*.pem
		fi
	elif [ "$name" = fuzz_nsm ]; then
		# NSM responses of each kind, written out byte by byte.
		printf '\xa1\x69GetRandom\xa1\x66random\x43\x01\x02\xff' >"$corpus/random"
		printf '\xa1\x65Error\x6cInvalidIndex' >"$corpus/error"
		printf '\xa1\x6bDescribePCR\xa2\x64lock\xf5\x64data\x58\x30%048d' 0 >"$corpus/pcr"
		printf '\xa1\x6bAttestation\xa1\x68document\x45\x84\x40\xa0\x40\x40' >"$corpus/att"
		printf '\xa1\x6bDescribeNSM\xa7\x6dversion_major\x01\x6dversion_minor\x00\x6dversion_patch\x00' \
			>"$corpus/describe"
		printf '\x69module_id\x61m\x68max_pcrs\x18\x20\x6blocked_pcrs\x82\x00\x01\x66digest\x66SHA384' \
			>>"$corpus/describe"
	elif [ "$name" = fuzz_kms_response ]; then
		# Upstream answers: Content-Length, chunked with an extension and a trailer, an error.
		printf 'HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 2\r\n\r\n{}' \
			>"$corpus/length"
		printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\n{"a"\r\n5\r\n:"b"}\r\n0\r\nX-T: 1\r\n\r\n' \
			>"$corpus/chunked"
		printf 'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n' >"$corpus/error"
	elif [ "$name" = fuzz_http_request ]; then
		# Heads as odyn's servers get them: absolute-form, CONNECT, a POST with a body, bare LF.
		printf 'GET http://a.example:8080/x?y HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n' \
			>"$corpus/absolute"
		printf 'CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n' >"$corpus/connect"
		printf 'POST /v1/attestation HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}' >"$corpus/post"
		printf 'GET / HTTP/1.1\nHost: x\n\n' >"$corpus/bare-lf"
	elif [ "$name" = fuzz_status_line ]; then
		# Status lines as odyn writes them, a counters line, and one with an escaped label.
		printf '{"status":"exited","code":3}' >"$corpus/exited"
		printf '{"status":"fatal","error":"exec: \\"x\\""}' >"$corpus/fatal"
		printf '{"status":"counters","egress":[["*.example:443","allowed",7],["(default)","denied",1]],"kms":[["Decrypt","ok",2]]}' \
			>"$corpus/counters"
		printf '{"status":"counters","kms":[["a\\"b\\\\c","error",1]]}' >"$corpus/escaped"
	elif [ "$name" = fuzz_detached_signature ]; then
		# A P-384 signature as DER (what openssl pkeyutl writes) and as raw r || s.
		openssl ecparam -name secp384r1 -genkey -noout 2>/dev/null | openssl pkeyutl -sign -inkey /dev/stdin \
			-in <(head -c 48 /dev/zero) -out "$corpus/der" 2>/dev/null || true
		head -c 96 /dev/zero | tr '\0' '\1' >"$corpus/raw"
	elif [ "$name" = fuzz_registries_conf ]; then
		# A main file with every table, a drop-in, and version 1 (refused).
		printf 'unqualified-search-registries = ["a.example", "docker.io"]\nshort-name-mode = "enforcing"\n[[registry]]\nprefix = "x.example/team"\nlocation = "y.example:5000/t"\ninsecure = true\n[[registry.mirror]]\nlocation = "m.example"\npull-from-mirror = "digest-only"\n[aliases]\n"app" = "quay.io/team/app"\n' \
			>"$corpus/main.conf"
		printf '# drop-in\n[[registry]]\nlocation = "*.example"\nblocked = true\n[aliases]\n"app" = ""\n' >"$corpus/dropin.conf"
		printf '[registries.search]\nregistries = ["a"]\n' >"$corpus/v1.conf"
	elif [ "$name" = fuzz_flatten ]; then
		# Layers (a first byte 0 means an uncompressed tar): GNU and pax sparse entries, a hole
		# then a few bytes, so the mutator can reach sparse maps and claimed sizes.
		sparse_dir=$(mktemp -d)
		truncate -s 100000 "$sparse_dir/s"
		printf 'tail' >>"$sparse_dir/s"
		for fmt in gnu posix; do
			{ printf '\0'; tar -C "$sparse_dir" --sparse --format=$fmt -b1 -cf - s; } >"$corpus/sparse-$fmt.tar"
		done
		rm -rf "$sparse_dir"
	elif [ "$name" = fuzz_oci_manifest ]; then
		# An image manifest, one whose config is over the 16 MiB cap, an index, and nothing.
		cfg='"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'$(printf '%064d' 0)'","size":'
		printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",%s2},"layers":[]}' "$cfg" \
			>"$corpus/image.json"
		printf '{"schemaVersion":2,%s16777217},"layers":[]}' "$cfg" >"$corpus/bigconfig.json"
		printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%064d","size":2,"platform":{"os":"linux","architecture":"amd64"}}]}' 0 \
			>"$corpus/index.json"
		: >"$corpus/empty"
	elif [ "$name" = fuzz_statement ]; then
		# A build's signed envelope, and the statement inside it.
		cp testdata/statement/signed.intoto.jsonl "$corpus/envelope.json"
		python3 -c 'import base64,json,sys; sys.stdout.buffer.write(base64.b64decode(json.load(open(sys.argv[1]))["payload"]))' \
			testdata/statement/signed.intoto.jsonl >"$corpus/statement.json"
	elif [ "$name" = fuzz_eif_signature ]; then
		# The signature section is the last one; its offset is in the
		# table entry of section 3 (header bytes 28+8*3).
		off=$(od -An -tu8 --endian=big -j 52 -N 8 "$seed_dir/signed.eif" | tr -d ' ')
		tail -c +$((off + 13)) "$seed_dir/signed.eif" >"$corpus/signed.sig"
	else
		cp -f "$seed_dir"/*.eif "$corpus/"
	fi
	if "$bin" -runs="$runs" -max_len=8192 -artifact_prefix=build/fuzz/crashes/"$name"- "$corpus" \
		>build/fuzz/"$name".log 2>&1; then
		echo "ok - $name ($runs runs)"
		pass=$((pass + 1))
	else
		echo "not ok - $name: see build/fuzz/$name.log"
		tail -n 30 build/fuzz/"$name".log | sed 's/^/    /'
		fail=$((fail + 1))
	fi
done
echo "# counts $pass $fail"
[ $fail -eq 0 ]
