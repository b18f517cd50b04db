#!/bin/sh
# Makes the PKI the identity fixtures use (OpenSSL 3, Debian `openssl`). Run from this directory:
#   sh make.sh
# fleet-ca.{crt,key}: a P-256 fleet CA (CA:TRUE, 36500 days); other.key: an unrelated P-256 key;
# leaf.{crt,key}: a certificate the CA signed that is not a CA (CA:FALSE). Public test keys.
set -eu
openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout fleet-ca.key \
    -out fleet-ca.crt -days 36500 -subj "/O=espfleet tests/CN=identity fixtures CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout leaf.key \
    -subj "/CN=not a CA" -out leaf.csr
printf 'basicConstraints=critical,CA:FALSE\n' > leaf.ext
openssl x509 -req -in leaf.csr -CA fleet-ca.crt -CAkey fleet-ca.key -set_serial 0x1001 \
    -days 36500 -extfile leaf.ext -out leaf.crt
rm leaf.csr leaf.ext
