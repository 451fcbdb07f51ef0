#!/usr/bin/env bash
# Installs what cxpulse runs beside Python, from Debian's packages, when it is missing:
# a JDK 17 and Maven (to fetch and run Apache Kafka), Prometheus and Alertmanager (with
# promtool and amtool). Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing from Debian: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# --no-install-recommends keeps the Prometheus packages from pulling exporters we don't run.
$sudo apt-get install -y -q --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u)
# Debian's packages start system services where an init system exists; ours run on their
# own ports and data folders, so stop the packaged ones if they came up.
for svc in prometheus prometheus-alertmanager; do
  if command -v service >/dev/null && service "$svc" status >/dev/null 2>&1; then
    $sudo service "$svc" stop || true
  fi
done
