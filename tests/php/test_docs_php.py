"""docs/php.md's Flask app under gunicorn, sharing a session with php-cli on redis-server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.integrations.conftest import AppServer, docs_file, gunicorn

from .test_php_interop import PhpApp


def test_docs_flask_app_shares_sessions_with_php(tmp_path: Path, redis_proc: Any) -> None:
    (tmp_path / "php_shared_app.py").write_text(docs_file("php.md", "php_shared_app.py"))
    env = {"REDIS_URL": f"redis://127.0.0.1:{redis_proc.port}/0"}
    server = AppServer(gunicorn("php_shared_app:app"), env, tmp_path, tmp_path / "app.log")
    try:
        php = PhpApp("redis", redis_proc.port, "php")
        sid = php.run("new", changes={"user": "alice", "cart": ["php item"]})["id"]
        got = httpx.post(f"{server.url}/cart/py-item", cookies={"PHPSESSID": sid}, timeout=10)
        assert got.status_code == 200, server.log.read_text()
        assert got.json() == {"user": "alice", "cart": ["php item", "py-item"]}
        assert "set-cookie" not in got.headers  # PHP's id is kept
        assert php.run("update", sid)["session"] == {
            "user": "alice",
            "cart": ["php item", "py-item"],
        }
    finally:
        server.stop()
