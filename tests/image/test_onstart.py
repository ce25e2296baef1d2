"""scripts/onstart.sh against a fake swarm-worker in a temporary VOLUME_PATH."""

import os
import signal
import subprocess
import textwrap
import time

import pytest

FAKE_WORKER = textwrap.dedent("""\
    #!/usr/bin/env bash
    # Fake swarm-worker: counts its starts, then does what $VOLUME_PATH/mode says.
    set -euo pipefail
    trap 'echo "worker got SIGTERM"; exit 0' TERM
    echo "$$" >> "$VOLUME_PATH/worker.pids"
    echo "fake worker start args=[$*] TOKEN=${FAKE_TOKEN:-unset} KEPT=${KEPT:-unset} MODELS=${SWARM_MODELS_FILE:-unset}"
    mode=$(cat "$VOLUME_PATH/mode" 2>/dev/null || echo run)
    case "$mode" in
        crash-once) echo run > "$VOLUME_PATH/mode"; echo "crashing"; exit 3 ;;
        clean) echo "done"; exit 0 ;;
        chatty) for i in $(seq 1 400); do echo "line $i of a chatty worker that fills the log quickly"; done; exit 0 ;;
    esac
    while true; do sleep 0.2; done
""")


@pytest.fixture
def volume(tmp_path, repo):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    worker = bin_dir / "swarm-worker"
    worker.write_text(FAKE_WORKER)
    worker.chmod(0o755)
    vol = tmp_path / "volume"
    vol.mkdir()
    env_file = tmp_path / "environment"
    env_file.write_text('FAKE_TOKEN="from-etc-environment"\nKEPT=from-file\nexport OTHER=\'x\'\n')
    image_env = tmp_path / "image.env"
    image_env.write_text("FAKE_TOKEN=from-image\nKEPT=from-image\nSWARM_MODELS_FILE=/opt/swarm/models.json\n")
    env = dict(os.environ)
    env.update({
        "PATH": f"{bin_dir}:{env['PATH']}",
        "VOLUME_PATH": str(vol),
        "SWARM_ENV_FILE": str(env_file),
        "SWARM_IMAGE_ENV": str(image_env),
        "SWARM_CONSOLE": str(tmp_path / "console.log"),
        "KEPT": "from-process",
    })
    env.pop("FAKE_TOKEN", None)
    env.pop("SWARM_MODELS_FILE", None)
    context = {"dir": tmp_path, "vol": vol, "env": env, "script": str(repo / "scripts" / "onstart.sh")}
    yield context
    # Stop what the test started, by the pids it recorded.
    pid_file = vol / ".swarm-worker" / "onstart.pid"
    pids = []
    if pid_file.exists() and pid_file.read_text().strip():
        pids.append(int(pid_file.read_text()))
    if (vol / "worker.pids").exists():
        pids += [int(p) for p in (vol / "worker.pids").read_text().split()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_onstart(ctx, *args):
    started = time.monotonic()
    result = subprocess.run(["bash", ctx["script"], *args], env=ctx["env"], capture_output=True, text=True, timeout=20)
    return result, time.monotonic() - started


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def starts(ctx):
    path = ctx["vol"] / "worker.pids"
    return path.read_text().split() if path.exists() else []


def log_text(ctx):
    path = ctx["vol"] / "logs" / "swarm-worker.log"
    return path.read_text() if path.exists() else ""


def alive(pid):
    try:
        os.kill(int(pid), 0)
        return True
    except ProcessLookupError:
        return False


def supervisor_pid(ctx):
    return int((ctx["vol"] / ".swarm-worker" / "onstart.pid").read_text())


def test_starts_the_worker_once_in_the_background(volume):
    result, elapsed = run_onstart(volume, "--attach")
    assert result.returncode == 0, result.stderr
    assert elapsed < 5, "onstart must return while the worker keeps running"
    assert wait_for(lambda: "fake worker start" in log_text(volume))
    assert len(starts(volume)) == 1
    assert "args=[--attach]" in log_text(volume)
    assert alive(supervisor_pid(volume))
    # The console copy is what vast's request_logs shows.
    assert wait_for(lambda: "fake worker start" in (volume["dir"] / "console.log").read_text())


def test_second_run_is_a_no_op(volume):
    run_onstart(volume)
    assert wait_for(lambda: len(starts(volume)) == 1)
    first = supervisor_pid(volume)
    result, _ = run_onstart(volume)
    assert result.returncode == 0
    assert "already running" in result.stdout
    time.sleep(1)
    assert len(starts(volume)) == 1 and supervisor_pid(volume) == first


def test_stale_pidfile_after_a_reboot_is_ignored(volume):
    pid_dir = volume["vol"] / ".swarm-worker"
    pid_dir.mkdir()
    (pid_dir / "onstart.pid").write_text("999999\n")
    result, _ = run_onstart(volume)
    assert result.returncode == 0
    assert wait_for(lambda: len(starts(volume)) == 1)
    assert supervisor_pid(volume) != 999999


def test_restarts_after_a_crash(volume):
    (volume["vol"] / "mode").write_text("crash-once\n")
    run_onstart(volume)
    assert wait_for(lambda: len(starts(volume)) == 2, timeout=15)
    assert "exited with status 3; restarting" in log_text(volume)
    assert alive(starts(volume)[-1])


def test_no_restart_after_a_clean_exit(volume):
    (volume["vol"] / "mode").write_text("clean\n")
    run_onstart(volume)
    assert wait_for(lambda: "exited cleanly; not restarting" in log_text(volume))
    assert wait_for(lambda: not (volume["vol"] / ".swarm-worker" / "onstart.pid").exists())
    time.sleep(1.5)
    assert len(starts(volume)) == 1


def test_sigterm_stops_the_worker_without_restart(volume):
    run_onstart(volume)
    assert wait_for(lambda: len(starts(volume)) == 1)
    supervisor = supervisor_pid(volume)
    os.kill(supervisor, signal.SIGTERM)
    assert wait_for(lambda: not alive(supervisor))
    assert wait_for(lambda: not alive(starts(volume)[0]))
    assert wait_for(lambda: "worker got SIGTERM" in log_text(volume))
    time.sleep(1)
    assert len(starts(volume)) == 1


def test_environment_files_fill_only_missing_variables(volume):
    run_onstart(volume)
    assert wait_for(lambda: "fake worker start" in log_text(volume))
    # The process wins, then the platform's /etc/environment, then the image's defaults.
    assert "TOKEN=from-etc-environment" in log_text(volume)
    assert "KEPT=from-process" in log_text(volume)
    assert "MODELS=/opt/swarm/models.json" in log_text(volume)


def test_log_is_size_capped_and_rotated(volume):
    volume["env"]["SWARM_LOG_MAX_BYTES"] = "4000"
    volume["env"]["SWARM_LOG_KEEP"] = "2"
    (volume["vol"] / "mode").write_text("chatty\n")
    run_onstart(volume)
    logs = volume["vol"] / "logs"
    assert wait_for(lambda: (logs / "swarm-worker.log.2").exists(), timeout=15)
    # The sink drains after the supervisor is gone; wait for the supervisor's last line.
    assert wait_for(lambda: "not restarting" in "".join(path.read_text() for path in logs.iterdir()))
    assert not (logs / "swarm-worker.log.3").exists()
    for path in logs.iterdir():
        assert path.stat().st_size <= 4000 + 200, path
