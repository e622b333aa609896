"""quantwm dashboard: `python app.py` serves it on http://127.0.0.1:7860 (set PORT to change)."""
import os

from quantwm.runtime import configure_runtime

configure_runtime()

from quantwm.ui import build_app  # noqa: E402  (after the runtime settings)

if __name__ == "__main__":
    build_app().launch(server_name=os.environ.get("HOST", "127.0.0.1"), server_port=int(os.environ.get("PORT", "7860")))
