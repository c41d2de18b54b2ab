"""`backend: server`: score a model through an OpenAI-compatible serving engine.

harness starts the engine from `server.command` as a child of the worker, so it runs inside the
worker's sandbox (the same namespaces and seccomp filter) and listens on 127.0.0.1 of the
worker's own network namespace, which holds only loopback and the capture device. lm-eval's
`local-completions` model talks to it there; the supervisor samples the namespace's TCP table
from outside (`harness.sandbox.loopback`), so the report can show that every connection went to
that one port. The engine is stopped (terminate, then kill) when the model is done or fails.

lm-eval's model over the engine is in `harness.models.server_lm`: generation streams, watched
by `harness.thinking.AnswerWatcher`, so the thinking budget and answer-only stop sequences work
as on the transformers path.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness.config import ModelSpec
from harness.errors import ModelLoadError
from harness.models.load import LoadedModel

log = logging.getLogger("harness")

HOST = "127.0.0.1"
DEFAULT_CONTEXT = 2048
"""The context window assumed when neither the config (`generation.max_length`) nor the engine
(`max_model_len` in `/v1/models`, as vLLM gives it) says: llama.cpp's server default."""


def free_port() -> int:
    """A TCP port free on loopback now (the kernel's pick), for the engine to listen on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def engine_command(spec: ModelSpec, source, port: int) -> list[str]:
    """`server.command` with its placeholders filled. A leading `python` is the Python harness
    runs on, so an engine installed beside harness is found without PATH."""
    model = source.directory / source.gguf_file if source.gguf_file else source.directory
    values = {"model": str(model), "port": str(port), "host": HOST}
    command = [part.format(**values) for part in spec.server.command]
    if command[0] in ("python", "python3"):
        command[0] = sys.executable
    return command


class Engine:
    """A serving engine running as a child of this process, its output in a log file."""

    def __init__(self, command: list[str], port: int, model_id: str) -> None:
        self.command = command
        self.port = port
        self.model_id = model_id
        handle, name = tempfile.mkstemp(prefix="engine-", suffix=".log")
        self.log_path = Path(name)
        self._log = os.fdopen(handle, "wb")
        bypass_proxies_on_loopback()
        env = dict(os.environ)
        try:
            # Its own process group: an engine that starts workers of its own (vLLM) is
            # stopped whole.
            self.popen = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            self._log.close()
            raise ModelLoadError(
                f"model '{model_id}': could not start the serving engine "
                f"`{' '.join(command)}`: {exc}. Fix `server.command`."
            ) from None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def describe(self) -> dict:
        """The model's `server` entry in the results (`harness.record.ServerRecord`)."""
        return {
            "endpoint": f"{HOST}:{self.port}",
            "local_endpoint": f"{HOST}:{self.port}",
            "command": self.command,
            "started_by_harness": True,
            "echo_logprobs_aligned": getattr(self, "echo_aligned", None),
        }

    def tail(self, lines: int = 15) -> str:
        """The last lines the engine wrote."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def wait_ready(self, timeout: float) -> dict:
        """Poll `/v1/models` until the engine answers; its answer. Raises `ModelLoadError`
        (with the engine's last lines) when it exits or does not answer within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.popen.poll()
            if code is not None:
                raise ModelLoadError(
                    f"model '{self.model_id}': the serving engine exited (code {code}) before "
                    f"it was ready. Its last lines:\n{self.tail()}"
                )
            try:
                return get_json(f"{self.base_url}/models", timeout=2)
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ModelLoadError(
                    f"model '{self.model_id}': the serving engine did not answer on "
                    f"{HOST}:{self.port} within {timeout:g} s (server.ready_timeout). Its last "
                    f"lines:\n{self.tail() or '(nothing)'}"
                )
            time.sleep(0.25)

    def stop(self, grace: float = 10.0) -> None:
        """Terminate the engine's process group, then kill it if it lingers."""
        if self.popen.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(self.popen.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.popen.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._log.close()
        log.info("serving engine of %s stopped; its last lines:\n%s", self.model_id, self.tail())
        self.log_path.unlink(missing_ok=True)


class Endpoint:
    """An engine already running on this host (`endpoint`), outside the sandbox. In a sandboxed
    worker it is reached through the supervisor's relay (`harness.sandbox.loopback.
    EndpointRelay`): a forwarder here listens on 127.0.0.1 of the worker's namespace and joins
    each connection to the relay's Unix socket, which the supervisor joins to the endpoint
    alone. Unsandboxed, it is reached directly."""

    def __init__(self, url: str, model_id: str) -> None:
        from harness.sandbox.loopback import endpoint_address

        self.host, self.target_port, path = endpoint_address(url)
        self.model_id = model_id
        self._forwarder = None
        bypass_proxies_on_loopback()
        relay = os.environ.get(RELAY_ENV)
        if relay:
            self._forwarder = _Forwarder(relay)
            self.port = self._forwarder.port
            self.base_url = f"http://{HOST}:{self.port}{path}"
        else:
            self.port = self.target_port
            self.base_url = f"http://{self.host}:{self.port}{path}"

    def describe(self) -> dict:
        return {
            "endpoint": f"{self.host}:{self.target_port}",
            "local_endpoint": f"{HOST}:{self.port}" if self._forwarder else None,
            "command": None,
            "started_by_harness": False,
            "echo_logprobs_aligned": getattr(self, "echo_aligned", None),
        }

    def wait_ready(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return get_json(f"{self.base_url}/models", timeout=5)
            except (OSError, ValueError) as exc:
                if time.monotonic() > deadline:
                    raise ModelLoadError(
                        f"model '{self.model_id}': the engine at endpoint "
                        f"{self.host}:{self.target_port} did not answer within {timeout:g} s "
                        f"({exc}). Start it first, or fix `endpoint`."
                    ) from None
            time.sleep(0.5)

    def stop(self) -> None:
        if self._forwarder is not None:
            self._forwarder.close()


RELAY_ENV = "HARNESS_ENDPOINT_SOCKET"
"""Set by the supervisor in a sandboxed worker's environment: the relay's Unix socket."""


class _Forwarder:
    """Inside the worker: 127.0.0.1:`port` -> the relay's Unix socket, one stream each."""

    def __init__(self, relay: str) -> None:
        from harness.sandbox.splice import Splice

        self.relay = relay
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((HOST, 0))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._splice = Splice(listener, self._connect, "endpoint-forwarder")

    def _connect(self) -> socket.socket:
        outer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            outer.connect(self.relay)
        except OSError:
            outer.close()
            raise
        return outer

    def close(self) -> None:
        self._splice.close()


def bypass_proxies_on_loopback() -> None:
    """Keep requests to the engine off any proxy the environment names: lm-eval's API model
    posts with `requests`, which honours `HTTP_PROXY` unless `NO_PROXY` lists the host."""
    for name in ("NO_PROXY", "no_proxy"):
        present = [p for p in os.environ.get(name, "").split(",") if p]
        os.environ[name] = ",".join(dict.fromkeys([*present, HOST, "localhost"]))


def get_json(url: str, timeout: float, payload: dict | None = None) -> dict:
    """GET (or POST `payload`) on loopback, never through a proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with opener.open(request, timeout=timeout) as response:
        return json.loads(response.read())


def start_server(spec: ModelSpec, source) -> LoadedModel:
    """Start `server.command` here (inside the worker's sandbox), or reach the `endpoint`; wait
    until it answers, and load the tokenizer lm-eval counts tokens with. A started engine is
    stopped if anything fails."""
    from harness.models.load import load_tokenizer

    began = time.perf_counter()
    if spec.endpoint:
        engine = Endpoint(spec.endpoint, spec.id)
        timeout = 60.0
    else:
        port = free_port()
        engine = Engine(engine_command(spec, source, port), port, spec.id)
        timeout = spec.server.ready_timeout
    try:
        listed = engine.wait_ready(timeout)
        served = [m.get("id") for m in listed.get("data") or [] if isinstance(m, dict)]
        named = spec.server.model_name if spec.server else None
        engine.model_name = named or (served[0] if served else spec.id)
        engine.context = spec.generation.max_length or next(
            (m["max_model_len"] for m in listed.get("data") or [] if m.get("max_model_len")),
            DEFAULT_CONTEXT,
        )
        engine.echo_aligned = echo_aligned(engine)
        tokenizer = load_tokenizer(spec, source)
    except BaseException:
        engine.stop()
        raise
    return LoadedModel(
        model=engine,
        tokenizer=tokenizer,
        device=f"server {engine.describe()['endpoint']}",
        dtype="as served",
        load_seconds=time.perf_counter() - began,
        parameters=None,
    )


def echo_aligned(engine: Engine) -> bool:
    """Whether the engine's echoed log-probabilities follow the OpenAI completions API: with
    `echo` and `max_tokens: 1`, one entry per prompt token plus one for the generated token.

    lm-eval's `local-completions` sums the entries of the continuation by that layout.
    llama-cpp-python's server (checked on 0.3.36) leaves out the generated token and gives
    each prompt token the probability of the next position's distribution (`Llama.
    _create_completion` indexes `_scores` by the token's own position), so its loglikelihoods
    are not those of the model: harness refuses them (`ServerLM.loglikelihood`)."""
    probe = "The capital of France is Paris"
    try:
        answer = get_json(
            f"{engine.base_url}/completions",
            timeout=60,
            payload={
                "model": getattr(engine, "model_name", None),
                "prompt": probe,
                "max_tokens": 1,
                "logprobs": 1,
                "echo": True,
                "temperature": 0,
            },
        )
        choice = answer["choices"][0]
        tokens = choice["logprobs"]["tokens"]
        # The generated token must be among the echoed ones (a BOS token may lead them).
        return choice["text"] != probe and "".join(tokens).endswith(choice["text"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False


def server_problems(spec: ModelSpec, config_file=None) -> list[str]:
    """Why `backend: server` cannot run here (`harness.models.engines.engine_problems`)."""
    import shutil

    from harness.errors import BadInputError

    where = f"model '{spec.id}'" + (f" in {config_file}" if config_file else "")
    if spec.endpoint:
        from harness.sandbox.loopback import endpoint_address

        try:
            endpoint_address(spec.endpoint)
        except BadInputError as exc:
            return [f"{where}: {exc}"]
        return []
    command = spec.server.command
    if command[0] not in ("python", "python3"):
        if shutil.which(command[0]) is None:
            return [
                f"{where}: the serving engine's program `{command[0]}` (server.command) is not "
                "installed here: install it, or give its full path."
            ]
    elif len(command) > 2 and command[1] == "-m" and not _importable(command[2]):
        return [
            f"{where}: the serving engine's module `{command[2]}` (server.command) is not "
            f"installed in this Python environment ({sys.executable}): install it (for "
            "llama.cpp: `pip install 'llama-cpp-python[server]'`)."
        ]
    return []


def _importable(module: str) -> bool:
    """Whether the module's top-level package is installed (found, not imported: the
    supervisor loads no engine)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module.partition(".")[0]) is not None
    except (ImportError, ValueError):
        return False
