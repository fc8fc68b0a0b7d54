#!/usr/bin/env bash
# Writes the WAVE fixtures of test/unit/WavTest.cpp with sox (Debian's sox):
# one 50 ms 440 Hz tone in every encoding the reader takes. -D: no dither,
# so the files are the same on every run. Usage: scripts/make-wav-fixtures.sh
set -euo pipefail
cd "$(dirname "$0")/../test/unit/wav"
sox -D -n -r 8000 -b 64 -e floating-point tone-f64.wav synth 0.05 sine 440 vol 0.5
sox -D tone-f64.wav -b 8 -e unsigned-integer tone-u8.wav
sox -D tone-f64.wav -b 16 -e signed-integer tone-s16.wav      # plain PCM
sox -D tone-f64.wav -b 24 -e signed-integer tone-s24.wav      # WAVE_FORMAT_EXTENSIBLE
sox -D tone-f64.wav -b 32 -e signed-integer tone-s32.wav      # WAVE_FORMAT_EXTENSIBLE
sox -D tone-f64.wav -b 32 -e floating-point tone-f32.wav      # with a fact chunk
# Two channels (the tone, half of it) and three (the tone, half, minus it).
sox -D -M tone-f64.wav "|sox -D tone-f64.wav -p vol 0.5" -b 16 -e signed-integer stereo-s16.wav
sox -D -M tone-f64.wav "|sox -D tone-f64.wav -p vol 0.5" "|sox -D tone-f64.wav -p vol -1" \
  -b 24 -e signed-integer three-s24.wav
sox -D tone-f64.wav -r 16000 -b 16 tone-16k.wav                # another sample rate
# 44.1 kHz stereo (440 Hz left, 3 kHz right), for resampling to 8 kHz.
sox -D -n -r 44100 -b 16 -c 2 tone-44k-stereo.wav synth 0.05 sine 440 sine 3000 vol 0.5
# torchaudio's resampling of the two (needs PyTorch): resampled.safetensors
/usr/bin/python3 make_resampled.py
