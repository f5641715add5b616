#!/bin/sh
# The proxy's entrypoint: nginx.conf with its resolver set to the container's DNS server, then
# nginx. Docker's embedded DNS is 127.0.0.11; podman's is the network's gateway, which differs
# per network, so it is read from /etc/resolv.conf rather than written in the config.
set -eu
resolver=$(awk '/^nameserver/ { print $2; exit }' /etc/resolv.conf)
[ -n "$resolver" ] || { echo "no nameserver in /etc/resolv.conf" >&2; exit 1; }
case "$resolver" in *:*) resolver="[$resolver]" ;; esac
sed -E "s/^([[:space:]]*resolver )[^ ;]+/\1$resolver/" /etc/nginx/nginx.conf > /tmp/nginx.conf
exec nginx -c /tmp/nginx.conf -g 'daemon off;'
