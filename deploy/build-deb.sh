#!/bin/sh
# Build the Debian package of the bridge from a built binary, with dpkg-deb alone (no
# tool to install):
#   cargo build --release && sh deploy/build-deb.sh target/release/cauhop
# writes cauhop_VERSION_ARCH.deb in the working directory (or OUT_DIR). Install it with
#   dpkg -i cauhop_*.deb
# then create the first admin (`cauhop admin create-user ...`, as the message says) and
# open https://<this machine>/admin.
#
# What it holds: /usr/bin/cauhop; the systemd unit (enabled and started at install when
# systemd runs); /etc/cauhop/config.toml, a conffile (an upgrade keeps the IT officer's
# edits); a `cauhop` system user whose home /var/lib/cauhop holds the store, the join-link
# key and the certificate. An upgrade first backs up the SQLite store with the installed
# binary, into /var/lib/cauhop/backups, before the new binary migrates it at its start.
set -eu

BIN=${1:?usage: build-deb.sh PATH/TO/cauhop [VERSION]}
HERE=$(cd "$(dirname "$0")" && pwd)
VERSION=${2:-$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$HERE/../Cargo.toml" | head -n1)}
ARCH=$(dpkg --print-architecture)
OUT_DIR=${OUT_DIR:-.}
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
chmod 0755 "$STAGE"

install -D -m 0755 "$BIN" "$STAGE/usr/bin/cauhop"
# The unit as deploy/ has it, with the packaged binary's path.
install -d "$STAGE/lib/systemd/system"
sed 's#/usr/local/bin/cauhop#/usr/bin/cauhop#; /^# The bridge. Install:/,/^# then: systemctl/d' \
    "$HERE/cauhop.service" > "$STAGE/lib/systemd/system/cauhop.service"
# The config: every field with its default, the store and key under /var/lib/cauhop,
# HTTPS on 443 with a self-signed certificate made there on first start.
install -d "$STAGE/etc/cauhop"
sed -e 's#^database_url = .*#database_url = "sqlite:///var/lib/cauhop/cauhop.db"#' \
    -e 's#^join_key_file = .*#join_key_file = "/var/lib/cauhop/cauhop-join.key"#' \
    -e 's#^cert_file = .*#cert_file = "/var/lib/cauhop/cauhop-tls.crt"#' \
    -e 's#^key_file = .*#key_file = "/var/lib/cauhop/cauhop-tls.key"#' \
    -e 's#^dir = "records"#dir = "/var/lib/cauhop/records"#' \
    -e 's|^# listen = "0.0.0.0:443"|listen = "0.0.0.0:443"|' \
    "$HERE/config.example.toml" > "$STAGE/etc/cauhop/config.toml"
chmod 0640 "$STAGE/etc/cauhop/config.toml"
install -D -m 0644 "$HERE/README.md" "$STAGE/usr/share/doc/cauhop/README.deploy.md"

install -d "$STAGE/DEBIAN"
SIZE=$(du -sk "$STAGE" | cut -f1)
cat > "$STAGE/DEBIAN/control" <<EOF
Package: cauhop
Version: $VERSION
Architecture: $ARCH
Maintainer: cauhop <cauhop@localhost>
Installed-Size: $SIZE
Depends: libc6 (>= 2.31), passwd
Section: net
Priority: optional
Homepage: https://github.com/cauhop/cauhop
Description: video-conference bridge for provincial meetings (cầu họp)
 One binary: the selective forwarding unit (WebRTC, one UDP port), the signaling and
 admin server, the web client and the scheduler, for a province's meetings with its
 districts and communes, on weak links too.
EOF
echo /etc/cauhop/config.toml > "$STAGE/DEBIAN/conffiles"

cat > "$STAGE/DEBIAN/preinst" <<'EOF'
#!/bin/sh
# Before an upgrade: a copy of the store, taken by the binary still installed, before the
# new one migrates it.
set -e
if [ "$1" = upgrade ] && [ -x /usr/bin/cauhop ] && [ -f /var/lib/cauhop/cauhop.db ]; then
    mkdir -p /var/lib/cauhop/backups
    dest="/var/lib/cauhop/backups/cauhop-before-$2-$(date +%Y%m%d-%H%M%S).db"
    if /usr/bin/cauhop backup --database-url sqlite:///var/lib/cauhop/cauhop.db "$dest"; then
        chown cauhop:cauhop "$dest" 2>/dev/null || true
        echo "cauhop: store backed up to $dest"
    else
        echo "cauhop: the store could not be backed up; stopping the upgrade" >&2
        exit 1
    fi
fi
exit 0
EOF

cat > "$STAGE/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd cauhop >/dev/null; then
        useradd --system --home-dir /var/lib/cauhop --no-create-home \
            --shell /usr/sbin/nologin --user-group cauhop
    fi
    install -d -m 0700 -o cauhop -g cauhop /var/lib/cauhop
    chgrp cauhop /etc/cauhop/config.toml
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable cauhop.service >/dev/null
        systemctl restart cauhop.service
    fi
    if [ -z "$2" ]; then
        echo "cauhop installed. Create the first admin:"
        echo "  sudo -u cauhop CAUHOP_CONFIG=/etc/cauhop/config.toml cauhop admin create-user --username NAME --name \"...\""
        echo "then open https://$(hostname -f 2>/dev/null || hostname)/admin (config: /etc/cauhop/config.toml)."
    fi
fi
exit 0
EOF

cat > "$STAGE/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop cauhop.service || true
fi
exit 0
EOF

cat > "$STAGE/DEBIAN/postrm" <<'EOF'
#!/bin/sh
# The store and its backups stay after a removal, and after a purge too: they are the
# province's meetings and attendance, not the package's to delete.
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
exit 0
EOF
chmod 0755 "$STAGE/DEBIAN/preinst" "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/prerm" "$STAGE/DEBIAN/postrm"

OUT="$OUT_DIR/cauhop_${VERSION}_${ARCH}.deb"
# Light compression: a debug binary for the tests is large; a release one is small.
dpkg-deb --root-owner-group -Zgzip -z3 --build "$STAGE" "$OUT" >/dev/null
echo "$OUT"
