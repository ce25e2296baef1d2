import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def dockerfile_instructions(text):
    """(instruction, arguments) pairs with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        current += (" " if current else "") + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            keyword, _, rest = current.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            current = ""
    return instructions


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def dockerfile():
    return dockerfile_instructions((REPO / "Dockerfile").read_text())


@pytest.fixture(scope="session")
def build_args(dockerfile):
    args = {}
    for keyword, rest in dockerfile:
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args


@pytest.fixture(scope="session")
def models():
    return json.loads((REPO / "builder" / "models.json").read_text())


@pytest.fixture(scope="session")
def presets():
    return json.loads((REPO / "builder" / "presets.json").read_text())


def env_assignments(rest):
    """NAME=value pairs of an ENV or LABEL instruction (quoted values allowed)."""
    return dict(re.findall(r'([A-Za-z0-9_.\-]+)=("[^"]*"|\S*)', rest))
