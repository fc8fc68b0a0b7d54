#!/usr/bin/env bash
# Synthesises a spoken-digit set in the Free Spoken Digit Dataset's layout,
# for machines without ../shared/data/fsdd: Debian's espeak-ng speaks "zero"
# to "nine" in six voices (accents and variants), each clip at its own
# speed, pitch and word gap (seeded, so the set is the same on every run),
# resampled to 8 kHz 16-bit mono by sox. Files {digit}_{voice}_{index}.wav,
# so the usual split (index 0-4 is the test set) applies.
#   scripts/make-spoken-digits.sh [DIR] [PER_DIGIT_AND_VOICE]  (default
#   data/spoken-digits, 50: 3,000 clips)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/data/spoken-digits}
count=${2:-50}
for tool in espeak-ng sox; do
  command -v "$tool" > /dev/null || {
    echo "make-spoken-digits: needs $tool (apt-get install espeak-ng sox)" >&2
    exit 1
  }
done
words=(zero one two three four five six seven eight nine)
voices=(en-us+m1 en-gb+f2 en-gb-scotland+m3 en-029+f4 en-gb-x-rp+m5 en-us+f1)
names=(adam beth carl dora emil fern)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/clips"
state=12345 # a small LCG: the same choices everywhere
next() { state=$(((state * 1103515245 + 12345) % 2147483648)); echo $((state / 65536)); }
for v in "${!voices[@]}"; do
  for d in "${!words[@]}"; do
    for ((i = 0; i < count; i++)); do
      speed=$((130 + $(next) % 70)) pitch=$((25 + $(next) % 50)) amp=$((80 + $(next) % 80))
      name="$tmp/clips/${d}_${names[$v]}_${i}.wav"
      espeak-ng -v "${voices[$v]}" -s "$speed" -p "$pitch" -a "$amp" -w "$tmp/raw.wav" "${words[$d]}"
      sox -D "$tmp/raw.wav" -r 8000 -b 16 -c 1 "$name"
    done
  done
done
mkdir -p "$(dirname "$out")"
rm -rf "$out"
mv "$tmp/clips" "$out"
echo "make-spoken-digits: $(ls "$out" | wc -l) clips in $out"
