"""Run the proxy: ``python -m examples.proxy nginx.conf --port 8080``."""

from __future__ import annotations

import argparse

import uvicorn

from examples.proxy.app import ProxyApp
from lbkit.nginx import load_config


def main(argv: list[str] | None = None) -> None:
    """Load the nginx.conf and serve it with uvicorn until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m examples.proxy", description=__doc__)
    parser.add_argument("config", help="an nginx.conf (includes are followed)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--listen", help="the nginx listen socket these requests stand for")
    parser.add_argument("--admin-path", help="serve the upstreams' peer state as JSON here")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    for warning in config.warnings:
        print(f"nginx: [warn] {warning}")
    app = ProxyApp(config, listen=args.listen, admin_path=args.admin_path)
    # proxy_headers=False: $remote_addr is the connection's address, as in nginx
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        lifespan="on",
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
