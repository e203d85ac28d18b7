#!/usr/bin/env bash
# Install the Debian packages that peer tests need, when we can (root with apt-get).
# Without root the peer tests are skipped with a reason (and fail under CI=true).
set -u
need=()
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)  # test certificates (SMTP over TLS, mail intake)
if [ ${#need[@]} -eq 0 ]; then
  echo "peers: all present"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "peers: missing ${need[*]} (not root or no apt-get); their tests will be skipped"
  exit 0
fi
echo "peers: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
