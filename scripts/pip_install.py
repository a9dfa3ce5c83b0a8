"""`make install`'s pip, told in a line per step: pip's own output is a screenful per package,
and --quiet is a minute of silence. Runs `python -m pip install ARGS` with the interpreter that
runs it; on a terminal the current package updates in place. On failure, pip's whole output
is shown and its exit status kept."""

from __future__ import annotations

import subprocess
import sys


def main(args: list[str]) -> int:
    live = sys.stdout.isatty()
    command = [sys.executable, "-m", "pip", "install", "--progress-bar", "off", *args]
    pip = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, collected = [], 0
    for line in pip.stdout:
        lines.append(line)
        if line.startswith("Collecting "):
            collected += 1
            package = line.split()[1]
            if live:
                print(f"\r\033[K  fetching {package} ({collected})", end="", flush=True)
        elif line.startswith("Installing collected packages") and live:
            print(f"\r\033[K  installing {collected} packages…", end="", flush=True)
    status = pip.wait()
    if live:
        print("\r\033[K", end="")
    if status:
        sys.stdout.write("".join(lines))
        return status
    installed = next((line for line in lines if line.startswith("Successfully installed")), "")
    count = len(installed.split()) - 2 if installed else 0
    print(f"  {count} packages installed" if count else "  everything was installed already")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
