#!/bin/sh
# Makes the example fleet's PKI: a fleet CA and one client certificate and key per device, all
# EC P-256, signed with SHA-256, valid for 100 years. Run from this directory:
#   sh make.sh bench-01 bench-02 bench-03
# Each run makes new random keys (the committed files are one such run).
set -eu
[ -f fleet-ca.key ] || openssl ecparam -name prime256v1 -genkey -noout -out fleet-ca.key
[ -f fleet-ca.crt ] || openssl req -x509 -new -key fleet-ca.key -sha256 -days 36500 \
    -subj "/O=espfleet example/CN=espfleet example fleet CA" -out fleet-ca.crt
for dev in "$@"; do
    openssl ecparam -name prime256v1 -genkey -noout -out "$dev.key"
    openssl req -new -key "$dev.key" -subj "/O=espfleet example/CN=$dev" -out "$dev.csr"
    openssl x509 -req -in "$dev.csr" -CA fleet-ca.crt -CAkey fleet-ca.key -set_serial "0x$(openssl rand -hex 8)" \
        -sha256 -days 36500 -out "$dev.crt" 2>/dev/null
    rm "$dev.csr"
done
