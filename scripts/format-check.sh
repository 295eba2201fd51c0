#!/usr/bin/env bash
# The code-style check (issue 16): every C# file as .editorconfig says. Whitespace needs no build (--folder); code
# style (the rules at severity warning in .editorconfig) loads the solution. Exits non-zero, naming each file and
# line, when a file differs; `dotnet format whitespace --folder` and `dotnet format style Flint.sln` fix them.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
dotnet format whitespace --folder --verify-no-changes -v q || rc=1
dotnet format style Flint.sln --verify-no-changes --severity warn -v q || rc=1
if [ $rc -ne 0 ]; then echo "format-check: files differ from .editorconfig (see above)"; fi
exit $rc
