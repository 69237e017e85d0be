#!/bin/sh
# tinygrad's CPU device compiles kernels with the `clang` binary (or $CC).
# Install it when we can (Linux, as root, with apt-get); otherwise say exactly what to run.
if [ -n "${CC:-}" ] && command -v "$CC" >/dev/null 2>&1; then exit 0; fi
if command -v clang >/dev/null 2>&1; then exit 0; fi
case "$(uname -s)" in
  Linux)
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      echo "Installing clang (tinygrad's CPU device needs it)..."
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null && exit 0
    fi
    if command -v apt-get >/dev/null 2>&1; then
      echo "error: tinygrad's CPU device needs clang. Run: sudo apt-get install -y clang" >&2
    elif command -v dnf >/dev/null 2>&1; then
      echo "error: tinygrad's CPU device needs clang. Run: sudo dnf install -y clang" >&2
    else
      echo "error: tinygrad's CPU device needs clang. Install it with your package manager (e.g. 'clang')." >&2
    fi
    exit 1 ;;
  Darwin)
    echo "error: tinygrad's CPU device needs clang. Run: xcode-select --install" >&2
    exit 1 ;;
esac
echo "error: tinygrad's CPU device needs clang on PATH (or set CC)." >&2
exit 1
