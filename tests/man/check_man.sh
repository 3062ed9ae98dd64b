#!/bin/sh
# check_man.sh PAGE... — each man page renders without a single warning.
#
# Two passes, because neither sees everything: man-db's rendering at 80
# columns (what a reader gets: lines that cannot be broken or adjusted),
# and groff itself with every warning on (undefined macros, strings and
# escapes, which man-db's pipeline does not report). Any output on stderr
# fails the page, naming it.
set -u
[ "$#" -gt 0 ] || { echo "usage: check_man.sh PAGE..." >&2; exit 2; }
status=0
for page in "$@"; do
    if [ ! -r "$page" ]; then
        echo "$page: cannot read" >&2
        status=1
        continue
    fi
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings=all -l "$page" 2>&1 >/dev/null)
    groffOut=$(groff -man -ww -z "$page" 2>&1)
    [ -n "$groffOut" ] && out="${out:+$out
}$groffOut"
    if [ -n "$out" ]; then
        printf '%s: warnings:\n%s\n' "$page" "$out" >&2
        status=1
    else
        echo "$page: ok"
    fi
done
exit $status
