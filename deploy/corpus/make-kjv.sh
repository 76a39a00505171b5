#!/usr/bin/env bash
# Rebuilds kjv.txt.gz from Debian's bible-kjv packages: one verse per line, references stripped.
# Needs: apt-get install bible-kjv (which pulls in bible-kjv-text).
set -euo pipefail
cd "$(dirname "$0")"
bible -f "Gen1:1-Rev22:21" | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' | gzip -9 -n > kjv.txt.gz
echo "$(zcat kjv.txt.gz | wc -l) verses, $(stat -c %s kjv.txt.gz) bytes compressed"
