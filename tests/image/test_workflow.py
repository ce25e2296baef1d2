import re

import yaml


def load(repo):
    return yaml.safe_load((repo / ".github" / "workflows" / "image.yml").read_text())


def test_canary_by_default_stable_only_on_promotion(repo):
    workflow = load(repo)
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["workflow_dispatch"]["inputs"]["promote"]["default"] is False
    script = next(s["run"] for s in workflow["jobs"]["build"]["steps"] if s.get("id") == "meta")
    assert re.search(r'tags="\$image:canary', script)
    assert re.search(r'if \[\[ "\$PROMOTE" == "true" \]\]; then tags="\$tags,\$image:stable"; fi', script)


def test_pushes_to_ghcr_with_a_build_cache_and_no_extra_secrets(repo):
    workflow = load(repo)
    assert workflow["permissions"] == {"contents": "read", "packages": "write"}
    build = workflow["jobs"]["build"]
    assert build["needs"] == "check"
    push = next(s for s in build["steps"] if str(s.get("uses", "")).startswith("docker/build-push-action"))
    assert push["with"]["push"] is True
    assert "cache-from" in push["with"] and "cache-to" in push["with"]
    text = (repo / ".github" / "workflows" / "image.yml").read_text()
    assert set(re.findall(r"secrets\.(\w+)", text)) == {"GITHUB_TOKEN"}
    assert "ghcr.io" in text


def test_check_job_runs_the_local_checks(repo):
    steps = load(repo)["jobs"]["check"]["steps"]
    assert any("scripts/check-image.sh" in s.get("run", "") for s in steps)
