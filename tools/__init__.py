"""Developer tools, not shipped in the wheel: the local Kafka broker, the venue simulator, the capture
server tests replay through, the process supervisor, the demo, benchmarks and code generators.

They run from a checkout (`python -m tools.<name>` from its root, or through the Makefile).
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
