#!/bin/bash
# Build the neco Debian package.
#
#   debian/build.sh VERSION BINDIR OUTDIR [KUBE IMAGES]
#
# VERSION  package version: a release YYYY.MM.DD-N or a development version
# BINDIR   the programs to ship in /usr/bin (every file in it); systemd units
#          are shipped for the daemons found there
# OUTDIR   where neco_VERSION_amd64.deb is written
# KUBE     the release's Kubernetes executable (make kube), named
#          kube-<Kubernetes version>: shipped in /usr/lib/neco, served to
#          the nodes as the sabakan asset of that name, and kubectl here
# IMAGES   the release's container images, an OCI layout (make images):
#          shipped in /usr/share/neco/registry, pushed into every boot
#          server's registry by neco-worker
#
# Environment: DEB_COMPRESS (dpkg-deb -Z: gzip, xz or none; default gzip, fast for the
# large pinned servers; Debian 12's lintian rejects zstd); NECO_CKE_TEMPLATE (a
# site's own cluster.yml template, shipped instead of etc/cke-template.yml).
# Run it through `make deb`, which builds every binary first.
set -euo pipefail

if [ $# -ne 3 ] && [ $# -ne 5 ]; then
	sed -n '2,20p' "$0" >&2
	exit 2
fi
version=$1 bindir=$2 outdir=$3 kube=${4:-} images=${5:-}
src=$(cd "$(dirname "$0")/.." && pwd)

if ! [[ $version =~ ^[0-9][A-Za-z0-9.+~]*(-[A-Za-z0-9.+~]+)?$ ]]; then
	echo "build.sh: $version is not a Debian version (want YYYY.MM.DD-N or e.g. 0.0.0~dev)" >&2
	exit 2
fi
if [ ! -d "$bindir" ]; then
	echo "build.sh: $bindir is not a directory" >&2
	exit 2
fi
if [ -n "$kube" ] && ! [[ -x $kube && $(basename "$kube") =~ ^kube-v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
	echo "build.sh: $kube is not an executable named kube-vX.Y.Z" >&2
	exit 2
fi
if [ -n "$images" ] && [ ! -f "$images/index.json" ]; then
	echo "build.sh: $images is not an OCI image layout (no index.json)" >&2
	exit 2
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/neco
install -d -m 755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
	"$root/usr/share/neco" "$root/usr/share/doc/neco" \
	"$root/usr/share/bash-completion/completions" "$root/usr/share/lintian/overrides"

# Programs. Go binaries are stripped of their symbol tables (debug info is
# of no use on a boot server and the pinned servers are large).
for f in "$bindir"/*; do
	[ -f "$f" ] && [ -x "$f" ] || continue
	install -m 755 "$f" "$root/usr/bin/"
	strip --strip-unneeded "$root/usr/bin/$(basename "$f")" 2>/dev/null || true
done

# Kubernetes: the executable in /usr/lib/neco, the sabakan asset of the
# same name a link to it, kubectl for the operators.
if [ -n "$kube" ]; then
	k=$(basename "$kube")
	install -d -m 755 "$root/usr/lib/neco" "$root/usr/share/neco/assets"
	install -m 755 "$kube" "$root/usr/lib/neco/$k"
	ln -s "../../../lib/neco/$k" "$root/usr/share/neco/assets/$k"
	ln -s "../lib/neco/$k" "$root/usr/bin/kubectl"
fi
# Container images: the OCI layout as it is (blobs are content-addressed).
if [ -n "$images" ]; then
	cp -R "$images" "$root/usr/share/neco/registry"
fi

# systemd units of the daemons present.
units=() restart=()
for u in neco-updater neco-worker sabakan neco-registry node-health-agent sabakan-state-setter cke; do
	if [ -x "$root/usr/bin/$u" ]; then
		install -m 644 "$src/debian/$u.service" "$root/lib/systemd/system/"
		units+=("$u.service")
		# sabakan and neco-registry are restarted by neco-worker's steps.
		case $u in neco-registry) ;; neco-* | node-health-agent | sabakan-state-setter | cke) restart+=("$u.service") ;; esac
	fi
done

# Default configuration and templates, and the Ignition templates.
if [ -d "$src/etc" ]; then
	cp -R "$src/etc/." "$root/usr/share/neco/"
fi
if [ -n "${NECO_CKE_TEMPLATE:-}" ]; then
	install -m 644 "$NECO_CKE_TEMPLATE" "$root/usr/share/neco/cke-template.yml"
fi
if [ -d "$src/ignitions" ]; then
	cp -R "$src/ignitions" "$root/usr/share/neco/ignitions"
fi

# Shell completion from the cobra commands.
for cmd in neco sabactl ckecli; do
	if [ -x "$root/usr/bin/$cmd" ]; then
		"$root/usr/bin/$cmd" completion bash > "$root/usr/share/bash-completion/completions/$cmd"
	fi
done

# Documentation: copyright and a Debian changelog.
install -m 644 "$src/debian/copyright" "$root/usr/share/doc/neco/copyright"
date=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || date +%s)}")
cat > "$stage/changelog" <<CHANGELOG
neco ($version) unstable; urgency=medium

  * neco release $version; see the release notes of the GitHub release.

 -- openneco maintainers <maintainers@openneco.invalid>  $date
CHANGELOG
changelog=changelog.Debian.gz
[[ $version == *-* ]] || changelog=changelog.gz # a native version
gzip -9n < "$stage/changelog" > "$root/usr/share/doc/neco/$changelog"
install -m 644 "$src/debian/lintian-overrides" "$root/usr/share/lintian/overrides/neco"

# Normalise permissions: what is not a program is 644, directories 755.
find "$root" -type d -exec chmod 755 {} +
find "$root" -type f ! -path "$root/usr/bin/*" ! -path "$root/usr/lib/neco/*" ! -path "$root/DEBIAN/*" -exec chmod 644 {} +

# Control files.
for s in postinst prerm postrm; do
	sed -e "s/@UNITS@/${units[*]:-}/" -e "s/@RESTART@/${restart[*]:-}/" "$src/debian/$s" > "$root/DEBIAN/$s"
	chmod 755 "$root/DEBIAN/$s"
done
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$size/" "$src/debian/control.in" > "$root/DEBIAN/control"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0r md5sum) > "$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

mkdir -p "$outdir"
out="$outdir/neco_${version}_amd64.deb"
fakeroot dpkg-deb --root-owner-group -Z"${DEB_COMPRESS:-gzip}" --build "$root" "$out" >/dev/null
echo "$out"
