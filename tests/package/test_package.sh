#!/usr/bin/env bash
# test_package: builds the Debian package with cpack from a built tree and checks it as a packager
# would: control fields and dependencies, the files (launchers, programs, desktop entry, AppStream
# metadata, icons, presets, docs), the desktop entry and metadata validate, the programs carry no
# RUNPATH into the build (or any absolute RUNPATH) and are stripped, and the unpacked programs run
# through their launchers (LibTorch found, or a clear message when it is not).
#   test_package.sh BUILD_DIR SOURCE_DIR APP_ID TORCH_LIBDIR TORCH_VERSION TORCH_FALLBACK [GUI=1|0]
# Exit 0 pass, 1 fail, 77 skip (a tool is missing: it names the Debian package to install).
set -uo pipefail
build=$1 src=$2 app_id=$3 torch_lib=$4 torch_ver=$5 fallback=$6 gui=${7:-1}

fails=0
fail() {
  echo "FAIL: $*"
  fails=$((fails + 1))
}
ok() { echo "ok: $*"; }

for t in cpack:cmake dpkg-deb:dpkg dpkg-shlibdeps:dpkg-dev readelf:binutils desktop-file-validate:desktop-file-utils \
  appstreamcli:appstream; do
  if ! command -v "${t%%:*}" >/dev/null 2>&1; then
    echo "SKIP: ${t%%:*} not found (Debian package ${t#*:})"
    exit 77
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hl-package.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { printf '%d.%d' $((($(ms) - t0) / 1000)) $((($(ms) - t0) % 1000 / 100)); }
t0=$(ms)

# --- build the package ---------------------------------------------------------------------------
if ! cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1; then
  cat "$tmp/cpack.log"
  echo "FAIL: cpack"
  exit 1
