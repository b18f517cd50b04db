# Sourced by tests/checks/*.sh: run the real `udevadm test` against a mocked device, without
# side effects, and read its result. See docs/testing-hotplug.md §5.2.
#
#   run_udevadm_test RULES_DIR DEVICE.umockdev SYSPATH   # prints udevadm's output
#   udev_has_link OUTPUT /dev/LINK                       # true if DEVLINKS holds LINK
#   udev_rule_errors OUTPUT                              # prints rule parse errors, true if any
#
# `udevadm test` is not a dry run (it chmods nodes, creates /dev links, writes /run/udev), so it
# runs in a private mount namespace with a throwaway /run and /dev. Rules are read from their
# usual places (/etc/udev/rules.d, /run/udev/rules.d, /usr/lib/udev/rules.d, /lib/udev/rules.d)
# plus the *.rules of RULES_DIR, copied to /run/udev/rules.d (give an empty directory to test
# only what is installed). An `espfleet` group is added to the namespace's /etc/group when the
# system has none. Needs root (unshare), udev and umockdev.

run_udevadm_test() { # RULES_DIR DEVICE.umockdev SYSPATH
  local rules dev old rc=0
  rules=$(realpath "$1")
  dev=$(realpath "$2")
  old=$(mktemp -d /tmp/espfleet-olddev.XXXXXX)
  # shellcheck disable=SC2016
  unshare --mount --propagation private bash -euo pipefail -c '
    RULES=$1 DEV=$2 SYSPATH=$3 old=$4
    mount -t tmpfs tmpfs /run
    if ! getent group espfleet >/dev/null; then
      { cat /etc/group; echo "espfleet:x:64999:"; } > /run/group
      mount --bind /run/group /etc/group
    fi
    mkdir -p /run/udev/rules.d
    for f in "$RULES"/*.rules; do [ -e "$f" ] && cp "$f" /run/udev/rules.d/; done
    mount --rbind /dev "$old"
    mount -t tmpfs -o mode=755 tmpfs /dev
    for n in null zero full random urandom tty; do touch /dev/$n; mount --bind "$old/$n" /dev/$n; done
    mkdir /dev/pts; mount --rbind "$old/pts" /dev/pts; ln -s pts/ptmx /dev/ptmx
    umockdev-run -d "$DEV" -- udevadm test --action=add "$SYSPATH"
  ' _ "$rules" "$dev" "$3" "$old" 2>&1 || rc=$?
  rmdir "$old" 2>/dev/null || true
  return "$rc"
}

# DEVLINKS is a space-separated list whose order changes from run to run: udev keeps a device's
# links in a hash set with a per-process random seed. Compare whole words, never positions.
udev_has_link() { # OUTPUT LINK
  grep '^DEVLINKS=' <<<"$1" | cut -d= -f2- | tr ' ' '\n' | grep -qxF -- "$2"
}

# Rule parse errors are printed as lines starting with the rules file's path; udevadm still
# exits 0, so they have to be looked for.
udev_rule_errors() { # OUTPUT
  grep -E '^(/run/udev/rules\.d|/etc/udev/rules\.d|/usr/lib/udev/rules\.d|/lib/udev/rules\.d)/[^ :]+:[0-9]+' <<<"$1"
}
