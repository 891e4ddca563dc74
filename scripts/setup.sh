#!/usr/bin/env bash
# Prepares a machine for building and testing: the wasm32-wasip2 Rust target for guest plugins, and local
# PostgreSQL (127.0.0.1:5432, user postgres) and Redis (127.0.0.1:6379), started if installed but stopped and
# installed from Debian packages if missing (when running as root). Safe to run repeatedly.
set -euo pipefail

log() { printf '[setup] %s\n' "$*"; }

ensure_wasm_target() {
  if ! command -v rustup >/dev/null 2>&1; then
    log "rustup not found; assuming the toolchain already has wasm32-wasip2"
    return
  fi
  if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    log "installing the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
  fi
}

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing $*"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    log "cannot install $* (need root and apt-get); install it and re-run"
    return 1
  fi
}

postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

ensure_postgres() {
  if postgres_up; then return; fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt_install postgresql
  fi
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
  if [ -z "$version" ]; then
    log "no PostgreSQL cluster found"; return 1
  fi
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do postgres_up && break; sleep 1; done
  postgres_up || { log "PostgreSQL did not come up"; return 1; }
  # Tests connect as postgres without a password over TCP.
  if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
    log "PostgreSQL does not accept trust auth for postgres on 127.0.0.1; configure pg_hba.conf"; return 1
  fi
}

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
  if redis_up; then return; fi
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || redis-server --daemonize yes --port 6379 --save ""
  for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
  redis_up || { log "Redis did not come up"; return 1; }
}

ensure_wasm_target
ensure_postgres
ensure_redis
log "ready: wasm32-wasip2, PostgreSQL 127.0.0.1:5432, Redis 127.0.0.1:6379"
