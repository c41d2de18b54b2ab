"""The network guard against real sockets. Each case runs in its own Python process, because an
audit hook stays installed for the life of a process. Targets are a listener this test starts on
127.0.0.1 (with loopback forbidden by policy) and numeric TEST-NET addresses, whose lookup never
leaves the machine even if the guard failed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

PRELUDE = """
import json, socket, sys
from harness.offline import EgressBlocked, install_guard
"""


def run_script(body: str, *, no_network: bool = False) -> dict:
    """Run `body` in a new interpreter. With `no_network`, and where the OS allows, inside a
    network namespace with no interface but a down loopback: a second barrier, should the
    guard fail, for cases whose target is not on this machine."""
    code = PRELUDE + textwrap.dedent(body)
    command = [sys.executable, "-c", code]
    if no_network and shutil.which("unshare") and os.geteuid() == 0:
        command = ["unshare", "-n", *command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_self_test_passes_once_installed():
    out = run_script(
        """
        guard = install_guard()
        print(json.dumps({"self_test": guard.self_test(), "records": len(guard.records)}))
        """
    )
    assert out == {"self_test": {"passed": True, "method": "loopback canary"}, "records": 0}


def test_resolving_a_remote_address_is_blocked_and_recorded():
    out = run_script(
        """
        guard = install_guard()
        try:
            socket.getaddrinfo("192.0.2.7", 443)
            outcome = "resolved"
        except EgressBlocked as exc:
            outcome = "blocked"
        print(json.dumps({"outcome": outcome, "records": [r.to_dict() for r in guard.records]}))
        """,
        no_network=True,
    )
    assert out["outcome"] == "blocked"
    [record] = out["records"]
    assert record["event"] == "socket.getaddrinfo"
    assert (record["host"], record["port"]) == ("192.0.2.7", 443)
    assert record["package"] == "__main__"
    assert record["blocked"] is True
    assert record["thread"] == "MainThread"


def test_loopback_connect_is_blocked_when_policy_forbids_it():
    out = run_script(
        """
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        guard = install_guard(allow_loopback=False)
        client = socket.socket()
        try:
            client.connect(("127.0.0.1", port))
            outcome = "connected"
        except EgressBlocked:
            outcome = "blocked"
        try:
            listener.accept()
            arrived = True
        except TimeoutError:
            arrived = False
        print(json.dumps({"outcome": outcome, "arrived": arrived, "port": port,
                          "records": [r.to_dict() for r in guard.records]}))
        """
    )
    assert out["outcome"] == "blocked"
    assert out["arrived"] is False, "the connection reached the listener"
    [record] = out["records"]
    assert record["event"] == "socket.connect"
    assert (record["host"], record["port"]) == ("127.0.0.1", out["port"])


def test_loopback_is_let_through_when_allowed():
    out = run_script(
        """
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        guard = install_guard(allow_loopback=True)
        client = socket.create_connection(("localhost", port), timeout=5)
        conn, _ = listener.accept()
        client.sendall(b"ping")
        print(json.dumps({"got": conn.recv(4).decode(), "records": len(guard.records)}))
        """
    )
    assert out == {"got": "ping", "records": 0}


def test_http_clients_are_blocked_before_connecting():
    out = run_script(
        """
        import http.client, urllib.request
        from http.server import BaseHTTPRequestHandler, HTTPServer
        import threading
        hits = []
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200); self.end_headers()
            def log_message(self, *args):
                pass
        server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        guard = install_guard(allow_loopback=False)
        errors = []
        for attempt in (
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/urllib", timeout=2),
            lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/hc"),
        ):
            try:
                attempt()
            except Exception as exc:
                errors.append(type(exc).__name__)
        server.shutdown()
        print(json.dumps({"hits": hits, "errors": errors,
                          "events": [r.event for r in guard.records]}))
        """
    )
    assert out["hits"] == []
    assert len(out["errors"]) == 2
    assert out["events"][0] == "urllib.Request"
    assert "http.client.connect" in out["events"]


def test_a_third_party_caller_is_named_past_the_http_stack():
    # datasets asks huggingface_hub's httpx session to HEAD an S3 URL; the package named must be
    # datasets, not the HTTP library underneath. Run with the offline variables unset.
    out = run_script(
        """
        import os
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_UPDATE_DOWNLOAD_COUNTS"):
            os.environ.pop(name, None)
        guard = install_guard()
        from datasets.load import increase_load_count
        increase_load_count("json")
        print(json.dumps([r.to_dict() for r in guard.records]))
        """,
        no_network=True,
    )
    assert out, "datasets made no attempt: is the download counter still there?"
    assert out[0]["package"] == "datasets"
    assert out[0]["host"] == "s3.amazonaws.com"
    assert any(frame.startswith("datasets.load:increase_load_count") for frame in out[0]["stack"])


def test_udp_sendto_and_wildcard_bind_are_blocked():
    out = run_script(
        """
        guard = install_guard(allow_loopback=False)
        outcomes = []
        for attempt in (
            lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", 9)),
            lambda: socket.socket().bind(("", 0)),
        ):
            try:
                attempt()
                outcomes.append("done")
            except EgressBlocked:
                outcomes.append("blocked")
        print(json.dumps({"outcomes": outcomes,
                          "records": [(r.event, r.host) for r in guard.records]}))
        """
    )
    assert out["outcomes"] == ["blocked", "blocked"]
    assert out["records"] == [["socket.sendto", "127.0.0.1"], ["socket.bind", "0.0.0.0"]]


def test_http_libraries_are_attributed_to_their_caller():
    out = run_script(
        """
        import importlib.util
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.3)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        guard = install_guard(allow_loopback=False)
        tried = []
        for name in ("requests", "httpx", "httpx2"):
            if importlib.util.find_spec(name) is None:
                continue
            library = __import__(name)
            tried.append(name)
            try:
                library.get(url, timeout=2)
            except Exception:
                pass
        try:
            listener.accept()
            arrived = True
        except TimeoutError:
            arrived = False
        print(json.dumps({"tried": tried, "arrived": arrived,
                          "packages": [r.package for r in guard.records]}))
        """
    )
    assert out["tried"], "no HTTP library installed to try"
    assert out["arrived"] is False
    assert len(out["packages"]) >= len(out["tried"])
    assert set(out["packages"]) == {"__main__"}  # past requests/httpx, to the code that asked


def test_a_child_process_is_guarded_and_its_record_reaches_the_parent(tmp_path):
    out = run_script(
        f"""
        import subprocess, pathlib
        from harness.offline.guard import guard_children
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        sink = pathlib.Path({str(tmp_path / "e.jsonl")!r})
        guard = install_guard(allow_loopback=False, sink=sink)
        guard_children(guard)
        child = subprocess.run(
            [sys.executable, "-c",
             f"import socket; socket.create_connection(('127.0.0.1', {{port}}), timeout=2)"],
            capture_output=True, text=True,
        )
        try:
            listener.accept()
            arrived = True
        except TimeoutError:
            arrived = False
        print(json.dumps({{"child_rc": child.returncode, "child_err": child.stderr[-300:],
                          "arrived": arrived, "parent_pid": __import__("os").getpid(),
                          "children": guard.child_records(), "own": len(guard.records)}}))
        """
    )
    assert out["child_rc"] != 0 and "EgressBlocked" in out["child_err"]
    assert out["arrived"] is False
    [record] = out["children"]
    assert record["event"] == "socket.getaddrinfo" and record["host"] == "127.0.0.1"
    assert record["pid"] != out["parent_pid"]
    assert out["own"] == 0


def test_starting_a_network_tool_is_blocked_but_local_tools_run():
    out = run_script(
        """
        import subprocess
        guard = install_guard()
        results = {}
        for command in (["curl", "-s", "http://192.0.2.9/"], ["git", "clone", "x://y"],
                        ["sh", "-c", "true; wget -q http://192.0.2.9/"], ["git", "--version"]):
            try:
                subprocess.run(command, capture_output=True)
                results[command[0] + " " + command[1]] = "ran"
            except EgressBlocked:
                results[command[0] + " " + command[1]] = "blocked"
            except FileNotFoundError:
                results[command[0] + " " + command[1]] = "ran"  # not installed: not blocked
        print(json.dumps({"results": results,
                          "commands": [r.command for r in guard.records]}))
        """,
        no_network=True,
    )
    assert out["results"] == {
        "curl -s": "blocked", "git clone": "blocked", "sh -c": "blocked", "git --version": "ran",
    }  # fmt: skip
    assert out["commands"][0] == "curl -s http://192.0.2.9/"


def test_the_child_sitecustomize_also_runs_the_one_it_shadows(tmp_path):
    from harness.offline.guard import CHILD_SITE

    (tmp_path / "sitecustomize.py").write_text("import builtins\nbuiltins.SHADOWED_RAN = True\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CHILD_SITE), str(tmp_path)])}
    env["HARNESS_EGRESS_LOG"] = str(tmp_path / "e.jsonl")
    code = (
        "import builtins, sys; from harness.offline import guard; "
        "print(getattr(builtins, 'SHADOWED_RAN', False), guard._ACTIVE is not None)"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.stdout.split() == ["True", "True"], proc.stderr
