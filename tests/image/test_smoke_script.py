import os
import subprocess


def test_smoke_test_says_what_it_needs_without_docker(tmp_path, repo):
    fake = tmp_path / "bin"
    fake.mkdir()
    docker = fake / "docker"
    # A docker CLI whose engine is not there, as on this machine and CI.
    docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    docker.chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", SMOKE_VOLUME=str(tmp_path / "vol"))
    env.pop("CIVITAI_API_TOKEN", None)
    result = subprocess.run(["bash", str(repo / "scripts" / "smoke-test.sh")], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "Docker engine" in result.stderr
    assert "CIVITAI_API_TOKEN" in result.stderr
    assert not (tmp_path / "vol").exists(), "nothing is created before the checks pass"
