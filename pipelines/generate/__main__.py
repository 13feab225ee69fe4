"""`python -m pipelines.generate --out DIR ...` (same options as `karte generate`)."""

import sys

from pipelines.generate.cli import main

sys.exit(main(["generate", *sys.argv[1:]]))
