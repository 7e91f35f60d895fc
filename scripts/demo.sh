#!/usr/bin/env bash
# Run the walkthrough on localhost: a blue myapp, a green (V2, HTML) myapp, and
# sillyproxy on :8080 (and TLS on :8443, with a self-signed certificate made
# for the demo) splitting 4:1 between them.  Ctrl-C stops all three.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
twistd="$root/.venv/bin/twistd"
proxy_port=${PROXY_PORT:-8080}
blue_port=${BLUE_PORT:-8081}
green_port=${GREEN_PORT:-8082}
admin_port=${ADMIN_PORT:-9901}
tls_port=${TLS_PORT:-8443}
logs=$(mktemp -d)
pids=()

stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped; logs are in $logs"
}
trap stop EXIT
trap 'exit 0' INT TERM

cd "$logs"
# A self-signed certificate for 127.0.0.1 and localhost, for the TLS listener.
"$root/.venv/bin/python" - <<'PY'
import datetime, ipaddress
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sillyproxy demo")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (
    x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
    .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    .sign(key, hashes.SHA256())
)
open("key.pem", "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
open("cert.pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
PY
"$twistd" --nodaemon --pidfile= --logfile=blue.log myapp --listen "tcp:$blue_port:interface=127.0.0.1" &
pids+=($!)
V2=1 "$twistd" --nodaemon --pidfile= --logfile=green.log myapp --listen "tcp:$green_port:interface=127.0.0.1" &
pids+=($!)
BLUE="http://127.0.0.1:$blue_port" GREEN="http://127.0.0.1:$green_port/" BLUE_WEIGHT=4 GREEN_WEIGHT=1 \
  SILLYPROXY_STICKY=cookie SILLYPROXY_STICKY_SECRET=demo-sticky-secret SILLYPROXY_OVERRIDE_SECRET=demo-override-secret \
  GREEN_ROLLBACK_ERROR_RATE=0.2 \
  SILLYPROXY_ADMIN_LISTEN="tcp:$admin_port:interface=127.0.0.1" \
  "$twistd" --nodaemon --pidfile= --logfile=- sillyproxy --listen "tcp:$proxy_port:interface=127.0.0.1" \
  --listen "ssl:$tls_port:interface=127.0.0.1:privateKey=$logs/key.pem:certKey=$logs/cert.pem" &
pids+=($!)

for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$proxy_port") 2>/dev/null; then break; fi
  sleep 0.1
done
cat <<MSG

sillyproxy is on http://127.0.0.1:$proxy_port, 4 parts blue (plain text) to 1 part green (HTML).
Try:
  curl http://127.0.0.1:$proxy_port/
  for i in \$(seq 10); do curl -s http://127.0.0.1:$proxy_port/; done                      # the 4:1 split
  for i in \$(seq 10); do curl -s -c $logs/jar -b $logs/jar http://127.0.0.1:$proxy_port/; done   # sticky: one colour
  curl -s -H "Sillyproxy-Color: \$(curl -s http://127.0.0.1:$admin_port/override/green)" http://127.0.0.1:$proxy_port/   # a tester's pass to green
TLS (self-signed for the demo): curl --cacert $logs/cert.pem https://127.0.0.1:$tls_port/
HTTP/2 (over TLS): curl --http2 -sv --cacert $logs/cert.pem https://127.0.0.1:$tls_port/ 2>&1 | grep -E '^< HTTP|^blue|^<h1' 
A WebSocket (myapp's /ws echoes with its colour): $root/.venv/bin/python -m websockets ws://127.0.0.1:$proxy_port/ws
The backends directly (Color unknown): curl http://127.0.0.1:$blue_port/  curl http://127.0.0.1:$green_port/
The live dashboard, in a browser: http://127.0.0.1:$admin_port/   (green is armed for rollback above 20 % errors)
Metrics and status: curl http://127.0.0.1:$admin_port/metrics  curl http://127.0.0.1:$admin_port/status
Press Ctrl-C to stop. Backend logs: $logs

MSG
wait
