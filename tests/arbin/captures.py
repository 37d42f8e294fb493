"""The real CTI wire captures (pycti's example messages), shared read-only beside the clone.

They live in ``shared/data/arbin/captures`` next to the repository root (CI checks ``shared/``
out beside the clone). A missing directory is a failure, never a skip: every codec guarantee
that rests on real frames would silently stop being checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

REPO_ROOT = Path(__file__).resolve().parents[2]
CAPTURES = REPO_ROOT.parent / "shared" / "data" / "arbin" / "captures"


def captures_dir() -> Path:
    """The captures directory.

    :raises FileNotFoundError: it is missing (the test module then fails to import).
    """
    if not CAPTURES.is_dir() or not any(CAPTURES.glob("*.bin")):
        raise FileNotFoundError(f"the Arbin CTI captures are missing: expected *.bin files in "
                                f"{CAPTURES} (shared/ beside the repository root)")
    return CAPTURES


def capture(name: str) -> bytes:
    return (captures_dir() / f"{name}.bin").read_bytes()


def capture_json(name: str) -> Dict[str, Any]:
    return json.loads((captures_dir() / f"{name}.json").read_text())


def all_captures() -> Dict[str, bytes]:
    """Every capture by name: ``client_*`` are requests, ``server_*`` feedbacks."""
    return {path.stem: path.read_bytes() for path in sorted(captures_dir().glob("*.bin"))}


def feedback_captures() -> List[bytes]:
    return [raw for name, raw in all_captures().items() if name.startswith("server_")]


def request_captures() -> List[bytes]:
    return [raw for name, raw in all_captures().items() if name.startswith("client_")]
