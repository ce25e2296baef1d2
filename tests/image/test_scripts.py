import os


def test_every_script_is_strict_and_executable(repo):
    scripts = sorted((repo / "builder").glob("*.sh")) + sorted((repo / "scripts").glob("*.sh"))
    assert scripts
    for script in scripts:
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), script
        assert "\nset -euo pipefail\n" in text, script
        assert os.access(script, os.X_OK), script
