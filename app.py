"""quantwm dashboard: `python app.py` serves it on http://127.0.0.1:7860 (set PORT to change).

`python app.py --checkpoint-root ROOT --model-name NAME --dinov2 PATH [--stats PATH] [--trust-checkpoint]
[--device cuda]` serves an official DINO-WM model instead of the shipped ones.
"""
import argparse
import os

from quantwm.runtime import configure_runtime


def main() -> None:
    configure_runtime()  # before gradio is imported
    from quantwm.cli import add_official_arguments, official_from_args
    from quantwm.runtime import DEVICES
    from quantwm.ui import build_app

    parser = argparse.ArgumentParser(description=__doc__)
    add_official_arguments(parser)
    parser.add_argument("--device", default="cpu", choices=DEVICES)
    args = parser.parse_args()
    try:
        app = build_app(official_from_args(args), args.device)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    app.launch(server_name=os.environ.get("HOST", "127.0.0.1"), server_port=int(os.environ.get("PORT", "7860")))


if __name__ == "__main__":
    main()
