#!/bin/sh
#
# keepalived notify script for primary-backup firewall pairs running ctsyncd
# (or conntrackd: the commands are conntrackd's, so the same script drives
# either daemon). keepalived calls it on each transition of the sync group:
#
#   notify_master "/etc/ctsyncd/primary-backup.sh primary"
#   notify_backup "/etc/ctsyncd/primary-backup.sh backup"
#   notify_fault  "/etc/ctsyncd/primary-backup.sh fault"
#
# Settings come from the environment, falling back to the defaults below, so
# one copy serves both daemons:
#   CONNTRACKD_BIN     daemon binary          (default: ctsyncd from PATH;
#                      a checkout: /opt/ctsyncd/bin/ctsyncd)
#   CONNTRACKD_CONFIG  its configuration      (default /etc/ctsyncd/conntrackd.yaml)
#   CONNTRACKD_LOCK    conntrackd's lock file (default /var/lock/conntrack.lock)
# For conntrackd: CONNTRACKD_BIN=/usr/sbin/conntrackd
#                 CONNTRACKD_CONFIG=/etc/conntrackd/conntrackd.conf
#
# Every failed step is logged to syslog (logger) and to stderr. Unlike the
# script shipped with conntrackd, a failed commit stops the primary sequence
# with exit status 1: the flush that would follow it throws away the external
# cache, the only copy of the peer's connections, which an operator can still
# commit by hand (`ctsyncd -C CONFIG -c`) once the cause is fixed.
# See README.md in this directory for the order of events and why.

CONNTRACKD_BIN=${CONNTRACKD_BIN:-ctsyncd}
CONNTRACKD_CONFIG=${CONNTRACKD_CONFIG:-/etc/ctsyncd/conntrackd.yaml}
CONNTRACKD_LOCK=${CONNTRACKD_LOCK:-/var/lock/conntrack.lock}
TAG=primary-backup

log() {
    logger -t "$TAG" -- "$*" 2>/dev/null
    echo "$TAG: $*" >&2
}

# step DESCRIPTION FLAG...: runs the daemon's client command, logs a failure
# together with the command's own message, and returns its status.
step() {
    what=$1
    shift
    out=$("$CONNTRACKD_BIN" -C "$CONNTRACKD_CONFIG" "$@" 2>&1)
    rc=$?
    if [ "$rc" -ne 0 ]; then
        log "ERROR: $what failed ($CONNTRACKD_BIN -C $CONNTRACKD_CONFIG $* exited $rc): $out"
    fi
    return "$rc"
}

status=0
case "$1" in
  primary)
    # 1. Commit the external cache (the peer's connections) into the kernel
    #    table, so that the connections this node now forwards find their
    #    conntrack entries and NAT bindings. Nothing else makes sense if this
    #    failed: stop here.
    if ! step "commit of the external cache into the kernel" -c; then
        log "ERROR: primary: connections of the former primary are not in this kernel; not flushing the caches"
        exit 1
    fi
    # 2. Flush the internal and external caches: what was the peer's state
    #    now lives in the kernel, as this node's own.
    step "flush of the caches" -f || status=1
    # 3. Rebuild the internal cache from the kernel table, the committed
    #    connections included.
    step "resync of the internal cache from the kernel" -R || status=1
    # 4. Send the whole internal cache to the backups, which start out empty
    #    after a failover.
    step "bulk send to the backups" -B || status=1
    ;;
  backup)
    # Is the daemon running? Its stats answer if it is.
    if ! "$CONNTRACKD_BIN" -C "$CONNTRACKD_CONFIG" -s >/dev/null 2>&1; then
        # conntrackd leaves a lock file behind when it dies.
        if [ -f "$CONNTRACKD_LOCK" ]; then
            log "WARNING: the daemon was not stopped cleanly (stale $CONNTRACKD_LOCK); removing the lock"
            rm -f "$CONNTRACKD_LOCK"
        fi
        if ! step "start of the daemon" -d; then
            exit 1
        fi
    fi
    # Shorten the kernel timeouts of the connections this node forwarded as
    # primary: the new primary owns them now, and stale entries here would
    # shadow the state it sends after a later failback.
    step "purge timeout of the kernel entries" -t || status=1
    # Ask the primary for a full resync so the external cache is complete.
    step "resync request to the primary" -n || status=1
    ;;
  fault)
    # Same as backup: this node forwards nothing until it recovers.
    step "purge timeout of the kernel entries" -t || status=1
    ;;
  *)
    log "ERROR: unknown state transition '$1'"
    echo "Usage: $0 {primary|backup|fault}" >&2
    exit 2
    ;;
esac

exit "$status"