fi
debs=("$tmp"/out/*.deb)
if [[ ${#debs[@]} -ne 1 || ! -f ${debs[0]} ]]; then
  cat "$tmp/cpack.log"
  echo "FAIL: expected one .deb in $tmp/out, found: ${debs[*]}"
  exit 1
fi
deb=${debs[0]}
echo "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB) in $(secs) s"

# --- control fields ------------------------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
[[ $(field Package) == hopelab ]] && ok "Package: hopelab" || fail "Package is '$(field Package)'"
[[ $(field Section) == science ]] && ok "Section: science" || fail "Section is '$(field Section)'"
[[ -n $(field Maintainer) ]] && ok "Maintainer: $(field Maintainer)" || fail "no Maintainer"
[[ $(field Description | wc -l) -gt 2 ]] && ok "Description: a summary and a long description" ||
  fail "Description: $(field Description)"
long=$(field Description | awk 'length > 80')
[[ -z $long ]] || fail "Description lines over 80 characters: $long"
version=$(field Version)
build_version=$("$build/app/cli/hopelab-cli" --version)
# The package version is the programs' (cmake/version.cmake): a tag's version, else the commit.
bv=${build_version%-dirty}
if [[ $bv =~ ^v?([0-9.]+)$ ]]; then
  [[ $version == "${BASH_REMATCH[1]}" || $version == "${BASH_REMATCH[1]}+dirty" ]] &&
    ok "Version $version (programs: $build_version)" || fail "Version $version for programs' $build_version"
elif [[ $bv =~ ([0-9a-f]{7,})$ ]]; then
  [[ $version == *"${BASH_REMATCH[1]}"* ]] && ok "Version $version (programs: $build_version)" ||
    fail "Version $version does not name the commit of programs' $build_version"
else
  fail "programs' version '$build_version' not understood"
fi
if [[ $build_version == *-dirty ]]; then
  [[ $version == *dirty ]] || fail "Version $version of a dirty tree does not say so"
fi
depends=$(field Depends)
echo "Depends: $depends"
want_deps=(libc6 libstdc++6 libsqlite3-0 libsentencepiece0 libcurl4)
[[ $gui == 1 ]] && want_deps+=(libqt6core6 libqt6widgets6 libqt6svg6 libqcustomplot2.1-qt6 qt6-qpa-plugins)
dep_names=$(tr ',' '\n' <<<"$depends" | sed 's/^ *//; s/[ (].*//')
for d in "${want_deps[@]}"; do
  grep -qxF "$d" <<<"$dep_names" && ok "Depends on $d" || fail "Depends lacks $d"
done
[[ $depends == *torch* ]] && fail "Depends names torch: $depends"

# --- files ---------------------------------------------------------------------------------------
root=$tmp/root
dpkg-deb -x "$deb" "$root" || {
  echo "FAIL: dpkg-deb -x"
  exit 1
}
dpkg-deb -c "$deb" >"$tmp/list"
outside=$(awk '{print $6}' "$tmp/list" | grep -v '^\./usr/' | grep -v '^\./$' | grep -v '^\./usr/$' || true)
[[ -z $outside ]] && ok "every file under /usr" || fail "files outside /usr: $outside"
grep -q 'torch' <(awk '{print $6}' "$tmp/list" | grep '\.so') && fail "the package carries torch libraries"
programs=(hopelab-cli)
[[ $gui == 1 ]] && programs+=(hopelab)
for p in "${programs[@]}"; do
  [[ -x $root/usr/bin/$p ]] && head -c 2 "$root/usr/bin/$p" | grep -q '#!' && ok "launcher /usr/bin/$p" ||
    fail "no launcher script /usr/bin/$p"
  elf=$root/usr/libexec/hopelab/$p
  if [[ -x $elf ]] && readelf -h "$elf" >/dev/null 2>&1; then
    ok "program /usr/libexec/hopelab/$p"
    rp=$(readelf -d "$elf" | grep -E 'R(UN)?PATH' || true)
    if [[ -z $rp ]]; then
      ok "$p: no RUNPATH"
    else
      # only $ORIGIN-relative entries are acceptable
      entries=$(sed -E 's/.*\[(.*)\].*/\1/' <<<"$rp" | tr ':' '\n' | grep -v '^\$ORIGIN' || true)
      [[ -z $entries ]] && ok "$p: RUNPATH only \$ORIGIN-relative" || fail "$p has an absolute RUNPATH: $rp"
    fi
    readelf -S "$elf" | grep -q '\.debug_info' && fail "$p is not stripped" || ok "$p stripped"
  else
    fail "no program /usr/libexec/hopelab/$p"
  fi
done
n_src=$(ls "$src"/resources/presets/*.json | wc -l)
n_inst=0
for f in "$src"/resources/presets/*.json; do
  cmp -s "$f" "$root/usr/share/hopelab/presets/$(basename "$f")" && n_inst=$((n_inst + 1)) ||
    fail "preset $(basename "$f") missing or different"
done
[[ $n_inst -eq $n_src && $n_src -gt 0 ]] && ok "$n_inst presets in /usr/share/hopelab/presets"
doc=$root/usr/share/doc/hopelab
for f in README.md LICENSE copyright docs/APP.md docs/SPEC.md; do
  [[ -s $doc/$f ]] && ok "doc $f" || fail "no /usr/share/doc/hopelab/$f"
done
cl=$(gzip -dc "$doc/changelog.gz" 2>/dev/null | head -n 1)
[[ $cl == "hopelab ($version) "* ]] && ok "changelog.gz: $cl" || fail "changelog.gz starts '$cl', not hopelab ($version)"
for p in "${programs[@]}"; do
  man=$root/usr/share/man/man1/$p.1.gz
  gzip -dc "$man" 2>/dev/null | grep -q "^\.TH ${p^^} 1" && ok "man page $p(1)" || fail "no man page $man"
done
for f in "$src"/docs/screenshots/*.png; do
  cmp -s "$f" "$doc/docs/screenshots/$(basename "$f")" || fail "screenshot $(basename "$f") missing"
done

# --- desktop entry, AppStream, icons -------------------------------------------------------------
if [[ $gui == 1 ]]; then
  desktop=$root/usr/share/applications/$app_id.desktop
  metainfo=$root/usr/share/metainfo/$app_id.metainfo.xml
  if [[ -f $desktop ]]; then
    out=$(desktop-file-validate "$desktop" 2>&1) && [[ -z $out ]] && ok "desktop-file-validate $app_id.desktop" ||
      fail "desktop-file-validate: $out"
    exe=$(sed -n 's/^Exec=\([^ ]*\).*/\1/p' "$desktop")
    [[ -x $root/usr/bin/$exe ]] && ok "Exec=$exe is installed" || fail "Exec=$exe is not in /usr/bin"
    icon=$(sed -n 's/^Icon=//p' "$desktop")
    [[ $icon == "$app_id" ]] && ok "Icon=$icon" || fail "Icon=$icon, expected $app_id"
  else
    fail "no /usr/share/applications/$app_id.desktop"
  fi
  if [[ -f $metainfo ]]; then
    out=$(appstreamcli validate --no-net "$metainfo" 2>&1) && ok "appstreamcli validate" ||
      fail "appstreamcli validate: $out"
    grep -q "<id>$app_id</id>" "$metainfo" && grep -q "<launchable type=\"desktop-id\">$app_id.desktop<" "$metainfo" &&
      ok "metainfo id and launchable match the desktop entry" || fail "metainfo id/launchable do not match $app_id"
  else
    fail "no /usr/share/metainfo/$app_id.metainfo.xml"
  fi
  icons=$root/usr/share/icons/hicolor
  cmp -s "$src/resources/icons/hopelab.svg" "$icons/scalable/apps/$app_id.svg" && ok "scalable icon" ||
    fail "no scalable/apps/$app_id.svg"
  for n in 48 64 128 256; do
    png=$icons/${n}x${n}/apps/$app_id.png
    # PNG: signature, then IHDR with width and height (big-endian) at bytes 16..23
    wh=$(od -An -tu1 -j16 -N8 "$png" 2>/dev/null | awk '{print $3*256+$4 "x" $7*256+$8}')
    [[ $(head -c 4 "$png" 2>/dev/null | od -An -c | tr -d ' ') == '211PNG' && $wh == "${n}x${n}" ]] &&
      ok "${n}x${n} icon" || fail "no ${n}x${n} PNG icon ($png: $wh)"
  done
fi

# --- run the unpacked programs ------------------------------------------------------------------
home=$tmp/home
mkdir -p "$home"
run() { env -u HOPELAB_TORCH_DIR -u XDG_CACHE_HOME HOME="$home" "$@"; }
cli=$root/usr/bin/hopelab-cli
v=$(run HOPELAB_TORCH_DIR="$torch_lib" "$cli" --version 2>&1)
[[ $v == "$build_version" ]] && ok "hopelab-cli --version from the package: $v" || fail "hopelab-cli --version: $v"
h=$(run HOPELAB_TORCH_DIR="$torch_lib" "$cli" --help 2>&1)
[[ $? -eq 0 && $h == *train* && $h == *presets* ]] && ok "hopelab-cli --help" || fail "hopelab-cli --help: $h"
listed=$(run HOPELAB_TORCH_DIR="$torch_lib" "$cli" presets 2>&1 | awk '{print $1}' | sort | tr '\n' ' ')
files=$(ls "$root/usr/share/hopelab/presets" | sed 's/\.json$//' | sort | tr '\n' ' ')
[[ $listed == "$files" ]] && ok "installed preset files = hopelab-cli presets" ||
  fail "hopelab-cli presets lists '$listed', installed files are '$files'"
# A venv with torch (scripts/setup.sh's) is accepted as it is.
venv=$(cd "$torch_lib/../../../../.." 2>/dev/null && pwd)
if [[ -f $venv/pyvenv.cfg ]]; then
  v=$(run HOPELAB_TORCH_DIR="$venv" "$cli" --version 2>&1)
  [[ $v == "$build_version" ]] && ok "HOPELAB_TORCH_DIR=<venv> works" || fail "HOPELAB_TORCH_DIR=$venv: $v"
fi
# Without HOPELAB_TORCH_DIR, and an empty home: the build-time fallback, when there is one.
if [[ -n $fallback ]]; then
  v=$(run "$cli" --version 2>&1)
  [[ $v == "$build_version" ]] && ok "LibTorch found without HOPELAB_TORCH_DIR (fallback $fallback)" ||
    fail "without HOPELAB_TORCH_DIR: $v"
fi
# No LibTorch, or another version: exit 127 and a message that says what to do.
mkdir -p "$tmp/empty" "$tmp/old/lib"
v=$(run HOPELAB_TORCH_DIR="$tmp/empty" "$cli" --version 2>&1)
rc=$?
[[ $rc -eq 127 && $v == *"LibTorch $torch_ver not found"* && $v == *"pip install torch==$torch_ver"* &&
  $v == *HOPELAB_TORCH_DIR* ]] && ok "no LibTorch: exit 127 with instructions" || fail "no LibTorch: rc $rc: $v"
for l in libtorch.so libtorch_cpu.so libc10.so libtorch_cuda.so; do : >"$tmp/old/lib/$l"; done
echo "__version__ = '2.0.0+cpu'" >"$tmp/old/version.py"
v=$(run HOPELAB_TORCH_DIR="$tmp/old" "$cli" --version 2>&1)
rc=$?
[[ $rc -eq 127 && $v == *"is LibTorch 2.0.0, this build needs $torch_ver"* ]] &&
  ok "another LibTorch version: exit 127, named" || fail "another LibTorch version: rc $rc: $v"
if [[ $gui == 1 ]]; then
  h=$(run HOPELAB_TORCH_DIR="$torch_lib" QT_QPA_PLATFORM=offscreen "$root/usr/bin/hopelab" --help 2>&1)
  [[ $? -eq 0 && $h == *"Documentation: $doc/docs/APP.md"* ]] &&
    ok "hopelab --help from the package finds the installed docs" || fail "hopelab --help: $h"
fi

echo "$(secs) s in all"
if ((fails)); then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all checks passed"
