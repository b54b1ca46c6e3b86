#!/bin/sh
# Records every byte the proxy sends to the server, then runs the server.
# Usage: tap.sh LOGFILE CMD ARGS...   (tests assert on LOGFILE)
log="$1"
shift
tee -a "$log" | "$@"
