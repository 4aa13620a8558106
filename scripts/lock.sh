#!/usr/bin/env bash
# Re-lock poetry.lock where Poetry cannot use the package index's JSON API.
#
# Usage: PYPI_SIMPLE_URL=https://pypi.org/simple scripts/lock.sh
#
# Poetry is pointed at the index's simple API through a temporary primary source; after
# `poetry lock` the source is removed again from pyproject.toml and from the lock, and the
# lock's content hash is recomputed by Poetry's own Locker, so the committed lock is an
# ordinary one that `poetry install` uses anywhere. Then the hashed requirement files that
# `make install` feeds to pip are exported from it. No index URL is ever committed.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PYPI_SIMPLE_URL:?set PYPI_SIMPLE_URL to the package index simple API (e.g. https://pypi.org/simple)}"
POETRY=${POETRY:-poetry}

cp pyproject.toml pyproject.toml.bak
trap 'mv -f pyproject.toml.bak pyproject.toml' EXIT
"$POETRY" source add --priority=primary locksource "$PYPI_SIMPLE_URL" >/dev/null
"$POETRY" lock
mv -f pyproject.toml.bak pyproject.toml
trap - EXIT

"$(dirname "$(command -v "$POETRY")")/python" - <<'PY'
import re
from pathlib import Path

from poetry.factory import Factory

lock = Path("poetry.lock")
text = lock.read_text()
# Drop every [package.source] table the temporary source left behind.
text = re.sub(r"\n\[package\.source\]\n(?:[a-z_]+ = .*\n)+", "\n", text)
lock.write_text(text)
poetry = Factory().create_poetry(Path.cwd())
locker = poetry.locker
data = locker.lock_data
data["metadata"]["content-hash"] = locker._get_content_hash()
lock.write_text(text.replace(
    re.search(r'content-hash = "[0-9a-f]+"', text).group(0),
    f'content-hash = "{data["metadata"]["content-hash"]}"',
))
PY
"$POETRY" check --lock
mkdir -p requirements
"$POETRY" export --only main -f requirements.txt -o requirements/main.txt
"$POETRY" export --with dev -f requirements.txt -o requirements/dev.txt
"$POETRY" export --only gpu -f requirements.txt -o requirements/gpu.txt
"$POETRY" export --only spark -f requirements.txt -o requirements/spark.txt
echo "locked: poetry.lock, requirements/{main,dev,gpu,spark}.txt"
