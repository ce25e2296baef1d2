import re

from conftest import dockerfile_instructions


def documented(repo):
    names = {}
    comment = False
    for line in (repo / ".env.example").read_text().splitlines():
        if line.startswith("#"):
            comment = True
            continue
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line)
        if match:
            assert comment, f"{match.group(1)} has no comment above it"
            assert match.group(1) not in names, f"{match.group(1)} documented twice"
            names[match.group(1)] = match.group(2)
        comment = False if not line else comment
    return names


def test_every_variable_the_image_uses_is_documented(repo):
    names = documented(repo)
    used = set()
    for script in list((repo / "scripts").glob("*.sh")) + list((repo / "builder").glob("*.sh")):
        used |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+):[-?=]", script.read_text()))
    for keyword, rest in dockerfile_instructions((repo / "Dockerfile").read_text()):
        if keyword == "ARG":
            used.add(rest.partition("=")[0])
    for source in (repo / "Sources").rglob("*.swift"):
        used |= set(re.findall(r'env\["([A-Z][A-Z0-9_]+)"\]', source.read_text()))
    # Test tooling knobs (interpreter, binary under test) are not configuration of the system.
    ignored = {"PATH", "HOME", "SECONDS", "PYTHON", "SWARMCTL_BIN"} | {n for n in used if n.startswith("SMOKE_")} | {"SWARMCTL"}
    missing = sorted(used - set(names) - ignored)
    assert not missing, f"not in .env.example: {missing}"


def test_defaults_match_the_image(repo, build_args):
    names = documented(repo)
    for arg, default in build_args.items():
        assert names[arg] == default, f"{arg}: .env.example says {names[arg]!r}, Dockerfile {default!r}"
    assert names["VOLUME_PATH"] == "/workspace"
    assert names["WORKER_HEALTH_PORT"] == "18080"


def test_no_secret_values(repo):
    for name, value in documented(repo).items():
        if re.search(r"KEY|TOKEN|SECRET|PASSWORD|AUTHORIZATION", name) and not name.endswith("_KEYS_FILE"):
            assert value == "", f"{name} must be empty in the example"
