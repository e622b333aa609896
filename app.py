"""quantwm dashboard: `python app.py` serves it on http://127.0.0.1:7860.

`python app.py [--host HOST] [--port PORT] [--share] [--concurrency N] [--device cpu|cuda]`; HOST and
PORT may also come from the environment (Docker). `--checkpoint-root ROOT --model-name NAME --dinov2 PATH
[--stats PATH] [--trust-checkpoint]` serves an official DINO-WM model instead of the shipped ones.
Nothing is fetched from the network unless --share is given.
"""
import argparse
import os
import socket
import sys

from quantwm.runtime import configure_runtime


def port_in_use(host: str, port: int) -> bool:
    """Whether ``host:port`` cannot be bound (another server listens there; closed connections
    lingering in TIME_WAIT do not count, as for the server itself)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def main() -> None:
    configure_runtime()  # before gradio is imported
    from quantwm.cache import ResultsCache
    from quantwm.cli import add_official_arguments, official_from_args
    from quantwm.runtime import DEVICES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="interface to serve on")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="experiments computing at once (others queue; cached results never wait)")
    parser.add_argument("--device", default="cpu", choices=DEVICES)
    add_official_arguments(parser)
    args = parser.parse_args()
    if args.concurrency < 1:
        parser.error("--concurrency must be >= 1")
    if port_in_use(args.host, args.port):
        print(f"quantwm: port {args.port} is in use; pass --port", file=sys.stderr)
        sys.exit(2)

    from quantwm.ui import build_app, launch_options

    cache = ResultsCache()
    try:
        app = build_app(official_from_args(args), args.device, args.concurrency, cache)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    app.queue().launch(server_name=args.host, server_port=args.port, share=args.share,
                       allowed_paths=[str(cache.root)], footer_links=["api", "settings"], **launch_options())


if __name__ == "__main__":
    main()
