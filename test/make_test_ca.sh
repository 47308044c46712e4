#!/bin/sh
# make_test_ca.sh DIR -- throwaway TLS material for the tests (EC P-256, 7 days).
#
# Creates in DIR:
#   ca.crt, ca.key          a test CA
#   server.crt, server.key  signed by it, CN=localhost,
#                           subjectAltName DNS:localhost, IP:127.0.0.1
#   other-ca.crt            a second, unrelated CA (for "wrong CA" tests)
#
# Idempotent: if the set already exists, server.crt verifies against ca.crt and
# stays valid for at least another day, nothing is touched. Otherwise the whole
# set is made anew in a temporary directory inside DIR and moved into place.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
mkdir -p "$dir"

days=7
files="ca.crt ca.key server.crt server.key other-ca.crt"

up_to_date() {
    for f in $files; do
        [ -s "$dir/$f" ] || return 1
    done
    openssl x509 -in "$dir/server.crt" -noout -checkend 86400 >/dev/null 2>&1 &&
        openssl x509 -in "$dir/ca.crt" -noout -checkend 86400 >/dev/null 2>&1 &&
        openssl verify -CAfile "$dir/ca.crt" "$dir/server.crt" >/dev/null 2>&1
}

if up_to_date; then
    exit 0
fi

umask 077
tmp=$(mktemp -d "$dir/.make_test_ca.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

newkey() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# make_ca NAME CN: a self-signed CA certificate NAME.crt with key NAME.key
make_ca() {
    newkey "$tmp/$1.key"
    openssl req -new -x509 -batch -key "$tmp/$1.key" -sha256 -days "$days" \
        -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$tmp/$1.crt"
}

make_ca ca "shopping_upload test CA"
make_ca other-ca "shopping_upload unrelated CA"

newkey "$tmp/server.key"
openssl req -new -batch -key "$tmp/server.key" -subj "/CN=localhost" \
    -out "$tmp/server.csr"
cat >"$tmp/server.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -sha256 -days "$days" \
    -extfile "$tmp/server.ext" -out "$tmp/server.crt" 2>/dev/null

openssl verify -CAfile "$tmp/ca.crt" "$tmp/server.crt" >/dev/null

# Certificates are public; keys stay owner-only.
chmod 644 "$tmp/ca.crt" "$tmp/server.crt" "$tmp/other-ca.crt"
chmod 600 "$tmp/ca.key" "$tmp/server.key"
for f in $files; do
    mv -f "$tmp/$f" "$dir/$f"
done
